"""Raw readings streamed to a trial's `energy/{cpu,gpu}_samples.csv` as they are taken.

Long format, one row per reading: `time_unix_s, monotonic_s, source, quantity, value, unit`
(e.g. `package-0, energy_uj, 123456, uJ` or `gpu0, power, 251.3, W`). A monitor never keeps its
series in memory: rows go through a buffered file, so a day-long trial costs disk, not RAM.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TextIO

from energy_profiler.fs import make_dirs, own

SAMPLE_COLUMNS = ("time_unix_s", "monotonic_s", "source", "quantity", "value", "unit")
HEADER = ",".join(SAMPLE_COLUMNS) + "\n"


class SampleSink:
    """Appends readings to one CSV file (or counts them only, with no path). Thread-safe, idempotent close."""

    def __init__(self, path: Path | None):
        self.path = path
        self.rows = 0
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        if path is not None:
            make_dirs(path.parent)
            self._file = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in close()
            own(path)
            self._file.write(HEADER)

    def write(self, time_unix_s: float, monotonic_s: float, source: str, quantity: str, *,
              value: float | None, unit: str) -> None:
        """One reading; `quantity` and `unit` are this tool's names, `source` may come from a tool's output."""
        cell = "" if value is None else repr(value)
        source = _csv_field(source)
        with self._lock:
            self.rows += 1
            if self._file is not None:
                self._file.write(f"{time_unix_s:.6f},{monotonic_s:.6f},{source},{quantity},{cell},{unit}\n")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _csv_field(text: str) -> str:
    """`text` as one CSV field: quoted when it holds a comma, a quote or a line break."""
    if any(character in text for character in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def null_sink() -> SampleSink:
    """A sink that counts readings and writes nothing (baselines without a folder, benchmarks)."""
    return SampleSink(None)
