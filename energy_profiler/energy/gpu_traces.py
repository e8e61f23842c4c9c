"""Per-GPU sample series and the summary columns both GPU backends fill from them.

With several GPUs, power and memory columns describe their sum (sampling rounds are aligned by
order: every backend reads all GPUs once per round), and utilisation and temperature describe all
GPUs' samples together. The per-GPU figures are in experiment.json and energy.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from energy_profiler.energy.base import Sample
from energy_profiler.energy.integrate import mean_interval_s, stats, trapezoid_energy_j

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
class GpuTrace:
    """Everything sampled from one GPU during one window."""

    index: str
    uuid: str | None = None
    name: str | None = None
    times_unix_s: list[float] = field(default_factory=list)
    times_monotonic_s: list[float] = field(default_factory=list)
    power_w: list[float | None] = field(default_factory=list)
    power_instant_w: list[float | None] = field(default_factory=list)
    util_pct: list[float | None] = field(default_factory=list)
    mem_util_pct: list[float | None] = field(default_factory=list)
    mem_used_mib: list[float | None] = field(default_factory=list)
    temp_c: list[float | None] = field(default_factory=list)
    sm_clock_mhz: list[float | None] = field(default_factory=list)

    def add(self, time_unix_s: float, monotonic_s: float, **values: float | None) -> None:
        self.times_unix_s.append(time_unix_s)
        self.times_monotonic_s.append(monotonic_s)
        for attribute in QUANTITIES:
            getattr(self, attribute).append(values.get(attribute))

    def power_points(self, clock: str = "monotonic") -> tuple[list[float], list[float]]:
        """(times, watts) of the samples that have a power reading."""
        times = self.times_monotonic_s if clock == "monotonic" else self.times_unix_s
        pairs = [(t, p) for t, p in zip(times, self.power_w, strict=True) if p is not None]
        return [t for t, _ in pairs], [p for _, p in pairs]

    def integrated_j(self, start_s: float, end_s: float, clock: str = "monotonic") -> float | None:
        times, watts = self.power_points(clock)
        return trapezoid_energy_j(times, watts, start_s, end_s) if times else None

    def samples(self) -> list[Sample]:
        rows = []
        for position, (unix_s, mono_s) in enumerate(zip(self.times_unix_s, self.times_monotonic_s, strict=True)):
            for attribute, (quantity, unit) in QUANTITIES.items():
                value = getattr(self, attribute)[position]
                if value is not None:
                    rows.append(Sample(unix_s, mono_s, f"gpu{self.index}", quantity, value, unit))
        return rows

    def summary(self) -> dict[str, Any]:
        power_avg, power_max, power_min = stats(self.power_w)
        util_avg, util_max, _ = stats(self.util_pct)
        temp_avg, temp_max, _ = stats(self.temp_c)
        return {"index": self.index, "uuid": self.uuid, "name": self.name, "samples": len(self.times_unix_s),
                "interval_achieved_s": mean_interval_s(self.times_monotonic_s),
                "power_avg_w": power_avg, "power_max_w": power_max, "power_min_w": power_min,
                "util_avg_pct": util_avg, "util_max_pct": util_max,
                "mem_max_mib": stats(self.mem_used_mib)[1], "temp_avg_c": temp_avg, "temp_max_c": temp_max}


def summary_fields(traces: list[GpuTrace]) -> dict[str, float | str | None]:
    """The gpu_* columns of summary.csv from all GPUs' traces."""
    rounds = min((len(trace.times_unix_s) for trace in traces), default=0)

    def summed(attribute: str) -> list[float | None]:
        totals: list[float | None] = []
        for position in range(rounds):
            values = [getattr(trace, attribute)[position] for trace in traces]
            totals.append(None if any(value is None for value in values) else sum(values))
        return totals

    power_avg, power_max, power_min = stats(summed("power_w"))
    def every(attribute: str) -> list[float | None]:
        return [value for trace in traces for value in getattr(trace, attribute)]

    util_avg, util_max, _ = stats(every("util_pct"))
    temp_avg, temp_max, _ = stats(every("temp_c"))
    return {"gpu_power_avg_w": power_avg, "gpu_power_max_w": power_max, "gpu_power_min_w": power_min,
            "gpu_util_avg_pct": util_avg, "gpu_util_max_pct": util_max,
            "gpu_mem_max_mib": stats(summed("mem_used_mib"))[1], "gpu_temp_avg_c": temp_avg,
            "gpu_temp_max_c": temp_max}
