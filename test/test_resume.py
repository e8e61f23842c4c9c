"""--resume after SIGKILL at several points: each planned trial ends up in summary.csv exactly once."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from energy_profiler.results.rundir import RunDirBusy, run_dir_lock
from test.conftest import PROJECT_ROOT, fake_repo, invoke, wait_for

TRIALS = 5


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "summary.csv", newline="") as table:
        return list(csv.DictReader(table))


def campaign(write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path]) -> tuple[Path, Path]:
    registry = fake_registry(fake=fake_repo("busy", required_args=["--behaviour", "busy", "--seconds", "0.3"]))
    settings = write_json("s.json", {"experiment_name": "long", "seed": 5, "experiments": [
        {"mode": "mutation", "repo": "fake", "model": "tiny", "mutate": ["learning_rate"],
         "runs_per_config": TRIALS}]})
    return registry, settings


@pytest.mark.parametrize("kill_after_rows", [0, 1, 3])
def test_sigkill_then_resume_records_each_trial_exactly_once(
        kill_after_rows: int, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
        tmp_path: Path) -> None:
    registry, settings = campaign(write_json, fake_registry)
    results = tmp_path / "results"
    tool = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "mutation.py"), "--registry", str(registry),
                             "--results-dir", str(results), "-q", "run", str(settings)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def trial_running() -> bool:
            runs = list(results.glob("run_*"))
            return bool(runs) and (runs[0] / "summary.csv").exists() and \
                len(rows(runs[0])) >= kill_after_rows and \
                (runs[0] / f"{kill_after_rows + 1:03d}_fake_tiny" / "attempt_1" / "training.log").exists()
        assert wait_for(trial_running, 20)
    finally:
        tool.kill()  # SIGKILL mid-trial: no record of that trial, maybe a half-done folder
        tool.wait()
    run_dir = next(results.glob("run_*"))
    before = rows(run_dir)
    assert len(before) == kill_after_rows

    result = invoke("--registry", registry, "--results-dir", results, "run", settings, "--resume")
    assert result.exit_code == 0, result.output
    assert f"resuming: {kill_after_rows} of {TRIALS} trials already recorded" in result.stdout
    after = rows(run_dir)
    assert [row["trial"] for row in after] == [f"{i:03d}_fake_tiny" for i in range(1, TRIALS + 1)]
    assert all(row["status"] == "success" for row in after)
    assert after[:kill_after_rows] == before  # what was recorded stays as it was
    plan = json.loads((run_dir / "plan.json").read_text())
    assert [row["hp_learning_rate"] for row in after] == \
        [trial["hyperparameters"]["learning_rate"] for trial in plan["trials"]]
    # The killed trial ran again in a fresh attempt folder; its first attempt's log is kept.
    killed = run_dir / f"{kill_after_rows + 1:03d}_fake_tiny"
    assert {p.name for p in killed.glob("attempt_*")} == {"attempt_1", "attempt_2"}
    record = json.loads((killed / "experiment.json").read_text())
    lost, rerun = record["attempts"]  # both attempts are listed, the one the SIGKILL cut short first
    assert (lost["attempt"], lost["status"], lost["duration_s"], lost["start_utc"]) == (1, "interrupted", None, None)
    assert lost["status_reason"].startswith("the campaign ended during this attempt without recording it")
    assert lost["log"] == f"{killed.name}/attempt_1/training.log"
    assert (rerun["attempt"], rerun["status"]) == (2, "success")
    assert record["attempt_count"] == 2 and after[kill_after_rows]["attempts"] == "2"


def test_an_interrupted_trial_is_run_again_on_resume(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry, settings = campaign(write_json, fake_registry)
    results = tmp_path / "results"
    assert invoke("--registry", registry, "--results-dir", results, "-q", "run", settings).exit_code == 0
    run_dir = max(results.glob("run_*"))
    record_path = run_dir / "002_fake_tiny" / "experiment.json"
    record = json.loads(record_path.read_text())
    record["status"], record["status_reason"] = "interrupted", "interrupted by SIGINT"
    record_path.write_text(json.dumps(record))
    # Every recorded row is in summary.csv already: status offers only to run what is left.
    said = invoke("--registry", registry, "--results-dir", results, "status", run_dir).stdout.splitlines()
    assert said[-2] == "to run what is left:" and said[-1].endswith(f"run {settings} --resume {run_dir}"), said
    result = invoke("--registry", registry, "--results-dir", results, "run", settings, "--resume", run_dir)
    assert result.exit_code == 0 and "resuming: 4 of 5 trials already recorded" in result.stdout
    assert [row["status"] for row in rows(run_dir)] == ["success"] * TRIALS
    assert len({row["trial"] for row in rows(run_dir)}) == TRIALS


def test_resume_refuses_a_run_folder_another_campaign_holds(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry, settings = campaign(write_json, fake_registry)
    results = tmp_path / "results"
    assert invoke("--registry", registry, "--results-dir", results, "-q", "run", settings).exit_code == 0
    run_dir = next(results.glob("run_*"))
    with run_dir_lock(run_dir):
        result = invoke("--registry", registry, "--results-dir", results, "run", settings, "--resume")
    assert result.exit_code == 2
    assert f"error: {run_dir} is in use by another mutation.py (pid " in result.stderr


def test_a_lock_left_by_a_killed_campaign_is_waited_for_while_a_sharer_ends(tmp_path: Path) -> None:
    # The killed campaign's pid is in the lock; a process sharing its open file (forked before the
    # kill) still holds it for a moment. Seen once in CI: a resume right after a SIGKILL was refused
    # while only the killed pid was named in the lock.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = tmp_path / ".lock"
    with open(lock, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(f"{dead.pid}\n")
        handle.flush()
        sharer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1)"], pass_fds=(handle.fileno(),))
    started = time.monotonic()
    with run_dir_lock(tmp_path, dead_holder_wait_s=10):
        waited_s = time.monotonic() - started
    sharer.wait()
    assert 0.5 < waited_s < 5  # waited for the sharer, not refused and not the whole 10 s
    with open(lock, "a+") as handle:  # a lock whose named holder runs is refused at once
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        started = time.monotonic()
        with pytest.raises(RunDirBusy, match=f"pid {os.getpid()}"), run_dir_lock(tmp_path, dead_holder_wait_s=10):
            pass
        assert time.monotonic() - started < 1


def test_nothing_to_resume_is_a_clear_error(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry, settings = campaign(write_json, fake_registry)
    result = invoke("--registry", registry, "--results-dir", tmp_path / "empty", "run", settings, "--resume")
    assert result.exit_code == 2
    assert f"error: nothing to resume: no run folder made from {settings}" in result.stderr
    # A campaign killed right after making its run folder left it without a plan.
    empty = tmp_path / "results" / "run_20260101_000000"
    empty.mkdir(parents=True)
    result = invoke("--registry", registry, "--results-dir", tmp_path / "results", "run", settings, "--resume", empty)
    assert result.exit_code == 2
    assert result.stderr == (f"error: {empty} has no plan.json: its campaign was stopped before the plan was "
                             f"written, so no trial ran in it. Remove that folder and run {settings} again.\n")


def test_a_results_folder_given_to_resume_says_which_run_folder_to_give(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry, settings = campaign(write_json, fake_registry)
    results = tmp_path / "results"
    assert invoke("--registry", registry, "--results-dir", results, "-q", "run", settings).exit_code == 0
    run_dir = next(results.glob("run_*"))
    result = invoke("--registry", registry, "--results-dir", results, "run", settings, "--resume", results)
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert result.stderr == (f"error: {results} is a results folder (it holds run folders), not a run folder: give "
                             f"one of its run_* folders to --resume; the latest made from {settings} is "
                             f"{run_dir}\n")


def test_a_resumed_trial_keeps_its_attempts_and_the_global_table_holds_it_once(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry = fake_registry(fake=fake_repo("busy", required_args=["--behaviour", "busy", "--seconds", "1"]))
    settings = write_json("s.json", {"experiment_name": "again", "seed": 3, "runs_per_config": 2, "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny"}]})
    results = tmp_path / "results"
    tool = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "mutation.py"), "--registry", str(registry),
                             "--results-dir", str(results), "-q", "run", str(settings)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: any(results.glob("run_*/001_fake_tiny/attempt_1/training.log")), 20)
        tool.send_signal(signal.SIGINT)
        assert tool.wait(timeout=20) == 130
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.wait()
    run_dir = max(results.glob("run_*"))
    with open(results / "summary_all.csv", newline="") as table:
        assert [row["status"] for row in csv.DictReader(table)] == ["interrupted"]
    result = invoke("--registry", registry, "--results-dir", results, "-q", "run", settings, "--resume", run_dir)
    assert result.exit_code == 0, result.output
    with open(results / "summary_all.csv", newline="") as table:
        global_rows = list(csv.DictReader(table))
    # Each trial once, with its final state: the interrupted row was replaced, not kept beside it.
    assert sorted((row["trial"], row["status"]) for row in global_rows) == [
        ("001_fake_tiny", "success"), ("002_fake_tiny", "success")]
    record = json.loads((run_dir / "001_fake_tiny" / "experiment.json").read_text())
    assert [(a["attempt"], a["status"]) for a in record["attempts"]] == [(1, "interrupted"), (2, "success")]
    assert rows(run_dir)[0]["attempts"] == "2"


def test_resume_adds_the_rows_the_global_table_lacks_and_status_shows_every_trial(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    registry, settings = campaign(write_json, fake_registry)
    results = tmp_path / "results"
    assert invoke("--registry", registry, "--results-dir", results, "-q", "run", settings).exit_code == 0
    run_dir = next(results.glob("run_*"))
    # A campaign killed between a trial's experiment.json and its row in summary_all.csv (and a Slurm
    # job that ended while no submitter followed it) leave a final record without a global row.
    every = results / "summary_all.csv"
    lines = every.read_text().splitlines(keepends=True)
    every.write_text("".join(lines[:-2]))
    result = invoke("--registry", registry, "--results-dir", results, "run", settings, "--resume", run_dir)
    assert result.exit_code == 0, result.output
    assert "summary_all.csv: added the rows of 2 trial(s)" in result.stdout
    with open(every, newline="") as table:
        assert sorted(row["trial"] for row in csv.DictReader(table)) == [f"{i:03d}_fake_tiny" for i in range(1, 6)]

    status = invoke("--registry", registry, "status", run_dir, "--format", "csv")
    assert status.exit_code == 0
    shown = list(csv.DictReader(status.stdout.splitlines()))
    assert [(row["trial"], row["record"], row["in_summary"]) for row in shown] == [
        (f"{i:03d}_fake_tiny", "success", "yes") for i in range(1, 6)]
    assert "job" not in shown[0]  # a local run has no Slurm columns
    assert invoke("--registry", registry, "status", run_dir).stdout.endswith(
        "5 trials: 5 recorded (5 success), 0 still to run, 5 in summary.csv\n")
    # Jobs Slurm cannot tell about (no controller here, or none that knows them): said, never guessed.
    (run_dir / "slurm_jobs.json").write_text(json.dumps({"001_fake_tiny": "999999_1"}))
    monkeypatch.delenv("SLURM_CONF", raising=False)  # no cluster to ask
    unknown = invoke("--registry", registry, "status", run_dir)
    assert unknown.exit_code == 0
    assert ("Slurm: knows none of these jobs" in unknown.stdout
            or "Slurm: job states unknown: sbatch, squeue, scancel, scontrol not found on PATH" in unknown.stdout)
    missing = invoke("--registry", registry, "status", results)
    assert missing.exit_code == 2 and f"error: {results}: not a run folder" in missing.stderr


def test_detach_is_refused_for_a_local_campaign_before_anything_is_written(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry, settings = campaign(write_json, fake_registry)
    result = invoke("--registry", registry, "--results-dir", tmp_path / "results", "run", settings, "--detach")
    assert result.exit_code == 2 and "--detach is for the Slurm executor" in result.stderr
    assert not (tmp_path / "results").exists()


def test_a_caught_up_row_replaces_the_trials_interrupted_row_in_the_global_table(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry, settings = campaign(write_json, fake_registry)
    results = tmp_path / "results"
    assert invoke("--registry", registry, "--results-dir", results, "-q", "run", settings).exit_code == 0
    run_dir = next(results.glob("run_*"))
    every = results / "summary_all.csv"
    with open(every, newline="") as table:
        global_rows = list(csv.DictReader(table))
    # The last trial's row as an earlier, interrupted session left it (then a job, say, finished it
    # while no submitter was writing rows): the final record is not in the table, its interrupted row is.
    global_rows[-1] = {**global_rows[-1], "experiment_id": "an-earlier-attempt", "status": "interrupted"}
    with open(every, "w", newline="") as table:
        writer = csv.DictWriter(table, fieldnames=list(global_rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(global_rows)
    result = invoke("--registry", registry, "--results-dir", results, "run", settings, "--resume", run_dir)
    assert result.exit_code == 0, result.output
    with open(every, newline="") as table:
        after = [(row["trial"], row["status"]) for row in csv.DictReader(table)]
    assert sorted(after) == [(f"{i:03d}_fake_tiny", "success") for i in range(1, TRIALS + 1)]  # each once
