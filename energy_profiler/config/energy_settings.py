"""The settings file's `energy` block as a value: which methods, how often, what is required."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_BACKGROUND_BASELINE_S = 5.0


@dataclass(frozen=True)
class EnergySettings:
    """The settings file's `energy` block, after command-line overrides."""

    cpu: str = "auto"
    gpu: str = "auto"
    interval_s: float = 1.0
    gpu_interval_s: float = 0.1
    gpus: tuple[str, ...] | None = None
    baseline_s: float = 0.0
    background_baseline_s: float = DEFAULT_BACKGROUND_BASELINE_S
    require: tuple[str, ...] = ()
    cpu_tdp_w: float | None = None


def energy_settings(block: dict[str, Any]) -> EnergySettings:
    """The schema-valid `energy` block as EnergySettings (absent keys take the defaults)."""
    values: dict[str, Any] = {key: block[key] for key in ("cpu", "gpu", "interval_s", "gpu_interval_s", "baseline_s",
                                                          "background_baseline_s", "cpu_tdp_w") if key in block}
    if "gpus" in block:
        values["gpus"] = tuple(str(gpu) for gpu in block["gpus"])
    if "require" in block:
        values["require"] = tuple(block["require"])
    return EnergySettings(**values)
