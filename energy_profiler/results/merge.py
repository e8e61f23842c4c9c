"""Rebuilding a summary table from trial folders: experiment.json is the source of truth."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from energy_profiler.fs import atomic_write_bytes
from energy_profiler.results.global_table import table_bytes
from energy_profiler.model.record import Record, summary_columns


def records_in(run_dirs: Iterable[Path]) -> list[Record]:
    """Every record under the run folders, in folder and trial order."""
    records = []
    for run_dir in run_dirs:
        for document_path in sorted(run_dir.glob("*/experiment.json")):
            records.append(Record.from_json(json.loads(document_path.read_text())))
    return records


def merge(run_dirs: Iterable[Path], output: Path) -> int:
    """Write one table of every record under `run_dirs` to `output`; returns the number of rows."""
    records = records_in(run_dirs)
    hyperparameters = list(dict.fromkeys(name for record in records for name, _ in record.hyperparameters))
    metrics = list(dict.fromkeys(name for record in records for name, _ in record.metrics))
    columns = summary_columns(hyperparameters, metrics, background=any(record.background for record in records),
                              not_passed=any(record.not_passed for record in records),
                              knobs=any(record.knobs for record in records))
    atomic_write_bytes(output, table_bytes(columns, [record.to_row() for record in records]))
    return len(records)
