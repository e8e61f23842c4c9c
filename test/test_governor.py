"""The CPU governor: set for the campaign through a fake cpufreq tree, restored whatever happens."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from energy_profiler.system import governor
from test.conftest import PROJECT_ROOT, fake_repo, invoke, only_run_dir, wait_for

BEFORE = {"cpu0": "powersave", "cpu1": "schedutil", "cpu2": "powersave", "cpu10": "powersave"}


@pytest.fixture
def cpufreq(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cpu"
    for cpu, name in BEFORE.items():
        folder = root / cpu / "cpufreq"
        folder.mkdir(parents=True)
        (folder / "scaling_governor").write_text(name + "\n")
        (folder / "scaling_available_governors").write_text("performance powersave schedutil\n")
    (root / "cpufreq").mkdir()  # the real folder has non-CPU entries too
    monkeypatch.setenv("MUTATION_CPUFREQ_ROOT", str(root))
    return root


def settings(write_json: Callable[[str, Any], Path], name: str = "performance") -> Path:
    return write_json("s.json", {"experiment_name": "gov", "governor": name, "runs_per_config": 2,
                                 "experiments": [{"mode": "default", "repo": "fake", "model": "tiny"}]})


def test_the_governor_is_set_for_the_trials_and_restored_cpu_by_cpu(
        cpufreq: Path, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
        tmp_path: Path) -> None:
    assert [f.parts[-3] for f in governor.governor_files(cpufreq)] == ["cpu0", "cpu1", "cpu2", "cpu10"]
    result = invoke("--registry", fake_registry(), "--results-dir", tmp_path / "r", "run", settings(write_json))
    assert result.exit_code == 0, result.output
    assert "CPU governor set to performance on 4 CPUs (was powersave, schedutil)" in result.stdout
    with open(only_run_dir(tmp_path / "r") / "summary.csv", newline="") as table:
        assert [row["cpu_governor"] for row in csv.DictReader(table)] == ["performance", "performance"]
    assert governor.current(cpufreq) == BEFORE


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_the_governor_is_restored_after_a_signal(
        how: int, cpufreq: Path, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
        tmp_path: Path) -> None:
    started = tmp_path / "started"
    registry = fake_registry(fake=fake_repo("hang", required_args=["--behaviour", "hang", "--pid-file", str(started)]))
    tool = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "mutation.py"), "--registry", str(registry),
                             "--results-dir", str(tmp_path / "r"), "run", str(settings(write_json))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    try:
        assert wait_for(started.exists, 20)
        assert set(governor.current(cpufreq).values()) == {"performance"}
        tool.send_signal(how)
        tool.wait(timeout=20)
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.wait()
    # After SIGKILL nothing of mutation.py runs any more: the watchdog restores it.
    assert wait_for(lambda: governor.current(cpufreq) == BEFORE, 2.0), governor.current(cpufreq)


def test_a_governor_that_cannot_be_set_stops_the_campaign_before_it_starts(
        cpufreq: Path, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = settings(write_json, "ondemand")
    result = invoke("--registry", fake_registry(), "--results-dir", tmp_path / "r", "run", file)
    assert result.exit_code == 2
    assert (f"error: {file}: governor: governor 'ondemand' is not offered here; the CPUs offer: performance, "
            "powersave, schedutil") in result.stderr
    assert not (tmp_path / "r").exists() and governor.current(cpufreq) == BEFORE
    monkeypatch.setenv("MUTATION_CPUFREQ_ROOT", str(tmp_path / "none"))
    result = invoke("--registry", fake_registry(), "--results-dir", tmp_path / "r", "run", settings(write_json))
    assert result.exit_code == 2 and "no cpufreq governors under" in result.stderr
    # The file asked for it: the line says how to run without it (a migrated file keeps the older one's).
    assert result.stderr.rstrip().endswith('to run with the governor as it is, remove "governor" from the settings '
                                           'file')
    given = invoke("--registry", fake_registry(), "--results-dir", tmp_path / "r", "-g", "turbo", "run",
                   write_json("plain.json", {"experiment_name": "g", "experiments": [
                       {"mode": "default", "repo": "fake", "model": "tiny"}]}))
    assert given.exit_code == 2 and given.stderr.startswith("error: -g/--governor turbo: no cpufreq governors under")


def test_cleanup_restores_the_governor_a_dead_campaign_left_changed(cpufreq: Path, tmp_path: Path) -> None:
    governor.apply(cpufreq, dict.fromkeys(BEFORE, "performance"))
    ledger = tmp_path / "r" / ".running" / "campaign-4194301.json"
    ledger.parent.mkdir(parents=True)
    ledger.write_text(f'{{"owner": {{"pid": 4194301, "start_time": 1.0}}, "groups": [], '
                      f'"governor": {{"root": "{cpufreq}", "previous": {str(BEFORE).replace(chr(39), chr(34))}}}}}')
    result = invoke("--results-dir", tmp_path / "r", "cleanup")
    assert "restored the CPU governor (powersave, schedutil) of 4 CPUs" in result.stdout
    assert governor.current(cpufreq) == BEFORE


def test_a_governor_set_that_fails_part_way_restores_every_cpu(
        cpufreq: Path, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # cpufreq can refuse one CPU's write after others took theirs (a CPU going offline, a driver
    # that rejects it); root cannot be refused a write in a temp folder, so the refusal is made here.
    real_apply = governor.apply
    calls: list[dict[str, str]] = []

    def apply(root: Path, governors: dict[str, str]) -> None:
        calls.append(dict(governors))
        if len(calls) == 1:
            real_apply(root, {cpu: name for cpu, name in governors.items() if cpu in ("cpu0", "cpu1")})
            raise governor.GovernorError("could not set the governor: cpu2: [Errno 16] Device or resource busy")
        real_apply(root, governors)

    monkeypatch.setattr(governor, "apply", apply)
    result = invoke("--registry", fake_registry(), "--results-dir", tmp_path / "r", "run", settings(write_json))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: could not set the governor: cpu2: [Errno 16] Device or resource busy")
    assert governor.current(cpufreq) == BEFORE  # cpu0 and cpu1 were changed, and are restored
    assert calls[1] == BEFORE


def test_the_older_tools_command_line_runs_with_its_governor_over_the_settings_one(
        cpufreq: Path, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
        tmp_path: Path) -> None:
    # As its users typed it: -c for the registry, -g for the governor, -S (it appended to the global table).
    result = invoke("-c", fake_registry(), "--results-dir", tmp_path / "r", "-g", "schedutil", "-S",
                    "-ec", settings(write_json, "performance"))
    assert result.exit_code == 0, result.output
    assert "note: -S is not needed: every campaign appends its rows to results/summary_all.csv" in result.stderr
    assert "CPU governor set to schedutil on 4 CPUs" in result.stdout
    with open(only_run_dir(tmp_path / "r") / "summary.csv", newline="") as table:
        assert [row["cpu_governor"] for row in csv.DictReader(table)] == ["schedutil", "schedutil"]
    assert governor.current(cpufreq) == BEFORE
    adhoc = invoke("--config", fake_registry(), "--results-dir", tmp_path / "r", "-g", "nonsense",
                   "-r", "fake", "-m", "tiny", "-mt", "epochs")
    assert adhoc.exit_code == 2 and "governor 'nonsense' is not offered here" in adhoc.stderr
