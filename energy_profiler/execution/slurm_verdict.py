"""What the Slurm submitter does about one job it follows, from Slurm's state and the trial's record.

The decision alone, with no Slurm call and no clock of its own (`now` is given), so that every end
a job can have (done, cancelled, timed out, a node that stops answering, a record late over the
shared file system, a retry) is tested without a cluster; slurm.py asks Slurm and acts on it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from energy_profiler.execution.run_folder import earlier_attempts
from energy_profiler.execution.slurm_jobs import JobState
from energy_profiler.model.energy_fields import EnergyFields
from energy_profiler.model.record import Record
from energy_profiler.model.status import TrialStatus
from energy_profiler.planning.plan import Trial

NODE_SILENT_S = 20.0
"""A job COMPLETING this long has a node that stopped answering (a job's end takes a second or two)."""
RECORD_GRACE_S = 10.0
"""How long after its job ended a record may still be on its way over the shared file system."""
STATUS_OF_END = {"CANCELLED": TrialStatus.INTERRUPTED, "PREEMPTED": TrialStatus.INTERRUPTED,
                 "TIMEOUT": TrialStatus.TIMEOUT, "DEADLINE": TrialStatus.TIMEOUT, "OUT_OF_MEMORY": TrialStatus.OOM,
                 "NODE_FAIL": TrialStatus.FAILED, "BOOT_FAIL": TrialStatus.FAILED, "FAILED": TrialStatus.FAILED,
                 "COMPLETED": TrialStatus.FAILED, "UNKNOWN": TrialStatus.FAILED}
"""A job that ended without the trial's record: the status its row gets (COMPLETED: the job ran but
wrote no record — a file system the node does not share, or a crash before the record)."""
ENDED_BY_SLURM = {"CANCELLED", "PREEMPTED", "TIMEOUT", "DEADLINE", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL"}
VERDICT_ON_RESUME = {"TIMEOUT", "DEADLINE", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL"}
"""Ends a resume takes from an earlier session's job as the trial's outcome (its row says so; the
retries decide as if this process had followed it). Any other end without a final record (cancelled,
forgotten by Slurm) is submitted again."""


@dataclass
class FollowedJob:
    """A trial's job as the submitter follows it."""

    trial: Trial
    job_id: str
    submissions: int
    """How many jobs this trial has had in this session (1 for the first; a retry submits another)."""
    ended_at: float | None = None
    """When the job was first seen ended without a record (the record may still be on its way)."""
    node: str = ""
    state: str = "PENDING"
    completing_since: float | None = None
    said_silent: bool = False


@dataclass(frozen=True)
class Verdict:
    action: Literal["wait", "submit_again", "record"]
    record: Record | None = None
    """For `record`: the trial's record, final."""
    from_job: bool = False
    """The record is the one its job wrote (its experiment.json stays as it is); else the submitter writes it."""


WAIT = Verdict("wait")
SUBMIT_AGAIN = Verdict("submit_again")


def verdict(job: FollowedJob, state: JobState, record: Record | None, *, run_dir: Path, max_retries: int,
            now: float, say: Callable[[str], None]) -> Verdict:
    """Wait, submit the trial again, or record it: the one decision the submitter makes per job and poll.

    `record` is the trial's record written by this job (job_record), if it is there yet.
    """
    if state.active and not take_now(job, state, record, now, say):
        return WAIT
    if record is not None:
        if record.status != TrialStatus.SUCCESS and state.state in ENDED_BY_SLURM:
            # Slurm signals every process of a cancelled or timed-out job: the training's
            # "killed by SIGTERM" is Slurm's doing, and the row says so.
            return Verdict("record", replace(record, status=STATUS_OF_END[state.state],
                                             status_reason=f"{slurm_words(state)}; the training: "
                                                           f"{record.status_reason}"))
        return Verdict("record", record, from_job=True)
    job.ended_at = job.ended_at or now
    if now - job.ended_at < RECORD_GRACE_S and state.state == "COMPLETED":
        return WAIT  # written on the node, not yet visible here
    if job.submissions <= max_retries and STATUS_OF_END.get(state.state) != TrialStatus.INTERRUPTED:
        return SUBMIT_AGAIN
    return Verdict("record", ended_without_record(run_dir, job.trial, state))


def take_now(job: FollowedJob, state: JobState, record: Record | None, now: float,
             say: Callable[[str], None]) -> bool:
    """Whether a job still active in Slurm's eyes has a record to take now.

    A record is otherwise taken once its job has ended, when Slurm's verdict (cancelled, timed out)
    is known. A `success` is final whatever Slurm says next; and a job stuck COMPLETING (its node's
    slurmd gone: Slurm marks the node DOWN only after SlurmdTimeout, minutes later) is said, and its
    record taken as it stands after NODE_SILENT_S.
    """
    if state.state != "COMPLETING":
        job.completing_since = None
    elif job.completing_since is None:
        job.completing_since = now
    silent = job.completing_since is not None and now - job.completing_since >= NODE_SILENT_S
    if silent and not job.said_silent:
        job.said_silent = True
        node = job.node or state.node or "its node"
        say(f"{job.trial.name}: job {job.job_id} has been completing for {NODE_SILENT_S:g} s: {node} may have "
            f"stopped answering (`scontrol show node {node}`); the trial's record is taken once it is there")
    return record is not None and (record.status == TrialStatus.SUCCESS or silent)


def job_record(run_dir: Path, trial: Trial, job_id: str) -> Record | None:
    """The trial's record written by job `job_id`, if it is there yet."""
    document = run_dir / trial.name / "experiment.json"
    try:
        record = Record.from_json(json.loads(document.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if str(record.host.get("slurm_job_id")) == job_id else None


def slurm_words(state: JobState) -> str:
    reason = f" ({state.shown_reason})" if state.shown_reason else ""
    return f"the Slurm job {state.job_id} ended {state.state}{reason}" + (f" on {state.node}" if state.node else "")


def ended_without_record(run_dir: Path, trial: Trial, state: JobState) -> Record:
    """The row of a job that ended before its trial was recorded: a named status, Slurm's words."""
    status = STATUS_OF_END.get(state.state.split()[0], TrialStatus.FAILED)
    reason = f"{slurm_words(state)} before the trial was recorded"
    now = datetime.now(UTC).isoformat()
    why = "The Slurm job ended before the trial's energy was recorded."
    return Record(
        experiment_id=str(uuid.uuid4()), run_id=run_dir.name, trial=trial.name, trial_index=trial.index,
        experiment_index=trial.experiment_index, run=trial.run, mode=trial.mode, repo=trial.repo,
        model=trial.model, status=status, status_reason=reason, exit_code=None, start_utc=now, end_utc=now,
        duration_s=0.0, argv=trial.argv, hyperparameters=trial.hyperparameters, mutated=trial.mutated,
        metrics=(), required_metrics=(), energy=EnergyFields(cpu_energy_reason=why, gpu_energy_reason=why),
        energy_details={}, host={"slurm_job_id": state.job_id, "hostname": state.node or None}, repo_git={},
        attempts=earlier_attempts(run_dir / trial.name), not_passed=trial.not_passed)
