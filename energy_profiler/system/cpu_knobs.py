"""Each CPU's frequency cap: cpufreq's `scaling_max_freq`, in kHz, inside `cpuinfo_min_freq`..`cpuinfo_max_freq`.

The files are under `cpu*/cpufreq/` of the cpufreq root (MUTATION_CPUFREQ_ROOT, else
/sys/devices/system/cpu), writable by root only. The kernel keeps the cap inside the hardware's
limits and below any other limit in force (thermal, firmware), so the value read back after
writing is the one recorded as applied.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from energy_profiler.system.gpu_knobs import KnobError


def cpus(root: Path) -> list[str]:
    """The CPUs with a cpufreq policy file for the cap, in CPU order."""
    found = [path.name for path in root.glob("cpu[0-9]*") if (path / "cpufreq" / "scaling_max_freq").is_file()]
    return sorted(found, key=lambda name: int(re.sub(r"\D", "", name)))


def _read(root: Path, cpu: str, name: str) -> int:
    return int((root / cpu / "cpufreq" / name).read_text().strip())


def bounds(root: Path) -> tuple[int, int]:
    """[low, high] kHz every CPU takes; KnobError without cpufreq (a virtual machine, say)."""
    found = cpus(root)
    if not found:
        raise KnobError(f"no cpufreq scaling_max_freq under {root} (no cpufreq driver, or a virtual machine)")
    return (max(_read(root, cpu, "cpuinfo_min_freq") for cpu in found),
            min(_read(root, cpu, "cpuinfo_max_freq") for cpu in found))


def may_set(root: Path) -> str | None:
    """Why the cap cannot be written by this process, or None."""
    found = cpus(root)
    if not found:
        return f"no cpufreq scaling_max_freq under {root} (no cpufreq driver, or a virtual machine)"
    unwritable = [cpu for cpu in found if not os.access(root / cpu / "cpufreq" / "scaling_max_freq", os.W_OK)]
    if unwritable:
        return f"{root / unwritable[0] / 'cpufreq' / 'scaling_max_freq'} is not writable: run mutation.py with sudo"
    return None


def current(root: Path) -> dict[str, int]:
    """{cpu: kHz} of the cap now."""
    return {cpu: _read(root, cpu, "scaling_max_freq") for cpu in cpus(root)}


def apply(root: Path, caps: Mapping[str, int]) -> dict[str, int]:
    """Write {cpu: kHz}, every CPU attempted; {cpu: kHz read back}, or KnobError naming what failed."""
    errors = []
    for cpu, khz in caps.items():
        try:
            (root / cpu / "cpufreq" / "scaling_max_freq").write_text(str(khz))
        except OSError as error:
            errors.append(f"{cpu}: {error}")
    if errors:
        raise KnobError("could not set the CPU frequency cap: " + "; ".join(errors))
    return {cpu: _read(root, cpu, "scaling_max_freq") for cpu in caps}
