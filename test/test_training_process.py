"""Running a training: real processes and process groups, ended completely in every case."""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from energy_profiler.process.groups import end_group, group_members
from energy_profiler.process.training import ProcessOutcome, run_training
from test.conftest import FAKE_TRAIN


def gone(pid: int) -> bool:
    """Not running: no such process, or a zombie waiting for a parent that is not us."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def fake(behaviour: str, *extra: str) -> list[str]:
    return [sys.executable, str(FAKE_TRAIN), "--behaviour", behaviour, *extra]


def run(argv: list[str], tmp_path: Path, **options: Any) -> ProcessOutcome:
    settings: dict[str, Any] = {"timeout_s": 30.0, "grace_s": 5.0, **options}
    return run_training(argv, tmp_path, dict(os.environ), tmp_path / "training.log", **settings)


def test_timeout_ends_the_training_and_its_child(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    outcome = run(fake("hang-with-child", "--pid-file", str(pid_file)), tmp_path, timeout_s=1.5)
    pids = [int(line) for line in pid_file.read_text().split()]
    assert len(pids) == 2  # the training and the child it started
    assert outcome.ended_by == "timeout"
    assert 1.5 <= outcome.duration_s < 3.0
    assert outcome.teardown is not None and outcome.teardown.signal == "SIGTERM"
    assert outcome.teardown.survivors == 0
    assert all(gone(pid) for pid in pids)


def test_a_training_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    started = time.monotonic()
    outcome = run(fake("ignore-term"), tmp_path, timeout_s=1.0, grace_s=0.5)
    assert outcome.ended_by == "timeout"
    assert outcome.teardown is not None
    assert outcome.teardown.signal == "SIGKILL"
    assert outcome.teardown.duration_s >= 0.5
    assert outcome.exit_code == -9
    assert time.monotonic() - started < 5


def test_processes_left_behind_after_a_normal_exit_are_ended(tmp_path: Path) -> None:
    pid_file = tmp_path / "leftover"
    script = f"sleep 300 & echo $! > {pid_file}; echo 'accuracy: 0.5'"
    outcome = run(["/bin/sh", "-c", script], tmp_path)
    assert outcome.ended_by == "exit" and outcome.exit_code == 0
    assert outcome.teardown is not None and outcome.teardown.signal == "SIGTERM"
    assert gone(int(pid_file.read_text()))


def test_a_failing_training_keeps_stdout_and_stderr_in_the_log(tmp_path: Path) -> None:
    echo = io.BytesIO()
    outcome = run(fake("fail"), tmp_path, echo=echo)
    assert (outcome.ended_by, outcome.exit_code) == ("exit", 4)
    log = (tmp_path / "training.log").read_text()
    assert "starting tiny" in log and "Traceback: something broke" in log
    assert echo.getvalue().decode() == log
    assert outcome.teardown is not None and outcome.teardown.signal is None  # nothing was left to end


def test_a_missing_executable_is_reported_not_raised(tmp_path: Path) -> None:
    outcome = run(["/no/such/trainer", "--x"], tmp_path)
    assert outcome.ended_by == "not_started" and outcome.exit_code is None
    assert outcome.error is not None and "/no/such/trainer" in outcome.error
    assert "could not start" in (tmp_path / "training.log").read_text()


def test_a_stop_request_ends_the_training_at_once(tmp_path: Path) -> None:
    requested_at = time.monotonic() + 0.5
    outcome = run(fake("hang"), tmp_path, should_stop=lambda: time.monotonic() > requested_at)
    assert outcome.ended_by == "interrupted"
    assert outcome.duration_s < 2
    assert outcome.teardown is not None and outcome.teardown.survivors == 0


def test_hurry_skips_the_grace_period(tmp_path: Path) -> None:
    outcome = run(fake("ignore-term"), tmp_path, timeout_s=0.5, grace_s=30, hurry=lambda: True)
    assert outcome.teardown is not None and outcome.teardown.signal == "SIGKILL"
    assert outcome.teardown.duration_s < 3


def test_the_training_runs_in_its_own_session_and_folder(tmp_path: Path) -> None:
    code = "import os; print(os.getsid(0) == os.getpid(), os.getcwd())"
    outcome = run([sys.executable, "-c", code], tmp_path)
    assert outcome.exit_code == 0
    assert (tmp_path / "training.log").read_text().split() == ["True", str(tmp_path)]


def test_end_group_on_an_empty_group_does_nothing() -> None:
    teardown = end_group(2**22 - 7, grace_s=1)
    assert (teardown.signal, teardown.survivors) == (None, 0)
    assert group_members(2**22 - 7) == []


def test_a_child_that_left_the_group_but_not_the_session_is_ended(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = ("import os, subprocess, sys, time; p = subprocess.Popen(['sleep', '300'], process_group=0); "
            f"open({str(pid_file)!r}, 'w').write(f'{{p.pid}} {{os.getpgid(p.pid)}} {{os.getpgid(0)}}'); "
            "time.sleep(300)")
    outcome = run([sys.executable, "-c", code], tmp_path, timeout_s=1.0, grace_s=2)
    escaped, escaped_group, training_group = (int(word) for word in pid_file.read_text().split())
    assert escaped_group == escaped != training_group  # it really left the training's group
    assert outcome.teardown is not None and outcome.teardown.survivors == 0
    assert gone(escaped)
