"""Per-GPU series and the summary columns both GPU backends fill from them, kept as running numbers.

A GpuSeries integrates its power over the window and keeps count/mean/max/min of each quantity;
the readings themselves go to the trace file as they come. With several GPUs, power and memory
columns describe their sum per sampling round (RoundTotals), and utilisation and temperature
describe all GPUs' samples together. The per-GPU figures are in experiment.json and energy.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from energy_profiler.energy.integrate import RunningStats, Spacing, WindowIntegral
from energy_profiler.energy.samples import SampleSink

QUANTITIES = {  # attribute -> (trace quantity, unit)
    "power_w": ("power", "W"),
    "power_instant_w": ("power_instant", "W"),
    "util_pct": ("utilization_gpu", "%"),
    "mem_util_pct": ("utilization_memory", "%"),
    "mem_used_mib": ("memory_used", "MiB"),
    "temp_c": ("temperature", "C"),
    "sm_clock_mhz": ("sm_clock", "MHz"),
}


@dataclass
class GpuSeries:
    """Everything sampled from one GPU during one window, as running numbers."""

    index: str
    integral: WindowIntegral
    """Power over the window, on the clock the backend stamps its samples with."""
    uuid: str | None = None
    name: str | None = None
    spacing: Spacing = field(default_factory=Spacing)
    stats: dict[str, RunningStats] = field(default_factory=lambda: {name: RunningStats() for name in QUANTITIES})
    latest_power_w: float | None = None

    def add(self, sink: SampleSink, time_unix_s: float, monotonic_s: float, integral_time_s: float, *,
            in_window: bool = True, **values: float | None) -> None:
        """One reading of this GPU: into the integral, and (inside the window) the statistics and the trace.

        A reading outside the window still serves the integral, which cuts the edge segment with it.
        """
        power_w = values.get("power_w")
        self.integral.add(integral_time_s, power_w)
        if not in_window:
            return
        self.spacing.add(integral_time_s)
        self.latest_power_w = power_w
        source = f"gpu{self.index}"
        for attribute, value in values.items():
            if value is not None:
                quantity, unit = QUANTITIES[attribute]
                self.stats[attribute].add(value)
                sink.write(time_unix_s, monotonic_s, source, quantity, value=value, unit=unit)

    def summary(self) -> dict[str, Any]:
        power, util, temp = self.stats["power_w"], self.stats["util_pct"], self.stats["temp_c"]
        return {"index": self.index, "uuid": self.uuid, "name": self.name, "samples": self.spacing.count,
                "interval_achieved_s": self.spacing.mean_interval_s,
                "power_avg_w": power.mean, "power_max_w": power.maximum, "power_min_w": power.minimum,
                "util_avg_pct": util.mean, "util_max_pct": util.maximum,
                "mem_max_mib": self.stats["mem_used_mib"].maximum, "temp_avg_c": temp.mean, "temp_max_c": temp.maximum}


@dataclass
class RoundTotals:
    """Power and memory summed over the GPUs of each sampling round (a round missing a GPU counts as None)."""

    power_w: RunningStats = field(default_factory=RunningStats)
    mem_used_mib: RunningStats = field(default_factory=RunningStats)

    def add(self, powers: list[float | None], memories: list[float | None]) -> None:
        self.power_w.add(None if None in powers else sum(p for p in powers if p is not None))
        self.mem_used_mib.add(None if None in memories else sum(m for m in memories if m is not None))


def _pooled(series: list[GpuSeries], attribute: str) -> RunningStats:
    pooled = RunningStats()
    for one in series:
        pooled.merge(one.stats[attribute])
    return pooled


def summary_fields(series: list[GpuSeries], rounds: RoundTotals) -> dict[str, float | str | None]:
    """The gpu_* columns of summary.csv from all GPUs' series."""
    util, temp = _pooled(series, "util_pct"), _pooled(series, "temp_c")
    return {"gpu_power_avg_w": rounds.power_w.mean, "gpu_power_max_w": rounds.power_w.maximum,
            "gpu_power_min_w": rounds.power_w.minimum, "gpu_util_avg_pct": util.mean,
            "gpu_util_max_pct": util.maximum, "gpu_mem_max_mib": rounds.mem_used_mib.maximum,
            "gpu_temp_avg_c": temp.mean, "gpu_temp_max_c": temp.maximum}
