"""Integration of power samples on synthetic traces with a known exact energy (< 0.1% error)."""

from __future__ import annotations

import math
import random

import pytest

from energy_profiler.energy.integrate import RunningStats, Spacing, trapezoid_energy_j


def relative_error(estimate: float, exact: float) -> float:
    return abs(estimate - exact) / exact


def test_constant_power_is_exact_even_with_uneven_spacing() -> None:
    rng = random.Random(1)
    times = [0.0]
    while times[-1] < 100:
        times.append(times[-1] + rng.uniform(0.05, 0.15))
    assert trapezoid_energy_j(times, [200.0] * len(times)) == pytest.approx(200 * times[-1], rel=1e-12)


def test_steps_sampled_at_10_hz() -> None:
    def power(t: float) -> float:  # 100 W, then 250 W, then 50 W, then 180 W
        return 100 if t < 30.02 else 250 if t < 61.57 else 50 if t < 80.33 else 180

    exact = 100 * 30.02 + 250 * (61.57 - 30.02) + 50 * (80.33 - 61.57) + 180 * (120 - 80.33)
    times = [i * 0.1 for i in range(1201)]
    assert relative_error(trapezoid_energy_j(times, [power(t) for t in times]), exact) < 0.001


def test_jittered_sampling_of_a_smooth_load() -> None:
    rng = random.Random(2)

    def power(t: float) -> float:
        return 150 + 80 * math.sin(t / 3) + 20 * math.sin(t * 1.7)

    def energy(t: float) -> float:  # the antiderivative of power
        return 150 * t - 240 * math.cos(t / 3) - 20 / 1.7 * math.cos(t * 1.7)

    times = [0.0]
    while times[-1] < 300:
        times.append(times[-1] + 0.1 + rng.gauss(0, 0.02))
    times[-1] = 300.0
    exact = energy(300) - energy(0)
    assert relative_error(trapezoid_energy_j(times, [power(t) for t in times]), exact) < 0.001


def test_samples_late_by_a_fixed_amount_are_integrated_over_their_real_spacing() -> None:
    # Samples that really come every 1.025 s: summed as if 1 s apart they would be 2.5% low.
    times = [i * 1.025 for i in range(101)]
    watts = [300.0] * len(times)
    exact = 300 * times[-1]
    assert relative_error(trapezoid_energy_j(times, watts), exact) < 1e-12


def test_window_edges_hold_the_nearest_reading() -> None:
    assert trapezoid_energy_j([1.0, 2.0], [100.0, 100.0], start_s=0.5, end_s=2.25) == pytest.approx(175.0)
    assert trapezoid_energy_j([], [], 0, 1) == 0.0
    with pytest.raises(ValueError, match="backwards"):
        trapezoid_energy_j([2.0, 1.0], [1.0, 1.0])


def stats(values: list[float | None]) -> tuple[float | None, float | None, float | None]:
    running = RunningStats()
    for value in values:
        running.add(value)
    return running.mean, running.maximum, running.minimum


def mean_interval_s(times_s: list[float]) -> float | None:
    spacing = Spacing()
    for time_s in times_s:
        spacing.add(time_s)
    return spacing.mean_interval_s


def test_stats_ignore_missing_values() -> None:
    assert stats([None, 2.0, 4.0]) == (3.0, 4.0, 2.0)
    assert stats([None]) == (None, None, None)
    assert mean_interval_s([0.0, 0.1, 0.3]) == pytest.approx(0.15)
