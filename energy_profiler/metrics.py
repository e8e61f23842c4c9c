"""Scraping performance metrics from a training log with the registry's patterns."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from energy_profiler.config.registry import MetricSpec


def scrape_metrics(log_path: Path, metrics: Mapping[str, MetricSpec]) -> dict[str, float | None]:
    """The value of every metric in the log: the last matching line wins; None if never matched.

    Patterns are matched against one line at a time, so a log of any size is read in one pass.
    A captured text that is not a finite number does not count as a match.
    """
    found: dict[str, float | None] = dict.fromkeys(metrics)
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
    return found


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
