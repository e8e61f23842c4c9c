"""Energy from power samples taken at real (uneven) times, and running statistics.

Everything here is streaming: a monitor feeds one sample at a time and keeps a few numbers, never
the series (a GPU-day at 10 Hz is 864,000 samples per GPU; the series goes to the trace files).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

HISTORY_POINTS = 16
"""Samples kept with their running energy, so that a window end that falls before the last few
samples (a reader that was a little behind) is still cut exactly."""


def _interpolate(t0: float, w0: float, t1: float, w1: float, at: float) -> float:
    return w0 if t1 == t0 else w0 + (w1 - w0) * (at - t0) / (t1 - t0)


class WindowIntegral:
    """The trapezoid integral of a power series over the window [start_s, end_s], fed sample by sample.

    The series is clipped to the window: a segment that straddles an edge is cut there, with the
    power at the edge interpolated between its two samples. Where no sample lies beyond an edge,
    the nearest reading is held to the edge. Samples are integrated on their own timestamps;
    no spacing is ever assumed (summing samples times a nominal 1 s is what makes other tools
    ~2.5% off). A sample whose time goes backwards is dropped and counted.
    """

    def __init__(self, start_s: float):
        self.start_s = start_s
        self.end_s: float | None = None
        self.dropped = 0
        self._before: tuple[float, float] | None = None
        self._energy_j = 0.0
        self._history: deque[tuple[float, float, float]] = deque(maxlen=HISTORY_POINTS)
        """(time, power, energy from start_s to time) of the latest samples inside the window."""
        self._closed = False
        self.first_s: float | None = None
        """The first sample inside the window (for coverage)."""

    def add(self, time_s: float, power_w: float | None) -> None:
        if power_w is None or self._closed:
            return
        last = self._history[-1] if self._history else None
        if (last is not None and time_s < last[0]) or (self._before is not None and time_s < self._before[0]):
            self.dropped += 1
            return
        if time_s <= self.start_s:
            self._before = (time_s, power_w)  # the latest reading before the window: for the edge
            return
        if last is None:
            self.first_s = time_s
            if self._before is not None:
                edge_w = _interpolate(*self._before, time_s, power_w, self.start_s)
                self._energy_j = (time_s - self.start_s) * (edge_w + power_w) / 2
            else:
                self._energy_j = (time_s - self.start_s) * power_w  # hold the first reading back to the edge
        else:
            self._energy_j += (time_s - last[0]) * (last[1] + power_w) / 2
        self._history.append((time_s, power_w, self._energy_j))
        if self.end_s is not None and time_s >= self.end_s:
            self._closed = True  # this sample is past the end: nothing later can matter

    def close(self, end_s: float) -> None:
        """The window ends at `end_s`; samples beyond it only serve to cut the last segment."""
        self.end_s = end_s

    def energy_j(self, end_s: float | None = None) -> float | None:
        """Joules over [start_s, end_s] (default: the end given to close()); None without any reading."""
        end = end_s if end_s is not None else self.end_s
        if end is None:
            raise ValueError("the window has no end yet")
        if not self._history:
            if self._before is None:
                return None
            return max(0.0, end - self.start_s) * self._before[1]
        points = list(self._history)
        if end >= points[-1][0]:
            time_s, power_w, energy_j = points[-1]
            return energy_j + (end - time_s) * power_w
        for (t0, w0, e0), (t1, w1, _) in itertools.pairwise(points):
            if t0 <= end < t1:
                edge_w = _interpolate(t0, w0, t1, w1, end)
                return e0 + (end - t0) * (w0 + edge_w) / 2
        # The end lies before every kept sample (a reader far behind): cut back from the oldest one.
        t0, w0, e0 = points[0]
        return max(0.0, e0 - (t0 - max(end, self.start_s)) * w0)

    def last_time_s(self, end_s: float) -> float | None:
        """The last sample at or before `end_s` (for coverage)."""
        inside = [point[0] for point in self._history if point[0] <= end_s]
        return inside[-1] if inside else None


@dataclass
class RunningStats:
    """Count, mean, max and min of the values seen, without keeping them."""

    count: int = 0
    total: float = 0.0
    maximum: float | None = None
    minimum: float | None = None

    def add(self, value: float | None) -> None:
        if value is None:
            return
        self.count += 1
        self.total += value
        self.maximum = value if self.maximum is None else max(self.maximum, value)
        self.minimum = value if self.minimum is None else min(self.minimum, value)

    def merge(self, other: RunningStats) -> None:
        """Take in what `other` has seen, as if its values had been added here."""
        self.count += other.count
        self.total += other.total
        for bound in (other.maximum, other.minimum):
            if bound is not None:
                self.maximum = bound if self.maximum is None else max(self.maximum, bound)
                self.minimum = bound if self.minimum is None else min(self.minimum, bound)

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


@dataclass
class Spacing:
    """The achieved sampling interval: first and last time and how many readings, kept as they come."""

    count: int = 0
    first_s: float | None = None
    last_s: float | None = None

    def add(self, time_s: float) -> None:
        self.count += 1
        self.first_s = time_s if self.first_s is None else self.first_s
        self.last_s = time_s

    @property
    def mean_interval_s(self) -> float | None:
        if self.count < 2 or self.first_s is None or self.last_s is None:
            return None
        return (self.last_s - self.first_s) / (self.count - 1)


def trapezoid_energy_j(times_s: Sequence[float], power_w: Sequence[float],
                       start_s: float | None = None, end_s: float | None = None) -> float:
    """Integrate a whole series over [start_s, end_s] (default: its first to last sample).

    The same code as the monitors' streaming integral, for a series held in memory.
    """
    if len(times_s) != len(power_w):
        raise ValueError("times and powers differ in length")
    if not times_s:
        return 0.0
    if any(later < earlier for earlier, later in itertools.pairwise(times_s)):
        raise ValueError("sample times go backwards")
    integral = WindowIntegral(times_s[0] if start_s is None else start_s)
    for time_s, watts in zip(times_s, power_w, strict=True):
        integral.add(time_s, watts)
    energy_j = integral.energy_j(times_s[-1] if end_s is None else end_s)
    return 0.0 if energy_j is None else energy_j
