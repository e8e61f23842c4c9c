"""What every energy backend shares: availability, measurements, windows, the monitor interface.

A monitor is started just before a training, stopped the moment it exits, asked for its
measurement once the training is reaped, and then closed. `close()` is always called, also after
a `start()` that failed, and releases everything the monitor holds (threads, descriptors, helper
processes, NVML). Nothing touches hardware at import time or before start().
"""

from __future__ import annotations

import os
import select
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Kind = Literal["cpu", "gpu"]


@dataclass(frozen=True)
class Availability:
    """Whether a backend can measure here, and if not, why and how to fix it."""

    available: bool
    reason: str
    """A complete sentence (available: what will be measured; not: why not)."""
    fix: str | None = None
    brief: str | None = None
    """Why not, in a few words, for one-line summaries (`RAPL readable by root only`)."""


@dataclass
class Measurement:
    """What one monitor measured over one training window."""

    kind: Kind
    method: str
    """cpu: rapl | perf | perf_psys | estimate | none; gpu: nvml_counter | nvml_power | nvidia_smi | none."""
    energy_j: float | None
    reason: str | None = None
    """Why energy_j is empty (a complete sentence), or a caveat about it."""
    fields: dict[str, float | str | None] = field(default_factory=dict)
    """Extra summary columns of summary.csv (cpu_energy_pkg_j, gpu_power_avg_w, ...)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Per-socket / per-GPU breakdown, method facts and raw tool output, for energy.json."""
    window_s: float | None = None
    """The seconds this measurement covers, where the method knows them: one value per measurement."""
    devices: dict[str, float] = field(default_factory=dict)
    """Energy per device it covers (`cpu`, or GPU indices `0`, `1`): what baselines subtract from."""


@dataclass(frozen=True)
class Window:
    """The training window a monitor was stopped for: its length and the CPU time it used."""

    duration_s: float
    cpu_time_s: float | None = None
    """User + system CPU seconds of the training and the children it waited for (wait4 rusage)."""


class Monitor(Protocol):
    """start() just before the training, stop() the moment it exits, result() once it is reaped, close()."""

    kind: Kind
    method: str

    def start(self) -> None:
        """Begin the window: first readings, sampler thread or helper process."""

    def stop(self) -> None:
        """End the window: last readings; stop the thread or helper. Cheap, prompt and idempotent."""

    def result(self, window: Window) -> Measurement:
        """The measurement of the window (window.cpu_time_s is known only after the reaping)."""

    def close(self) -> None:
        """Release everything (idempotent); called after result(), and also after a failed start()."""


def not_measured(kind: Kind, reason: str, details: dict[str, Any] | None = None) -> Measurement:
    """An empty value with its reason (a complete sentence) and whatever raw output the backend had."""
    return Measurement(kind=kind, method="none", energy_j=None, reason=reason, details=details or {})


LOWERCASE_NAMES = ("perf", "nvidia-smi", "nvidia-ml-py", "pynvml", "energy.", "energy_uj", "intel_rapl")
"""Names always written in lower case, even at the start of a sentence."""


def sentence(text: str) -> str:
    """`text` as a complete sentence: capitalised (unless it starts with a lower-case name), ending in a full stop."""
    text = text.strip()
    if not text:
        return text
    if not text.startswith(LOWERCASE_NAMES):
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


class Ticker:
    """Paces a sampler thread: a tick every `interval_s` on fixed deadlines, and stop() at once.

    The first deadline is one interval after construction, so a ticker is made when its window
    starts. One select() on a pipe per tick: cheaper than threading.Event.wait (whose
    lock-with-timeout costs extra system calls at every wake-up), and deadlines keep the achieved
    interval from drifting by the time each sample takes.
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
