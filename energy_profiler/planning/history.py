"""Earlier measurements, read from summary tables, so that mutation does not draw them again.

A row counts when it was measured: any status but `interrupted` and `skipped_memory`. Its key is
(repo, model, mode, company) and the canonical string of every hyperparameter of that model, so
that `12`, `12.0` and `12.000000` in a CSV cell all mean the same value. Rows of unknown
repositories or models, or missing a hyperparameter the model has now, cannot be compared and
are left out.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from energy_profiler.config.registry import Registry
from energy_profiler.model.values import NOT_PASSED, format_value

NOT_MEASURED = ("interrupted", "skipped_memory")

Space = tuple[str, str, str, str]
"""(repo, model, mode, company): measurements are only compared within one space."""


def company_key(backgrounds: Iterable[tuple[str, str, tuple[tuple[str, str], ...]]]) -> str:
    """The canonical text of a trial's backgrounds: `repo/model:name=value,...;...`."""
    return ";".join(f"{repo}/{model}:" + ",".join(f"{name}={value}" for name, value in values)
                    for repo, model, values in backgrounds)


@dataclass
class History:
    """Measured configurations per space, and where they came from."""

    files: list[Path] = field(default_factory=list)
    measured: dict[Space, set[tuple[str, ...]]] = field(default_factory=dict)
    rows_read: int = 0
    rows_compared: int = 0

    def keys(self, space: Space) -> set[tuple[str, ...]]:
        return self.measured.get(space, set())


def load_history(files: Iterable[Path], registry: Registry) -> History:
    history = History(files=list(files))
    for path in history.files:
        if not path.exists():
            continue  # e.g. the global table before the first campaign
        with open(path, newline="", encoding="utf-8") as table:
            for row in csv.DictReader(table):
                history.rows_read += 1
                parsed = _row_key(row, registry)
                if parsed is not None:
                    space, key = parsed
                    history.measured.setdefault(space, set()).add(key)
                    history.rows_compared += 1
    return history


def _row_key(row: dict[str, str], registry: Registry) -> tuple[Space, tuple[str, ...]] | None:
    if row.get("status") in NOT_MEASURED:
        return None
    repo = registry.repositories.get(row.get("repo", ""))
    model = repo.models.get(row.get("model", "")) if repo else None
    if repo is None or model is None:
        return None
    not_passed = set(filter(None, row.get("not_passed", "").split(";")))
    try:
        key = tuple(NOT_PASSED if name in not_passed else format_value(row[f"hp_{name}"], spec.type)
                    for name, spec in model.hyperparameters.items())
    except (KeyError, ValueError):
        return None  # a hyperparameter the table lacks, or an empty cell: not comparable
    return (repo.name, model.name, row.get("mode", ""), _company_from_row(row)), key


def _company_from_row(row: dict[str, str]) -> str:
    if not row.get("bg_repo"):
        return ""
    backgrounds = []
    for repo, model, values in zip(row["bg_repo"].split(";"), row["bg_model"].split(";"),
                                   row["bg_hyperparameters"].split(";"), strict=False):
        numbers = json.loads(values)
        canonical = tuple((name, format_value(value, "int" if isinstance(value, int) else "float"))
                          for name, value in numbers.items())
        backgrounds.append((repo, model, canonical))
    return company_key(backgrounds)
