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

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

from energy_profiler.config.executor import SlurmOptions
from energy_profiler.config.registry import Registry
from energy_profiler.config.settings import Settings
from energy_profiler.execution.journal import Journal
from energy_profiler.execution.run_folder import OpenedRun, SessionResult, open_run
from energy_profiler.execution.runtime import Output, StopRequest, sleep_unless_stopped
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
from energy_profiler.execution.slurm_verdict import (
    VERDICT_ON_RESUME,
    FollowedJob,
    ended_without_record,
    job_record,
    verdict,
)
from energy_profiler.fs import atomic_write_json
from energy_profiler.model.record import Record
from energy_profiler.planning.plan import Plan, Trial

POLL_S = 1.0


def fits_one_array(plan: Plan, max_array_size: int) -> bool:
    """Whether every trial's index is a task id a cluster of this MaxArraySize accepts."""
    return max(trial.index for trial in plan.trials) < max_array_size


def run_slurm_session(settings: Settings, registry: Registry, plan: Plan, *, options: SlurmOptions,
                      command_for: Callable[[Path, Trial], list[str]], results_root: Path, output: Output,
                      stop: StopRequest, settings_bytes: bytes | None = None, resume_dir: Path | None = None,
                      tools: SlurmTools | None = None, detach: bool = False,
                      run_options: Mapping[str, object] | None = None, notes: Sequence[str] = ()) -> SessionResult:
    """Run `plan` as Slurm jobs and follow them to the end (or, with `detach`, only submit them);
    the session's result, as a local run's. `run_options` and `notes`: as run_session's."""
    tools = tools or SlurmTools.find()
    started = time.monotonic()
    with ExitStack() as cleanup:
        opened = open_run(cleanup, settings, registry, plan, results_root=results_root, output=output,
                          settings_bytes=settings_bytes, resume_dir=resume_dir, options=run_options, notes=notes)
        sinks = record_sinks(opened.run_dir, results_root, opened.summary, resumed=resume_dir is not None)
        journal = Journal(opened.run_dir, experiment_name=settings.experiment_name, executor="slurm",
                          planned=len(plan.trials), recorded=opened.finished.values())
        cleanup.callback(journal.close)
        follower = JobFollower(tools, options, opened, plan, command_for=command_for, sinks=sinks)
        queue = [trial for trial in plan.trials if trial.name not in opened.finished]
        follower.follow_earlier_jobs(queue)
        queue = [trial for trial in queue if trial.name not in follower.running]
        if queue and fits_one_array(plan, max_array_size(tools)):  # else one job each, throttled below
            follower.submit_array(queue)
            queue = []
        journal.campaign_started(None)
        if detach:
            journal.update(state="detached", reason="the jobs were submitted and the submitter exited (--detach): "
                                                    "they run on; `run --resume` writes their rows")
        else:
            told = len(opened.result.records)
            while (queue or follower.running) and not stop.requested:
                while queue and len(follower.running) < options.max_parallel and not stop.requested:
                    follower.submit(queue.pop(0), submissions=1)
                follower.poll(settings.max_retries)
                for record in opened.result.records[told:]:  # state.json counts each row as it is written
                    journal.trial_ended(record, None)
                told = len(opened.result.records)
                sleep_unless_stopped(POLL_S, stop)
            if stop.requested:
                follower.cancel_all()
            opened.result.stopped_by = stop.first_signal
            journal.campaign_ended("interrupted" if stop.requested else "finished", opened.result.exit_code,
                                   f"stopped by {stop.first_cause}" if stop.requested else None)
    opened.result.wall_s = time.monotonic() - started
    return opened.result


class JobFollower:
    """The jobs of one campaign: submitted, followed with squeue and scontrol, recorded, cancelled.

    `slurm_jobs.json` is rewritten after every submission, so that a resume (or `status`) knows
    each trial's latest job whatever ends this process.
    """

    def __init__(self, tools: SlurmTools, options: SlurmOptions, opened: OpenedRun, plan: Plan, *,
                 command_for: Callable[[Path, Trial], list[str]], sinks: Sequence[RecordSink]) -> None:
        self.tools, self.options, self.plan, self.command_for, self.sinks = tools, options, plan, command_for, sinks
        self.run_dir, self.say, self.result = opened.run_dir, opened.say, opened.result
        self.known = read_jobs(self.run_dir)
        """Each trial's latest job id, as slurm_jobs.json keeps it."""
        self.running: dict[str, FollowedJob] = {}

    def follow_earlier_jobs(self, trials: Sequence[Trial]) -> None:
        """Follow the jobs an earlier session submitted for `trials` instead of submitting them again:
        those still queued or running, and those whose end is the trial's outcome (VERDICT_ON_RESUME)."""
        ours = {trial.name: trial for trial in trials if trial.name in self.known}
        states = job_states(self.tools, [self.known[name] for name in ours])
        for name, trial in ours.items():
            state = states[self.known[name]]
            if state.active or state.state in VERDICT_ON_RESUME:
                self.running[name] = FollowedJob(trial, state.job_id, 1, node=state.node)
                self.say(f"following job {state.job_id} of {name} ({state.state.lower()})")

    def submit_array(self, trials: Sequence[Trial]) -> None:
        job_ids = submit_array(self.tools, self.options, self.run_dir, trials, self.command_for)
        for trial in trials:
            self._submitted(trial, job_ids[trial.name], 1)
        atomic_write_json(self.run_dir / JOBS_FILE, self.known)

    def submit(self, trial: Trial, *, submissions: int) -> None:
        """One job of its own for the trial (one that did not fit the array, or a retry)."""
        self._submitted(trial, submit(self.tools, self.options, self.run_dir, trial,
                                      self.command_for(self.run_dir, trial)), submissions)
        atomic_write_json(self.run_dir / JOBS_FILE, self.known)

    def _submitted(self, trial: Trial, job_id: str, submissions: int) -> None:
        self.running[trial.name] = FollowedJob(trial, job_id, submissions)
        self.known[trial.name] = job_id
        self.say(f"[{trial.index}/{len(self.plan.trials)}] {trial.name}: submitted as job {job_id}")

    def poll(self, max_retries: int) -> None:
        """Ask Slurm once about every job followed; say what changed, and act on each job's verdict."""
        states = job_states(self.tools, [job.job_id for job in self.running.values()])
        for name, job in list(self.running.items()):
            state = states[job.job_id]
            if state.state != job.state:
                where = f" on {state.node}" if state.node and state.state == "RUNNING" else ""
                self.say(f"[{job.trial.index}/{len(self.plan.trials)}] {name}: job {job.job_id} "
                         f"{state.state.lower()}{where}")
                job.state, job.node = state.state, state.node or job.node
            decided = verdict(job, state, job_record(self.run_dir, job.trial, job.job_id), run_dir=self.run_dir,
                              max_retries=max_retries, now=time.monotonic(), say=self.say)
            if decided.action == "submit_again":
                self.say(f"{name}: job {job.job_id} ended {state.state} without a record; submitting again")
                self.submit(job.trial, submissions=job.submissions + 1)
            elif decided.record is not None:
                self._record(decided.record, from_job=decided.from_job)
                del self.running[name]

    def cancel_all(self) -> None:
        """A stop: cancel every job still followed; each trial's row says it was interrupted."""
        if not self.running:
            return
        jobs = list(self.running.values())
        cancel(self.tools, [job.job_id for job in jobs])
        self.say(f"cancelled {len(jobs)} job(s): {', '.join(job.job_id for job in jobs)}")
        for job in jobs:
            state = JobState(job.job_id, "CANCELLED", job.node, "stopped by the submitting process")
            record = job_record(self.run_dir, job.trial, job.job_id)
            self._record(record or ended_without_record(self.run_dir, job.trial, state), from_job=record is not None)
        self.running.clear()

    def _record(self, record: Record, *, from_job: bool) -> None:
        """The trial's rows (and, for a job that wrote none, its experiment.json: sinks[0])."""
        for sink in self.sinks if not from_job else self.sinks[1:]:
            if note := sink.write(record):
                self.say(note)
        self.result.records.append(record)
        self.say(f"[{record.trial_index}/{len(self.plan.trials)}] {record.trial}: {record.status}"
                 + (f" ({record.status_reason})" if record.status_reason else "") + f" in {record.duration_s:.1f} s")
