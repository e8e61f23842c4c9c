"""Energy measurement: CPU (rapl, perf, estimate) and GPU (nvml, nvidia_smi) backends.

`EnergyFields` are the energy columns of a record. A value that was not measured is None with a
reason beside it, never 0, and every value says the method that gave it.
"""

from __future__ import annotations

from dataclasses import dataclass

NOT_MEASURED_REASON = "energy was not measured"


@dataclass(frozen=True)
class EnergyFields:
    """The energy part of a record (also the energy columns of summary.csv, in this order)."""

    cpu_energy_j: float | None = None
    cpu_energy_pkg_j: float | None = None
    cpu_energy_dram_j: float | None = None
    cpu_energy_method: str = "none"
    cpu_energy_scope: str | None = None
    cpu_energy_reason: str | None = NOT_MEASURED_REASON
    cpu_idle_w: float | None = None
    cpu_energy_above_idle_j: float | None = None
    cpu_background_w: float | None = None
    cpu_energy_above_background_j: float | None = None
    cpu_baseline_reason: str | None = None
    """Why an idle or background figure of the CPU is empty (a sentence per figure)."""
    gpu_energy_j: float | None = None
    gpu_energy_method: str = "none"
    gpu_energy_reason: str | None = NOT_MEASURED_REASON
    gpu_power_avg_w: float | None = None
    gpu_power_max_w: float | None = None
    gpu_power_min_w: float | None = None
    gpu_util_avg_pct: float | None = None
    gpu_util_max_pct: float | None = None
    gpu_mem_max_mib: float | None = None
    gpu_temp_avg_c: float | None = None
    gpu_temp_max_c: float | None = None
    gpu_energy_crosscheck_pct: float | None = None
    gpu_idle_w: float | None = None
    gpu_energy_above_idle_j: float | None = None
    gpu_background_w: float | None = None
    gpu_energy_above_background_j: float | None = None
    gpu_fg_busy_share_pct: float | None = None
    """The foreground's share of the measured GPUs' busy time: its processes' SM utilisation samples
    over all processes' (nvmlDeviceGetProcessUtilization), not a share of the energy."""
    gpu_baseline_reason: str | None = None
