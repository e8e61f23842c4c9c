"""Energy measurement: CPU (rapl, perf, estimate) and GPU (nvml, nvidia_smi) backends.

`EnergyFields` are the energy columns of a record. A value that was not measured is None with a
reason beside it, never 0, and every value says the method that gave it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

NOT_MEASURED_REASON = "energy was not measured"
NO_CARBON_REASON = "no carbon intensity given (settings: carbon)"
JOULES_PER_KWH = 3.6e6


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
    co2e_g: float | None = None
    """The CO2e of the measured energy (every device measured), at co2e_g_per_kwh."""
    co2e_g_per_kwh: float | None = None
    co2e_source: str | None = None
    """`given` (settings' carbon.g_per_kwh), or the table's source, country and year (carbon.region)."""
    co2e_reason: str | None = NO_CARBON_REASON
    """Why co2e_g is empty, or what it leaves out (a device not measured)."""
    cost: float | None = None
    """The measured energy at the settings' carbon.price_per_kwh, in cost_currency."""
    cost_currency: str | None = None

    @property
    def measured_j(self) -> float | None:
        """The energy of the devices that were measured together; None when none was (never 0)."""
        measured = [joules for joules in (self.cpu_energy_j, self.gpu_energy_j) if joules is not None]
        return sum(measured) if measured else None


def with_carbon(fields: EnergyFields, g_per_kwh: float | None, source: str | None, price_per_kwh: float | None,
                currency: str | None) -> EnergyFields:
    """`fields` with their CO2e and cost: the energy of every measured device in kWh times the intensity
    (and the price). Nothing measured: empty, with the reason; one device unmeasured: its energy is not
    in the figure, and the reason says so."""
    measured = {kind: joules for kind, joules in (("cpu", fields.cpu_energy_j), ("gpu", fields.gpu_energy_j))
                if joules is not None}
    missing = [kind for kind, method in (("cpu", fields.cpu_energy_method), ("gpu", fields.gpu_energy_method))
               if kind not in measured and method != "none"]
    if not measured:
        reason = "energy was not measured" if g_per_kwh is not None or price_per_kwh is not None else NO_CARBON_REASON
        return replace(fields, co2e_g=None, co2e_g_per_kwh=g_per_kwh, co2e_source=source, co2e_reason=reason,
                       cost=None, cost_currency=currency)
    kwh = (fields.measured_j or 0.0) / JOULES_PER_KWH
    partial = f"{' and '.join(missing)} energy not measured: not in the figure" if missing else None
    return replace(
        fields, co2e_g=_digits(kwh * g_per_kwh) if g_per_kwh is not None else None, co2e_g_per_kwh=g_per_kwh,
        co2e_source=source, co2e_reason=NO_CARBON_REASON if g_per_kwh is None else partial,
        cost=_digits(kwh * price_per_kwh) if price_per_kwh is not None else None,
        cost_currency=currency if price_per_kwh is not None else None)


def _digits(value: float) -> float:
    """Six significant digits: more than the energy (to 1 mJ) and the intensity (a yearly average) know."""
    return float(f"{value:.6g}")
