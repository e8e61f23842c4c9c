"""Starting a child of mutation.py: a new session, dying with mutation.py, recorded in the ledger.

Every child is started in its own session with the parent-death signal set (Linux
`prctl(PR_SET_PDEATHSIG, SIGTERM)`): it receives SIGTERM the moment mutation.py dies. While a
campaign runs (process/watchdog.tracking), each child's group is also written to the campaign's
ledger (process/ledger.py), which the watchdog ends should mutation.py die even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

from energy_profiler.process.ledger import Ledger

PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    """libc's prctl, resolved in the parent: the child after fork must only call it."""
    if not sys.platform.startswith("linux"):
        return None
    function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    return function


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
"""The signals mutation.py handles in Python; a child must not inherit those handlers before exec."""


def child_setup() -> Callable[[], None]:
    """A preexec_fn: default stop signals, death with this process, and no signal lost on the way.

    Between fork and exec the child runs with this process's Python signal handlers, which only
    set a flag that nothing in the child reads: a SIGTERM then (the parent-death signal, or a
    teardown) was swallowed and the training exec'd as an orphan. So spawn() blocks the stop
    signals around the fork; here the child restores their default action, sets the
    parent-death signal, and unblocks them, so that one sent in the window is delivered now and
    ends the child before exec. It calls only thin wrappers of C functions (prctl resolved
    beforehand), so it takes no Python-level lock another thread could hold. Children must be started from the main
    thread: the parent-death signal fires when the *thread* that forked them ends.
    """
    prctl = _prctl()
    parent = os.getpid()

    def preexec() -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


class Campaign:
    """The running campaign's ledger: like signal handlers, this is state of the whole process."""

    ledger: Ledger | None = None


def spawn(argv: Sequence[str], *, role: str, trial: str | None = None, **popen: Any) -> subprocess.Popen[Any]:
    """Popen in a new session, dying with mutation.py, and recorded in the campaign's ledger."""
    # preexec_fn is unsafe when it takes locks another thread may hold at fork; this one calls
    # C-level functions only (see child_setup). The stop signals stay blocked across the fork so
    # that none reaches the child while it still has this process's handlers.
    setup = child_setup()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        process: subprocess.Popen[Any] = subprocess.Popen(
            list(argv), start_new_session=True, preexec_fn=setup, **popen)  # noqa: PLW1509
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    if Campaign.ledger is not None:
        try:
            Campaign.ledger.add(process.pid, role, trial)
        except BaseException:  # unrecorded (a full disk): the child must not outlive this call
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    return process


def forget(pgid: int) -> None:
    """The group has been ended (or ended by itself): drop it from the ledger."""
    if Campaign.ledger is not None:
        Campaign.ledger.remove(pgid)


