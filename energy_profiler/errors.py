"""How a command ends other than by returning: one exception base that carries its exit code.

Any layer raises a `ToolExit` (most often a subclass that says what went wrong); the command line
turns it into its message on stderr and its exit code in one place, `cli.LazyGroup.invoke`. No
module below the command line prints an error or calls sys.exit, and every code is one of these.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum


class ExitCode(IntEnum):
    SUCCESS = 0
    FAILED = 1
    """It ran, and something did not succeed: a trial failed, a stop was sent to a campaign that had ended."""
    REFUSED = 2
    """Bad input, or a machine that cannot do what was asked: refused before anything started or was written."""
    SIGNALLED = 128
    """Plus the signal's number: the campaign was stopped by that signal (130 for Ctrl-C), as a shell counts it."""


def signalled(signal_number: int) -> int:
    """The exit code of a command that a signal stopped."""
    return ExitCode.SIGNALLED + signal_number


class ToolExit(Exception):
    """End the command with `exit_code`, each message said as `error: ...` on stderr, then the details as they are.

    With no message it ends the command silently: what there was to say has been said (a campaign's
    closing table, doctor's findings).
    """

    exit_code: int = ExitCode.REFUSED

    def __init__(self, *messages: str, details: Sequence[str] = (), exit_code: int | None = None) -> None:
        super().__init__(*messages)
        self.messages = list(messages)
        self.details = list(details)
        """Lines after the messages, as they are: a list the error refers to, how to fix it."""
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return "\n".join(self.messages)

    def said(self) -> str:
        """The messages on one line (for a log line or a table cell)."""
        return "; ".join(self.messages)

    def lines(self) -> list[str]:
        """What stderr gets."""
        return [f"error: {message}" for message in self.messages] + self.details


def ended(exit_code: int) -> ToolExit:
    """A command that has said everything and ends with this code (a campaign's outcome: 1 when a
    trial failed, 130 after Ctrl-C)."""
    return ToolExit(exit_code=exit_code)
