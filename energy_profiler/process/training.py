"""Running one training: its own session, live output to the log and console, timeout, teardown."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from energy_profiler.fs import make_dirs, own
from energy_profiler.process.groups import Teardown, end_group
from energy_profiler.process.os_calls import REAL_OS, OsCalls
from energy_profiler.process.spawn import forget, spawn
from energy_profiler.system.sudo import InvokingUser


class ByteSink(Protocol):
    """Where a training's output is copied: a terminal's byte stream, or a filtering wrapper."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


POLL_S = 0.05
"""How often the wait loop looks at the timeout and stop requests without a pidfd."""
PIDFD_POLL_S = 0.25
"""The same with a pidfd: the exit itself wakes the loop at once, so it can sleep longer (less CPU)."""
READ_CHUNK_BYTES = 65536
REAP_AFTER_KILL_S = 5.0
"""How long the training's own exit is awaited once its group was ended (it is normally immediate)."""

EndedBy = Literal["exit", "timeout", "interrupted", "not_started"]


@dataclass(frozen=True)
class ProcessOutcome:
    """How a training process ended."""

    ended_by: EndedBy
    exit_code: int | None
    """The process's exit status; negative -N when a signal N ended it; None if it never ran."""
    start_utc: datetime
    end_utc: datetime
    duration_s: float
    """From the start of the process to its end, monotonic clock: after a timeout or a stop request,
    its end in the teardown (the grace period it was given included)."""
    teardown: Teardown | None
    error: str | None = None
    """Why the process could not be started, when it could not."""
    cpu_time_s: float | None = None
    """User + system CPU seconds of the training and every descendant it waited for (wait4)."""
    pid: int | None = None
    """The training's pid: also its process group and session id."""
    measured_s: float | None = None
    """The measured window: from the start to the exit, the timeout or the stop request (the energy
    monitors stop then, before the teardown). None: as duration_s."""

    @property
    def window_s(self) -> float:
        return self.duration_s if self.measured_s is None else self.measured_s


def run_training(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    log_path: Path,
    *,
    timeout_s: float | None,
    grace_s: float,
    echo: ByteSink | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    hurry: Callable[[], bool] = lambda: False,
    on_start: Callable[[], None] = lambda: None,
    on_exit: Callable[[], None] = lambda: None,
    once_running: Callable[[], None] = lambda: None,
    label: str | None = None,
    run_as: InvokingUser | None = None,
) -> ProcessOutcome:
    """Run `argv` in `cwd` in a new session and wait for it; the whole group is gone on return.

    Output (stdout and stderr, interleaved as written) goes to `log_path` and, when `echo` is
    given, to it as well. When the process exits, times out, or `should_stop()` turns true, its
    process group is ended (SIGTERM, `grace_s`, SIGKILL) so that nothing it started survives.
    `on_start` runs just before the process starts and `on_exit` the moment it ends (or times out,
    or is stopped), before the teardown: that is the window the energy monitors measure.
    `once_running` runs once the process has started (work that may overlap the training but must
    not delay its start). With `run_as`, the training runs as that (sudo-invoking) user.
    """
    make_dirs(log_path.parent)
    with open(log_path, "wb") as log:
        own(log_path)
        on_start()
        start_utc = datetime.now(UTC)
        started = time.monotonic()
        try:
            as_user = run_as.popen_options() if run_as else {}
            environment = run_as.environment(env) if run_as else dict(env)
            process = spawn(argv, role="training", trial=label, cwd=cwd, env=environment, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **as_user)
        except OSError as error:
            message = f"could not start {argv[0]!r}: {error.strerror or error}"
            log.write(f"mutation.py: {message}\n".encode())
            on_exit()
            now = datetime.now(UTC)
            return ProcessOutcome("not_started", None, start_utc, now, 0.0, None, error=message)

        assert process.stdout is not None
        copier = threading.Thread(target=_copy_output, args=(process.stdout, log, echo), daemon=True)
        copier.start()
        once_running()

        child = _Child(process)
        ended_by: EndedBy = "exit"
        while child.reap() is None:
            if timeout_s is not None and time.monotonic() - started >= timeout_s:
                ended_by = "timeout"
                break
            if should_stop():
                ended_by = "interrupted"
                break
            child.wait_a_little()
        measured_s = time.monotonic() - started
        on_exit()
        # Also after a normal exit: whatever the training left running in its group must go.
        teardown = end_group(process.pid, grace_s, reap=child.reap, hurry=hurry)
        if not teardown.survivors:
            forget(process.pid)
        exit_code = child.reap_within(REAP_AFTER_KILL_S)
        child.close()
        copier.join(timeout=5)
        # The process's whole life: a stopped or timed-out training lives on through its grace period.
        ended_s = child.ended_s if child.ended_s is not None else time.monotonic()
        duration_s = ended_s - started
        end_utc = start_utc + timedelta(seconds=duration_s)
        return ProcessOutcome(ended_by, exit_code, start_utc, end_utc, duration_s, teardown,
                              cpu_time_s=child.cpu_time_s, pid=process.pid, measured_s=measured_s)


class _Child:
    """Waits for the training with wait4, so its resource usage (CPU time) comes with its status.

    A pidfd (Linux 5.3+) turns readable the moment the process ends, so the end of the measured
    window is seen at once rather than at the next poll.
    """

    def __init__(self, process: subprocess.Popen[bytes], os_calls: OsCalls = REAL_OS):
        self.process = process
        self.os_calls = os_calls
        self.cpu_time_s: float | None = None
        self.ended_s: float | None = None
        """When the exit was reaped (monotonic clock)."""
        self._pidfd = os_calls.pidfd_open(process.pid)

    def reap(self, block: bool = False) -> int | None:
        """The exit status (negative: the signal) if the process has ended and is now reaped."""
        if self.process.returncode is not None:
            return self.process.returncode
        try:
            pid, status, cpu_time_s = self.os_calls.wait4(self.process.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return self.process.returncode
        if pid == 0:
            return None
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self.cpu_time_s = cpu_time_s
        self.ended_s = self.os_calls.monotonic()
        return self.process.returncode

    def reap_within(self, seconds: float) -> int | None:
        """The exit status, waiting at most `seconds`: a leader that survived SIGKILL (stuck in the
        kernel, state D) must not block the campaign in wait4 forever. None if it is still there."""
        deadline = self.os_calls.monotonic() + seconds
        while (code := self.reap()) is None and self.os_calls.monotonic() < deadline:
            self.wait_a_little()
        return code

    def wait_a_little(self) -> None:
        if self._pidfd is not None:
            self.os_calls.wait_readable(self._pidfd, PIDFD_POLL_S)
        else:
            self.os_calls.sleep(POLL_S)

    def close(self) -> None:
        if self._pidfd is not None:
            self.os_calls.close(self._pidfd)
            self._pidfd = None


def _copy_output(pipe: BinaryIO, log: BinaryIO, echo: ByteSink | None) -> None:
    """Copy the training's output as it comes; chunks, not lines, so `\\r` progress bars pass."""
    fd = pipe.fileno()
    while chunk := os.read(fd, READ_CHUNK_BYTES):
        try:
            log.write(chunk)
            log.flush()
        except ValueError:
            break  # the log was closed: a process outside the group kept the pipe past teardown
        if echo is not None:
            try:
                echo.write(chunk)
                echo.flush()
            except (OSError, ValueError):
                echo = None  # the console went away (closed terminal): keep logging
    pipe.close()
