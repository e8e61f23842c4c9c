"""`stop RUN_DIR` from another process: graceful and --now, --wait, who may, and a campaign that has ended."""

from __future__ import annotations

import csv
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from energy_profiler.execution.stop_request import STOP_REQUEST, ask_to_stop
from energy_profiler.fs import give_files_to
from test.conftest import FAKE_TRAIN, fake_repo, invoke, only_run_dir, wait_for
from test.live_campaign import MUTATION, campaign, state, status_json, wait_for_trial
from test.privileges import in_child

SLOW = fake_repo("sleep", required_args=["--behaviour", "sleep", "--seconds", "3"])


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "summary.csv", newline="") as table:
        return list(csv.DictReader(table))


def stop(results: Path, *arguments: str | Path) -> subprocess.CompletedProcess[str]:
    """`stop` as its own process, as a user types it in another shell."""
    return subprocess.run([sys.executable, MUTATION, "--results-dir", str(results), "stop",
                           *(str(argument) for argument in arguments)],
                          capture_output=True, text=True, timeout=60, check=False)


def test_stop_lets_the_trial_in_progress_finish_runs_no_other_and_resume_runs_the_rest_once(
        fake_registry: Callable[..., Path], write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    registry, results = fake_registry(slow=SLOW), tmp_path / "results"
    settings = write_json("s.json", {"experiment_name": "graceful", "experiments": [
        {"mode": "mutation", "repo": "slow", "model": "tiny", "mutate": ["learning_rate"], "runs_per_config": 3}],
        "seed": 4})
    with campaign(registry, settings, results) as tool:
        assert wait_for_trial(results, 1)
        run_dir = only_run_dir(results)
        asked_s = time.monotonic()
        stopped = stop(results, run_dir.name)  # by its name in the results folder
        answered_s = time.monotonic() - asked_s
        output, _ = tool.communicate(timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert "will stop after the trial in progress" in stopped.stdout
    assert answered_s < 2.5  # at once: before the 3 s trial has ended
    assert tool.returncode == 0, output  # as a campaign whose every trial so far succeeded
    assert [row["status"] for row in rows(run_dir)] == ["success"]
    assert "stopped on request (`stop` from root): 2 trial(s) not run" in output
    assert not (run_dir / STOP_REQUEST).exists()
    shown = status_json(registry, results, run_dir)
    assert (shown["state"], shown["exit_code"], shown["recorded"]) == ("stopped", 0, 1)
    # The closing table from another folder, without naming the registry the run was made with.
    table = invoke("--results-dir", results, "status", run_dir, "--summary")
    assert table.exit_code == 0 and "1 of 3 trials recorded: 1 success" in table.stdout, table.output
    resumed = invoke("--registry", registry, "--results-dir", results, "run", settings, "--resume", run_dir)
    assert resumed.exit_code == 0, resumed.output
    assert sorted(row["trial"] for row in rows(run_dir)) == ["001_slow_tiny", "002_slow_tiny", "003_slow_tiny"]
    assert status_json(registry, results, run_dir)["state"] == "finished"


def test_stop_now_ends_the_trial_as_ctrl_c_does_and_wait_says_how_the_campaign_ended(
        fake_registry: Callable[..., Path], write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    registry = fake_registry(hang=fake_repo("hang-with-child", required_args=[
        "--behaviour", "hang-with-child", "--pid-file", str(pid_file)]), ok=fake_repo())
    settings = write_json("s.json", {"experiment_name": "now", "grace_s": 2, "experiments": [
        {"mode": "default", "repo": "hang", "model": "tiny"}, {"mode": "default", "repo": "ok", "model": "tiny"}]})
    results = tmp_path / "results"
    with campaign(registry, settings, results) as tool:
        assert wait_for(lambda: pid_file.exists() and len(pid_file.read_text().split()) == 2, 30)
        run_dir = only_run_dir(results)
        stopped = stop(results, run_dir, "--now", "--wait")
        assert tool.poll() is not None  # --wait returned after the campaign ended
        output, _ = tool.communicate(timeout=10)
    assert stopped.returncode == tool.returncode == 130, stopped.stderr + output  # --wait: the campaign's code
    assert "will stop at once" in stopped.stdout
    assert "interrupted: campaign 'now' ended at " in stopped.stdout and "exit code 130" in stopped.stdout
    assert stopped.stdout.rstrip().endswith(f"run {settings} --resume {run_dir.absolute()}")
    assert [(row["status"], row["status_reason"]) for row in rows(run_dir)] == [
        ("interrupted", "interrupted by `stop --now` from root")]
    for pid in (int(pid) for pid in pid_file.read_text().split()):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    names = [event["event"] for event in events]
    asked = events[names.index("stop_requested")]
    assert (asked["mode"], asked["by"]) == ("now", "`stop --now` from root")
    assert names.index("stop_requested") < names.index("attempt_ended") < names.index("campaign_ended")


def test_a_stop_to_a_campaign_that_ended_or_died_says_so_with_exit_1(
        fake_registry: Callable[..., Path], write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    registry, results = fake_registry(ok=fake_repo(), hang=fake_repo("hang")), tmp_path / "results"
    finished = invoke("--registry", registry, "--results-dir", results, "run",
                      write_json("done.json", {"experiment_name": "done", "experiments": [
                          {"mode": "default", "repo": "ok", "model": "tiny"}]}))
    assert finished.exit_code == 0, finished.output
    run_dir = only_run_dir(results)
    said = stop(results, run_dir)
    assert said.returncode == 1
    assert said.stderr.startswith(f"error: {run_dir}: no campaign is running there, nothing to stop\nfinished: ")
    assert "to run what is left" not in said.stderr
    died_results = tmp_path / "died"
    with campaign(registry, write_json("hang.json", {"experiment_name": "hang", "experiments": [
            {"mode": "default", "repo": "hang", "model": "tiny"}]}), died_results) as tool:
        assert wait_for_trial(died_results, 1)
        tool.kill()
        tool.communicate(timeout=30)
    said = stop(died_results, only_run_dir(died_results), "--now")
    assert said.returncode == 1 and "\ndied: campaign 'hang'" in said.stderr and "to run what is left:" in said.stderr


@pytest.fixture
def shared_results() -> Any:
    """A results folder that nobody (the user) can reach, as a home directory would be."""
    base = Path(tempfile.mkdtemp(prefix="stop-test-"))
    base.chmod(0o755)
    try:
        yield base / "results"
    finally:
        give_files_to(None, None)
        shutil.rmtree(base)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")


@needs_root
def test_only_the_user_who_started_a_campaign_or_root_may_stop_it(
        fake_registry: Callable[..., Path], write_json: Callable[[str, Any], Path], shared_results: Path) -> None:
    registry = fake_registry(hang=fake_repo("hang"))
    settings = write_json("s.json", {"experiment_name": "mine", "grace_s": 1, "experiments": [
        {"mode": "default", "repo": "hang", "model": "tiny"}]})
    with campaign(registry, settings, shared_results) as tool:
        assert wait_for_trial(shared_results, 1)
        run_dir = only_run_dir(shared_results)

        def stop_as_nobody() -> list[Any]:
            said = invoke("--results-dir", shared_results, "stop", run_dir, "--now")
            return [said.exit_code, said.stderr]

        code, said = in_child(stop_as_nobody, as_nobody=True)
        assert (code, said) == (2, f"error: {run_dir}: only root (who started the campaign) may stop it\n")
        assert not (run_dir / STOP_REQUEST).exists()
        # A run folder someone opened to all: a request file nobody leaves there is not obeyed either.
        run_dir.chmod(0o777)
        in_child(lambda: ask_to_stop(run_dir, now=True), as_nobody=True)
        assert wait_for(lambda: not (run_dir / STOP_REQUEST).exists(), 10)
        time.sleep(0.5)
        assert tool.poll() is None and state(shared_results)["state"] == "running"
        events = (run_dir / "events.jsonl").read_text()
        assert "a stop request from nobody was ignored: only the user who started the campaign or root" in events
        run_dir.chmod(0o755)
        assert stop(shared_results, run_dir, "--now").returncode == 0  # root may
        assert tool.wait(timeout=30) == 130


@needs_root
def test_under_sudo_the_invoking_user_sees_and_stops_the_campaign(
        fake_registry: Callable[..., Path], write_json: Callable[[str, Any], Path], shared_results: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    # The system interpreter: nobody cannot enter root's home, where the venv's one may live.
    slow = fake_repo("sleep", command=["/usr/bin/python3", FAKE_TRAIN.name],
                     required_args=["--behaviour", "sleep", "--seconds", "3"])
    registry = fake_registry(slow=slow)
    settings = write_json("s.json", {"experiment_name": "sudo", "experiments": [
        {"mode": "default", "repo": "slow", "model": "tiny", "runs_per_config": 2}]})
    sudo = {**os.environ, "SUDO_UID": str(nobody.pw_uid), "SUDO_GID": str(nobody.pw_gid), "SUDO_USER": "nobody"}
    with campaign(registry, settings, shared_results, env=sudo) as tool:
        assert wait_for_trial(shared_results, 1)
        run_dir = only_run_dir(shared_results)
        assert (run_dir / "state.json").stat().st_uid == nobody.pw_uid

        def status_and_stop_as_nobody() -> list[Any]:
            shown = invoke("--results-dir", shared_results, "status", run_dir, "--format", "json")
            stopped = invoke("--results-dir", shared_results, "stop", run_dir)
            return [json.loads(shown.stdout)["state"], stopped.exit_code, stopped.stdout]

        shown, code, said = in_child(status_and_stop_as_nobody, as_nobody=True)
        assert (shown, code) == ("running", 0), said
        output, _ = tool.communicate(timeout=60)
    assert tool.returncode == 0, output
    assert "stopped on request (`stop` from nobody): 1 trial(s) not run" in output
    assert [row["status"] for row in rows(run_dir)] == ["success"]


def test_stop_refuses_what_it_cannot_do_before_writing_anything(tmp_path: Path) -> None:
    said = invoke("--results-dir", tmp_path, "stop", "nowhere")
    assert said.exit_code == 2 and "nowhere: no such run folder" in said.stderr
    assert invoke("--results-dir", tmp_path, "stop").exit_code == 2  # RUN_DIR is required: no guessing which
    assert list(tmp_path.iterdir()) == []
