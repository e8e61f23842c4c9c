"""Each repository's main metric: the one the report compares with energy, duration and hyperparameters.

Repositories measure different things (VulBERTa an `eval_loss`, a ResNet a `test_accuracy`): one
metric for all would leave every other repository `missing`. Each repository gets its own, the
first of its metrics (in the registry's order where the registry is known, else the tables') that
has numbers in its rows; `--metric NAME` asks for one by name, for the repositories that have it.
The frame gets `_metric` (the value) and `_metric_name`, so that every table and plot reads one
column whatever the repository.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

MetricOrder = Callable[[str], Sequence[str]]
"""A repository's metric names in the registry's order (empty where the registry does not say)."""
METRIC = "_metric"
METRIC_NAME = "_metric_name"


def _no_order(_repo: str) -> Sequence[str]:
    return ()


def main_metrics(table: pd.DataFrame, requested: str | None = None,
                 order_of: MetricOrder = _no_order) -> dict[str, str]:
    """{repo: its main metric's perf_ column}; KeyError (a sentence) for a requested metric no table has."""
    columns = [str(column) for column in table.columns if str(column).startswith("perf_")]
    if requested:
        column = requested if requested.startswith("perf_") else f"perf_{requested}"
        if column not in columns:
            raise KeyError(f"no metric {requested!r}; the tables have: "
                           + (", ".join(c.removeprefix("perf_") for c in columns) or "no metric at all"))
        return {str(repo): column for repo in table["repo"].unique()}
    chosen: dict[str, str] = {}
    for repo, rows in table.groupby("repo", sort=False, observed=True):
        registry_first = [f"perf_{name}" for name in order_of(str(repo)) if f"perf_{name}" in columns]
        for column in dict.fromkeys([*registry_first, *columns]):
            if pd.to_numeric(rows[column], errors="coerce").notna().any():
                chosen[str(repo)] = column
                break
    return chosen


def with_metric(table: pd.DataFrame, metrics: dict[str, str]) -> pd.DataFrame:
    """`table` with `_metric` (each row's value of its repository's main metric) and `_metric_name`."""
    values = np.full(len(table), np.nan)
    names = np.full(len(table), "", dtype=object)
    repos = table["repo"].astype(str).to_numpy()
    for repo, column in metrics.items():
        rows = repos == repo
        values[rows] = pd.to_numeric(table.loc[rows, column], errors="coerce").to_numpy(dtype=float)
        names[rows] = column.removeprefix("perf_")
    table[METRIC] = values
    table[METRIC_NAME] = pd.Categorical(names)
    return table
