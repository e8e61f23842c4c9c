"""Background trainings for parallel mode: a generated `while true` sh script per workload.

The script is saved beside the results so users can read exactly what ran. Every argument and
environment value passes through shlex.quote. The loop runs until mutation.py ends it, with one
exception: a command that keeps failing at once (a typo, a missing file) would otherwise start
hundreds of runs a second inside the measured window. So after a failed run the loop waits,
twice as long after each failure in a row (0.5 s, 1 s, 2 s, ... at most 30 s), and after
GIVE_UP_AFTER failures in a row that each ended within QUICK_FAILURE_S of starting it gives up
and leaves `bg<k>_gave_up.txt`. Each run's output goes to `background_logs/bg<k>_run_<i>.log`
(the first and last KEEP_LOGS of a trial are kept; iterations.csv counts them all), and one line
per finished run to `background_logs/iterations.csv`. The script runs in a session and process
group of its own (with the parent-death signal set, like every child of mutation.py); its runs
share that group, so one killpg reaches all of them, and its TERM/INT/HUP trap ends the whole
group before exiting.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from energy_profiler.fs import make_dirs, own
from energy_profiler.model.record import BackgroundResult
from energy_profiler.model.values import canonical_to_json
from energy_profiler.planning.placeholders import WorkloadDirs
from energy_profiler.planning.plan import BackgroundRun
from energy_profiler.process.groups import Teardown, end_group
from energy_profiler.process.managed import ManagedGroup, ProcessState
from energy_profiler.process.spawn import forget, spawn
from energy_profiler.system.sudo import InvokingUser

ITERATIONS_HEADER = "background,iteration,start_utc,end_utc,exit_code,seconds,oom\n"
OOM_MARKER = "CUDA out of memory"
FIRST_BACKOFF_MS = 500
MAX_BACKOFF_MS = 30_000
QUICK_FAILURE_S = 30
"""A failed run that ended within this many seconds of its start failed at once, not while training."""
GIVE_UP_AFTER = 5
"""Quick failures in a row after which a loop stops: its command does not work."""
KEEP_LOGS = 5
"""The first and the last this many run logs of a loop are kept per attempt."""


@dataclass(frozen=True)
class BackgroundCounts:
    """What one background loop did during a trial."""

    started: int
    completed: int
    failed: int
    oom: int
    failed_quickly: int = 0
    """Failed runs that ended within QUICK_FAILURE_S of their start."""
    gave_up: str | None = None
    """Why the loop stopped by itself (GIVE_UP_AFTER quick failures in a row), or None."""
    logs_dropped: int = 0


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""What sh takes as a variable name; the schemas refuse any other, and the script never writes one."""


def comment_text(text: str) -> str:
    """`text` fit for a `#` line: control characters (a newline would end the comment) escaped."""
    return "".join(character if character.isprintable() else ascii(character)[1:-1] for character in text)


def script_text(*, index: int, trial: str, argv: Sequence[str], cwd: str, env: Mapping[str, str],
                logs: Path, restart_delay_s: float) -> str:
    """The POSIX sh loop for background workload `index` (1-based) of `trial`.

    Every user string is either shlex-quoted or, in comments, escaped by comment_text.
    """
    q = shlex.quote
    for name in env:
        if not ENV_NAME.fullmatch(name):
            raise ValueError(f"not an environment variable name sh accepts: {name!r}")
    exports = "\n".join(f"export {name}={q(value)}" for name, value in env.items())
    delay = f"    sleep {q(f'{restart_delay_s:g}')} & wait $!\n" if restart_delay_s > 0 else ""
    log = f'"$logs/bg{index}_run_$i.log"'
    return f"""#!/bin/sh
# Background workload {index} of trial {comment_text(trial)}, written by mutation.py.
# It runs the training below again and again until mutation.py ends it. A failed run is followed
# by a pause that doubles with each failure in a row ({FIRST_BACKOFF_MS} ms, at most {MAX_BACKOFF_MS // 1000} s).
# After {GIVE_UP_AFTER} failures in a row that each ended within {QUICK_FAILURE_S} s of starting, the command
# does not work: the loop stops, saying why in bg{index}_gave_up.txt. Run i's output goes to
# bg{index}_run_<i>.log (the first and last {KEEP_LOGS} are kept), one line per finished run to
# iterations.csv ({ITERATIONS_HEADER.strip()}), both in $logs.
cd {q(cwd)} || exit 97
{exports}
logs={q(str(logs))}

finish() {{
    # Runs share this script's process group: end them all, ignoring the signal ourselves.
    trap '' TERM INT HUP
    kill -TERM 0 2>/dev/null
    wait
    exit 0
}}
trap finish TERM INT HUP

i=0
quick=0
backoff_ms={FIRST_BACKOFF_MS}
while true; do
    i=$((i + 1))
    start=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    start_s=$(date +%s)
    {" ".join(q(arg) for arg in argv)} < /dev/null > {log} 2>&1 &
    wait $!
    code=$?
    seconds=$(($(date +%s) - start_s))
    oom=0
    grep -qF {q(OOM_MARKER)} {log} && oom=1
    echo "{index},$i,$start,$(date -u +%Y-%m-%dT%H:%M:%SZ),$code,$seconds,$oom" >> "$logs/iterations.csv"
    old=$((i - {KEEP_LOGS}))
    [ "$old" -gt {KEEP_LOGS} ] && rm -f "$logs/bg{index}_run_$old.log"
    if [ "$code" -eq 0 ]; then
        quick=0
        backoff_ms={FIRST_BACKOFF_MS}
    else
        if [ "$seconds" -lt {QUICK_FAILURE_S} ]; then quick=$((quick + 1)); else quick=0; fi
        if [ "$quick" -ge {GIVE_UP_AFTER} ]; then
            echo "gave up after run $i: $quick runs in a row failed within {QUICK_FAILURE_S} s of starting" \\
                "(last exit code $code)" > "$logs/bg{index}_gave_up.txt"
            exit 0
        fi
        sleep "$((backoff_ms / 1000)).$((backoff_ms % 1000 / 100))" & wait $!
        backoff_ms=$((backoff_ms * 2))
        [ "$backoff_ms" -gt {MAX_BACKOFF_MS} ] && backoff_ms={MAX_BACKOFF_MS}
    fi
{delay}done
"""


def write_script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)
    own(path)


def start_loop(script: Path, trial: str, run_as: InvokingUser | None = None) -> subprocess.Popen[bytes]:
    """Run the script with /bin/sh in a new session (recorded in the campaign's ledger)."""
    as_user: dict[str, Any] = {}
    if run_as is not None:
        as_user = {**run_as.popen_options(), "env": run_as.environment(os.environ)}
    process: subprocess.Popen[bytes] = spawn(["/bin/sh", str(script)], role="background", trial=trial,
                                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL, **as_user)
    return process


def wait_for_first_run(logs: Path, index: int, timeout_s: float, should_stop: Callable[[], bool]) -> bool:
    """Whether background `index` started its first run (its log file exists) within the timeout."""
    first_log = logs / f"bg{index}_run_1.log"
    deadline = time.monotonic() + timeout_s
    while not first_log.exists():
        if time.monotonic() > deadline or should_stop():
            return False
        time.sleep(0.01)
    return True


def count_runs(logs: Path, index: int) -> BackgroundCounts:
    """Runs started (the highest run log's number: the middle logs may be gone), and from
    iterations.csv those completed, failed (quickly) and hit by CUDA OOM; whether the loop gave up."""
    numbers = [int(log.stem.rsplit("_", 1)[1]) for log in logs.glob(f"bg{index}_run_*.log")
               if log.stem.rsplit("_", 1)[1].isdigit()]
    completed = failed = quickly = oom = 0
    table = logs / "iterations.csv"
    if table.exists():
        with open(table, newline="") as file:
            for row in csv.DictReader(file):
                if row["background"] != str(index) or not row["exit_code"]:
                    continue
                if row["exit_code"] == "0":
                    completed += 1
                else:
                    failed += 1
                    quickly += int(row.get("seconds") or 0) < QUICK_FAILURE_S
                oom += row.get("oom") == "1"
    gave_up_file = logs / f"bg{index}_gave_up.txt"
    gave_up = gave_up_file.read_text().strip() if gave_up_file.exists() else None
    started = max(numbers, default=0)
    return BackgroundCounts(started=started, completed=completed, failed=failed, oom=oom, failed_quickly=quickly,
                            gave_up=gave_up, logs_dropped=started - len(numbers))


FIRST_RUN_TIMEOUT_S = 60.0


class Backgrounds:
    """The background loops of one attempt: started before the foreground, ended after it."""

    def __init__(self, runs: Sequence[BackgroundRun], dirs: WorkloadDirs, trial: str,
                 run_as: InvokingUser | None = None):
        self.runs = list(runs)
        self.run_as = run_as
        self.dirs = dirs
        attempt_dir = dirs.attempt_dir
        self.attempt_dir = attempt_dir
        self.trial = trial
        self.logs = attempt_dir / "background_logs"
        self._processes: list[subprocess.Popen[bytes]] = []
        self.groups = [ManagedGroup("background") for _ in self.runs]
        """Each loop's state; a start() that failed part-way leaves the rest `starting`, then `exited`."""

    def script_path(self, run: BackgroundRun) -> Path:
        return self.attempt_dir / f"background_{run.index}.sh"

    def start(self, should_stop: Callable[[], bool]) -> list[str]:
        """Start every loop and wait until each has begun its first run; returns warnings."""
        make_dirs(self.logs)  # the loop writes here, as the training's user
        (self.logs / "iterations.csv").write_text(ITERATIONS_HEADER)
        own(self.logs / "iterations.csv")
        for run, group in zip(self.runs, self.groups, strict=True):
            own_dir = self.attempt_dir / f"bg{run.index}"  # its {attempt_dir}: checkpoints apart from the foreground's
            make_dirs(own_dir)
            dirs = replace(self.dirs, attempt_dir=own_dir)
            text = script_text(index=run.index, trial=self.trial, argv=dirs.argv(run.argv), cwd=run.cwd,
                               env={"PYTHONUNBUFFERED": "1", **dirs.env(dict(run.env))}, logs=self.logs,
                               restart_delay_s=run.restart_delay_s)
            write_script(self.script_path(run), text)
            self._processes.append(start_loop(self.script_path(run), self.trial, self.run_as))
            group.started(self._processes[-1].pid)
        warnings = []
        for run, process in zip(self.runs, self._processes, strict=True):

            def give_up(loop: subprocess.Popen[bytes] = process) -> bool:
                return should_stop() or loop.poll() is not None

            started = wait_for_first_run(self.logs, run.index, FIRST_RUN_TIMEOUT_S, give_up)
            if not started and process.poll() is not None:
                warnings.append(f"background {run.index} ({run.repo}/{run.model}) exited at once "
                                f"with status {process.returncode}; see {self.script_path(run)}")
            elif not started and not should_stop():
                warnings.append(f"background {run.index} did not start a run within {FIRST_RUN_TIMEOUT_S:g} s")
        return warnings

    @property
    def pids(self) -> list[int]:
        """Each started loop's pid: its process group and session."""
        return [process.pid for process in self._processes]

    def described(self) -> list[str]:
        """What each loop has done so far, for the live panel: runs completed and failed, the one running."""
        lines = []
        for run in self.runs[:len(self._processes)]:
            counts = count_runs(self.logs, run.index)
            ended = counts.completed + counts.failed
            running = f", run {counts.started} running" if counts.started > ended and not counts.gave_up else ""
            stopped = "; gave up" if counts.gave_up else ""
            lines.append(f"background {run.index} {run.repo}/{run.model}: runs completed {counts.completed}, "
                         f"failed {counts.failed}{running}{stopped}")
        return lines

    def stop(self, grace_s: float, hurry: Callable[[], bool], run_dir: Path) -> list[BackgroundResult]:
        """End every loop at once (each in its own thread, so graces overlap) and count their runs."""
        teardowns: dict[int, Teardown] = {}

        def end(run: BackgroundRun, process: subprocess.Popen[bytes]) -> None:
            group = self.groups[run.index - 1]
            group.move(ProcessState.STOPPING)
            teardowns[run.index] = end_group(process.pid, grace_s, reap=process.poll, hurry=hurry)
            group.move(teardowns[run.index].state)
            process.poll()
            if not teardowns[run.index].survivors:
                forget(process.pid)

        # Every loop, or those a start() that failed part-way got to.
        started = zip(self.runs[:len(self._processes)], self._processes, strict=True)
        threads = [threading.Thread(target=end, args=pair) for pair in started]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for group in self.groups[len(self._processes):]:
            group.move(ProcessState.EXITED)  # never started: there is nothing to end
        results = []
        for run in self.runs[:len(self._processes)]:
            counts = count_runs(self.logs, run.index)
            teardown = teardowns[run.index]
            results.append(BackgroundResult(
                index=run.index, repo=run.repo, model=run.model,
                hyperparameters={name: canonical_to_json(value) for name, value in run.hyperparameters},
                argv=list(run.argv), script=str(self.script_path(run).relative_to(run_dir)),
                iterations_started=counts.started, iterations_completed=counts.completed,
                iterations_failed=counts.failed, oom_iterations=counts.oom, signal=teardown.signal,
                iterations_failed_quickly=counts.failed_quickly, gave_up=counts.gave_up,
                logs_dropped=counts.logs_dropped,
                teardown_s=round(teardown.duration_s, 3), survivors=teardown.survivors, state=str(teardown.state),
                session=self._processes[run.index - 1].pid))
        return results
