"""Shared fixtures: the real registry, a registry of fake trainings in a temp folder, a CLI runner."""

from __future__ import annotations

import atexit
import json
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from click.testing import CliRunner, Result

from energy_profiler.cli import cli
from energy_profiler.energy.base import Measurement, Monitor, Window

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REAL_REGISTRY = PROJECT_ROOT / "repos" / "models.json"


def real_registry_document() -> dict[str, Any]:
    """The bundled registry with its repository paths made absolute, to be written somewhere else
    (a relative path is relative to the registry file's folder)."""
    document: dict[str, Any] = json.loads(REAL_REGISTRY.read_text())
    for repo in document["repositories"].values():
        repo["path"] = str(REAL_REGISTRY.parent / repo["path"])
    return document
SERIAL_FIRST = ("test_slurm.py", "test_slurm_resume.py")
"""Files whose tests share one Slurm cluster each (the file's own ports and munge socket), so each
runs on one worker (`--dist loadfile` keeps a file together); they are also the longest, so they are
handed out first instead of finishing last."""


LONGEST_NEXT = ("test_parallel.py", "test_mcp.py", "test_migrate_flow.py", "test_resume.py", "test_stop.py",
                "test_knobs.py", "test_terminal_width.py")
"""The files that take longest after those (15-30 s of waiting on real processes each, measured with
`--durations=0`): handed out next, so that the short ones fill the gaps at the end."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return 0 if item.path.name in SERIAL_FIRST else 1 if item.path.name in LONGEST_NEXT else 2

    items.sort(key=rank)  # stable: the rest keep their order


FAKE_TRAIN = Path(__file__).resolve().parent / "fixtures" / "fake_train.py"
FAKE_PERF = Path(__file__).resolve().parent / "fixtures" / "fake_perf.py"


def measure(monitor: Monitor, seconds: float) -> Measurement:
    """One window of `seconds` measured by `monitor`, which is closed whatever happens."""
    try:
        monitor.start()
        time.sleep(seconds)
        monitor.stop()
        return monitor.result(Window(duration_s=seconds))
    finally:
        monitor.close()


def launcher(script: Path, folder: Path) -> Path:
    """An executable in `folder` that runs a fake tool's `script` with this interpreter, without site.

    The scripts' `#!/usr/bin/env python3` may find a version manager's shim (pyenv's costs 30-100 ms
    here) and site's imports: start-up time that the real tool does not have. The fakes model the
    real start-up themselves (FAKE_PERF_STARTUP_S), so they are launched as directly as possible.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / script.stem
    path.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -S {shlex.quote(str(script))} \"$@\"\n")
    path.chmod(0o755)
    return path


_LAUNCHERS = Path(tempfile.mkdtemp(prefix="mutation-test-bin-"))
atexit.register(shutil.rmtree, _LAUNCHERS, True)


def fast_fake(script: Path) -> str:
    """launcher() for module constants: one folder for the whole test session, removed at exit."""
    return str(launcher(script, _LAUNCHERS))


def _checkout_results() -> dict[str, int]:
    """Each file under the checkout's own results/ with its modification time (ns)."""
    folder = PROJECT_ROOT / "results"
    return {str(path): path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()}


@pytest.fixture(autouse=True, scope="session")
def checkout_results_untouched() -> Any:
    """No test writes into this checkout's results/: a test that did passed here (the folder was
    there, from `make demo`) and crashed on CI's fresh clone, where it is not."""
    before = _checkout_results()
    yield
    assert _checkout_results() == before, "a test wrote into the checkout's results/ folder"


@pytest.fixture(autouse=True)
def no_energy_hardware(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test starts on a machine without RAPL, perf power events, NVML, nvidia-smi, cpufreq or a known CPU.

    Tests that need hardware install fakes over this; the real machine's hardware never leaks in,
    so results do not depend on where the suite runs.
    """
    nothing = tmp_path_factory.getbasetemp() / "no-hardware"
    monkeypatch.setenv("MUTATION_POWERCAP_ROOT", str(nothing / "powercap"))
    monkeypatch.setenv("MUTATION_PERF_EVENTS", str(nothing / "power-events"))
    monkeypatch.setenv("MUTATION_PERF_PARANOID", str(nothing / "perf_event_paranoid"))  # unreadable: not a bar
    monkeypatch.setenv("MUTATION_NVIDIA_SMI", str(nothing / "nvidia-smi"))
    monkeypatch.setenv("MUTATION_NVML_MODULE", "mutation_tests_no_nvml")
    monkeypatch.setenv("MUTATION_CPUFREQ_ROOT", str(nothing / "cpufreq"))
    monkeypatch.setenv("MUTATION_CPUINFO", str(nothing / "cpuinfo"))  # no CPU model: no TDP from the table


def fake_repo(behaviour: str = "ok", **extra: Any) -> dict[str, Any]:
    """A registry entry that runs fixtures/fake_train.py with the given behaviour."""
    entry: dict[str, Any] = {
        "path": str(FAKE_TRAIN.parent),
        "command": [sys.executable, FAKE_TRAIN.name],
        "required_args": ["--behaviour", behaviour],
        "model_flag": "--model",
        "models": {"tiny": {}},
        "hyperparameters": {
            "learning_rate": {"flag": "--lr", "type": "float", "default": 0.1, "range": [0.001, 0.4],
                              "distribution": "log_uniform"},
            "epochs": {"flag": "--epochs", "type": "int", "default": 2, "range": [1, 5]},
        },
        "metrics": {"accuracy": {"pattern": r"accuracy: ([0-9.]+)", "required": True},
                    "loss": {"pattern": r"loss: ([0-9.]+)"}},
    }
    entry.update(extra)
    return entry


@pytest.fixture
def write_json(tmp_path: Path) -> Callable[[str, Any], Path]:
    def write(name: str, document: Any) -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(document, indent=2))
        return path

    return write


@pytest.fixture
def fake_registry(write_json: Callable[[str, Any], Path]) -> Callable[..., Path]:
    """Write a registry whose repositories are fake trainings: fake_registry(ok=fake_repo("ok"))."""
    def make(**repositories: dict[str, Any]) -> Path:
        return write_json("models.json", {"repositories": repositories or {"fake": fake_repo()}})

    return make


def invoke(*args: str | Path) -> Result:
    """Run the CLI in-process, stdout and stderr kept apart."""
    return CliRunner().invoke(cli, [str(arg) for arg in args], catch_exceptions=False)


def only_run_dir(results: Path) -> Path:
    runs = sorted(results.glob("run_*"))
    assert len(runs) == 1, runs
    return runs[0]


def running(pid: int) -> bool:
    """Alive: it exists and is not a zombie (one waiting for a parent that is not this process)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Poll `condition` until it holds or `timeout_s` passes; its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()
