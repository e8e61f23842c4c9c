"""Stopping a campaign whose training cannot run: the same failure, within seconds, trial after trial."""

from __future__ import annotations

from energy_profiler.model.record import START_FAILURE_S, Record
from energy_profiler.model.status import TrialStatus


class StartFailures:
    """Trials in a row that failed the same way (the same reason) within START_FAILURE_S: a command
    that cannot run (a missing module, a wrong flag) would fail every trial left, each in seconds."""

    def __init__(self, limit: int):
        self.limit = limit
        self.reason: str | None = None
        self.in_a_row = 0

    def count(self, record: Record) -> bool:
        """Take the next trial's record; whether the limit is reached."""
        quick = record.status == TrialStatus.FAILED and record.duration_s < START_FAILURE_S
        if not quick:
            self.reason, self.in_a_row = None, 0
        elif record.status_reason == self.reason:
            self.in_a_row += 1
        else:
            self.reason, self.in_a_row = record.status_reason, 1
        return self.reached

    @property
    def reached(self) -> bool:
        return self.limit > 0 and self.in_a_row >= self.limit

    def explanation(self, recorded: int, planned: int) -> str:
        return (f"stopping after {recorded} of {planned} trials: the last {self.in_a_row} failed the same way within "
                f"{START_FAILURE_S:g} s of starting ({self.reason}), as every trial left would. If what the training "
                "needs is missing (a module, a file, a variable), provide it and resume: the trials left run with the "
                "command lines in plan.json, and these stay recorded as failed. If the command itself is wrong "
                "(the registry's command or arguments), fix the registry and run the settings file again as a new "
                "campaign. (stop_after_start_failures in the settings sets how many in a row; 0: never stop)")
