"""A campaign on a Slurm cluster: each trial one exclusive job, this process the one writer of the tables.

The submitting process makes the run folder (on a file system the nodes share), writes each
trial's batch script into the trial folder (readable: it only calls `mutation.py run-trial RUN_DIR
TRIAL`, the local code path for one trial), submits with `sbatch --parsable --exclusive`, at most
`max_parallel` at a time, and follows the jobs with `squeue` and `scontrol` — each call with a
deadline, never one that can wait forever. A trial's row is appended when its job's record
(experiment.json naming the job) appears; a job that ends without one gets a row with a named
status and Slurm's state and reason. Job ids are kept in `slurm_jobs.json` so that a resume
follows jobs still running instead of submitting them again. A stop (Ctrl-C, SIGTERM, SIGHUP)
cancels the jobs still queued or running and records them as interrupted.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
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
from energy_profiler.fs import atomic_write_bytes, atomic_write_json
from energy_profiler.model.energy_fields import EnergyFields
from energy_profiler.model.record import Record
from energy_profiler.planning.plan import Plan, Trial

JOBS_FILE = "slurm_jobs.json"
BATCH_SCRIPT = "slurm_job.sh"
CALL_TIMEOUT_S = 60.0
POLL_S = 1.0
RECORD_GRACE_S = 10.0
"""How long after its job ended a record may still be on its way over the shared file system."""
ACTIVE_STATES = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING",
                 "SIGNALING", "STAGE_OUT", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
STATUS_OF_END = {"CANCELLED": "interrupted", "PREEMPTED": "interrupted", "TIMEOUT": "timeout",
                 "DEADLINE": "timeout", "OUT_OF_MEMORY": "oom", "NODE_FAIL": "failed", "BOOT_FAIL": "failed",
                 "FAILED": "failed", "COMPLETED": "failed", "UNKNOWN": "failed"}
"""A job that ended without the trial's record: the status its row gets (COMPLETED: the job ran but
wrote no record — a file system the node does not share, or a crash before the record)."""
ENDED_BY_SLURM = {"CANCELLED", "PREEMPTED", "TIMEOUT", "DEADLINE", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL"}


class SlurmError(Exception):
    """Slurm refused or could not be asked; the message says which command and why."""


@dataclass(frozen=True)
class SlurmTools:
    sbatch: str
    squeue: str
    scancel: str
    scontrol: str

    @classmethod
    def find(cls) -> SlurmTools:
        found = {name: shutil.which(name) for name in ("sbatch", "squeue", "scancel", "scontrol")}
        missing = [name for name, path in found.items() if path is None]
        if missing:
            raise SlurmError(f"{', '.join(missing)} not found on PATH: run this on a Slurm login node (or put "
                             "Slurm's commands on PATH)")
        return cls(**{name: str(path) for name, path in found.items()})

    def call(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        """Run one Slurm command with a deadline; SlurmError when it fails or hangs."""
        try:
            done = subprocess.run(list(argv), capture_output=True, text=True, timeout=CALL_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise SlurmError(f"{argv[0]} did not answer within {CALL_TIMEOUT_S:g} s") from None
        except OSError as error:
            raise SlurmError(f"{argv[0]}: {error.strerror}") from None
        return done


@dataclass(frozen=True)
class JobState:
    job_id: str
    state: str
    node: str
    reason: str

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


def batch_script(command: Sequence[str], run_dir: Path, trial: Trial) -> str:
    """The script a trial's job runs: its one line is the tool itself, every word quoted."""
    return ("#!/bin/sh\n"
            f"# Written by mutation.py: trial {json.dumps(trial.name)} of {json.dumps(str(run_dir))}.\n"
            "# It runs that one planned trial on the node Slurm gives it, with the same code as a local\n"
            "# campaign: monitors, backgrounds, teardown, experiment.json. The submitting process writes the rows.\n"
            f"exec {' '.join(shlex.quote(word) for word in command)}\n")


def describe_cluster() -> list[str]:
    """For `doctor`: whether Slurm's commands are here and what the controller says of its nodes."""
    try:
        tools = SlurmTools.find()
    except SlurmError as error:
        return [f"slurm: {error} (needed only for executor slurm)"]
    sinfo = shutil.which("sinfo")
    if sinfo is None:
        return [f"slurm: sbatch at {tools.sbatch}; sinfo not found, so the nodes are not listed"]
    try:
        done = tools.call([sinfo, "--noheader", "--Node", "--format=%N %t"])
    except SlurmError as error:
        return [f"slurm: sbatch at {tools.sbatch}; the controller did not answer: {error}"]
    if done.returncode != 0:
        words = "; ".join(line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip())
        return [f"slurm: sbatch at {tools.sbatch}, but sinfo failed: {words}"]
    nodes = [line.split() for line in done.stdout.splitlines() if line.strip()]
    shown = ", ".join(f"{name} {state}" for name, state, *_ in nodes)
    return [f"slurm: sbatch at {tools.sbatch}; {len(nodes)} node(s): {shown or 'none'}"]


def check_options(tools: SlurmTools, options: SlurmOptions, timeout_s: float | None) -> None:
    """Ask Slurm whether it would take a trial's job (`sbatch --test-only`); SlurmError with its words."""
    done = tools.call([tools.sbatch, "--test-only", *options.sbatch_options(timeout_s), "--wrap=true"])
    if done.returncode != 0:
        words = (done.stderr or done.stdout).strip().replace("sbatch: error: ", "")
        raise SlurmError(f"Slurm would not take a trial's job: {words}")


def submit(tools: SlurmTools, options: SlurmOptions, run_dir: Path, trial: Trial, command: Sequence[str]) -> str:
    """Write the trial's batch script and submit it; the job id."""
    trial_dir = run_dir / trial.name
    trial_dir.mkdir(exist_ok=True)
    script = trial_dir / BATCH_SCRIPT
    atomic_write_bytes(script, batch_script(command, run_dir, trial).encode())
    script.chmod(0o755)
    argv = [tools.sbatch, "--parsable", f"--job-name=mutation:{trial.name}", f"--chdir={trial_dir}",
            f"--output={trial_dir / 'slurm-%j.out'}", *options.sbatch_options(trial.timeout_s), str(script)]
    done = tools.call(argv)
    if done.returncode != 0:
        raise SlurmError(f"sbatch refused {trial.name}: {(done.stderr or done.stdout).strip()}")
    return done.stdout.strip().split(";")[0]


def job_states(tools: SlurmTools, job_ids: Sequence[str]) -> dict[str, JobState]:
    """The state of each job: squeue while Slurm lists it, then `scontrol show job` (finished jobs
    stay known for MinJobAge); a job neither knows is UNKNOWN."""
    if not job_ids:
        return {}
    states: dict[str, JobState] = {}
    done = tools.call([tools.squeue, "--noheader", "--states=all", f"--jobs={','.join(job_ids)}",
                       "--format=%i|%T|%N|%r"])
    for line in done.stdout.splitlines() if done.returncode == 0 else []:
        job_id, state, node, reason = [*line.split("|"), "", "", ""][:4]
        states[job_id.strip()] = JobState(job_id.strip(), state.strip(), node.strip(), reason.strip())
    for job_id in job_ids:
        if job_id not in states:
            states[job_id] = _scontrol_state(tools, job_id)
    return states


def _scontrol_state(tools: SlurmTools, job_id: str) -> JobState:
    done = tools.call([tools.scontrol, "show", "job", "--oneliner", job_id])
    fields = dict(item.split("=", 1) for item in done.stdout.split() if "=" in item) if done.returncode == 0 else {}
    return JobState(job_id, fields.get("JobState", "UNKNOWN"), fields.get("NodeList", ""), fields.get("Reason", ""))


def cancel(tools: SlurmTools, job_ids: Sequence[str]) -> None:
    if job_ids:
        tools.call([tools.scancel, *job_ids])


def job_record(run_dir: Path, trial: Trial, job_id: str) -> Record | None:
    """The trial's record written by job `job_id`, if it is there yet."""
    document = run_dir / trial.name / "experiment.json"
    try:
        record = Record.from_json(json.loads(document.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if str(record.host.get("slurm_job_id")) == job_id else None


def _slurm_words(state: JobState) -> str:
    reason = f" ({state.reason})" if state.reason not in ("", "None") else ""
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


def run_slurm_session(settings: Settings, registry: Registry, plan: Plan, *, options: SlurmOptions,
                      command_for: Callable[[Path, Trial], list[str]], results_root: Path, output: Output,
                      stop: StopRequest, settings_bytes: bytes | None = None,
                      resume_dir: Path | None = None, tools: SlurmTools | None = None) -> SessionResult:
    """Run `plan` as Slurm jobs and follow them to the end; the session's result, as a local run's."""
    tools = tools or SlurmTools.find()
    started = time.monotonic()
    resumed = resume_dir is not None
    with ExitStack() as cleanup:
        run_dir, finished, summary, say, result = open_run(cleanup, settings, registry, plan,
                                                           results_root=results_root, output=output,
                                                           settings_bytes=settings_bytes, resume_dir=resume_dir)
        sinks = record_sinks(run_dir, results_root, summary, resumed=resumed)
        known = _read_jobs(run_dir)
        queue = [trial for trial in plan.trials if trial.name not in finished]
        running: dict[str, _Job] = {}
        for trial in list(queue):  # a resume follows the jobs still queued or running
            if trial.name in known:
                state = job_states(tools, [known[trial.name]]).get(known[trial.name])
                if state is not None and state.active:
                    running[trial.name] = _Job(trial, known[trial.name], 1, state=state.state, node=state.node)
                    queue.remove(trial)
                    say(f"following job {state.job_id} of {trial.name} ({state.state.lower()})")
        while (queue or running) and not stop.requested:
            while queue and len(running) < options.max_parallel and not stop.requested:
                trial = queue.pop(0)
                job_id = submit(tools, options, run_dir, trial, command_for(run_dir, trial))
                running[trial.name] = _Job(trial, job_id, 1)
                known[trial.name] = job_id
                atomic_write_json(run_dir / JOBS_FILE, known)
                say(f"[{trial.index}/{len(plan.trials)}] {trial.name}: submitted as job {job_id}")
            states = job_states(tools, [job.job_id for job in running.values()])
            for name, job in list(running.items()):
                state = states[job.job_id]
                if state.state != job.state:
                    where = f" on {state.node}" if state.node and state.state == "RUNNING" else ""
                    say(f"[{job.trial.index}/{len(plan.trials)}] {name}: job {job.job_id} {state.state.lower()}{where}")
                    job.state, job.node = state.state, state.node or job.node
                if state.active:  # a record is taken once its job has ended, when Slurm's verdict is known
                    continue
                record = job_record(run_dir, job.trial, job.job_id)
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
                        job.job_id = submit(tools, options, run_dir, job.trial, command_for(run_dir, job.trial))
                        job.submissions, job.ended_at, job.state = job.submissions + 1, None, "PENDING"
                        known[name] = job.job_id
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


def _record(sinks: Sequence[RecordSink], record: Record, result: SessionResult, say: Callable[[str], None],
            plan: Plan, *, from_job: bool) -> None:
    """The trial's rows (and, for a job that wrote none, its experiment.json: sinks[0])."""
    for sink in sinks if not from_job else sinks[1:]:
        if note := sink.write(record):
            say(note)
    result.records.append(record)
    say(f"[{record.trial_index}/{len(plan.trials)}] {record.trial}: {record.status}"
        + (f" ({record.status_reason})" if record.status_reason else "") + f" in {record.duration_s:.1f} s")


def _read_jobs(run_dir: Path) -> dict[str, str]:
    try:
        document = json.loads((run_dir / JOBS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {str(name): str(job_id) for name, job_id in document.items()} if isinstance(document, dict) else {}

