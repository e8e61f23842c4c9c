"""Stopping mutation.py with a signal mid-trial: the trial is recorded, nothing is left running."""

from __future__ import annotations

import csv
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from test.conftest import PROJECT_ROOT, fake_repo, wait_for

HANG_SETTINGS = {"experiment_name": "stop", "grace_s": 2, "experiments": [
    {"mode": "default", "repo": "fake", "model": "tiny"},
    {"mode": "default", "repo": "ok", "model": "tiny"}]}


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                                   (signal.SIGHUP, 129)])
def test_a_signal_mid_trial_records_it_as_interrupted_and_ends_the_training(
        signum: int, exit_code: int, fake_registry: Callable[..., Path],
        write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    registry = fake_registry(fake=fake_repo("hang-with-child", required_args=[
        "--behaviour", "hang-with-child", "--pid-file", str(pid_file)]), ok=fake_repo())
    settings = write_json("s.json", HANG_SETTINGS)
    results = tmp_path / "results"
    tool = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "mutation.py"), "--registry", str(registry),
                             "--results-dir", str(results), "run", str(settings)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_for(lambda: pid_file.exists() and len(pid_file.read_text().split()) == 2, 20)
        pids = [int(pid) for pid in pid_file.read_text().split()]
        run_dir = next(results.glob("run_*"))
        assert (run_dir / "summary.csv").read_text().startswith("experiment_id,")  # the header is there first
        os.kill(tool.pid, signum)
        output, _ = tool.communicate(timeout=20)
    finally:
        if tool.poll() is None:  # the test failed before stopping it: do not leave it running
            tool.terminate()
            tool.wait(timeout=20)
    assert tool.returncode == exit_code, output

    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with open(run_dir / "summary.csv", newline="") as table:
        rows = list(csv.DictReader(table))
    # The interrupted trial has its row; the second trial never started.
    assert len(rows) == 1
    assert rows[0]["status"] == "interrupted"
    assert rows[0]["status_reason"] == f"interrupted by {signal.Signals(signum).name}"
    record = json.loads((run_dir / rows[0]["trial"] / "experiment.json").read_text())
    assert record["status"] == "interrupted"
    assert f"stopped by {signal.Signals(signum).name} after 1 of 2 trials" in output
    # The command to paste, whole on its own line: the interpreter that has the dependencies, the checkout's
    # mutation.py and the run folder, all absolute (it works from any folder).
    assert output.rstrip().endswith(f"to continue:\n{sys.executable} {PROJECT_ROOT / 'mutation.py'} run {settings} "
                                    f"--resume {run_dir}")


def test_a_closed_terminal_ends_the_campaign_with_129_and_the_trial_recorded(
        fake_registry: Callable[..., Path], write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    # A real pseudo-terminal as the campaign's controlling terminal (a tmux pane, an ssh session).
    # Closing it sends SIGHUP, and every later write to it fails with EIO: that write once ended
    # the campaign in a traceback (exit 1) before the trial was recorded.
    pid_file = tmp_path / "pids"
    registry = fake_registry(fake=fake_repo("hang-with-child", required_args=[
        "--behaviour", "hang-with-child", "--pid-file", str(pid_file)]), ok=fake_repo())
    settings = write_json("s.json", HANG_SETTINGS)
    results = tmp_path / "results"
    argv = [sys.executable, str(PROJECT_ROOT / "mutation.py"), "--registry", str(registry),
            "--results-dir", str(results), "run", str(settings)]
    pid, terminal = pty.fork()
    if pid == 0:  # the child: exec at once (this process has threads; nothing else is safe here)
        try:
            os.execv(sys.executable, argv)
        finally:
            os._exit(127)
    seen = b""
    try:
        # Keep reading the terminal (a full one would block the campaign) until the training runs.
        deadline = time.monotonic() + 30
        while not (pid_file.exists() and len(pid_file.read_text().split()) == 2) and time.monotonic() < deadline:
            if select.select([terminal], [], [], 0.1)[0]:
                seen += os.read(terminal, 65536)
        pids = [int(word) for word in pid_file.read_text().split()]
        assert b"cpu energy" in seen  # it printed to the terminal before
    finally:
        os.close(terminal)  # the terminal closes: the kernel sends SIGHUP to the campaign
    status = None
    deadline = time.monotonic() + 30
    while status is None and time.monotonic() < deadline:
        done, code = os.waitpid(pid, os.WNOHANG)
        status = os.waitstatus_to_exitcode(code) if done else None
        time.sleep(0.05)
    if status is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert status == 129
    for training in pids:
        assert not psutil.pid_exists(training) or psutil.Process(training).status() == psutil.STATUS_ZOMBIE
    with open(next(results.glob("run_*")) / "summary.csv", newline="") as table:
        rows = list(csv.DictReader(table))
    assert [(row["status"], row["status_reason"]) for row in rows] == [("interrupted", "interrupted by SIGHUP")]


def test_ctrl_c_says_it_waits_the_grace_period_a_second_ends_it_now_and_both_are_logged(
        fake_registry: Callable[..., Path], write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    # A training that ignores SIGTERM keeps the campaign waiting for grace_s after a Ctrl-C: the user
    # must be told so, and that a second Ctrl-C ends it at once; the record covers its whole life.
    pid_file = tmp_path / "pids"
    registry = fake_registry(fake=fake_repo("ignore-term", required_args=[
        "--behaviour", "ignore-term", "--pid-file", str(pid_file)]))
    settings = write_json("s.json", {"experiment_name": "stop", "grace_s": 30, "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny"}]})
    results = tmp_path / "results"
    tool = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "mutation.py"), "--registry", str(registry),
                             "--results-dir", str(results), "run", str(settings)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_for(lambda: pid_file.exists() and bool(pid_file.read_text().strip()), 20)
        first = time.monotonic()
        tool.send_signal(signal.SIGINT)
        log = next(results.glob("run_*")) / "session.log"
        assert wait_for(lambda: "SIGINT received at" in log.read_text(), 10)
        time.sleep(1.0)  # the training ignores SIGTERM: it is in its grace period now
        assert tool.poll() is None
        tool.send_signal(signal.SIGINT)
        output, _ = tool.communicate(timeout=20)
        second_to_end_s = time.monotonic() - first - 1.0
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.wait()
    assert tool.returncode == 130, output
    assert second_to_end_s < 10  # not the 30 s grace period
    run_dir = next(results.glob("run_*"))
    logged = (run_dir / "session.log").read_text()
    for text in (logged, output):
        assert "SIGINT received at " in text and "up to 30 s (grace_s) before SIGKILL" in text
        assert "press Ctrl-C again to end it now" in text
        assert "a second signal, so no more waiting: SIGKILL now" in text
    with open(run_dir / "summary.csv", newline="") as table:
        row = next(csv.DictReader(table))
    assert row["status"] == "interrupted" and row["exit_code"] == "-9"
    assert float(row["duration_s"]) >= 1.0  # until SIGKILL ended it, not until the first Ctrl-C was seen
