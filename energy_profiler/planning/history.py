"""Earlier measurements, read from summary tables, so that mutation does not draw them again.

A row counts when it was measured: any status but `interrupted` and `skipped_memory`, and not a
trial that failed within START_FAILURE_S of starting (it never got to train: a campaign stopped
for such failures is run again once the command is fixed, and must find its draws free). Its key is
(repo, model, mode, company) and the canonical string of every hyperparameter of that model, so
that `12`, `12.0` and `12.000000` in a CSV cell all mean the same value. Rows of unknown
repositories or models, or missing a hyperparameter the model has now, cannot be compared and
are left out.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from energy_profiler.config.registry import Registry
from energy_profiler.model.record import START_FAILURE_S
from energy_profiler.model.status import NOT_MEASURED, TrialStatus
from energy_profiler.model.values import NOT_PASSED, format_value, json_to_canonical

Space = tuple[str, str, str, str]
"""(repo, model, mode, company): measurements are only compared within one space."""


def company_key(backgrounds: Iterable[tuple[str, str, tuple[tuple[str, str], ...]]]) -> str:
    """The canonical text of a trial's backgrounds: `repo/model:name=value,...;...`."""
    return ";".join(f"{repo}/{model}:" + ",".join(f"{name}={value}" for name, value in values)
                    for repo, model, values in backgrounds)


@dataclass
class HistoryTable:
    """One table of the history: how much of it could be compared, and why not the rest."""

    file: str
    rows_read: int = 0
    rows_compared: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    """Why rows could not be compared, with how many rows each."""
    columns: tuple[str, ...] = ()

    def useless(self) -> str | None:
        """Why a table with rows has none that compares (a sentence), or None when it is of use."""
        if self.rows_read == 0 or self.rows_compared > 0:
            return None
        if all(reason.startswith("not measured") for reason in self.reasons):
            return None  # a table of this tool whose rows measured nothing yet: nothing to skip, nothing wrong
        older = "repository" in self.columns or any(column.startswith("hyperparam_") for column in self.columns)
        if older:
            return (f"none of its {self.rows_read} rows can be compared: it is the older tool's table format "
                    "(repository, hyperparam_*), and this tool reads repo, model, mode and hp_<name> columns")
        missing = [column for column in ("repo", "model", "mode") if column not in self.columns]
        if missing:
            return f"none of its {self.rows_read} rows can be compared: it has no column {', '.join(missing)}"
        reasons = "; ".join(f"{count} {reason}" for reason, count in sorted(self.reasons.items()))
        return f"none of its {self.rows_read} rows can be compared ({reasons})"


@dataclass(frozen=True)
class Sample:
    """What one successful trial took: its configuration key (the model's hyperparameters in registry
    order), its duration and the energy of each device measured (None: not measured)."""

    key: tuple[str, ...]
    duration_s: float
    cpu_energy_j: float | None
    gpu_energy_j: float | None


@dataclass
class History:
    """Measured configurations per space, the table each came from first, and per-table counts."""

    files: list[Path] = field(default_factory=list)
    measured: dict[Space, dict[tuple[str, ...], int]] = field(default_factory=dict)
    """Space -> configuration key -> index in `tables` of the first table that measured it."""
    tables: list[HistoryTable] = field(default_factory=list)
    dedup: bool = True
    """Draws measured here are skipped (`dedup`); False: it is read only to count successes (`runs_total`)."""
    successes: dict[tuple[Space, frozenset[str]], dict[str, tuple[str, ...]]] = field(default_factory=dict)
    """(space, mutated hyperparameters) -> trial id -> configuration key of its successful trials (a trial
    two tables hold counts once)."""
    spans: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    """run_id -> trial id -> (start, end) as POSIX seconds: what lay between a campaign's trials."""
    samples: dict[Space, dict[str, Sample]] = field(default_factory=dict)
    """Space -> trial id -> what a successful trial of it took (for forecasts; a trial two tables hold once)."""

    def keys(self, space: Space, *, always: bool = False) -> dict[tuple[str, ...], int]:
        """The configurations measured in `space` (none when this history is not for dedup, unless `always`)."""
        return self.measured.get(space, {}) if self.dedup or always else {}

    def successful(self, space: Space, mutated: Iterable[str], counts: Callable[[tuple[str, ...]], bool]) -> int:
        """How many successful trials of this space mutated exactly these hyperparameters (none: default
        mode) and have a configuration that `counts` (the experiment's fixed values, its ranges)."""
        return sum(1 for key in self.successes.get((space, frozenset(mutated)), {}).values() if counts(key))

    @property
    def rows_read(self) -> int:
        return sum(table.rows_read for table in self.tables)

    @property
    def rows_compared(self) -> int:
        return sum(table.rows_compared for table in self.tables)


def load_history(files: Iterable[Path], registry: Registry, *, dedup: bool = True) -> History:
    history = History(files=list(files), dedup=dedup)
    for path in history.files:
        table = HistoryTable(str(path))
        if not path.exists():
            continue  # e.g. the global table before the first campaign
        history.tables.append(table)
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            table.columns = tuple(reader.fieldnames or ())
            for row in reader:
                table.rows_read += 1
                if (span := _span(row)) is not None and row.get("run_id"):
                    history.spans.setdefault(row["run_id"], {})[row.get("experiment_id") or str(span)] = span
                parsed = _row_key(row, registry)
                if isinstance(parsed, str):
                    table.reasons[parsed] = table.reasons.get(parsed, 0) + 1
                    continue
                space, key = parsed
                history.measured.setdefault(space, {}).setdefault(key, len(history.tables) - 1)
                table.rows_compared += 1
                if row.get("status") == TrialStatus.SUCCESS:
                    mutated = frozenset(filter(None, (row.get("mutated") or "").split(";")))
                    trial_id = row.get("experiment_id") or f"{path}:{table.rows_read}"
                    history.successes.setdefault((space, mutated), {})[trial_id] = key
                    if (sample := _sample(row, key)) is not None:
                        history.samples.setdefault(space, {})[trial_id] = sample
    return history


def _row_key(row: dict[str, str], registry: Registry) -> tuple[Space, tuple[str, ...]] | str:
    """The row's space and configuration key, or why it cannot be compared."""
    if row.get("status") in NOT_MEASURED:
        return "not measured (interrupted or skipped)"
    if row.get("status") == TrialStatus.FAILED and _seconds(row.get("duration_s")) < START_FAILURE_S:
        return f"not measured (failed within {START_FAILURE_S:g} s of starting: it did not get to train)"
    repo = registry.repositories.get(row.get("repo") or "")
    model = repo.models.get(row.get("model") or "") if repo else None
    if repo is None or model is None:
        return "of a repository or model the registry does not have"
    not_passed = set(filter(None, (row.get("not_passed") or "").split(";")))
    # A knob's empty cell (or a table from before the registry had knobs): left as the machine had it.
    try:
        key = tuple(NOT_PASSED if name in not_passed or (spec.knob and not row.get(f"hp_{name}"))
                    else format_value(row[f"hp_{name}"], spec.type) for name, spec in model.hyperparameters.items())
    except KeyError:
        return "without a column of one of the model's hyperparameters"
    except (TypeError, ValueError):
        return "with an empty or unreadable hyperparameter value"
    return (repo.name, model.name, row.get("mode") or "", _company_from_row(row)), key


def _span(row: dict[str, str]) -> tuple[float, float] | None:
    """The row's training start and end (POSIX seconds), None where either is missing or unreadable."""
    try:
        start, end = datetime.fromisoformat(row["start_utc"]), datetime.fromisoformat(row["end_utc"])
    except (KeyError, TypeError, ValueError):
        return None
    return start.timestamp(), end.timestamp()


def _sample(row: dict[str, str], key: tuple[str, ...]) -> Sample | None:
    duration_s = _number(row.get("duration_s"))
    if duration_s is None:
        return None
    return Sample(key, duration_s, _number(row.get("cpu_energy_j")), _number(row.get("gpu_energy_j")))


def _number(cell: str | None) -> float | None:
    """A cell's finite number, None for an empty or unreadable one (never 0)."""
    try:
        value = float(cell or "nan")
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _seconds(cell: str | None) -> float:
    """A duration cell as seconds; an empty or unreadable one as no time at all (never a quick failure)."""
    try:
        return float(cell or "inf")
    except ValueError:
        return float("inf")


def _company_from_row(row: dict[str, str]) -> str:
    if not row.get("bg_repo"):
        return ""
    backgrounds = []
    for repo, model, values in zip(row["bg_repo"].split(";"), row["bg_model"].split(";"),
                                   row["bg_hyperparameters"].split(";"), strict=False):
        canonical = tuple((name, json_to_canonical(value)) for name, value in json.loads(values).items())
        backgrounds.append((repo, model, canonical))
    return company_key(backgrounds)
