"""A scripted kernel for teardown unit tests: processes, groups, sessions, signals, reaping, a clock.

It answers as Linux does, including the parts that make teardown hard:
- killpg(pgid, sig) on a group with no member: ESRCH (ProcessLookupError). On a group it can reach
  only in part it succeeds: EPERM (PermissionError) only when *no* member could be signalled
  (kill(2); kernel/signal.c, __kill_pgrp_info returns success if any delivery succeeded).
- Signal 0 checks existence and permission only. A zombie is still a member of its group until it
  is reaped, and signalling it succeeds (so `killpg(pgid, 0)` says yes for a group of zombies), but
  it is no live member of its session.
- SIGKILL cannot be caught, but a process stuck in the kernel (state D) does not die of it.
- Only the parent reaps (wait4); an orphan's zombie stays, as where PID 1 does not reap (containers).
- A blocking wait4 on a live child raises here: the code under test must never block forever.
- sleep() advances a clock of its own: a 30 s grace period takes no real time.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass

from energy_profiler.process.os_calls import OsCalls


@dataclass
class FakeProcess:
    pid: int
    pgid: int
    sid: int
    ignores_sigterm: bool = False
    exits_after_sigterm_s: float = 0.0
    """How long its SIGTERM handler takes before it exits (0: at once)."""
    stuck: bool = False
    """In the kernel (state D): even SIGKILL leaves it running."""
    foreign: bool = False
    """Another user's process: signalling it is EPERM."""
    on_sigterm: Callable[[FakeProcess], None] | None = None
    """What its SIGTERM trap does before exiting (e.g. start another process)."""
    our_child: bool = False
    zombie: bool = False
    reaped: bool = False
    exit_at: float | None = None
    ended_by: int = 0
    """The signal that ended it."""


class FakeOs(OsCalls):
    def __init__(self) -> None:
        self.clock = 1000.0
        self.processes: dict[int, FakeProcess] = {}
        self.sent: list[tuple[int, int]] = []
        """(pgid, signal) for every killpg that reached a member, signal 0 excluded."""
        self.after_listing: Callable[[], None] | None = None
        """Run once, right after the next session_members(): something that races the teardown."""
        self._next_pid = 4000

    def start(self, *, pgid: int | None = None, sid: int | None = None, **traits: object) -> FakeProcess:
        """A new process: the leader of a new session unless a group or session is given."""
        self._next_pid += 1
        pid = self._next_pid
        process = FakeProcess(pid=pid, pgid=pgid or pid, sid=sid or pgid or pid, **traits)  # type: ignore[arg-type]
        self.processes[pid] = process
        return process

    def _exit(self, process: FakeProcess, signum: int) -> None:
        process.zombie, process.exit_at, process.ended_by = True, None, signum

    def _deliver(self, process: FakeProcess, signum: int) -> None:
        if process.zombie:
            return
        if signum == signal.SIGKILL:
            if not process.stuck:
                self._exit(process, signal.SIGKILL)
        elif signum == signal.SIGTERM and not process.ignores_sigterm and process.exit_at is None:
            if process.on_sigterm is not None:
                process.on_sigterm(process)
            process.exit_at = self.clock + process.exits_after_sigterm_s
            self._advance(0.0)

    def _advance(self, seconds: float) -> None:
        self.clock += seconds
        for process in list(self.processes.values()):
            if process.exit_at is not None and process.exit_at <= self.clock:
                self._exit(process, signal.SIGTERM)

    def killpg(self, pgid: int, signum: int) -> None:
        members = [p for p in self.processes.values() if p.pgid == pgid and not p.reaped]
        if not members:
            raise ProcessLookupError(3, "No such process")
        allowed = [p for p in members if not p.foreign]
        if not allowed:
            raise PermissionError(1, "Operation not permitted")
        if signum:
            self.sent.append((pgid, signum))
            for process in allowed:
                self._deliver(process, signum)

    def getpgid(self, pid: int) -> int:
        process = self.processes.get(pid)
        if process is None or process.reaped:
            raise ProcessLookupError(3, "No such process")
        return process.pgid

    def session_members(self, sid: int) -> list[int]:
        members = [p.pid for p in self.processes.values() if p.sid == sid and not p.zombie]
        race, self.after_listing = self.after_listing, None
        if race is not None:
            race()
        return members

    def wait4(self, pid: int, options: int) -> tuple[int, int, float | None]:
        process = self.processes.get(pid)
        if process is None or process.reaped or not process.our_child:
            raise ChildProcessError(10, "No child processes")
        if process.zombie:
            process.reaped = True
            return pid, process.ended_by, 0.25  # the wait status of a death by that signal
        if not options & os.WNOHANG:
            raise AssertionError("a blocking wait4 on a live process: the caller could wait forever")
        return 0, 0, None

    def pidfd_open(self, pid: int) -> int | None:
        return None  # the fallback: polls with sleep(), on the fake clock

    def monotonic(self) -> float:
        return self.clock

    def sleep(self, seconds: float) -> None:
        self._advance(seconds)

    def alive(self) -> list[FakeProcess]:
        return [p for p in self.processes.values() if not p.zombie]
