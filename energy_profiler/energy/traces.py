"""A trial's `energy/` folder: raw samples in long format and energy.json with the method facts."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from energy_profiler.energy.base import Measurement, Sample
from energy_profiler.results.files import atomic_write_bytes, atomic_write_json, make_dirs

SAMPLE_COLUMNS = ("time_unix_s", "monotonic_s", "source", "quantity", "value", "unit")


def write_samples(path: Path, samples: Sequence[Sample]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SAMPLE_COLUMNS)
    for sample in samples:
        writer.writerow([f"{sample.time_unix_s:.6f}", f"{sample.monotonic_s:.6f}", sample.source, sample.quantity,
                         "" if sample.value is None else repr(sample.value), sample.unit])
    atomic_write_bytes(path, buffer.getvalue().encode())


def measurement_document(measurement: Measurement) -> dict[str, Any]:
    """A measurement without its samples (those go to the CSV files)."""
    return {"method": measurement.method, "energy_j": measurement.energy_j, "reason": measurement.reason,
            **measurement.fields, "details": measurement.details, "samples": len(measurement.samples)}


def write_energy_folder(folder: Path, cpu: Measurement, gpu: Measurement, summary: dict[str, Any]) -> None:
    make_dirs(folder)
    write_samples(folder / "cpu_samples.csv", cpu.samples)
    write_samples(folder / "gpu_samples.csv", gpu.samples)
    atomic_write_json(folder / "energy.json", {"summary": summary, "cpu": measurement_document(cpu),
                                               "gpu": measurement_document(gpu)})
