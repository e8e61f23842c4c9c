"""Power measured without the trial's own training: the idle machine, or only a trial's backgrounds.

A baseline is kept per device (the CPU, each GPU by index), so that a trial is only ever charged
the baseline of the devices its measurement covers. It is measured with the campaign's own methods
and the very monitors a trial uses (recorder.measure_power), and its raw readings are kept like a
trial's. Energy above a baseline = the trial's energy - the baseline's power x the trial's window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from energy_profiler.energy.base import Measurement


@dataclass(frozen=True)
class PowerBaseline:
    """Mean power per device over a window; each device absent from `gpu_w` has a reason instead."""

    label: str
    """`idle` or `background`: what the window held."""
    duration_s: float
    cpu_w: float | None = None
    cpu_method: str = "none"
    cpu_reason: str | None = None
    gpu_w: dict[str, float] = field(default_factory=dict)
    gpu_method: str = "none"
    gpu_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"duration_s": self.duration_s, "cpu_w": self.cpu_w, "cpu_method": self.cpu_method,
                "cpu_reason": self.cpu_reason, "gpu_w": self.gpu_w, "gpu_method": self.gpu_method,
                "gpu_reason": self.gpu_reason}

    @property
    def gpu_total_w(self) -> float | None:
        return sum(self.gpu_w.values()) if self.gpu_w else None


def watts_per_device(measurement: Measurement, duration_s: float) -> dict[str, float]:
    """Mean watts per device of a measurement over its own window."""
    if measurement.energy_j is None or measurement.fields.get("cpu_energy_scope") == "process_tree":
        return {}
    window_s = measurement.window_s or duration_s
    return {device: joules / window_s for device, joules in measurement.devices.items()} if window_s > 0 else {}


@dataclass(frozen=True)
class Above:
    """Energy above a baseline for one device kind: the baseline's power, the difference, or why neither."""

    watts: float | None = None
    above_j: float | None = None
    reason: str | None = None


def energy_above(measurement: Measurement, baseline: PowerBaseline | None, kind: str, duration_s: float,
                 absent: str) -> Above:
    """`measurement` minus the baseline's power over the devices it covers, for its own window.

    `absent` is the reason when there is no baseline at all.
    """
    if measurement.energy_j is None:
        return Above()  # the energy itself is empty, with its own reason
    if measurement.fields.get("cpu_energy_scope") == "process_tree":
        return Above(reason="The estimate counts the training's own CPU time only: no baseline applies.")
    if baseline is None:
        return Above(reason=absent)
    per_device = {"cpu": baseline.cpu_w} if kind == "cpu" else dict(baseline.gpu_w)
    missing = [device for device in measurement.devices if per_device.get(device) is None]
    if missing or not measurement.devices:
        why = baseline.cpu_reason if kind == "cpu" else baseline.gpu_reason
        which = "the CPU" if kind == "cpu" else "GPU " + ", ".join(missing)
        return Above(reason=f"No {baseline.label} power was measured for {which}" + (f": {why}" if why else "."))
    method = baseline.cpu_method if kind == "cpu" else baseline.gpu_method
    if _backend(method) != _backend(measurement.method):
        return Above(reason=f"The {baseline.label} power was measured with {method}, this trial with "
                            f"{measurement.method}: they do not subtract.")
    watts = sum(per_device[device] or 0.0 for device in measurement.devices)
    # The baseline's power over the window this energy covers (the monitor's own, a hair longer
    # than the training's on a busy machine), so that the two subtract like for like.
    window_s = measurement.window_s or duration_s
    return Above(watts=watts, above_j=measurement.energy_j - watts * window_s)


def _backend(method: str) -> str:
    """What a method reads: NVML's counter and its power integral read the same sensor, and subtract."""
    return "nvml" if method.startswith("nvml") else method
