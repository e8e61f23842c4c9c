"""Ending everything a child started: SIGTERM, a grace period, SIGKILL, then a check that none is left.

Every child of mutation.py is started as the leader of a new session, so its process group id and
session id are its pid. A training's group holds the training and what it started (data loaders,
shell pipelines); a descendant that made a process group of its own is still in the session. So the
unit ended here is the session: every process group with a member in it is signalled. Only a
descendant that made a session of its own (setsid) escapes, as it would any tool. Zombies are not
counted: they hold no resources and vanish once reaped.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from energy_profiler.process.managed import ProcessState
from energy_profiler.process.os_calls import REAL_OS, OsCalls

POLL_S = 0.02
FULL_SCAN_EVERY = 5
"""Every 5th poll (0.1 s) lists the session's live members instead of trusting killpg(pgid, 0)."""
KILL_WAIT_S = 2.0
"""How long processes get to vanish after SIGKILL; one still there then (stuck in the kernel) is a survivor."""


@dataclass(frozen=True)
class Teardown:
    """What ending a group took."""

    signal: str | None
    """The last signal sent (`SIGTERM`, `SIGKILL`), or None when nothing was left to signal."""
    duration_s: float
    survivors: int
    state: ProcessState = ProcessState.EXITED
    """exited (gone before or within the grace period), killed (SIGKILL needed), unknown (survivors)."""


def group_members(sid: int, os_calls: OsCalls = REAL_OS) -> list[int]:
    """Pids of the live (non-zombie) processes of the session `sid` (which contains the group `sid`)."""
    return os_calls.session_members(sid)


def _signal_session(sid: int, signum: int, os_calls: OsCalls) -> bool:
    """Send `signum` to every process group with a member in session `sid`; False if none was reached."""
    groups = set()
    for pid in os_calls.session_members(sid):
        try:
            groups.add(os_calls.getpgid(pid))
        except ProcessLookupError:
            continue
    sent = False
    for pgid in groups:
        try:
            os_calls.killpg(pgid, signum)
            sent = True
        except ProcessLookupError:  # ended since it was listed
            continue
        except PermissionError:  # no member we may signal (they changed user): counted as survivors
            continue
    return sent


def _leader_group_alive(pgid: int, os_calls: OsCalls) -> bool:
    """The cheap check: does the group `pgid` itself still have a member? (`killpg(pgid, 0)`)

    A yes spares listing every process of the machine (2 ms with 84 processes, far more on a big
    server) at each POLL_S of a grace period; a no needs the scan, for members in other groups of
    the session. Zombies are members too, and where PID 1 does not reap (many containers) an
    orphan's zombie stays: so a yes is trusted only between full scans (see end_groups).
    """
    try:
        os_calls.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def end_group(
    pgid: int,
    grace_s: float,
    reap: Callable[[], object] = lambda: None,
    hurry: Callable[[], bool] = lambda: False,
    os_calls: OsCalls = REAL_OS,
) -> Teardown:
    """End every process of group `pgid`: SIGTERM, wait up to `grace_s`, then SIGKILL.

    `reap` is called while waiting so the caller can collect its own child (which would otherwise
    stay a zombie). `hurry()` turning true (a second Ctrl-C) skips the rest of the grace period.
    """
    return end_groups([pgid], grace_s, reap, hurry, os_calls)


def end_groups(
    pgids: Sequence[int],
    grace_s: float,
    reap: Callable[[], object] = lambda: None,
    hurry: Callable[[], bool] = lambda: False,
    os_calls: OsCalls = REAL_OS,
) -> Teardown:
    """end_group for several sessions at once: one grace period for all, not one each.

    It never blocks: every wait is a poll with a deadline, so a leader that SIGKILL cannot end
    (stuck in the kernel) is reported as a survivor after KILL_WAIT_S rather than waited for.
    """
    started = os_calls.monotonic()
    polls = 0

    def alive(full: bool = False) -> list[int]:
        nonlocal polls
        reap()
        polls += 1
        if full or polls % FULL_SCAN_EVERY == 0:  # a group of zombies only answers the cheap check
            return [pgid for pgid in pgids if group_members(pgid, os_calls)]
        return [pgid for pgid in pgids if _leader_group_alive(pgid, os_calls) or group_members(pgid, os_calls)]

    remaining = alive()
    if not remaining:
        return Teardown(signal=None, duration_s=os_calls.monotonic() - started, survivors=0)
    sent: str | None = None
    for pgid in remaining:
        if _signal_session(pgid, signal.SIGTERM, os_calls):
            sent = "SIGTERM"
    while remaining and os_calls.monotonic() < started + grace_s and not hurry():
        os_calls.sleep(POLL_S)
        remaining = alive()
    kill_deadline = os_calls.monotonic() + KILL_WAIT_S
    while remaining and os_calls.monotonic() < kill_deadline:
        # Again at each poll: a member forked after the last SIGKILL (a trap's child) gets its own.
        for pgid in remaining:
            if _signal_session(pgid, signal.SIGKILL, os_calls):
                sent = "SIGKILL"
        os_calls.sleep(POLL_S)
        remaining = alive(full=True)  # only zombies may be left now: the cheap check cannot tell
    survivors = sum(len(group_members(pgid, os_calls)) for pgid in pgids)
    state = (ProcessState.UNKNOWN if survivors
             else ProcessState.KILLED if sent == "SIGKILL" else ProcessState.EXITED)
    return Teardown(signal=sent, duration_s=os_calls.monotonic() - started, survivors=survivors, state=state)
