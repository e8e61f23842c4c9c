"""A campaign on a Slurm cluster: each trial one exclusive job, this process the one writer of the tables.

The submitting process makes the run folder (on a file system the nodes share), submits the
trials as one job array that Slurm throttles to `max_parallel` (slurm_jobs.py), and follows the
jobs with `squeue` and `scontrol`, each call with a deadline, never one that can wait forever. A
trial's row is appended when its job's record (experiment.json naming the job) appears; a job that
ends without one gets a row with a named status and Slurm's state and reason. Job ids are kept in
`slurm_jobs.json`, so that a resume follows jobs still queued or running instead of submitting
them again, and `--detach` can submit and leave. A stop (Ctrl-C, SIGTERM, SIGHUP) cancels the jobs
still queued or running and records them as interrupted.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from energy_profiler.config.executor import SlurmOptions
from energy_profiler.config.registry import Registry
from energy_profiler.config.settings import Settings
from energy_profiler.execution.runtime import Output, StopRequest, sleep_unless_stopped
from energy_profiler.execution.session import SessionResult, earlier_attempts, open_run
from energy_profiler.execution.sinks import RecordSink, record_sinks
from energy_profiler.execution.slurm_jobs import (
    JOBS_FILE,
    JobState,
    SlurmTools,
    cancel,
    job_states,
    max_array_size,
    read_jobs,
    submit,
    submit_array,
)
from energy_profiler.fs import atomic_write_json
from energy_profiler.model.energy_fields import EnergyFields
from energy_profiler.model.record import Record
from energy_profiler.planning.plan import Plan, Trial

POLL_S = 1.0
NODE_SILENT_S = 20.0
"""A job COMPLETING this long has a node that stopped answering (a job's end takes a second or two)."""
RECORD_GRACE_S = 10.0
"""How long after its job ended a record may still be on its way over the shared file system."""
STATUS_OF_END = {"CANCELLED": "interrupted", "PREEMPTED": "interrupted", "TIMEOUT": "timeout",
                 "DEADLINE": "timeout", "OUT_OF_MEMORY": "oom", "NODE_FAIL": "failed", "BOOT_FAIL": "failed",
                 "FAILED": "failed", "COMPLETED": "failed", "UNKNOWN": "failed"}
"""A job that ended without the trial's record: the status its row gets (COMPLETED: the job ran but
wrote no record — a file system the node does not share, or a crash before the record)."""
ENDED_BY_SLURM = {"CANCELLED", "PREEMPTED", "TIMEOUT", "DEADLINE", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL"}
VERDICT_ON_RESUME = {"TIMEOUT", "DEADLINE", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL"}
"""Ends a resume takes from an earlier session's job as the trial's outcome (its row says so; the
retries decide as if this process had followed it). Any other end without a final record (cancelled,
forgotten by Slurm) is submitted again."""


def fits_one_array(plan: Plan, max_array_size: int) -> bool:
    """Whether every trial's index is a task id a cluster of this MaxArraySize accepts."""
    return max(trial.index for trial in plan.trials) < max_array_size


def job_record(run_dir: Path, trial: Trial, job_id: str) -> Record | None:
    """The trial's record written by job `job_id`, if it is there yet."""
    document = run_dir / trial.name / "experiment.json"
    try:
        record = Record.from_json(json.loads(document.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if str(record.host.get("slurm_job_id")) == job_id else None


def _slurm_words(state: JobState) -> str:
    reason = f" ({state.shown_reason})" if state.shown_reason else ""
    return f"the Slurm job {state.job_id} ended {state.state}{reason}" + (f" on {state.node}" if state.node else "")


def ended_without_record(run_dir: Path, trial: Trial, state: JobState) -> Record:
    """The row of a job that ended before its trial was recorded: a named status, Slurm's words."""
    status = STATUS_OF_END.get(state.state.split()[0], "failed")
    reason = f"{_slurm_words(state)} before the trial was recorded"
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


@dataclass
class _Job:
    trial: Trial
    job_id: str
    submissions: int
    ended_at: float | None = None
    node: str = ""
    state: str = "PENDING"
    completing_since: float | None = None
    said_silent: bool = False


def _take_now(job: _Job, state: JobState, record: Record | None, say: Callable[[str], None]) -> bool:
    """Whether a job still active in Slurm's eyes has a record to take now.

    A record is otherwise taken once its job has ended, when Slurm's verdict (cancelled, timed out)
    is known. A `success` is final whatever Slurm says next; and a job stuck COMPLETING (its node's
    slurmd gone: Slurm marks the node DOWN only after SlurmdTimeout, minutes later) is said, and its
    record taken as it stands after NODE_SILENT_S.
    """
    if state.state != "COMPLETING":
        job.completing_since = None
    elif job.completing_since is None:
        job.completing_since = time.monotonic()
    silent = job.completing_since is not None and time.monotonic() - job.completing_since >= NODE_SILENT_S
    if silent and not job.said_silent:
        job.said_silent = True
        node = job.node or state.node or "its node"
        say(f"{job.trial.name}: job {job.job_id} has been completing for {NODE_SILENT_S:g} s: {node} may have "
            f"stopped answering (`scontrol show node {node}`); the trial's record is taken once it is there")
    return record is not None and (record.status == "success" or silent)


def run_slurm_session(settings: Settings, registry: Registry, plan: Plan, *, options: SlurmOptions,
                      command_for: Callable[[Path, Trial], list[str]], results_root: Path, output: Output,
                      stop: StopRequest, settings_bytes: bytes | None = None, resume_dir: Path | None = None,
                      tools: SlurmTools | None = None, detach: bool = False,
                      run_options: Mapping[str, object] | None = None, notes: Sequence[str] = ()) -> SessionResult:
    """Run `plan` as Slurm jobs and follow them to the end (or, with `detach`, only submit them);
    the session's result, as a local run's. `run_options` and `notes`: as run_session's."""
    tools = tools or SlurmTools.find()
    started = time.monotonic()
    resumed = resume_dir is not None
    with ExitStack() as cleanup:
        run_dir, finished, summary, say, result = open_run(cleanup, settings, registry, plan,
                                                           results_root=results_root, output=output,
                                                           settings_bytes=settings_bytes, resume_dir=resume_dir,
                                                           options=run_options, notes=notes)
        sinks = record_sinks(run_dir, results_root, summary, resumed=resumed)
        known = read_jobs(run_dir)
        queue = [trial for trial in plan.trials if trial.name not in finished]
        running = _earlier_jobs(tools, queue, known, say)
        queue = [trial for trial in queue if trial.name not in running]

        def submitted(trial: Trial, job_id: str, submissions: int) -> None:
            running[trial.name] = _Job(trial, job_id, submissions)
            known[trial.name] = job_id
            say(f"[{trial.index}/{len(plan.trials)}] {trial.name}: submitted as job {job_id}")

        if queue and fits_one_array(plan, max_array_size(tools)):  # else one job each, throttled below
            job_ids = submit_array(tools, options, run_dir, queue, command_for)
            for trial in queue:
                submitted(trial, job_ids[trial.name], 1)
            atomic_write_json(run_dir / JOBS_FILE, known)
            queue = []
        if detach:
            result.wall_s = time.monotonic() - started
            return result
        while (queue or running) and not stop.requested:
            while queue and len(running) < options.max_parallel and not stop.requested:
                trial = queue.pop(0)
                submitted(trial, submit(tools, options, run_dir, trial, command_for(run_dir, trial)), 1)
                atomic_write_json(run_dir / JOBS_FILE, known)
            states = job_states(tools, [job.job_id for job in running.values()])
            for name, job in list(running.items()):
                state = states[job.job_id]
                if state.state != job.state:
                    where = f" on {state.node}" if state.node and state.state == "RUNNING" else ""
                    say(f"[{job.trial.index}/{len(plan.trials)}] {name}: job {job.job_id} {state.state.lower()}{where}")
                    job.state, job.node = state.state, state.node or job.node
                record = job_record(run_dir, job.trial, job.job_id)
                if state.active and not _take_now(job, state, record, say):
                    continue
                from_job = record is not None
                if record is not None and record.status != "success" and state.state in ENDED_BY_SLURM:
                    # Slurm signals every process of a cancelled or timed-out job: the training's
                    # "killed by SIGTERM" is Slurm's doing, and the row says so.
                    record = replace(record, status=STATUS_OF_END[state.state],
                                     status_reason=f"{_slurm_words(state)}; the training: {record.status_reason}")
                    from_job = False  # experiment.json is rewritten with Slurm's verdict
                if record is None:
                    job.ended_at = job.ended_at or time.monotonic()
                    if time.monotonic() - job.ended_at < RECORD_GRACE_S and state.state == "COMPLETED":
                        continue  # written on the node, not yet visible here
                    if job.submissions <= settings.max_retries and STATUS_OF_END.get(state.state) != "interrupted":
                        say(f"{name}: job {job.job_id} ended {state.state} without a record; submitting again")
                        job_id = submit(tools, options, run_dir, job.trial, command_for(run_dir, job.trial))
                        submitted(job.trial, job_id, job.submissions + 1)
                        atomic_write_json(run_dir / JOBS_FILE, known)
                        continue
                    record = ended_without_record(run_dir, job.trial, state)
                _record(sinks, record, result, say, plan, from_job=from_job)
                del running[name]
            sleep_unless_stopped(POLL_S, stop)
        if stop.requested and running:
            cancel(tools, [job.job_id for job in running.values()])
            say(f"cancelled {len(running)} job(s): {', '.join(job.job_id for job in running.values())}")
            for job in running.values():
                state = JobState(job.job_id, "CANCELLED", job.node, "stopped by the submitting process")
                record = job_record(run_dir, job.trial, job.job_id)
                _record(sinks, record or ended_without_record(run_dir, job.trial, state), result, say, plan,
                        from_job=record is not None)
        result.stopped_by = stop.first_signal
    result.wall_s = time.monotonic() - started
    return result


def _earlier_jobs(tools: SlurmTools, trials: Sequence[Trial], known: dict[str, str],
                  say: Callable[[str], None]) -> dict[str, _Job]:
    """The jobs an earlier session submitted for `trials` that this one follows instead of submitting
    again: those still queued or running, and those whose end is the trial's outcome (VERDICT_ON_RESUME)."""
    ours = {trial.name: trial for trial in trials if trial.name in known}
    states = job_states(tools, [known[name] for name in ours])
    followed: dict[str, _Job] = {}
    for name, trial in ours.items():
        state = states[known[name]]
        if state.active or state.state in VERDICT_ON_RESUME:
            followed[name] = _Job(trial, state.job_id, 1, node=state.node)
            say(f"following job {state.job_id} of {name} ({state.state.lower()})")
    return followed


def _record(sinks: Sequence[RecordSink], record: Record, result: SessionResult, say: Callable[[str], None],
            plan: Plan, *, from_job: bool) -> None:
    """The trial's rows (and, for a job that wrote none, its experiment.json: sinks[0])."""
    for sink in sinks if not from_job else sinks[1:]:
        if note := sink.write(record):
            say(note)
    result.records.append(record)
    say(f"[{record.trial_index}/{len(plan.trials)}] {record.trial}: {record.status}"
        + (f" ({record.status_reason})" if record.status_reason else "") + f" in {record.duration_s:.1f} s")
