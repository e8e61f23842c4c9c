"""Before a Slurm campaign submits anything: does a node see the files its jobs need?

A job on a node that does not share the results folder runs, writes its record where nobody reads
it, and ends COMPLETED: the campaign learns of it only after the fact, trial by trial. So the
submitter first writes a marker file into the results folder and runs one small job (one core, one
minute, the trials' partition, account, QoS and constraint) that looks for it, for the registry and
for the tool; its exit code says which one it could not see. A check job that does not start within
`shared_check_s` (a busy queue) is cancelled and the campaign goes on, saying so.
"""

from __future__ import annotations

import shlex
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from energy_profiler.config.executor import SlurmOptions
from energy_profiler.execution.runtime import StopRequest, sleep_unless_stopped
from energy_profiler.execution.slurm_jobs import SlurmError, SlurmTools, cancel, job_fields

POLL_S = 0.5
FIRST_CODE = 3
"""The check's exit code for its first file (3, 4, ...): 1 and 2 are the shell's own."""


def check_script(needed: Sequence[tuple[str, Path]]) -> str:
    """The check job's shell lines: exit FIRST_CODE + i when the i-th file is not readable there."""
    return "\n".join(f"test -r {shlex.quote(str(path))} || exit {FIRST_CODE + index}"
                     for index, (_what, path) in enumerate(needed))


def check_shared_files(tools: SlurmTools, options: SlurmOptions, results_root: Path, needed: Sequence[tuple[str, Path]],
                       stop: StopRequest) -> str | None:
    """Run the check job; None when a node saw everything, a warning when the check could not be
    made in time; SlurmError naming what a node could not see.

    `needed`: (what it is, path) of files the jobs read besides the results folder. The results
    folder is made if it is not there (and removed again if the check fails).
    """
    made = not results_root.exists()
    results_root.mkdir(parents=True, exist_ok=True)
    marker = results_root / f".mutation-check-{uuid.uuid4().hex}"
    marker.write_text("written by mutation.py's submitter: a check job looks for this file on a node\n")
    everything = [("the results folder", marker), *needed]
    job_id = ""
    try:
        done = tools.call([tools.sbatch, "--parsable", "--job-name=mutation:check", "--output=/dev/null",
                           "--chdir=/", *options.check_options(), f"--wrap={check_script(everything)}"])
        if done.returncode != 0:
            raise SlurmError(f"sbatch refused the check job: {(done.stderr or done.stdout).strip()}")
        job_id = done.stdout.strip().split(";")[0]
        deadline = time.monotonic() + options.shared_check_s
        while not stop.requested:
            fields = job_fields(tools, job_id)
            state = fields.get("JobState", "UNKNOWN")
            if state == "COMPLETED":
                job_id = ""
                return None
            if state not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
                job_id = ""
                raise SlurmError(_failure(fields, everything, results_root))
            if state == "PENDING" and time.monotonic() > deadline:
                return (f"the check job {job_id} that looks for {results_root} on a node did not start within "
                        f"{options.shared_check_s:g} s (Slurm: {fields.get('Reason', 'pending')}); going on "
                        "without it. A job that cannot see the run folder ends without a record, and its row says so")
            sleep_unless_stopped(POLL_S, stop)
        return None
    except SlurmError:
        if made:
            marker.unlink(missing_ok=True)
            results_root.rmdir()
        raise
    finally:
        marker.unlink(missing_ok=True)
        if job_id:  # still queued or running: stopped, or out of time
            cancel(tools, [job_id])


def _failure(fields: dict[str, str], everything: Sequence[tuple[str, Path]], results_root: Path) -> str:
    node = fields.get("NodeList", "") or "a node"
    code = fields.get("ExitCode", "").split(":")[0]
    index = int(code) - FIRST_CODE if code.isdigit() else -1
    if 0 <= index < len(everything):
        what, path = everything[index]
        where = results_root if index == 0 else path
        return (f"a job on {node} cannot see {what} ({where}): the jobs would write their records where this "
                "process never reads them. Give --results-dir (and keep the project, its registry and venv) on a "
                "file system the nodes share")
    return (f"the check job {fields.get('JobId', '')} ended {fields.get('JobState', 'UNKNOWN')} on {node} "
            f"(exit code {fields.get('ExitCode', '?')}, reason {fields.get('Reason', 'none')})")
