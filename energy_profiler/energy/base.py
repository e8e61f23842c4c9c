"""What every energy backend shares: samples, measurements, availability, the monitor interface.

A monitor is started just before a training, stopped just after it exits, and then returns one
measurement. Sampling (where a backend samples) happens in one thread in this process; nothing
touches hardware at import time or before start().
"""

from __future__ import annotations

import os
import select
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Kind = Literal["cpu", "gpu"]


@dataclass(frozen=True)
class Sample:
    """One reading in a raw trace: long format, one quantity of one source at one moment."""

    time_unix_s: float
    monotonic_s: float
    source: str
    """What was read: a powercap zone (`package-0`), a GPU (`gpu0`), a perf event."""
    quantity: str
    value: float | None
    unit: str


@dataclass(frozen=True)
class Availability:
    """Whether a backend can measure here, and if not, why and how to fix it."""

    available: bool
    reason: str
    fix: str | None = None


@dataclass
class Measurement:
    """What one monitor measured over one training window."""

    kind: Kind
    method: str
    """cpu: rapl | perf | estimate | none; gpu: nvml_counter | nvml_power | nvidia_smi | none."""
    energy_j: float | None
    reason: str | None = None
    """Why energy_j is empty, or a caveat about it."""
    fields: dict[str, float | str | None] = field(default_factory=dict)
    """Extra summary columns of summary.csv (cpu_energy_pkg_j, gpu_power_avg_w, ...)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Per-socket / per-GPU breakdown and method facts, for experiment.json and energy.json."""
    samples: list[Sample] = field(default_factory=list)
    window_s: float | None = None
    """The seconds this measurement covers (its first to last reading), where the method knows them."""


@dataclass(frozen=True)
class Window:
    """The training window a monitor was stopped for: its length and the CPU time it used."""

    duration_s: float
    cpu_time_s: float | None = None
    """User + system CPU seconds of the training and the children it waited for (wait4 rusage)."""


class Monitor(Protocol):
    """start() just before the training, stop() the moment it exits, result() once it is reaped."""

    kind: Kind
    method: str

    def start(self) -> None:
        """Begin the window: first readings, sampler thread or helper process."""

    def stop(self) -> None:
        """End the window: last readings; stop the thread or helper. Cheap and prompt."""

    def result(self, window: Window) -> Measurement:
        """The measurement of the window (window.cpu_time_s is known only after the reaping)."""


def not_measured(kind: Kind, reason: str) -> Measurement:
    return Measurement(kind=kind, method="none", energy_j=None, reason=reason)


class Ticker:
    """Paces a sampler thread: a tick every `interval_s` on fixed deadlines, and stop() at once.

    One select() on a pipe per tick: cheaper than threading.Event.wait (whose lock-with-timeout
    costs extra system calls at every wake-up), and deadlines keep the achieved interval from
    drifting by the time each sample takes.
    """

    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self._read_end, self._write_end = os.pipe()
        self._next = time.monotonic() + interval_s

    def wait(self) -> bool:
        """Sleep until the next tick: True for a tick, False once stop() was called."""
        timeout = max(0.0, self._next - time.monotonic())
        ready, _, _ = select.select([self._read_end], [], [], timeout)
        if ready:
            return False
        self._next += self.interval_s
        if self._next < time.monotonic():  # fell behind (a stalled machine): do not burst
            self._next = time.monotonic() + self.interval_s
        return True

    def stop(self) -> None:
        os.write(self._write_end, b"x")

    def close(self) -> None:
        os.close(self._read_end)
        os.close(self._write_end)
