"""What the Slurm submitter decides about one job, for every end a job can have, without a cluster.

`verdict` is the submitter's one decision per job and poll (slurm_verdict.py); here it is given
Slurm's states as squeue and scontrol word them, real record files in a temporary run folder, and
its clock, so that the minutes a real cluster takes (a time limit counted in minutes, a node that
Slurm gives up only after SlurmdTimeout) are not waited out. test_slurm.py runs the same code on a
real Slurm, end to end.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from energy_profiler.execution.slurm_jobs import JobState
from energy_profiler.execution.slurm_verdict import (
    NODE_SILENT_S,
    RECORD_GRACE_S,
    SUBMIT_AGAIN,
    WAIT,
    FollowedJob,
    Verdict,
    ended_without_record,
    job_record,
    verdict,
)
from energy_profiler.model.record import Record
from energy_profiler.model.status import TrialStatus
from energy_profiler.planning.plan import Trial

TRIAL = Trial(index=1, experiment_index=0, run=1, mode="default", repo="fake", model="tiny", hyperparameters=(),
              mutated=(), argv=("./train.sh",), cwd="/", env=(), timeout_s=None)


def written(run_dir: Path, job_id: str, status: TrialStatus, reason: str | None = None) -> Record:
    """The record a job's node writes into the shared run folder, as run-trial does."""
    record = replace(ended_without_record(run_dir, TRIAL, JobState(job_id, "RUNNING", "n1", "")),
                     status=status, status_reason=reason)
    (run_dir / TRIAL.name).mkdir(parents=True, exist_ok=True)
    (run_dir / TRIAL.name / "experiment.json").write_text(json.dumps(record.to_json()))
    found = job_record(run_dir, TRIAL, job_id)
    assert found is not None
    return found


def decide(run_dir: Path, job: FollowedJob, state: str, *, now: float = 100.0, max_retries: int = 0,
           said: list[str] | None = None, reason: str = "None") -> Verdict:
    return verdict(job, JobState(job.job_id, state, "n1", reason), job_record(run_dir, TRIAL, job.job_id),
                   run_dir=run_dir, max_retries=max_retries, now=now,
                   say=(said if said is not None else []).append)


def test_a_running_job_is_waited_for_until_its_record_says_success(tmp_path: Path) -> None:
    job = FollowedJob(TRIAL, "7_1", 1)
    assert decide(tmp_path, job, "PENDING") == WAIT
    assert decide(tmp_path, job, "RUNNING") == WAIT
    written(tmp_path, "7_1", TrialStatus.FAILED, "exit code 1")
    assert decide(tmp_path, job, "RUNNING") == WAIT  # a failure waits for Slurm's verdict (was it cancelled?)
    success = written(tmp_path, "7_1", TrialStatus.SUCCESS)
    taken = decide(tmp_path, job, "RUNNING")  # final whatever Slurm says next: taken as the job wrote it
    assert taken.action == "record" and taken.record == success and taken.from_job


def test_a_record_of_another_job_is_not_this_jobs(tmp_path: Path) -> None:
    written(tmp_path, "6_1", TrialStatus.SUCCESS)  # an earlier session's job of the same trial
    assert decide(tmp_path, FollowedJob(TRIAL, "7_1", 1), "RUNNING") == WAIT


def test_a_timed_out_job_gets_a_timeout_row_in_slurms_words_with_or_without_a_record(tmp_path: Path) -> None:
    # Slurm ends a job at its time limit with SIGTERM: the training's own record says "killed by SIGTERM".
    written(tmp_path, "7_1", TrialStatus.FAILED, "killed by SIGTERM")
    taken = decide(tmp_path, FollowedJob(TRIAL, "7_1", 1), "TIMEOUT", reason="TimeLimit")
    assert taken.action == "record" and taken.record is not None and not taken.from_job  # rewritten with the verdict
    assert taken.record.status == TrialStatus.TIMEOUT
    assert taken.record.status_reason == ("the Slurm job 7_1 ended TIMEOUT (TimeLimit) on n1; "
                                          "the training: killed by SIGTERM")
    (tmp_path / TRIAL.name / "experiment.json").unlink()  # killed before it could write one
    bare = decide(tmp_path, FollowedJob(TRIAL, "7_1", 1), "TIMEOUT", reason="TimeLimit")
    assert bare.record is not None and bare.record.status == TrialStatus.TIMEOUT
    assert bare.record.status_reason == ("the Slurm job 7_1 ended TIMEOUT (TimeLimit) on n1 "
                                         "before the trial was recorded")
    # With retries left it goes again, as a local trial's timeout does (only a stop is never retried).
    assert decide(tmp_path, FollowedJob(TRIAL, "7_1", 1), "TIMEOUT", max_retries=1) == SUBMIT_AGAIN


@pytest.mark.parametrize(("state", "status"), [("OUT_OF_MEMORY", TrialStatus.OOM), ("NODE_FAIL", TrialStatus.FAILED),
                                               ("DEADLINE", TrialStatus.TIMEOUT), ("BOOT_FAIL", TrialStatus.FAILED)])
def test_each_end_slurm_imposes_names_its_status(tmp_path: Path, state: str, status: TrialStatus) -> None:
    taken = decide(tmp_path, FollowedJob(TRIAL, "7_1", 1), state)
    assert taken.record is not None and taken.record.status == status
    assert f"ended {state}" in (taken.record.status_reason or "")


def test_a_cancelled_job_is_interrupted_and_never_submitted_again(tmp_path: Path) -> None:
    taken = decide(tmp_path, FollowedJob(TRIAL, "7_1", 1), "CANCELLED", max_retries=3)
    assert taken.record is not None and taken.record.status == TrialStatus.INTERRUPTED  # a resume runs it again


def test_a_completed_job_without_a_record_is_waited_for_then_retried_then_failed(tmp_path: Path) -> None:
    job = FollowedJob(TRIAL, "7_1", 1)
    assert decide(tmp_path, job, "COMPLETED", now=100.0, max_retries=1) == WAIT  # the record may be on its way
    assert decide(tmp_path, job, "COMPLETED", now=100.0 + RECORD_GRACE_S / 2, max_retries=1) == WAIT
    assert decide(tmp_path, job, "COMPLETED", now=100.0 + RECORD_GRACE_S, max_retries=1) == SUBMIT_AGAIN
    retried = FollowedJob(TRIAL, "8_1", 2, ended_at=100.0)  # the retry's job, also without a record
    taken = decide(tmp_path, retried, "COMPLETED", now=100.0 + RECORD_GRACE_S, max_retries=1)
    assert taken.record is not None and taken.record.status == TrialStatus.FAILED
    assert "ended COMPLETED" in (taken.record.status_reason or "") and "before the trial was recorded" in (
        taken.record.status_reason or "")


def test_a_late_record_within_the_grace_is_taken_as_the_job_wrote_it(tmp_path: Path) -> None:
    job = FollowedJob(TRIAL, "7_1", 1)
    assert decide(tmp_path, job, "COMPLETED", now=100.0) == WAIT
    success = written(tmp_path, "7_1", TrialStatus.SUCCESS)
    taken = decide(tmp_path, job, "COMPLETED", now=101.0)
    assert taken.record == success and taken.from_job


def test_a_job_completing_too_long_is_said_once_and_its_record_taken(tmp_path: Path) -> None:
    # A node whose slurmd stopped answering: its job stays COMPLETING until Slurm marks the node DOWN.
    job, said = FollowedJob(TRIAL, "7_1", 1, node="n1"), list[str]()
    assert decide(tmp_path, job, "COMPLETING", now=100.0, said=said) == WAIT
    assert decide(tmp_path, job, "COMPLETING", now=100.0 + NODE_SILENT_S, said=said) == WAIT  # no record yet
    assert said == [f"{TRIAL.name}: job 7_1 has been completing for {NODE_SILENT_S:g} s: n1 may have stopped "
                    "answering (`scontrol show node n1`); the trial's record is taken once it is there"]
    failed = written(tmp_path, "7_1", TrialStatus.FAILED, "exit code 1")
    taken = decide(tmp_path, job, "COMPLETING", now=101.0 + NODE_SILENT_S, said=said)
    assert taken.record == failed and taken.from_job and len(said) == 1  # said once, taken as it stands
    fresh = FollowedJob(TRIAL, "7_1", 1, node="n1")
    assert decide(tmp_path, fresh, "COMPLETING", now=100.0) == WAIT  # a failure while still completing: not yet
