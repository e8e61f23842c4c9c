"""What a running campaign shares: the stop request set by signal handlers, and where it speaks."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

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


@dataclass(frozen=True)
class Output:
    """Where the session speaks: tool messages, verbose details, and the trainings' own output."""

    say: Callable[[str], None]
    detail: Callable[[str], None]
    training: BinaryIO | None


def sleep_unless_stopped(seconds: float, stop: StopRequest) -> None:
    deadline = time.monotonic() + seconds
    while not stop.requested and time.monotonic() < deadline:
        time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
