"""Signals while a campaign or a trial runs: SIGINT, SIGTERM and SIGHUP ask the session to stop.

The session ends the trial in progress, records it and exits; a hung-up terminal (a closed tmux
pane) is taken out of the way first, so that no write to it ends the campaign in a traceback.
Used by the local campaign, the Slurm submitter and a trial on its node alike.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

from energy_profiler.execution.runtime import StopRequest

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def stop_on_signals(stop: StopRequest) -> Iterator[None]:
    """While running: SIGINT, SIGTERM and SIGHUP only ask the session to stop (it ends the trial)."""
    terminals = [descriptor for descriptor in (1, 2) if os.isatty(descriptor)]

    def handler(signum: int, _frame: object) -> None:
        if signum == signal.SIGHUP:
            _leave_a_hung_up_terminal(terminals)
        stop.request(signum)

    previous = {signum: signal.signal(signum, handler) for signum in HANDLED_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _leave_a_hung_up_terminal(terminals: list[int]) -> None:
    """Point stdout/stderr at /dev/null where they were a terminal that has hung up.

    A closed tmux pane or ssh session sends SIGHUP, and every later write to its terminal fails
    with EIO: the first one would end the campaign in a traceback before the trial in progress is
    recorded. A hung-up terminal is no longer a tty to isatty(); one that still is (a `kill -HUP`
    in a live terminal) keeps its output. The records and logs hold everything either way.
    """
    hung_up = [descriptor for descriptor in terminals if not os.isatty(descriptor)]
    if not hung_up:
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for descriptor in hung_up:
            os.dup2(null, descriptor)
    finally:
        os.close(null)
