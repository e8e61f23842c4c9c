"""A trial's `energy/energy.json`: the summary fields, baselines and each method's facts.

The raw readings are not here: monitors stream them to `cpu_samples.csv` and `gpu_samples.csv`
(energy/samples.py) as they are taken.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from energy_profiler.energy.base import Measurement
from energy_profiler.fs import atomic_write_json, make_dirs
from energy_profiler.model.rounding import rounded


def measurement_document(measurement: Measurement, samples: int) -> dict[str, Any]:
    """A measurement as energy.json and experiment.json hold it (its readings are in the CSV files)."""
    return {"method": measurement.method, "energy_j": measurement.energy_j, "reason": measurement.reason,
            **measurement.fields, "window_s": measurement.window_s, "devices_j": measurement.devices,
            "details": measurement.details, "samples": samples}


def write_energy_json(folder: Path, cpu: Measurement, gpu: Measurement, summary: dict[str, Any],
                      baselines: dict[str, Any]) -> None:
    make_dirs(folder)
    atomic_write_json(folder / "energy.json", rounded({  # the digits model/rounding.py keeps
        "summary": summary, "baselines": baselines,
        "cpu": measurement_document(cpu, summary["samples"]["cpu"]),
        "gpu": measurement_document(gpu, summary["samples"]["gpu"]),
    }))
