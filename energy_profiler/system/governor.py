"""The CPU frequency governor: set for a campaign, restored afterwards whatever happens.

cpufreq exposes one `cpu*/cpufreq/scaling_governor` file per CPU under `/sys/devices/system/cpu`
(`MUTATION_CPUFREQ_ROOT` overrides it for tests and odd systems). The previous value of every CPU
is kept so it can be written back: at the end of the campaign, after an exception or a signal, and
by the watchdog if mutation.py is killed outright.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from energy_profiler.errors import ToolExit

CPUFREQ_ROOT_ENV = "MUTATION_CPUFREQ_ROOT"
DEFAULT_CPUFREQ_ROOT = Path("/sys/devices/system/cpu")


class GovernorError(ToolExit):
    """The governor cannot be set here; the message says why and what to do (exit 2)."""


def cpufreq_root() -> Path:
    return Path(os.environ.get(CPUFREQ_ROOT_ENV, DEFAULT_CPUFREQ_ROOT))


def governor_files(root: Path) -> list[Path]:
    """Every CPU's scaling_governor file, in CPU order."""
    files = [path / "cpufreq" / "scaling_governor" for path in root.glob("cpu[0-9]*")]
    return sorted((file for file in files if file.is_file()), key=lambda f: int(re.sub(r"\D", "", f.parts[-3])))


def current(root: Path) -> dict[str, str]:
    """{cpu: governor} now."""
    return {file.parts[-3]: file.read_text().strip() for file in governor_files(root)}


def available(root: Path) -> set[str]:
    """The governors every CPU offers."""
    offered: set[str] | None = None
    for file in governor_files(root):
        choices = file.with_name("scaling_available_governors")
        names = set(choices.read_text().split()) if choices.is_file() else set()
        offered = names if offered is None else offered & names
    return offered or set()


def check(root: Path, governor: str) -> None:
    """Raise GovernorError unless `governor` can be set on every CPU (nothing is written)."""
    files = governor_files(root)
    if not files:
        raise GovernorError(f"no cpufreq governors under {root} (no cpufreq driver, or a virtual machine)")
    offered = available(root)
    if governor not in offered:
        raise GovernorError(f"governor {governor!r} is not offered here; the CPUs offer: "
                            f"{', '.join(sorted(offered)) or 'none'}")
    unwritable = [file for file in files if not os.access(file, os.W_OK)]
    if unwritable:
        raise GovernorError(f"{unwritable[0]} is not writable: run mutation.py with sudo to set the governor")


def apply(root: Path, governors: Mapping[str, str]) -> None:
    """Write {cpu: governor}; every CPU is attempted even if one fails, then the first error raised."""
    errors = []
    for cpu, governor in governors.items():
        try:
            (root / cpu / "cpufreq" / "scaling_governor").write_text(governor)
        except OSError as error:
            errors.append(f"{cpu}: {error}")
    if errors:
        raise GovernorError("could not set the governor: " + "; ".join(errors))


def summary(root: Path) -> str | None:
    """The governor in force (`mixed: a, b` if CPUs differ), or None without cpufreq."""
    names = sorted(set(current(root).values()))
    if not names:
        return None
    return names[0] if len(names) == 1 else "mixed: " + ", ".join(names)


def restore_recorded(record: dict[str, Any] | None) -> list[str]:
    """Write back the governors a ledger says were changed; one line saying what was done."""
    if not record:
        return []
    previous = record["previous"]
    try:
        apply(Path(record["root"]), previous)
    except GovernorError as error:
        return [f"could not restore the CPU governor: {error}"]
    return [f"restored the CPU governor ({', '.join(sorted(set(previous.values())))}) of {len(previous)} CPUs"]
