"""The operating-system calls that watching and ending processes makes, behind one object.

Teardown's hard cases (a leader that survives SIGKILL, a member we may not signal, a process forked
while the group is being ended) cannot be produced on demand with real processes, and a grace
period takes seconds of real time. Everything in `process/groups.py` and the training's wait goes
through an `OsCalls`: `REAL_OS` in the program, a scripted one with its own clock in unit tests
(test/fake_os.py), so those cases are tests of milliseconds beside the real-process tests.
"""

from __future__ import annotations

import os
import select
import time

import psutil


class OsCalls:
    """Signals, reaping, a session's members, and the clock: as the Linux kernel answers them."""

    def killpg(self, pgid: int, signum: int) -> None:
        """Signal every member of group `pgid`. ProcessLookupError (ESRCH) if it has none;
        PermissionError (EPERM) only when *no* member could be signalled (kill(2))."""
        os.killpg(pgid, signum)

    def getpgid(self, pid: int) -> int:
        return os.getpgid(pid)

    def session_members(self, sid: int) -> list[int]:
        """The pids of the live (non-zombie) processes of session `sid`."""
        members = []
        for process in psutil.process_iter(["status"]):
            try:
                if os.getsid(process.pid) == sid and process.info["status"] != psutil.STATUS_ZOMBIE:
                    members.append(process.pid)
            except (ProcessLookupError, psutil.Error):
                continue
        return members

    def wait4(self, pid: int, options: int) -> tuple[int, int, float | None]:
        """os.wait4: (pid or 0 if still running, wait status, user + system CPU seconds)."""
        reaped, status, usage = os.wait4(pid, options)
        return reaped, status, (usage.ru_utime + usage.ru_stime) if reaped else None

    def pidfd_open(self, pid: int) -> int | None:
        """A descriptor that turns readable when `pid` ends (Linux 5.3+), or None where there is none."""
        try:
            return os.pidfd_open(pid)
        except (AttributeError, OSError):
            return None

    def wait_readable(self, fd: int, timeout_s: float) -> None:
        select.select([fd], [], [], timeout_s)

    def close(self, fd: int) -> None:
        os.close(fd)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


REAL_OS = OsCalls()
