"""Scraping performance metrics from a training log with the registry's patterns."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from energy_profiler.config.registry import MetricSpec

REASON_LINE_CHARS = 200
"""How much of a log line a status reason quotes."""
ESCAPES = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()*+][0-~]|\x1b[@-_]|\x1b")
"""CSI sequences (colours, cursor moves), charset switches like ESC ( B, other two-byte escapes."""
TEXT_ESCAPES = re.compile(ESCAPES.pattern.decode())
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def quoted_line(line: str) -> str:
    """A log line as a status reason quotes it: colours and other escape codes removed, any other
    control character dropped (a reason reaches terminals, CSV cells and session.log), shortened."""
    return _CONTROLS.sub("", TEXT_ESCAPES.sub("", line)).strip()[:REASON_LINE_CHARS]


@dataclass(frozen=True)
class LogFindings:
    """What one pass over a training log found."""

    metrics: dict[str, float | None]
    success_marker_seen: bool
    failure: tuple[str, str] | None = None
    """(pattern, line) of the first line that matched a failure pattern."""


def scan_log(log_path: Path, metrics: Mapping[str, MetricSpec], success_marker: re.Pattern[str] | None = None,
             failure_patterns: Sequence[re.Pattern[str]] = ()) -> LogFindings:
    """Metrics (the last matching line wins; None if never matched), the success marker and the first
    failure line, in one pass over a log of any size, one line at a time.

    A captured text that is not a finite number does not count as a match.
    """
    found: dict[str, float | None] = dict.fromkeys(metrics)
    marker_seen = success_marker is None
    failure: tuple[str, str] | None = None
    with open(log_path, encoding="utf-8", errors="replace") as log:
        for line in log:
            for name, metric in metrics.items():
                match = metric.pattern.search(line)
                if match is None:
                    continue
                try:
                    value = float(match.group(1))
                except (TypeError, ValueError):
                    continue
                if math.isfinite(value):
                    found[name] = value
            if not marker_seen and success_marker is not None and success_marker.search(line):
                marker_seen = True
            if failure is None:
                hit = next((pattern for pattern in failure_patterns if pattern.search(line)), None)
                if hit is not None:
                    failure = (hit.pattern, quoted_line(line))
    return LogFindings(found, marker_seen, failure)


def scrape_metrics(log_path: Path, metrics: Mapping[str, MetricSpec]) -> dict[str, float | None]:
    """The value of every metric in the log (see scan_log)."""
    return scan_log(log_path, metrics).metrics


def log_contains(log_path: Path, text: str, chunk_bytes: int = 1 << 20) -> bool:
    """Whether `text` appears in a log of any size (read in chunks that overlap by len(text))."""
    needle = text.encode()
    tail = b""
    with open(log_path, "rb") as log:
        while chunk := log.read(chunk_bytes):
            if needle in tail + chunk:
                return True
            tail = chunk[-len(needle):]
    return False
