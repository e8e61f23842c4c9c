"""What a trial's system knobs were set to on the machine: the values read back, per device.

The requested values are the hyperparameters (hp_gpu_power_limit_w, ...); these are what the
driver or kernel reports after setting them, which can differ where it rounds or caps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

APPLIED_COLUMNS = {
    "gpu_power_limit_w": "gpu_power_limit_applied_w",
    "gpu_sm_clock_mhz": "gpu_sm_clock_applied_mhz",
    "cpu_max_freq_khz": "cpu_max_freq_applied_khz",
    "cpu_governor": "cpu_governor_applied",
}
"""Each knob's column of the value read back after setting it."""
KNOB_COLUMNS = (*APPLIED_COLUMNS.values(), "knobs_applied_to")


@dataclass(frozen=True)
class KnobsApplied:
    """The knobs a trial set, read back on each device, and which devices (and workloads) they covered."""

    applied: dict[str, dict[str, Any]] = field(default_factory=dict)
    """knob -> device (GPU id, cpuN) -> value read back after setting it."""
    applies_to: str = ""
    """The devices, and in parallel mode that the backgrounds share them: `GPU 0 (shared with ...)`."""
    settle_s: float = 0.0
    before: dict[str, Any] = field(default_factory=dict)
    """What the machine had before the trial set them (written back after it): the baseline of the study."""

    def cells(self) -> dict[str, object]:
        """The row's cells: one value where every device reads the same, else each joined by `;`."""
        cells: dict[str, object] = {}
        for knob, column in APPLIED_COLUMNS.items():
            readings = list(self.applied.get(knob, {}).values())
            if readings:
                distinct = list(dict.fromkeys(readings))  # read back as ints where whole (gpu_knobs.plain)
                cells[column] = distinct[0] if len(distinct) == 1 else ";".join(str(value) for value in distinct)
        cells["knobs_applied_to"] = self.applies_to
        return cells

    def to_json(self) -> dict[str, Any]:
        return {"applied": self.applied, "applies_to": self.applies_to, "settle_s": self.settle_s,
                "before": self.before}

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> KnobsApplied:
        return cls(applied=document.get("applied", {}), applies_to=document.get("applies_to", ""),
                   settle_s=float(document.get("settle_s", 0.0)), before=document.get("before", {}))
