"""Campaigns on a real Slurm (test/slurm_cluster.py: munged, slurmctld, two slurmd nodes on loopback).

Skipped with the reason where Slurm's programs are not installed; under CI (CI=true) their absence
fails instead, since `make test` installs them. Interruptions and resumes are test_slurm_resume.py's,
on a cluster of their own (the two files run side by side on pytest-xdist workers).
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from test.conftest import PROJECT_ROOT, fake_repo, invoke, only_run_dir, wait_for
from test.slurm_cluster import (
    SlurmCluster,
    cluster_fixtures,
    job_info,
    needs_slurm,
    rows,
    settings_for,
    submitter,
)

pytestmark = needs_slurm


cluster, slurm = cluster_fixtures(instance=0)  # this file's own cluster (the other file has its own)


def test_each_trial_is_an_exclusive_job_and_the_submitter_writes_every_row_once(
        slurm: SlurmCluster, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
        tmp_path: Path) -> None:
    registry = fake_registry(fake=fake_repo("busy", required_args=["--behaviour", "busy", "--seconds", "1",
                                                                   "--print-env", "CUDA_VISIBLE_DEVICES"]))
    settings = settings_for(write_json, 4)
    results = tmp_path / "results"
    result = invoke("--registry", registry, "--results-dir", results, "run", settings)
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(results)
    table = rows(run_dir)
    assert [row["trial"] for row in table] != [] and sorted(row["trial"] for row in table) == \
        [f"{i:03d}_fake_tiny" for i in range(1, 5)]
    assert all(row["status"] == "success" for row in table)
    jobs = json.loads((run_dir / "slurm_jobs.json").read_text())
    spans = []
    for row in table:
        record = json.loads((run_dir / row["trial"] / "experiment.json").read_text())
        info = job_info(slurm, jobs[row["trial"]])
        assert record["host"]["slurm_job_id"] == jobs[row["trial"]] and info["JobState"] == "COMPLETED"
        assert info["OverSubscribe"] == "NO"  # --exclusive: the node was the trial's alone
        spans.append((datetime.fromisoformat(record["start_utc"]), datetime.fromisoformat(record["end_utc"]),
                      info["NodeList"]))
        script = (run_dir / row["trial"] / "slurm_job.sh").read_text()
        assert f"run-trial {run_dir} {row['trial']}" in script  # readable: the tool itself, one trial
        # No gpus_per_trial: the trial has all of its node's (fake, GRES) GPUs.
        assert "ENV CUDA_VISIBLE_DEVICES=0,1\n" in (run_dir / row["trial"] / "attempt_1" / "training.log").read_text()
    assert {node for _, _, node in spans} == {"n1", "n2"}  # across both nodes
    for start, end, node in spans:  # trials that overlapped in time ran on different nodes
        assert all(other_node != node for other_start, other_end, other_node in spans
                   if (other_start, other_end) != (start, end) and other_start < end and start < other_end)
    assert (results / "summary_all.csv").read_text().count("\n") == 5


def test_rows_and_the_closing_table_are_in_trial_order_when_jobs_end_out_of_order(
        slurm: SlurmCluster, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
        tmp_path: Path) -> None:
    # Seen on the cluster: summary.csv and the closing table listed trials as their jobs ended.
    entry = fake_repo("busy")
    entry["hyperparameters"]["seconds"] = {"flag": "--seconds", "type": "float", "default": 1.0, "range": [0.1, 20]}
    registry = fake_registry(fake=entry)
    settings = write_json("s.json", {"experiment_name": "cluster", "executor": {"slurm": {"max_parallel": 2}},
                                     "experiments": [{"mode": "default", "repo": "fake", "model": "tiny",
                                                      "hyperparameters": {"seconds": seconds}}
                                                     for seconds in (3, 0.3)]})  # the second ends first
    results = tmp_path / "results"
    result = invoke("--registry", registry, "--results-dir", results, "run", settings)
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(results)
    records = [json.loads((run_dir / name / "experiment.json").read_text()) for name in ("001_fake_tiny",
                                                                                        "002_fake_tiny")]
    assert records[1]["end_utc"] < records[0]["end_utc"], "the jobs did not end out of order: nothing tested"
    assert [row["trial"] for row in rows(run_dir)] == ["001_fake_tiny", "002_fake_tiny"]
    closing = [line.split()[0] for line in result.output.splitlines() if line.split()[:2] in (["1", "tiny"],
                                                                                               ["2", "tiny"])]
    assert closing == ["1", "2"], result.output


def test_a_failing_training_and_a_cancelled_job_get_rows_that_say_so(
        slurm: SlurmCluster, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
        tmp_path: Path) -> None:
    registry = fake_registry(fake=fake_repo("fail"))
    results = tmp_path / "results"
    assert invoke("--registry", registry, "--results-dir", results, "run",
                  settings_for(write_json, 1)).exit_code == 1
    (failed,) = rows(only_run_dir(results))
    assert failed["status"] == "failed" and failed["exit_code"] == "4"

    registry = fake_registry(fake=fake_repo("busy", required_args=["--behaviour", "busy", "--seconds", "60"]))
    settings = settings_for(write_json, 1)
    others = tmp_path / "cancelled"
    tool = submitter(slurm, registry, others, settings)

    def running_job() -> str | None:
        jobs = list(others.glob("run_*/slurm_jobs.json"))
        if not jobs:
            return None
        job_id = next(iter(json.loads(jobs[0].read_text()).values()))
        return job_id if job_info(slurm, job_id)["JobState"] == "RUNNING" else None

    assert wait_for(lambda: running_job() is not None, 60)
    job_id = running_job()
    assert job_id is not None
    time.sleep(1)
    subprocess.run(["scancel", job_id], env=slurm.environment, check=True)
    output, _ = tool.communicate(timeout=120)
    assert tool.returncode == 1, output
    (cancelled,) = rows(only_run_dir(others))
    assert cancelled["status"] == "interrupted", cancelled


def test_sigint_of_the_submitter_cancels_its_jobs_and_records_them(
        slurm: SlurmCluster, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
        tmp_path: Path) -> None:
    registry = fake_registry(fake=fake_repo("busy", required_args=["--behaviour", "busy", "--seconds", "60"]))
    hostile = "--comment=a b;$(touch HACKED)'\""
    settings = settings_for(write_json, 3, extra_args=[hostile])
    results = tmp_path / "results"
    tool = submitter(slurm, registry, results, settings)
    assert wait_for(lambda: len(list(results.glob("run_*/*/slurm-*.out"))) >= 2, 60)  # two jobs started
    jobs = json.loads(next(results.glob("run_*/slurm_jobs.json")).read_text())
    comment = subprocess.run(["squeue", "--noheader", "--format=%k", f"--jobs={next(iter(jobs.values()))}"],
                             env=slurm.environment, capture_output=True, text=True, check=True).stdout.strip()
    assert comment == hostile.removeprefix("--comment=")  # one argument, reached sbatch literally
    tool.send_signal(signal.SIGINT)
    output, _ = tool.communicate(timeout=120)
    assert tool.returncode == 128 + signal.SIGINT, output
    queued = subprocess.run(["squeue", "--noheader", "--array", "--format=%i"], env=slurm.environment,
                            capture_output=True, text=True, check=True).stdout.split()
    assert len(jobs) == 3 and not set(queued) & set(jobs.values())  # none of ours left queued or running
    table = rows(only_run_dir(results))
    # Two ran (one per node), the third waited in the array: every one is recorded as interrupted.
    assert [row["status"] for row in table] == ["interrupted"] * 3
    assert "to continue:\n" in output and f"mutation.py run {settings} --resume" in output
    assert not list(tmp_path.rglob("HACKED")) and not (Path.cwd() / "HACKED").exists()


def test_a_node_that_stops_answering_does_not_hold_back_a_finished_trials_row(
        slurm: SlurmCluster, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
        tmp_path: Path) -> None:
    # Seen on the cluster: slurmd killed mid-job; the training finished and its node wrote `success`,
    # but the submitter said only "job completing" for 7.5 minutes, until Slurm marked the node DOWN.
    registry = fake_registry(fake=fake_repo("busy", required_args=["--behaviour", "busy", "--seconds", "3"]))
    settings = settings_for(write_json, 1)
    results = tmp_path / "results"
    tool = submitter(slurm, registry, results, settings)
    node = ""
    try:
        assert wait_for(lambda: any(results.glob("run_*/001_fake_tiny/attempt_1/training.log")), 60)
        run_dir = only_run_dir(results)
        (job_id,) = json.loads((run_dir / "slurm_jobs.json").read_text()).values()
        node = job_info(slurm, job_id)["NodeList"]
        slurm.kill_node(node)
        output, _ = tool.communicate(timeout=60)  # was: minutes, until Slurm gave the node up
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.wait()
        if node:
            slurm.restart_node(node)
    assert tool.returncode == 0, output
    assert [row["status"] for row in rows(run_dir)] == ["success"]


def test_options_slurm_rejects_and_a_missing_sbatch_exit_2_before_anything_is_written(
        slurm: SlurmCluster, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = fake_registry(fake=fake_repo())
    results = tmp_path / "results"
    result = invoke("--registry", registry, "--results-dir", results, "run",
                    settings_for(write_json, 1, partition="no-such-partition"))
    assert result.exit_code == 2
    assert "Slurm would not take a trial's job" in result.stderr and "partition" in result.stderr.lower()
    assert not results.exists()
    monkeypatch.setenv("PATH", str(tmp_path))  # no Slurm commands on PATH
    result = invoke("--registry", registry, "--results-dir", results, "run", settings_for(write_json, 1))
    assert result.exit_code == 2 and "sbatch, squeue, scancel, scontrol not found on PATH" in result.stderr
    assert not results.exists()


def test_doctor_says_whether_slurm_answers_and_what_a_trial_is_submitted_as(
        slurm: SlurmCluster, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path]) -> None:
    registry = fake_registry(fake=fake_repo())
    result = invoke("--registry", registry, "doctor", settings_for(write_json, 1, partition="test",
                                                                    extra_args=["--comment=a b"]))
    assert result.exit_code == 0, result.output
    assert "; 2 node(s): n1 idle, n2 idle" in result.stdout
    assert ("the trials would be submitted as one job array: sbatch --array=INDICES%2 --exclusive --nodes=1 "
            "--ntasks=1 --partition=test '--comment=a b' RUN_DIR/slurm/array_1.sh") in " ".join(result.stdout.split())
    # A partition Slurm rejects: doctor says so as `run` would (it passed doctor and failed run).
    rejected = invoke("--registry", registry, "doctor", settings_for(write_json, 1, partition="no-such-partition"))
    assert rejected.exit_code == 2, rejected.output
    assert "a campaign with these settings would not start:" in rejected.stdout
    assert "executor slurm: Slurm would not take a trial's job" in " ".join(rejected.stdout.split())


def test_a_parallel_trials_backgrounds_run_in_its_job_on_its_node_with_the_submitters_options(
        slurm: SlurmCluster, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = fake_registry(fake=fake_repo("busy", required_args=["--behaviour", "busy", "--seconds", "2",
                                                                   "--print-env", "SLURMD_NODENAME"]))
    settings = write_json("p.json", {"experiment_name": "parallel", "executor": {"slurm": {}}, "experiments": [
        {"mode": "parallel", "foreground": {"repo": "fake", "model": "tiny", "mode": "default"},
         "background": {"repo": "fake", "model": "tiny", "restart_delay_s": 0}}]})
    cpufreq = tmp_path / "cpu"  # the node's cpufreq (sbatch passes the environment on to the job)
    (cpufreq / "cpu0" / "cpufreq").mkdir(parents=True)
    (cpufreq / "cpu0" / "cpufreq" / "scaling_governor").write_text("powersave\n")
    (cpufreq / "cpu0" / "cpufreq" / "scaling_available_governors").write_text("performance powersave\n")
    monkeypatch.setenv("MUTATION_CPUFREQ_ROOT", str(cpufreq))
    results = tmp_path / "results"
    result = invoke("--registry", registry, "--results-dir", results, "-g", "performance", "run", settings,
                    "--cpu-energy", "estimate", "--cpu-tdp-w", "65.5", "--baseline-s", "0")
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(results)
    (row,) = rows(run_dir)
    assert row["status"] == "success" and int(row["bg_iterations_started"]) >= 1
    # The command line's overrides reached the node (auto finds no CPU method on this machine).
    assert row["cpu_energy_method"] == "estimate" and row["cpu_governor"] == "performance", row
    assert (cpufreq / "cpu0" / "cpufreq" / "scaling_governor").read_text().strip() == "powersave"  # restored
    script = (run_dir / row["trial"] / "slurm_job.sh").read_text()
    assert "--governor performance run-trial --cpu-energy estimate --baseline-s 0 --cpu-tdp-w 65.5 " in script
    node = job_info(slurm, json.loads((run_dir / "slurm_jobs.json").read_text())[row["trial"]])["NodeList"]
    attempt = run_dir / row["trial"] / "attempt_1"
    assert f"ENV SLURMD_NODENAME={node}" in (attempt / "training.log").read_text()
    # Every background run that got as far as printing (the last may be ended by the teardown first).
    nodes = {line.removeprefix("ENV SLURMD_NODENAME=") for log in attempt.rglob("bg*_run_*.log")
             for line in log.read_text().splitlines() if line.startswith("ENV SLURMD_NODENAME=")}
    assert nodes == {node}


def test_a_results_folder_the_nodes_cannot_see_is_an_error_before_any_trial_is_submitted(
        slurm: SlurmCluster, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
        tmp_path: Path) -> None:
    if subprocess.run(["unshare", "--mount", "true"], capture_output=True, check=False).returncode != 0:
        pytest.skip("no mount namespaces here (unshare --mount): the test needs one as a disk the nodes do not see")
    registry = fake_registry(fake=fake_repo())
    settings = settings_for(write_json, 2)
    results = tmp_path / "local-disk"
    results.mkdir()
    # A file system only the submitter sees (as a login node's local disk): a tmpfs in a mount namespace of
    # its own. The nodes' jobs look at the folder under it.
    command = " ".join(shlex.quote(word) for word in [sys.executable, str(PROJECT_ROOT / "mutation.py"), "--registry",
                                                     str(registry), "--results-dir", str(results), "run",
                                                     str(settings)])
    before = set(jobs_known(slurm))
    done = subprocess.run(["unshare", "--mount", "sh", "-c", f"mount -t tmpfs none {shlex.quote(str(results))} && "
                           f"exec {command}"], env=slurm.environment, capture_output=True, text=True, timeout=180,
                          check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "cannot see the results folder" in done.stderr and "--results-dir" in done.stderr
    new = {job: name for job, name in jobs_known(slurm).items() if job not in before}
    assert list(new.values()) == ["mutation:check"]  # the check job, and no trial's
    assert list(results.iterdir()) == []  # the marker was only ever on the submitter's own disk


def jobs_known(cluster: SlurmCluster) -> dict[str, str]:
    shown = subprocess.run(["squeue", "--noheader", "--array", "--states=all", "--format=%i|%j"],
                           env=cluster.environment, capture_output=True, text=True, check=True).stdout
    return dict(line.split("|", 1) for line in shown.splitlines() if "|" in line)


def test_gpus_per_trial_narrows_the_exclusive_jobs_gpus_for_the_training(
        slurm: SlurmCluster, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
        tmp_path: Path) -> None:
    registry = fake_registry(fake=fake_repo("busy", required_args=[
        "--behaviour", "busy", "--seconds", "0.5", "--print-env", "CUDA_VISIBLE_DEVICES",
        "--print-env", "SLURM_JOB_GPUS"]))
    results = tmp_path / "results"
    result = invoke("--registry", registry, "--results-dir", results, "run",
                    settings_for(write_json, 1, gpus_per_trial=1))
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(results)
    (row,) = rows(run_dir)
    log = (run_dir / row["trial"] / "attempt_1" / "training.log").read_text()
    # Slurm gave the exclusive job both GPUs whatever --gpus said; the training sees the one it asked for.
    assert "ENV SLURM_JOB_GPUS=0,1\n" in log and "ENV CUDA_VISIBLE_DEVICES=0\n" in log
    node_log = (run_dir / row["trial"] / "node.log").read_text()
    assert "gpus_per_trial: CUDA_VISIBLE_DEVICES=0 of the job's 0,1" in node_log


def test_a_hostile_results_folder_reaches_slurm_and_the_scripts_literally(
        slurm: SlurmCluster, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
        tmp_path: Path) -> None:
    registry = fake_registry(fake=fake_repo("busy", required_args=["--behaviour", "busy", "--seconds", "0.5"]))
    # Slurm expands % sequences in --output; the shell would run $( ) and ; in a script.
    results = tmp_path / "res %j %A;$(touch HACKED) 'q\" `touch TICKED`"
    result = invoke("--registry", registry, "--results-dir", results, "run", settings_for(write_json, 2))
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(results)
    assert [row["status"] for row in rows(run_dir)] == ["success", "success"]
    jobs = json.loads((run_dir / "slurm_jobs.json").read_text())
    for trial, job_id in jobs.items():  # Slurm's own output and the trial's, each where it was meant to go
        assert (run_dir / "slurm" / f"{job_id}.out").is_file()
        assert (run_dir / trial / f"slurm-{job_id}.out").is_file()
    assert not list(tmp_path.rglob("HACKED")) and not list(tmp_path.rglob("TICKED"))
    assert not (Path.cwd() / "HACKED").exists() and not Path("/HACKED").exists()
