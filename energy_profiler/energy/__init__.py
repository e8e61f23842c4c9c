"""Energy measurement. This version measures nothing yet: every record says so, never 0 J."""

from __future__ import annotations

from dataclasses import dataclass

NOT_MEASURED_REASON = "energy measurement is not implemented in this version of mutation.py"


@dataclass(frozen=True)
class EnergyFields:
    """The energy part of a record: a value, the method that gave it, and why it is empty if it is."""

    cpu_energy_j: float | None = None
    cpu_energy_method: str = "none"
    cpu_energy_reason: str | None = NOT_MEASURED_REASON
    gpu_energy_j: float | None = None
    gpu_energy_method: str = "none"
    gpu_energy_reason: str | None = NOT_MEASURED_REASON
