"""A CPU energy estimate from the training's own CPU time: never a measurement, always labelled so.

energy = CPU seconds of the training and the children it waited for (from wait4's rusage, exact
and including processes that ended during the run) x the per-core share of the CPU's TDP.
It ignores idle power, frequency and what other processes do; use it only where nothing better is.
"""

from __future__ import annotations

import os

from energy_profiler.energy.base import Availability, Kind, Measurement, Window, not_measured


def probe(cpu_tdp_w: float | None) -> Availability:
    if cpu_tdp_w is None:
        return Availability(False, "energy.cpu_tdp_w is not set",
                            "set energy.cpu_tdp_w to the CPU's TDP in watts (from its datasheet)")
    return Availability(True, f"{cpu_tdp_w:g} W TDP over {os.cpu_count()} logical cores")


class EstimateMonitor:
    kind: Kind = "cpu"
    method = "estimate"

    def __init__(self, cpu_tdp_w: float, logical_cores: int | None = None):
        self.cpu_tdp_w = cpu_tdp_w
        self.logical_cores = logical_cores or os.cpu_count() or 1

    def start(self) -> None:
        """Nothing to start: the CPU time comes from the training's exit status."""

    def stop(self) -> None:
        """Nothing to stop."""

    def result(self, window: Window) -> Measurement:
        if window.cpu_time_s is None:
            return not_measured("cpu", "the training's CPU time is unknown (it did not start)")
        watts_per_core = self.cpu_tdp_w / self.logical_cores
        return Measurement(
            kind="cpu", method="estimate", energy_j=window.cpu_time_s * watts_per_core,
            reason="estimate: CPU time x TDP per core, not a measurement",
            fields={"cpu_energy_pkg_j": None, "cpu_energy_dram_j": None, "cpu_energy_scope": "process_tree"},
            details={"cpu_time_s": window.cpu_time_s, "cpu_tdp_w": self.cpu_tdp_w,
                     "logical_cores": self.logical_cores, "watts_per_core": watts_per_core},
        )
