"""summary.csv: a header fixed when the session starts, then one fsync'd row per finished trial."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from energy_profiler.fs import append_whole, own


class SummaryTable:
    """Appends rows to a CSV file whose columns never change after it is created."""

    def __init__(self, path: Path, columns: Sequence[str]):
        self.path = path
        self.columns = list(columns)
        if not path.exists():
            self._append(self.columns)

    def append(self, row: Mapping[str, str]) -> None:
        """Write one row and make it durable before returning; unknown columns are an error."""
        unknown = set(row) - set(self.columns)
        if unknown:
            raise ValueError(f"row has columns not in the header of {self.path}: {sorted(unknown)}")
        self._append([row.get(column, "") for column in self.columns])

    def _append(self, cells: Sequence[str]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(cells)
        # One write call of the whole line: a crash leaves the row whole or absent, never half.
        append_whole(self.path, buffer.getvalue().encode())
        own(self.path)
