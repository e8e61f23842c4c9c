"""A trial's status: the one vocabulary of records, rows, the report, `status` and the closing table."""

from __future__ import annotations

from enum import StrEnum


class TrialStatus(StrEnum):
    """How a trial (or one attempt of it) ended. A StrEnum: a row's cell and a JSON value are the word itself."""

    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    METRICS_MISSING = "metrics_missing"
    """The training exited 0 but a required metric was not in its log."""
    INTERRUPTED = "interrupted"
    """Stopped by a signal (Ctrl-C, SIGTERM, SIGHUP, scancel): not final, a resume runs it again."""
    OOM = "oom"
    SKIPPED_MEMORY = "skipped_memory"
    """Not started: the GPU had too little free memory for it."""
    ENERGY_MISSING = "energy_missing"
    """Trained, but a measurement `energy.require` asks for is missing."""
    BACKGROUND_FAILED = "background_failed"
    """Parallel mode: the foreground trained, but a background never ran properly beside it."""


NOT_MEASURED = frozenset({TrialStatus.INTERRUPTED, TrialStatus.SKIPPED_MEMORY})
"""Statuses whose trial measured nothing of its configuration (a dedup history does not count them)."""
NOT_RETRIED = frozenset({TrialStatus.SUCCESS, TrialStatus.INTERRUPTED, TrialStatus.SKIPPED_MEMORY})
"""Statuses after which no further attempt is made (a success; a stop; memory that a retry would not free)."""
