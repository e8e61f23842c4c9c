"""The run folder `results/run_YYYYMMDD_HHMMSS/` and its timestamped session.log."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path


def create_run_dir(results_root: Path, now: datetime | None = None) -> Path:
    """Make a new run folder; a name already taken gets a suffix (`_2`, `_3`): never reused."""
    stamp = (now or datetime.now()).strftime("run_%Y%m%d_%H%M%S")
    results_root.mkdir(parents=True, exist_ok=True)
    for suffix in ["", *(f"_{n}" for n in range(2, 1000))]:
        candidate = results_root / f"{stamp}{suffix}"
        try:
            candidate.mkdir()  # atomic: fails if another session made it first
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free run folder name for {stamp} in {results_root}")


class SessionLog:
    """Appends timestamped lines to session.log, flushed and fsync'd as they are written."""

    def __init__(self, path: Path):
        self.path = path
        self._file = open(path, "a", encoding="utf-8")

    def write(self, message: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        for line in message.splitlines() or [""]:
            self._file.write(f"{stamp} {line}\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()
