"""Energy from power samples taken at real (uneven) times, and summary statistics."""

from __future__ import annotations

from collections.abc import Sequence


def trapezoid_energy_j(times_s: Sequence[float], power_w: Sequence[float],
                       start_s: float | None = None, end_s: float | None = None) -> float:
    """Integrate power over time with the trapezoid rule on the samples' own timestamps.

    No spacing is assumed (summing samples times a nominal 1 s is what makes other tools ~2.5%
    off). With `start_s`/`end_s`, the window's edges before the first and after the last sample
    are covered by holding the nearest sample's power, so a sampler's start-up delay is not lost.
    """
    if len(times_s) != len(power_w):
        raise ValueError("times and powers differ in length")
    if not times_s:
        return 0.0
    energy_j = 0.0
    for index in range(1, len(times_s)):
        dt = times_s[index] - times_s[index - 1]
        if dt < 0:
            raise ValueError("sample times go backwards")
        energy_j += dt * (power_w[index] + power_w[index - 1]) / 2
    if start_s is not None and start_s < times_s[0]:
        energy_j += (times_s[0] - start_s) * power_w[0]
    if end_s is not None and end_s > times_s[-1]:
        energy_j += (end_s - times_s[-1]) * power_w[-1]
    return energy_j


def stats(values: Sequence[float | None]) -> tuple[float | None, float | None, float | None]:
    """(mean, max, min) of the values present, or Nones when there are none."""
    present = [value for value in values if value is not None]
    if not present:
        return None, None, None
    return sum(present) / len(present), max(present), min(present)


def mean_interval_s(times_s: Sequence[float]) -> float | None:
    """The achieved sampling interval (mean spacing), for the method facts."""
    if len(times_s) < 2:
        return None
    return (times_s[-1] - times_s[0]) / (len(times_s) - 1)
