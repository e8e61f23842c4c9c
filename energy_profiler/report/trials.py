"""The report's answer to "what happened?": its header, the trials that did not succeed and why, and
one row per trial.

The header says when the report was made, by which version, from which settings files and run
folders. The failures section lists every trial that failed, timed out, ran out of memory or was
interrupted, with its `status_reason` and a link to its folder; the per-trial table lists every
trial (at most MAX_ROWS: summary.csv has them all) and sorts by any column in report.html. Links are
relative to the report's folder, so they work when the results folder is copied elsewhere.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

import pandas as pd

from energy_profiler import __version__
from energy_profiler.model.status import TrialStatus
from energy_profiler.report.frame import trial_dir
from energy_profiler.report.metric import METRIC, METRIC_NAME
from energy_profiler.report.pages import Link, Section

MAX_ROWS = 2000
"""Rows of each trial table in the pages: a 100,000-row history would make a page no browser opens."""
MAX_NAMED = 12
"""Run folders and settings files named in the header before `and N more`."""


def header(inputs: Sequence[Path], table: pd.DataFrame) -> list[tuple[str, str]]:
    """When, by which version, from which tables, settings files and run folders."""
    folders = run_folders(table)
    settings = list(dict.fromkeys(settings_file for folder in folders if (settings_file := _settings_of(folder))))
    lines = [("made", datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
             ("by", f"mutation.py {__version__}"),
             ("tables", _named(str(path.absolute()) for path in inputs))]
    if settings:
        lines.append(("settings files", _named(settings)))
    lines.append(("run folders", _named(str(folder) for folder in folders) if folders else
                  "none found beside the tables (converted or copied rows)"))
    return lines


def run_folders(table: pd.DataFrame) -> list[Path]:
    """The run folders the rows came from that are on disk, in the tables' order."""
    pairs = table[["_trial_root", "run_id"]].astype(str).drop_duplicates()
    folders = (Path(root).absolute() / run_id for root, run_id in pairs.itertuples(index=False) if run_id)
    return [folder for folder in folders if (folder / "plan.json").is_file() or (folder / "summary.csv").is_file()]


def _settings_of(run_folder: Path) -> str | None:
    try:
        named = json.loads((run_folder / "plan.json").read_text()).get("settings_file")
    except (OSError, ValueError, AttributeError):
        named = None
    if isinstance(named, str) and named:
        return named
    copy = run_folder / "settings.json"
    return str(copy) if copy.is_file() else None


def _named(names: Iterable[str]) -> str:
    every = list(dict.fromkeys(names))
    shown = ", ".join(every[:MAX_NAMED])
    return shown + (f" and {len(every) - MAX_NAMED} more" if len(every) > MAX_NAMED else "")


def failures_section(table: pd.DataFrame, folder: Path) -> Section | None:
    """Every trial that did not succeed, and why; None when all did."""
    failed = table[table["status"].astype(str) != TrialStatus.SUCCESS]
    if failed.empty:
        return None
    rows = [[_trial_cell(row, folder), row["status"], _reason(row), f"{row['repo']}/{row['model']}",
             _number(row.get("duration_s")), row.get("run_id", "")] for row in _records(failed)]
    counts = ", ".join(f"{count} {status}" for status, count in failed["status"].astype(str).value_counts().items())
    intro = f"{len(failed)} of {len(table)} trials did not succeed ({counts}); each links to its folder " \
            "(training.log, experiment.json)." + _cut(len(failed))
    # Why next to the trial: on a phone the columns after the first three are a sideways scroll away.
    return Section("Trials that did not succeed", ["trial", "status", "why", "model", "duration_s", "run"], rows,
                   intro, sortable=True)


def trials_section(table: pd.DataFrame, folder: Path) -> Section:
    """One row per trial: outcome, duration, energy with its method, the main metric, and the values it drew."""
    hp_columns = [column for column in table.columns if column.startswith("hp_")]
    rows = []
    for row in _records(table, *hp_columns):
        metric = row.get(METRIC)
        metric_cell = f"{_number(metric)} {row.get(METRIC_NAME, '')}".strip() if _number(metric) != "" else ""
        rows.append([_trial_cell(row, folder), row.get("run_id", ""), f"{row['repo']}/{row['model']}", row["mode"],
                     row["status"], _number(row.get("duration_s")), _number(row.get("energy_j")),
                     row.get("energy_method", ""), metric_cell, _drawn_values(row, hp_columns)])
    intro = ("Every trial as its table holds it; a click on a column's header sorts by it (report.html). "
             "energy_j is empty where it was not measured; values are those the trial drew (mutated)."
             + _cut(len(table)))
    return Section("Trials", ["trial", "run", "model", "mode", "status", "duration_s", "energy_j", "energy method",
                              "metric", "values"], rows, intro, sortable=True)


Row = dict[str, object]
COLUMNS = ("trial", "experiment_id", "run_id", "_trial_root", "repo", "model", "mode", "status", "status_reason",
           "duration_s", "energy_j", "energy_method", "mutated", METRIC, METRIC_NAME)


def _records(table: pd.DataFrame, *more: str) -> list[Row]:
    """The first MAX_ROWS rows as plain dicts of the columns the sections read (a pandas row per
    trial costs a hundred times more)."""
    columns = [column for column in (*COLUMNS, *more) if column in table.columns]
    records = table.head(MAX_ROWS)[columns].astype(object).to_dict("records")
    return [{str(key): value for key, value in record.items()} for record in records]


def _cut(count: int) -> str:
    return f" The first {MAX_ROWS:,} of {count:,} are listed; the tables hold every one." if count > MAX_ROWS else ""


def _trial_cell(row: Row, folder: Path) -> object:
    """The trial's name, a link to its folder where that folder is on disk."""
    name = str(row.get("trial", "")) or str(row.get("experiment_id", ""))
    directory = trial_dir(row)
    if directory is None or not directory.is_dir():
        return name
    return Link(name, Path(os.path.relpath(directory, folder)).as_posix() + "/")


def _reason(row: Row) -> str:
    reason = str(row.get("status_reason", "") or "")
    return reason if reason and reason != "nan" else "(no reason recorded)"


def _number(value: object) -> str:
    try:
        number = float(str(value))
    except ValueError:
        return ""
    return "" if math.isnan(number) else f"{number:.4g}"


def _drawn_values(row: Row, hp_columns: Sequence[str]) -> str:
    drawn = [name for name in str(row.get("mutated", "")).split(";") if name]
    return " ".join(f"{name}={row[f'hp_{name}']}" for name in drawn
                    if f"hp_{name}" in hp_columns and str(row[f"hp_{name}"]) != "")
