"""Slurm campaigns interrupted and resumed, on a real Slurm of their own (test/slurm_cluster.py).

Ctrl-C of the submitter, scancel, SIGKILL, --detach, `status` beside a running campaign, and the
printed resume lines pasted as a user pastes them. Skipped (or, under CI, failed) as test_slurm.py says.
"""

from __future__ import annotations

import csv
import json
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from test.conftest import PROJECT_ROOT, fake_repo, invoke, only_run_dir, wait_for
from test.slurm_cluster import (
    SlurmCluster,
    cluster_fixtures,
    job_info,
    jobs_gone,
    needs_slurm,
    rows,
    settings_for,
    submitter,
)

pytestmark = needs_slurm


cluster, slurm = cluster_fixtures(instance=1)  # this file's own cluster (the other file has its own)


def test_ctrl_c_then_the_printed_resume_line_runs_the_cancelled_trials_again(
        slurm: SlurmCluster, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
        tmp_path: Path) -> None:
    # Seen on the cluster: the submitter recorded both cancelled trials `interrupted`, then each node
    # wrote its own record (`failed | killed by SIGTERM`) over it, and the resume ran nothing again.
    registry = fake_registry(fake=fake_repo("busy", required_args=["--behaviour", "busy", "--seconds", "4"]))
    settings = settings_for(write_json, 2)
    results = tmp_path / "results"
    tool = submitter(slurm, registry, results, settings)
    assert wait_for(lambda: len(list(results.glob("run_*/*/attempt_1/training.log"))) >= 2, 60)  # both training
    tool.send_signal(signal.SIGINT)
    output, _ = tool.communicate(timeout=120)
    assert tool.returncode == 128 + signal.SIGINT, output
    run_dir = only_run_dir(results)

    def node_records() -> list[str]:
        """The records as they stand once each node has written its own (its node.log's last line says so)."""
        logs = sorted(run_dir.glob("*/node.log"))
        done = [log for log in logs if f"{log.parent.name}: " in log.read_text()]
        return [json.loads((log.parent / "experiment.json").read_text())["status"] for log in done]

    assert wait_for(lambda: len(node_records()) == 2, 30), node_records()  # each node has had its say
    assert node_records() == ["interrupted", "interrupted"]
    jobs = list(json.loads((run_dir / "slurm_jobs.json").read_text()).values())
    assert wait_for(lambda: jobs_gone(slurm, jobs), 60)  # one still COMPLETING is followed, not submitted again
    resumed = subprocess.run(shlex.split(output.rstrip().splitlines()[-1]), env=slurm.environment,
                             capture_output=True, text=True, timeout=180, check=False)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert resumed.stdout.count("submitted as job") == 2  # both run again, as docs/slurm.md says
    assert f"rows: its summary.csv and {results / 'summary_all.csv'}\n" in resumed.stdout  # says which table
    assert [row["status"] for row in rows(run_dir)] == ["success", "success"]
    # The pasted line names no --results-dir: the rows still go to the run folder's own results table
    # (they went to the checkout's results/, which a fresh clone lacks, and the resume crashed there).
    with open(results / "summary_all.csv", newline="") as table:
        assert [row["status"] for row in csv.DictReader(table)].count("success") == 2


def test_a_detached_job_cancelled_by_scancel_is_interrupted_and_a_resume_runs_it_again(
        slurm: SlurmCluster, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
        tmp_path: Path) -> None:
    # Seen on the cluster: `scancel` of a detached campaign's job became a permanent `failed`.
    registry = fake_registry(fake=fake_repo("busy", required_args=["--behaviour", "busy", "--seconds", "4"]))
    settings = settings_for(write_json, 1)
    results = tmp_path / "results"
    assert invoke("--registry", registry, "--results-dir", results, "run", settings, "--detach").exit_code == 0
    run_dir = only_run_dir(results)
    (job_id,) = json.loads((run_dir / "slurm_jobs.json").read_text()).values()
    assert wait_for((run_dir / "001_fake_tiny" / "attempt_1" / "training.log").exists, 60)
    subprocess.run(["scancel", job_id], env=slurm.environment, check=True)
    record = run_dir / "001_fake_tiny" / "experiment.json"
    assert wait_for(record.exists, 30)
    assert json.loads(record.read_text())["status"] == "interrupted"
    assert wait_for(lambda: jobs_gone(slurm, [job_id]), 60)  # one still COMPLETING is followed, not submitted again
    # Resumed as `status` names the folder, relative to where the user stands (`results/run_…`), with
    # no --registry or --results-dir: the run folder knows them. A relative folder once reached the
    # job script as `cd results/run_…/001_…`, resolved on the node against the run folder.
    relative = str(run_dir.relative_to(tmp_path))
    mutation = [sys.executable, str(PROJECT_ROOT / "mutation.py")]
    status = subprocess.run([*mutation, "status", relative], cwd=tmp_path, env=slurm.environment,
                            capture_output=True, text=True, timeout=60, check=False)
    assert status.returncode == 0 and "001_fake_tiny" in status.stdout, status.stdout + status.stderr
    resumed = subprocess.run([*mutation, "run", str(settings), "--resume", relative], cwd=tmp_path,
                             env=slurm.environment, capture_output=True, text=True, timeout=180, check=False)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "submitted as job" in resumed.stdout and [row["status"] for row in rows(run_dir)] == ["success"]
    script = (run_dir / "001_fake_tiny" / "slurm_job.sh").read_text()
    assert f"--results-dir {results} run-trial {run_dir} 001_fake_tiny" in script  # absolute, as on the node
    with open(results / "summary_all.csv", newline="") as table:  # the run folder's own results table
        assert [row["status"] for row in csv.DictReader(table)] == ["success"]


def test_status_beside_a_running_campaign_and_a_task_cancelled_while_pending(
        slurm: SlurmCluster, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
        tmp_path: Path) -> None:
    # Seen on the cluster: status beside an attached campaign printed a --resume line (refused: the
    # folder is in use), and a task cancelled while it waited its turn showed UNKNOWN, its row `failed`.
    registry = fake_registry(fake=fake_repo("busy", required_args=["--behaviour", "busy", "--seconds", "3"]))
    settings = settings_for(write_json, 3, max_parallel=1)
    results = tmp_path / "results"
    tool = submitter(slurm, registry, results, settings)
    try:
        assert wait_for(lambda: any(results.glob("run_*/001_fake_tiny/attempt_1/training.log")), 60)
        run_dir = only_run_dir(results)
        beside = invoke("--registry", registry, "--results-dir", results, "status", run_dir)
        assert beside.exit_code == 0, beside.output
        assert "a campaign is running in this folder now" in beside.stdout and "--resume" not in beside.stdout
        # The third task waits its turn (max_parallel 1) in the array's pending record: cancelled there,
        # Slurm forgets it at once (measured: `Job 3_3 not found`) while the array stays known.
        waiting = json.loads((run_dir / "slurm_jobs.json").read_text())["003_fake_tiny"]
        subprocess.run(["scancel", waiting], env=slurm.environment, check=True)
        output, _ = tool.communicate(timeout=120)
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.wait()
    assert sorted((row["trial"], row["status"]) for row in rows(run_dir)) == [
        ("001_fake_tiny", "success"), ("002_fake_tiny", "success"), ("003_fake_tiny", "interrupted")], output
    shown = invoke("--registry", registry, "--results-dir", results, "status", run_dir, "--format", "json")
    by_trial = {row["trial"]: row for row in json.loads(shown.stdout)["trials"]}
    assert by_trial["003_fake_tiny"]["job_state"] == "CANCELLED"


def test_sigkill_of_the_submitter_then_resume_follows_its_jobs_and_submits_none_twice(
        slurm: SlurmCluster, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
        tmp_path: Path) -> None:
    # 5 s: the first two jobs are still running when the resume starts following them, a second after.
    registry = fake_registry(fake=fake_repo("busy", required_args=["--behaviour", "busy", "--seconds", "5"]))
    settings = settings_for(write_json, 3)
    results = tmp_path / "results"
    tool = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "mutation.py"), "--registry", str(registry),
                             "--results-dir", str(results), "run", str(settings)], env=slurm.environment,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for(lambda: len(list(results.glob("run_*/*/slurm-*.out"))) >= 2, 60)  # two of three running
    tool.kill()  # SIGKILL: no cancel, no rows; the jobs go on
    tool.wait()
    jobs_file = next(results.glob("run_*/slurm_jobs.json"))
    before = json.loads(jobs_file.read_text())
    # The third trial's job is lost while no submitter follows (cancelled while it waits its turn).
    lost = before["003_fake_tiny"]
    subprocess.run(["scancel", lost], env=slurm.environment, check=True)
    result = invoke("--registry", registry, "--results-dir", results, "run", settings, "--resume")
    assert result.exit_code == 0, result.output
    followed = {trial for trial, job_id in before.items() if f"following job {job_id} of {trial}" in result.stdout}
    assert followed == {"001_fake_tiny", "002_fake_tiny"}  # the 5 s jobs were still running
    after = json.loads(jobs_file.read_text())
    run_dir = only_run_dir(results)
    table = rows(run_dir)
    assert sorted(row["trial"] for row in table) == [f"{i:03d}_fake_tiny" for i in range(1, 4)]  # each once
    assert all(row["status"] == "success" for row in table)
    with open(results / "summary_all.csv", newline="") as every:
        assert sorted(row["trial"] for row in csv.DictReader(every)) == sorted(row["trial"] for row in table)
    for trial in followed:  # followed, not submitted again: its record is the first job's
        record = json.loads((run_dir / trial / "experiment.json").read_text())
        assert after[trial] == before[trial] == record["host"]["slurm_job_id"]
    submitted = [line for line in result.stdout.splitlines() if "submitted as job" in line]
    assert len(submitted) == 1 and "003_fake_tiny" in submitted[0] and after["003_fake_tiny"] != lost


def test_detach_submits_and_exits_status_shows_the_jobs_and_resume_writes_their_rows(
        slurm: SlurmCluster, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
        tmp_path: Path) -> None:
    """Also the time limit: the settings' `time` reaches Slurm as the array's limit. (What the submitter
    makes of a job Slurm ends at its limit is test_slurm_verdict.py's: a real one ends 60-90 s in.)"""
    registry = fake_registry(quick=fake_repo("busy", required_args=["--behaviour", "busy", "--seconds", "1"]),
                             slow=fake_repo("busy", required_args=["--behaviour", "busy", "--seconds", "4"]))
    settings = write_json("d.json", {"experiment_name": "detached", "seed": 1,
                                     "executor": {"slurm": {"max_parallel": 1, "time": "1"}},
                                     "experiments": [{"mode": "default", "repo": "quick", "model": "tiny",
                                                      "runs_per_config": 2},
                                                     {"mode": "default", "repo": "slow", "model": "tiny"}]})
    results = tmp_path / "results"
    started = time.monotonic()
    detached = subprocess.run([sys.executable, str(PROJECT_ROOT / "mutation.py"), "--registry", str(registry),
                               "--results-dir", str(results), "run", str(settings), "--detach"], cwd=tmp_path,
                              env=slurm.environment, capture_output=True, text=True, timeout=60, check=False)
    assert detached.returncode == 0, detached.stdout + detached.stderr
    assert time.monotonic() - started < 30 and "detached" in detached.stdout
    run_dir = only_run_dir(results)
    jobs = json.loads((run_dir / "slurm_jobs.json").read_text())
    assert len(jobs) == 3 and len({job_id.split("_")[0] for job_id in jobs.values()}) == 1  # one job array
    assert job_info(slurm, jobs["003_slow_tiny"])["TimeLimit"] == "00:01:00"
    assert rows(run_dir) == []  # rows are the resume's to write
    status = invoke("--registry", registry, "status", run_dir)
    assert status.exit_code == 0 and "3 trials: " in status.stdout
    # max_parallel 1 is Slurm's to keep, with nobody following: two free nodes, one task at a time.
    def reasons() -> list[str]:
        return subprocess.run(["squeue", "--noheader", "--array", "--format=%r", f"--jobs={','.join(jobs.values())}"],
                              env=slurm.environment, capture_output=True, text=True, check=True).stdout.split()

    assert wait_for(lambda: "JobArrayTaskLimit" in reasons(), 30)

    def recorded(trial: str) -> bool:
        return (run_dir / trial / "experiment.json").exists()

    assert wait_for(lambda: recorded("001_quick_tiny") and recorded("002_quick_tiny"), 60)
    shown = invoke("--registry", registry, "status", run_dir, "--format", "json")
    by_trial = {row["trial"]: row for row in json.loads(shown.stdout)["trials"]}
    assert by_trial["001_quick_tiny"]["record"] == "success" and by_trial["001_quick_tiny"]["in_summary"] == "no"
    assert by_trial["003_slow_tiny"]["job_state"] in ("RUNNING", "PENDING")
    # The line --detach printed, pasted from another folder: it names neither --registry nor
    # --results-dir, and the rows still reach the campaign's own tables.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resumed = subprocess.run(shlex.split(detached.stdout.rstrip().splitlines()[-1]), cwd=elsewhere,
                             env=slurm.environment, capture_output=True, text=True, timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert not list(elsewhere.iterdir())
    with open(results / "summary_all.csv", newline="") as every:
        assert len(list(csv.DictReader(every))) == 3
    table = {row["trial"]: row for row in rows(run_dir)}
    assert sorted(table) == ["001_quick_tiny", "002_quick_tiny", "003_slow_tiny"]
    assert [table[name]["status"] for name in sorted(table)] == ["success", "success", "success"]
    assert "submitted as job" not in resumed.stdout  # every job was followed, none submitted again
    spans = sorted((datetime.fromisoformat(record["start_utc"]), datetime.fromisoformat(record["end_utc"]))
                   for record in (json.loads((run_dir / name / "experiment.json").read_text()) for name in table))
    assert all(later[0] >= earlier[1] for earlier, later in pairwise(spans))  # one at a time
