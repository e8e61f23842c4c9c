"""The states of a process group mutation.py manages, as process supervisors keep them.

    starting ──> running ──> stopping ──> exited | killed | unknown
        └─────────> exited (it never ran: exec failed, or it was ended before it was recorded)

`stopping` is the grace period after SIGTERM. A group ends `exited` when it was gone before or
within the grace period, `killed` when SIGKILL was needed and worked, `unknown` when members are
left that we could not end (a leader stuck in the kernel, or a member we may not signal): the
caller reports those and keeps their ledger entry, for the watchdog or `mutation.py cleanup`.
"""

from __future__ import annotations

from enum import StrEnum


class ProcessState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    EXITED = "exited"
    KILLED = "killed"
    UNKNOWN = "unknown"


FINAL_STATES = frozenset({ProcessState.EXITED, ProcessState.KILLED, ProcessState.UNKNOWN})

ALLOWED = {
    ProcessState.STARTING: frozenset({ProcessState.RUNNING, ProcessState.EXITED}),
    ProcessState.RUNNING: frozenset({ProcessState.STOPPING}),
    ProcessState.STOPPING: FINAL_STATES,
}


class ManagedGroup:
    """One group's state; a move the diagram does not allow is a bug and raises at once."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.state = ProcessState.STARTING
        self.pgid: int | None = None

    def move(self, state: ProcessState) -> None:
        if state not in ALLOWED.get(self.state, frozenset()):
            raise RuntimeError(f"{self.role} group {self.pgid}: {self.state} cannot become {state}")
        self.state = state

    def started(self, pgid: int) -> None:
        self.pgid = pgid
        self.move(ProcessState.RUNNING)
