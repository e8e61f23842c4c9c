"""The older tool's result tables (`data/raw_data.csv`, `results/*/summary.csv`) as history this tool's dedup reads.

An older row names its repository (`repository`, or `fg_repository` for a parallel row), its model,
and every hyperparameter's value (`hyperparam_*`, `fg_hyperparam_*`) — including those its runner
never passed, filled in from the registry's defaults. This tool's key says which values were
passed (`pass: "given"`), so each row's passed set is reconstructed from what the older runner did,
and only from facts that justify it:
- mode: `parallel` from the row; otherwise the experiment id or source (`default__...`,
  `mutation...`); otherwise the count of mutated hyperparameters (0: default); otherwise the
  values, since its generator never drew the defaults' combination (all defaults: default);
- a default-mode run passed only its settings' fixed values: a value that differs from the
  registry default was given, one equal to it is taken as not passed (the same training either way
  when the script's default is the registry's);
- a mutation run passed only what it mutated: `mutated_param` when the row names it, all of them
  when it mutated as many as the model has, else those whose value differs from the default
  (an inference, counted in the notes);
- a parallel row's background hyperparameters are not in the table: taken as none given (what the
  older settings almost always said), counted in the notes.
Rows of repositories or models the registry lacks, or without a value a passed hyperparameter
needs, are not converted, each reason counted.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from energy_profiler.config.registry import Registry
from energy_profiler.model.values import format_value

COLUMNS = ("experiment_id", "repo", "model", "mode", "status", "not_passed")


@dataclass
class ConvertedTable:
    rows: list[dict[str, str]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    inferred: Counter[str] = field(default_factory=Counter)
    """Rows converted through an inference the notes must own up to, by kind."""

    def text(self) -> str:
        hyperparameters = sorted({column for row in self.rows for column in row if column.startswith("hp_")})
        background = ["bg_repo", "bg_model", "bg_hyperparameters"] if any("bg_repo" in row for row in self.rows) else []
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=[*COLUMNS, *hyperparameters, *background], restval="",
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        return buffer.getvalue()


def is_older_table(columns: list[str]) -> bool:
    return "repository" in columns and any(column.startswith("hyperparam_") for column in columns)


def convert_table(path: Path, registry: Registry) -> ConvertedTable:
    """The rows of one older table; ValueError when it is not in the older tool's format."""
    table = ConvertedTable()
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.DictReader(handle)
        if not is_older_table(list(reader.fieldnames or ())):
            raise ValueError("not the older tool's table format (no repository and hyperparam_* columns)")
        for row in reader:
            converted = _row(row, registry, table)
            if isinstance(converted, str):
                table.skipped[converted] += 1
            else:
                table.rows.append(converted)
    return table


def _mode(row: Mapping[str, str]) -> str | None:
    if row.get("mode") == "parallel":
        return "parallel"
    for text in (row.get("experiment_id", ""), row.get("experiment_source", "")):
        if text.startswith("default"):
            return "default"
        if text.startswith("mutation"):
            return "mutation"
    count = row.get("num_mutated_params", "")
    if count.isdigit():
        return "default" if count == "0" else "mutation"
    return None


def _row(row: Mapping[str, str], registry: Registry, table: ConvertedTable) -> dict[str, str] | str:
    mode = _mode(row)
    # Later parallel rows keep the foreground in the plain columns and leave fg_* empty.
    prefix = "fg_" if mode == "parallel" and row.get("fg_repository") else ""
    repo = registry.repositories.get(row.get(f"{prefix}repository") or "")
    model = repo.models.get(row.get(f"{prefix}model") or "") if repo else None
    if repo is None or model is None:
        return "of a repository or model the converted registry lacks"
    success = (row.get(f"{prefix}training_success") or "").strip().lower()
    values: dict[str, str] = {}
    for name, spec in model.hyperparameters.items():
        cell = row.get(f"{prefix}hyperparam_{name}") or ""
        if cell:
            try:
                values[name] = format_value(cell, spec.type)
            except ValueError:
                return f"an unreadable value of {name}"
    defaults = {name: format_value(spec.default, spec.type) for name, spec in model.hyperparameters.items()}
    if mode is None:
        # The older generator never drew the defaults' combination: all defaults means a default run.
        mode = "default" if all(values.get(name) == value for name, value in defaults.items()) else "mutation"
        table.inferred["mode taken from the values (all defaults: default, else mutation), the row names none"] += 1
    passed = _passed(row, mode, values, defaults, table)
    if passed is None:
        return "a passed hyperparameter without its value"
    out = {"experiment_id": row.get("experiment_id", ""), "repo": repo.name, "model": model.name, "mode": mode,
           "status": "success" if success == "true" else "failed",
           "not_passed": ";".join(name for name in model.hyperparameters if name not in passed),
           **{f"hp_{name}": values[name] for name in passed}}
    if mode == "parallel":
        out.update(bg_repo=row.get("bg_repository", ""), bg_model=row.get("bg_model", ""), bg_hyperparameters="{}")
        table.inferred["a parallel row's background taken to have run with no given values"] += 1
    return out


def _passed(row: Mapping[str, str], mode: str, values: Mapping[str, str], defaults: Mapping[str, str],
            table: ConvertedTable) -> list[str] | None:
    """The hyperparameters the older runner passed for this row (None when one of them has no value)."""
    differing = [name for name, value in values.items() if value != defaults[name]]
    if mode == "default" or (mode == "parallel" and row.get("num_mutated_params") in ("0", "")):
        passed = differing
    elif named := [name.strip() for name in (row.get("mutated_param") or "").split(",") if name.strip()]:
        passed = named
    elif row.get("num_mutated_params") == str(len(defaults)):
        passed = list(defaults)
    else:
        passed = differing
        table.inferred["mutated hyperparameters taken to be those that differ from the default"] += 1
    if any(name not in values for name in passed):
        return None
    return passed


def table_notes(relative: str, table: ConvertedTable, rows_read: int) -> list[str]:
    notes = [f"{relative}: {len(table.rows)} of {rows_read} rows converted"]
    notes += [f"{relative}: {count} row(s) not converted: {reason}" for reason, count in table.skipped.most_common()]
    notes += [f"{relative}: {count} row(s): {what}" for what, count in table.inferred.most_common()]
    return notes


def history_name(relative: str) -> str:
    """`data/raw_data.csv` -> `data__raw_data.csv`: one flat folder, no two tables on one name."""
    return relative.replace("/", "__")


def dedup_for(document: dict[str, Any], converted: Mapping[str, Path]) -> tuple[dict[str, Any] | None, list[str]]:
    """The `dedup` block for an older file that used `historical_csvs`, and notes on tables not there."""
    wanted = [str(path) for path in document.get("_historical_csvs", [])]
    found = [str(converted[path]) for path in wanted if path in converted]
    missing = [path for path in wanted if path not in converted]
    notes = [f"history table {path} is not in the older project (or could not be converted): left out of dedup"
             for path in missing]
    return ({"history": found} if found else None), notes
