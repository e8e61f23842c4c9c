"""Ending everything a child started: SIGTERM, a grace period, SIGKILL, then a check that none is left.

Every child of mutation.py is started as the leader of a new session, so its process group id and
session id are its pid. A training's group holds the training and what it started (data loaders,
shell pipelines); a descendant that made a process group of its own is still in the session. So the
unit ended here is the session: every process group with a member in it is signalled. Only a
descendant that made a session of its own (setsid) escapes, as it would any tool. Zombies are not
counted: they hold no resources and vanish once reaped.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psutil

POLL_S = 0.02
FULL_SCAN_EVERY = 5
"""Every 5th poll (0.1 s) lists the session's live members instead of trusting killpg(pgid, 0)."""


@dataclass(frozen=True)
class Teardown:
    """What ending a group took."""

    signal: str | None
    """The last signal sent (`SIGTERM`, `SIGKILL`), or None when nothing was left to signal."""
    duration_s: float
    survivors: int


def group_members(sid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of the session `sid` (which contains the process group `sid`)."""
    members = []
    for process in psutil.process_iter(["status"]):
        try:
            if os.getsid(process.pid) == sid and process.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def _signal_session(sid: int, signum: int) -> bool:
    """Send `signum` to every process group with a member in session `sid`; False if none is left."""
    groups = set()
    for process in group_members(sid):
        try:
            groups.add(os.getpgid(process.pid))
        except ProcessLookupError:
            continue
    sent = False
    for pgid in groups:
        try:
            os.killpg(pgid, signum)
            sent = True
        except ProcessLookupError:
            continue
        except PermissionError:  # a member we may not signal (it changed its user): counted as a survivor
            continue
    return sent


def _leader_group_alive(pgid: int) -> bool:
    """The cheap check: does the group `pgid` itself still have a member? (`killpg(pgid, 0)`)

    A yes spares listing every process of the machine (2 ms with 84 processes, far more on a big
    server) at each POLL_S of a grace period; a no needs the scan, for members in other groups of
    the session. Zombies are members too, and where PID 1 does not reap (many containers) an
    orphan's zombie stays: so a yes is trusted only between full scans (see end_groups).
    """
    try:
        os.killpg(pgid, 0)
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
) -> Teardown:
    """End every process of group `pgid`: SIGTERM, wait up to `grace_s`, then SIGKILL.

    `reap` is called while waiting so the caller can collect its own child (which would otherwise
    stay a zombie). `hurry()` turning true (a second Ctrl-C) skips the rest of the grace period.
    """
    return end_groups([pgid], grace_s, reap, hurry)


def end_groups(
    pgids: Sequence[int],
    grace_s: float,
    reap: Callable[[], object] = lambda: None,
    hurry: Callable[[], bool] = lambda: False,
) -> Teardown:
    """end_group for several groups at once: one grace period for all, not one each."""
    started = time.monotonic()

    polls = 0

    def alive(full: bool = False) -> list[int]:
        nonlocal polls
        reap()
        polls += 1
        if full or polls % FULL_SCAN_EVERY == 0:  # a group of zombies only answers the cheap check
            return [pgid for pgid in pgids if group_members(pgid)]
        return [pgid for pgid in pgids if _leader_group_alive(pgid) or group_members(pgid)]

    remaining = alive()
    if not remaining:
        return Teardown(signal=None, duration_s=time.monotonic() - started, survivors=0)
    sent: str | None = None
    for pgid in remaining:
        if _signal_session(pgid, signal.SIGTERM):
            sent = "SIGTERM"
    deadline = started + grace_s
    while remaining and time.monotonic() < deadline and not hurry():
        time.sleep(POLL_S)
        remaining = alive()
    if remaining:
        for pgid in remaining:
            if _signal_session(pgid, signal.SIGKILL):
                sent = "SIGKILL"
    # SIGKILL cannot be ignored, but the kernel takes a moment to finish each process.
    kill_deadline = time.monotonic() + 2.0
    while remaining and time.monotonic() < kill_deadline:
        time.sleep(POLL_S)
        remaining = alive(full=True)  # only zombies may be left now: the cheap check cannot tell
    survivors = sum(len(group_members(pgid)) for pgid in pgids)
    return Teardown(signal=sent, duration_s=time.monotonic() - started, survivors=survivors)
