"""What a running campaign shares: the stop request set by signal handlers, and where it speaks."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from energy_profiler.process.training import ByteSink

POLL_S = 0.1


@dataclass
class StopRequest:
    """Set by the caller's signal handlers; read by the session. A second request means hurry."""

    signals: list[int] = field(default_factory=list)

    def request(self, signum: int) -> None:
        self.signals.append(signum)

    @property
    def requested(self) -> bool:
        return bool(self.signals)

    @property
    def hurry(self) -> bool:
        return len(self.signals) >= 2

    @property
    def first_signal(self) -> int | None:
        return self.signals[0] if self.signals else None


class Progress:
    """What a progress display is told as a campaign goes; this one shows nothing (plain output)."""

    def campaign_started(self, total: int, already_done: int) -> None:
        """The plan has `total` trials, `already_done` of them recorded before (a resume)."""

    def attempt_started(self, label: str, log: Path, power_w: Callable[[], dict[str, float | None]]) -> None:
        """A training started: what it is, its log, and how to read live power (W by device)."""

    def trial_finished(self, status: str, duration_s: float) -> None:
        """A trial has its record."""

    def cooldown(self, seconds: float) -> None:
        """A pause between trials begins."""

    def close(self) -> None:
        """The campaign is over."""


@dataclass(frozen=True)
class Output:
    """Where the session speaks: tool messages, verbose details, the trainings' own output, progress."""

    say: Callable[[str], None]
    detail: Callable[[str], None]
    training: ByteSink | None
    progress: Progress = field(default_factory=Progress)


def sleep_unless_stopped(seconds: float, stop: StopRequest) -> None:
    deadline = time.monotonic() + seconds
    while not stop.requested and time.monotonic() < deadline:
        time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))


def signal_name(number: int) -> str:
    """`SIGTERM` for 15; a number Python has no name for (a real-time signal: 34-64) as `signal 36`."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
