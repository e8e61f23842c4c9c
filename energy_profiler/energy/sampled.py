"""The base of every monitor that samples hardware from a thread of this process (RAPL, NVML).

It owns what those monitors share, so that they cannot drift apart: the ticker (its first deadline
set at start(), when the window begins), the sampler thread, the lock that the thread and stop()
read under, the final reading taken at once when the training exits, and an idempotent stop() and
close() that release everything, also after a start() that failed halfway.

A subclass says how to open its hardware (`_open`), take one round of readings (`_read`), release
the hardware (`_release`) and turn what it accumulated into a measurement (`_measurement`).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from typing import Literal

from energy_profiler.energy.base import Kind, Measurement, Ticker, Window, not_measured, sentence
from energy_profiler.energy.samples import SampleSink

State = Literal["new", "failed", "running", "stopped", "closed"]


class SampledMonitor(ABC):
    kind: Kind
    method: str
    thread_name = "sampler"

    def __init__(self, interval_s: float, sink: SampleSink):
        self.interval_s = interval_s
        self.sink = sink
        self.error: str | None = None
        """Why the measurement failed (a complete sentence), once it has."""
        self.started_s: float | None = None
        self.started_unix_s: float | None = None
        self.stopped_s: float | None = None
        self._state: State = "new"
        self._lock = threading.Lock()
        self._ticker: Ticker | None = None
        self._thread: threading.Thread | None = None

    # -- what a subclass provides ------------------------------------------------------------

    @abstractmethod
    def _open(self) -> None:
        """Find and open the hardware; raise to fail the start (then `_release` runs)."""

    @abstractmethod
    def _read(self, time_unix_s: float, monotonic_s: float, *, first: bool, final: bool) -> None:
        """One round of readings, all stamped with the same times; raise to end the measurement."""

    @abstractmethod
    def _release(self) -> None:
        """Give back what `_open` took (called once, whether or not `_open` finished)."""

    @abstractmethod
    def _measurement(self) -> Measurement:
        """The measurement of the window [started_s, stopped_s]."""

    def _describe_failure(self, error: Exception) -> str:
        return f"{self.method} did not start: {error}"

    # -- the life of a monitor ----------------------------------------------------------------

    def start(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"a {self.method} monitor measures one window only")
        try:
            self._open()
        except Exception as error:  # any failure of the hardware layer is a reason, never a crash
            self.error = sentence(self._describe_failure(error))
            self._state = "failed"
            self._release()
            return
        # The window, and so the first deadline, begins now (not when the monitor was built).
        self._ticker = Ticker(self.interval_s)
        self.started_unix_s, self.started_s = time.time(), time.monotonic()
        self._state = "running"
        self._take_reading(first=True)
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._ticker is not None
        while self._ticker.wait():
            with self._lock:
                if self._state != "running" or self.error is not None:
                    return  # the final reading is taken: none may come after the window
                self._take_reading()

    def _take_reading(self, *, first: bool = False, final: bool = False) -> None:
        try:
            self._read(time.time(), time.monotonic(), first=first, final=final)
        except Exception as error:
            self.error = sentence(f"reading {self.method} failed: {error}")

    def stop(self) -> None:
        """The final reading at once, under the sampler's lock; then the thread is joined."""
        with self._lock:
            if self._state != "running":
                return
            if self.error is None:
                self._take_reading(final=True)
            self.stopped_s = time.monotonic()
            self._state = "stopped"
        assert self._ticker is not None
        self._ticker.stop()
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        self.stop()
        if self._state == "closed":
            return
        if self._ticker is not None:
            self._ticker.close()
            self._ticker = None
        if self._state != "failed":  # a failed start has released already
            self._release()
        self._state = "closed"

    @property
    def window_s(self) -> float | None:
        if self.started_s is None or self.stopped_s is None:
            return None
        return self.stopped_s - self.started_s

    def result(self, window: Window) -> Measurement:
        if self.error is not None:
            return not_measured(self.kind, self.error)
        if self.started_s is None or self.stopped_s is None:
            return not_measured(self.kind, sentence(f"{self.method} was not started and stopped"))
        return self._measurement()
