"""`results/summary_all.csv`: every record of every campaign, in one table that never loses a column.

A row whose columns the table already has is appended (and fsync'd). A row that brings new columns
makes the whole table be rewritten, atomically, with the union of the columns: earlier rows keep
every value and get empty cells in the new columns; nothing is dropped or shifted. An advisory
lock (flock) serialises campaigns writing the same table.
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from energy_profiler.fs import append_whole, atomic_write_bytes, own

GLOBAL_TABLE = "summary_all.csv"


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path`'s lock file (other campaigns wait their turn)."""
    lock = path.with_name(f".{path.name}.lock")
    with open(lock, "a") as handle:
        own(lock)
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_header(path: Path) -> list[str] | None:
    if not path.exists():
        return None
    with open(path, newline="", encoding="utf-8") as table:
        return next(csv.reader(table), None)


def experiment_ids(path: Path) -> set[str]:
    """The experiment ids of the table's rows (none if there is no table)."""
    if not path.exists():
        return set()
    with locked(path), open(path, newline="", encoding="utf-8") as table:
        return {row.get("experiment_id") or "" for row in csv.DictReader(table)}


OWN_COLUMNS = ("experiment_id", "run_id", "trial", "status")
"""Columns every table this tool writes has; a table without them is someone else's."""


def foreign_table(path: Path) -> str | None:
    """Why the table at `path` must not be appended to (it is not this tool's), or None."""
    try:
        header = read_header(path)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        return f"{path}: cannot be read as a CSV table ({error})"
    if header is None:
        return None
    missing = [column for column in OWN_COLUMNS if column not in header]
    if not missing:
        return None
    return (f"{path} is not a table this tool wrote (no column {', '.join(missing)}; the older tool's "
            "summary_all.csv looks like this), so no row is added to it: move it aside, or give another "
            "--results-dir")


def table_bytes(columns: Sequence[str], rows: Sequence[Mapping[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def append_row(path: Path, row: Mapping[str, str], *, supersede: bool = False) -> bool:
    """Add `row` to the table at `path`; True if the table had to be rewritten for new columns.

    With `supersede` (a resumed campaign), a row of the same run and trial (the interrupted one) is
    replaced, in one atomic rewrite under the lock, so that the table holds each trial once.
    """
    return append_rows(path, [row], supersede=supersede)


def append_rows(path: Path, rows: Sequence[Mapping[str, str]], *, supersede: bool = False) -> bool:
    """`append_row` for several rows at once: one read and at most one rewrite of the table."""
    if not rows:
        return False
    with locked(path):
        header = read_header(path)
        if header is None:
            atomic_write_bytes(path, table_bytes(list(dict.fromkeys(c for row in rows for c in row)), rows))
            return False
        new = list(dict.fromkeys(column for row in rows for column in row if column not in header))
        if new or supersede:
            with open(path, newline="", encoding="utf-8") as table:
                existing = list(csv.DictReader(table))
            replaced = {(row.get("run_id"), row.get("trial")) for row in rows} if supersede else set()
            kept = [r for r in existing if (r.get("run_id"), r.get("trial")) not in replaced]
            if new or len(kept) < len(existing):
                atomic_write_bytes(path, table_bytes([*header, *new], [*kept, *rows]))
                return bool(new)
        lines = io.StringIO()
        csv.writer(lines, lineterminator="\n").writerows([row.get(column, "") for column in header] for row in rows)
        append_whole(path, lines.getvalue().encode())
        return False
