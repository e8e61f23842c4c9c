"""A CPU energy estimate from the training's own CPU time: never a measurement, always labelled so.

energy = CPU seconds of the training and the children it waited for (from wait4's rusage, exact
and including processes that ended during the run) x the per-core share of the CPU's TDP.
It ignores idle power, frequency and what other processes do; it is the last resort where no
counter can be read, and it says where its TDP came from:

1. `energy.cpu_tdp_w` from the settings (or `--cpu-tdp-w`): the user knows best;
2. the long-term power limit (PL1) of the powercap package zones, which stay world-readable when
   the energy counters are root-only, and which is the TDP unless someone changed it;
3. the CPU model's datasheet TDP from a small table (cpu_tdp.py), times the number of sockets;
4. otherwise no estimate: a TDP is never guessed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from energy_profiler.energy import cpu_tdp, rapl
from energy_profiler.energy.base import Availability, Kind, Measurement, Window, not_measured

TDP_FIX = "set energy.cpu_tdp_w (or --cpu-tdp-w) to the CPU's TDP in watts, from its datasheet"


@dataclass(frozen=True)
class Tdp:
    """A TDP in watts (all sockets together) and where it came from."""

    watts: float
    source: str

    def describe(self) -> str:
        return f"TDP {self.watts:g} W from {self.source}"


def find_tdp(settings_tdp_w: float | None, powercap_root: Path, cpuinfo: Path = cpu_tdp.CPUINFO) -> Tdp | str:
    """The TDP to estimate with, or why there is none (a complete sentence)."""
    if settings_tdp_w is not None:
        return Tdp(settings_tdp_w, "energy.cpu_tdp_w")
    limits = rapl.package_power_limits_w(powercap_root)
    if limits:
        return Tdp(sum(limits), "the package power limit" if len(limits) == 1
                   else f"the power limits of {len(limits)} packages")
    model, sockets = cpu_tdp.cpu_model_and_sockets(cpuinfo)
    if model is None:
        return "No TDP is known: there is no readable package power limit and no CPU model in /proc/cpuinfo."
    watts = cpu_tdp.lookup(model)
    if watts is None:
        return f"No TDP is known for '{model}': there is no readable package power limit and the model is not " \
               "in the table."
    per_socket = f", x {sockets} sockets" if sockets > 1 else ""
    return Tdp(watts * sockets, f"the datasheet of {model}{per_socket}")


def probe(tdp: Tdp | str) -> Availability:
    if isinstance(tdp, str):
        return Availability(False, tdp, TDP_FIX, brief="no TDP known")
    return Availability(True, f"{tdp.describe()}, over {os.cpu_count()} logical cores")


class EstimateMonitor:
    kind: Kind = "cpu"
    method = "estimate"

    def __init__(self, tdp: Tdp, logical_cores: int | None = None):
        self.tdp = tdp
        self.logical_cores = logical_cores or os.cpu_count() or 1

    def start(self) -> None:
        """Nothing to start: the CPU time comes from the training's exit status."""

    def stop(self) -> None:
        """Nothing to stop."""

    def close(self) -> None:
        """Nothing to release."""

    def result(self, window: Window) -> Measurement:
        if window.cpu_time_s is None:
            return not_measured("cpu", "The training's CPU time is unknown (it did not start).")
        watts_per_core = self.tdp.watts / self.logical_cores
        return Measurement(
            kind="cpu", method="estimate", energy_j=window.cpu_time_s * watts_per_core,
            reason=f"Estimate, not a measurement: CPU time x TDP per core ({self.tdp.describe()}).",
            fields={"cpu_energy_pkg_j": None, "cpu_energy_dram_j": None, "cpu_energy_scope": "process_tree"},
            details={"cpu_time_s": window.cpu_time_s, "cpu_tdp_w": self.tdp.watts, "tdp_source": self.tdp.source,
                     "logical_cores": self.logical_cores, "watts_per_core": watts_per_core},
            window_s=window.duration_s,
        )
