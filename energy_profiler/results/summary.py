"""summary.csv: a header fixed when the session starts, then one fsync'd row per finished trial, in trial order."""

from __future__ import annotations

import bisect
import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from energy_profiler.fs import append_whole, atomic_write_bytes, own

LAST = float("inf")
"""The order of a row that names none: after every row written."""


class SummaryTable:
    """Rows in trial order, under a header that never changes after the file is created.

    A row that comes after those written is appended (one fsync'd write, so a crash leaves it whole
    or absent); one that comes before them (Slurm ends trials out of order, a resume runs an
    earlier trial after later ones) rewrites the file in order, atomically. Either way the file on
    disk holds every row given so far, in order, at every moment.
    """

    def __init__(self, path: Path, columns: Sequence[str],
                 rows: Sequence[tuple[float, Mapping[str, str]]] | None = None):
        """`rows`, (order, row) pairs, replace what the file held (a resume rebuilds it from its
        records); without them the rows of an existing file stay, first, and a missing file gets the header."""
        self.path = path
        self.columns = list(columns)
        self._orders: list[float] = []
        self._lines: list[bytes] = []
        if rows is not None:
            for order, row in sorted(rows, key=lambda pair: pair[0]):
                self._remember(order, self._line(row))
            self._rewrite()
        elif path.exists():
            with open(path, newline="", encoding="utf-8") as table:
                for cells in list(csv.reader(table))[1:]:
                    self._remember(-LAST, _csv_line(cells))
        else:
            self._rewrite()

    def append(self, row: Mapping[str, str], order: float = LAST) -> None:
        """Write one row at its place by `order` and make it durable before returning; unknown
        columns are an error."""
        line = self._line(row)
        if not self._orders or order >= self._orders[-1]:
            self._remember(order, line)
            append_whole(self.path, line)
            own(self.path)
        else:
            self._remember(order, line)
            self._rewrite()

    def _line(self, row: Mapping[str, str]) -> bytes:
        unknown = set(row) - set(self.columns)
        if unknown:
            raise ValueError(f"row has columns not in the header of {self.path}: {sorted(unknown)}")
        return _csv_line([row.get(column, "") for column in self.columns])

    def _remember(self, order: float, line: bytes) -> None:
        place = bisect.bisect_right(self._orders, order)
        self._orders.insert(place, order)
        self._lines.insert(place, line)

    def _rewrite(self) -> None:
        atomic_write_bytes(self.path, _csv_line(self.columns) + b"".join(self._lines))


def _csv_line(cells: Sequence[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue().encode()
