"""Slurm's commands, each with a deadline: submitting trials (one job array, or one job), their states, scancel.

A trial's job runs the trial folder's own batch script, `slurm_job.sh`: one line, the tool itself
(`mutation.py run-trial RUN_DIR TRIAL`), every word quoted. A campaign's trials go out as one job
array (`--array=<trial indices>%<max_parallel>`), so that Slurm itself keeps to `max_parallel` even
with no submitter following (`--detach`); the array's script only maps each task to its trial's
script. Array task ids are the trials' plan indices: job `1234_7` is trial 7.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from energy_profiler.config.executor import SlurmOptions
from energy_profiler.errors import ToolExit
from energy_profiler.fs import atomic_write_bytes, make_dirs
from energy_profiler.planning.plan import Trial

BATCH_SCRIPT = "slurm_job.sh"
JOBS_FILE = "slurm_jobs.json"
"""In the run folder: each trial's latest job id, for `status` and for a resume to follow."""
ARRAY_FOLDER = "slurm"
"""In the run folder: each job array's script and Slurm's own output of its tasks."""
CALL_TIMEOUT_S = 60.0
DEFAULT_MAX_ARRAY_SIZE = 1001
"""Slurm's default MaxArraySize: task ids 0..1000."""
ACTIVE_STATES = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING",
                 "SIGNALING", "STAGE_OUT", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}


class SlurmError(ToolExit):
    """Slurm refused or could not be asked; the message says which command and why (exit 2)."""


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

    @property
    def shown_reason(self) -> str | None:
        """Slurm's reason, or None where it gives none (`None` is its word for that)."""
        return None if self.reason in ("", "None") else self.reason


def _words(done: subprocess.CompletedProcess[str]) -> str:
    return (done.stderr or done.stdout).strip().replace("sbatch: error: ", "")


def batch_script(command: Sequence[str], run_dir: Path, trial: Trial) -> str:
    """The script a trial's job runs: its one line is the tool itself, every word quoted."""
    return ("#!/bin/sh\n"
            f"# Written by mutation.py: trial {json.dumps(trial.name)} of {json.dumps(str(run_dir))}.\n"
            "# It runs that one planned trial on the node Slurm gives it, with the same code as a local\n"
            "# campaign: monitors, backgrounds, teardown, experiment.json. The submitting process writes the rows.\n"
            f"exec {' '.join(shlex.quote(word) for word in command)}\n")


def array_script(run_dir: Path, trials: Sequence[Trial]) -> str:
    """A job array's script: task N runs trial N's own batch script, its output in the trial folder."""
    cases = "".join(f"  {trial.index}) cd {shlex.quote(str(run_dir / trial.name))} || exit 1 ;;\n"
                    for trial in trials)
    return ("#!/bin/sh\n"
            f"# Written by mutation.py: {len(trials)} trials of {json.dumps(str(run_dir))} as one Slurm job array.\n"
            "# Task N runs trial N's own slurm_job.sh (in its trial folder), writing its output there.\n"
            'case "$SLURM_ARRAY_TASK_ID" in\n'
            f"{cases}"
            '  *) echo "mutation.py: no trial for array task $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;\n'
            "esac\n"
            f'exec ./{BATCH_SCRIPT} > "slurm-${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}.out" 2>&1\n')


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
        raise SlurmError(f"Slurm would not take a trial's job: {_words(done)}")


def max_array_size(tools: SlurmTools) -> int:
    """The cluster's MaxArraySize (task ids must stay below it)."""
    done = tools.call([tools.scontrol, "show", "config"])
    found = re.search(r"^MaxArraySize\s*=\s*(\d+)", done.stdout, re.MULTILINE) if done.returncode == 0 else None
    return int(found.group(1)) if found else DEFAULT_MAX_ARRAY_SIZE


def output_pattern(folder: Path, pattern: str) -> str:
    """An sbatch --output value: `pattern` (with Slurm's %j, %A, %a) in `folder`, taken literally.

    Slurm expands `%` sequences anywhere in the value, so a `%` of the folder is written `%%`; a
    backslash anywhere turns every expansion off, so then Slurm's own output is not kept (an array
    task's output still reaches its trial folder through the array script).
    """
    if "\\" in str(folder):
        return "/dev/null"
    return f"{str(folder).replace('%', '%%')}/{pattern}"


def write_batch_script(run_dir: Path, trial: Trial, command: Sequence[str]) -> Path:
    trial_dir = run_dir / trial.name
    make_dirs(trial_dir)
    script = trial_dir / BATCH_SCRIPT
    atomic_write_bytes(script, batch_script(command, run_dir, trial).encode())
    script.chmod(0o755)
    return script


def submit(tools: SlurmTools, options: SlurmOptions, run_dir: Path, trial: Trial, command: Sequence[str]) -> str:
    """Write the trial's batch script and submit it as a job of its own (a retry); the job id."""
    script = write_batch_script(run_dir, trial, command)
    argv = [tools.sbatch, "--parsable", f"--job-name=mutation:{trial.name}", f"--chdir={script.parent}",
            f"--output={output_pattern(script.parent, 'slurm-%j.out')}", *options.sbatch_options(trial.timeout_s),
            str(script)]
    done = tools.call(argv)
    if done.returncode != 0:
        raise SlurmError(f"sbatch refused {trial.name}: {_words(done)}")
    return done.stdout.strip().split(";")[0]


def submit_array(tools: SlurmTools, options: SlurmOptions, run_dir: Path, trials: Sequence[Trial],
                 command_for: Callable[[Path, Trial], list[str]]) -> dict[str, str]:
    """Write each trial's batch script and submit them all as one job array of at most `max_parallel`
    tasks at once; each trial's job id (`ARRAYID_INDEX`). The trials share one time limit: the longest."""
    for trial in trials:
        write_batch_script(run_dir, trial, command_for(run_dir, trial))
    folder = run_dir / ARRAY_FOLDER
    make_dirs(folder)
    script = folder / f"array_{len(list(folder.glob('array_*.sh'))) + 1}.sh"
    atomic_write_bytes(script, array_script(run_dir, trials).encode())
    script.chmod(0o755)
    timeouts = [trial.timeout_s for trial in trials]
    longest = None if None in timeouts else max(t for t in timeouts if t is not None)
    indices = ",".join(str(trial.index) for trial in trials)
    argv = [tools.sbatch, "--parsable", f"--job-name=mutation:{run_dir.name}", f"--chdir={run_dir}",
            f"--array={indices}%{options.max_parallel}", f"--output={output_pattern(folder, '%A_%a.out')}",
            *options.sbatch_options(longest), str(script)]
    done = tools.call(argv)
    if done.returncode != 0:
        raise SlurmError(f"sbatch refused the job array of {len(trials)} trials: {_words(done)}")
    array_id = done.stdout.strip().split(";")[0]
    return {trial.name: f"{array_id}_{trial.index}" for trial in trials}


def job_states(tools: SlurmTools, job_ids: Sequence[str]) -> dict[str, JobState]:
    """The state of each job (or array task): squeue while Slurm lists it, then `scontrol show job`
    (finished jobs stay known for MinJobAge); a job neither knows is UNKNOWN."""
    if not job_ids:
        return {}
    states: dict[str, JobState] = {}
    done = tools.call([tools.squeue, "--noheader", "--array", "--states=all", f"--jobs={','.join(job_ids)}",
                       "--format=%i|%T|%N|%r"])
    for line in done.stdout.splitlines() if done.returncode == 0 else []:
        job_id, state, node, reason = [*line.split("|"), "", "", ""][:4]
        states[job_id.strip()] = JobState(job_id.strip(), state.strip(), node.strip(), reason.strip())
    for job_id in job_ids:
        if job_id not in states:
            states[job_id] = _scontrol_state(tools, job_id)
    arrays: dict[str, set[int] | None] = {}
    for job_id in list(states):
        array_id, _, task = job_id.partition("_")
        if states[job_id].state == "UNKNOWN" and task.isdigit():
            if array_id not in arrays:
                arrays[array_id] = _array_tasks(tools, array_id)
            known = arrays[array_id]
            if known is not None and int(task) not in known:
                # Measured on Slurm 22.05: a task cancelled while pending vanishes at once (`Job 1_3 not
                # found`) while its array and its siblings stay known for MinJobAge.
                states[job_id] = JobState(job_id, "CANCELLED", "", "cancelled while pending: Slurm keeps no record")
    return {job_id: states[job_id] for job_id in job_ids}


def _array_tasks(tools: SlurmTools, array_id: str) -> set[int] | None:
    """The task ids Slurm still knows of an array (None when it knows the array no more)."""
    done = tools.call([tools.scontrol, "show", "job", "--oneliner", array_id])
    if done.returncode != 0:
        return None
    tasks: set[int] = set()
    for found in re.finditer(r"\bArrayTaskId=(\S+)", done.stdout):
        for part in found.group(1).split("%")[0].split(","):
            low, _, high = part.partition("-")
            high, _, step = high.partition(":")
            if low.isdigit():
                tasks.update(range(int(low), int(high or low) + 1, int(step) if step.isdigit() else 1))
    return tasks or None


def job_fields(tools: SlurmTools, job_id: str) -> dict[str, str]:
    """`scontrol show job`'s fields (JobState, NodeList, Reason, ExitCode, ...); none for a job it does not know."""
    done = tools.call([tools.scontrol, "show", "job", "--oneliner", job_id])
    return dict(item.split("=", 1) for item in done.stdout.split() if "=" in item) if done.returncode == 0 else {}


def _scontrol_state(tools: SlurmTools, job_id: str) -> JobState:
    fields = job_fields(tools, job_id)
    return JobState(job_id, fields.get("JobState", "UNKNOWN"), fields.get("NodeList", ""), fields.get("Reason", ""))


def cancel(tools: SlurmTools, job_ids: Sequence[str]) -> None:
    if job_ids:
        tools.call([tools.scancel, *job_ids])


def read_jobs(run_dir: Path) -> dict[str, str]:
    try:
        document = json.loads((run_dir / JOBS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {str(name): str(job_id) for name, job_id in document.items()} if isinstance(document, dict) else {}

