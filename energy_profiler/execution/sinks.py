"""Where a finished trial's record goes: three sinks behind one small interface.

The session hands each record to every sink in order: `experiment.json` first (the source of
truth that `--resume` and `merge` rebuild from), then the run's `summary.csv` row, then the global
`results/summary_all.csv`. A crash between two of them loses nothing that a resume cannot rebuild.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from energy_profiler.fs import atomic_write_json, make_dirs
from energy_profiler.model.record import Record
from energy_profiler.results.global_table import GLOBAL_TABLE, append_row
from energy_profiler.results.summary import SummaryTable


class RecordSink(Protocol):
    def write(self, record: Record) -> str | None:
        """Store one finished trial's record; returns a line for the console, if there is one to say."""


class ExperimentFile:
    """`<run>/<trial>/experiment.json`, written atomically."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir

    def write(self, record: Record) -> str | None:
        make_dirs(self.run_dir / record.trial)  # a skipped trial ran nothing that made it
        atomic_write_json(self.run_dir / record.trial / "experiment.json", record.to_json())
        return None


class RunSummary:
    """The run's `summary.csv`: one fsync'd row per record, in trial order, under the header fixed at the start."""

    def __init__(self, table: SummaryTable):
        self.table = table

    def write(self, record: Record) -> str | None:
        self.table.append(record.to_row(), order=record.trial_index)
        return None


class GlobalTable:
    """`results/summary_all.csv`; a resumed campaign replaces the rows its trials had before."""

    def __init__(self, results_root: Path, *, supersede: bool):
        self.path = results_root / GLOBAL_TABLE
        self.supersede = supersede

    def write(self, record: Record) -> str | None:
        if append_row(self.path, record.to_row(), supersede=self.supersede):
            return f"{GLOBAL_TABLE}: new columns, table rewritten with the union of columns"
        return None


def record_sinks(run_dir: Path, results_root: Path, summary: SummaryTable, *, resumed: bool) -> Sequence[RecordSink]:
    return (ExperimentFile(run_dir), RunSummary(summary), GlobalTable(results_root, supersede=resumed))
