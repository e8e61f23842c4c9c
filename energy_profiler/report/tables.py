"""Summary tables in, statistics out: per repository, model and mode, and per mutated hyperparameter.

Failed trials are counted (trials, success rate) but never averaged or plotted as zeros; a
value that was not measured stays missing (NaN) and is shown as missing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

LOWER_IS_BETTER = ("loss", "error", "perplexity", "time")


@dataclass(frozen=True)
class Source:
    table: Path
    trial_root: Path
    """Folder holding `<run_id>/<trial>/` for this table's rows (for the energy traces)."""


def locate(path: Path) -> Source:
    """A run folder (its summary.csv), a results folder (its summary_all.csv), or a CSV file."""
    if path.is_dir():
        if (path / "summary.csv").is_file():
            return Source(path / "summary.csv", path.parent)
        if (path / "summary_all.csv").is_file():
            return Source(path / "summary_all.csv", path)
        raise FileNotFoundError(f"{path} has neither summary.csv nor summary_all.csv")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    return Source(path, path.parent)


def load(paths: Iterable[Path]) -> pd.DataFrame:
    """All rows of all tables (union of columns), each once, with `_trial_dir` for its traces."""
    frames = []
    for path in paths:
        source = locate(path)
        frame = pd.read_csv(source.table)
        if {"run_id", "trial"} <= set(frame.columns):
            frame["_trial_dir"] = [str(source.trial_root / str(run) / str(trial))
                                   for run, trial in zip(frame["run_id"], frame["trial"], strict=True)]
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if "experiment_id" in table.columns:
        table = table.drop_duplicates("experiment_id", keep="first").reset_index(drop=True)
    for column in ("cpu_energy_j", "gpu_energy_j"):
        if column not in table.columns:
            table[column] = math.nan
    # Measured energy: the devices that were measured, never a 0 for one that was not.
    table["energy_j"] = table[["cpu_energy_j", "gpu_energy_j"]].sum(axis=1, min_count=1)
    return table


def main_metric(table: pd.DataFrame, requested: str | None = None) -> str | None:
    """`perf_<requested>`, else the first perf_ column that has numbers."""
    if requested:
        column = requested if requested.startswith("perf_") else f"perf_{requested}"
        if column not in table.columns:
            raise KeyError(f"no metric {requested!r}; the tables have: "
                           + ", ".join(c.removeprefix("perf_") for c in table.columns if c.startswith("perf_")))
        return column
    for column in table.columns:
        if column.startswith("perf_") and pd.to_numeric(table[column], errors="coerce").notna().any():
            return str(column)
    return None


def higher_is_better(metric: str) -> bool:
    return not any(word in metric.lower() for word in LOWER_IS_BETTER)


def spearman(x: pd.Series, y: pd.Series) -> float | None:
    """Rank correlation (Pearson on average ranks) over the rows where both are present; None if
    fewer than 3 such rows or either side is constant."""
    pairs = pd.DataFrame({"x": pd.to_numeric(x, errors="coerce"), "y": pd.to_numeric(y, errors="coerce")}).dropna()
    if len(pairs) < 3 or pairs["x"].nunique() < 2 or pairs["y"].nunique() < 2:
        return None
    value = pairs["x"].rank().corr(pairs["y"].rank())
    return None if pd.isna(value) else float(value)


def mean_std(values: pd.Series) -> str:
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    if numbers.empty:
        return "missing"
    if len(numbers) == 1:
        return f"{numbers.iloc[0]:.4g}"
    return f"{numbers.mean():.4g} ± {numbers.std():.2g}"


def mutated_names(group: pd.DataFrame) -> list[str]:
    names: dict[str, None] = {}
    for cell in group.get("mutated", pd.Series(dtype=str)).dropna():
        for name in str(cell).split(";"):
            if name:
                names[name] = None
    return list(names)


def summarize(table: pd.DataFrame, metric: str | None) -> tuple[list[list[object]], list[list[object]]]:
    """(group rows, correlation rows) for the report tables."""
    groups, correlations = [], []
    for (repo, model, mode), group in table.groupby(["repo", "model", "mode"], sort=False):
        ok = group[group["status"] == "success"]
        groups.append([repo, model, mode, len(group), f"{len(ok) / len(group):.0%}", mean_std(ok["duration_s"]),
                       mean_std(ok["cpu_energy_j"]), mean_std(ok["gpu_energy_j"]),
                       mean_std(ok[metric]) if metric else "missing"])
        for name in mutated_names(group):
            column = f"hp_{name}"
            if column in ok.columns:
                correlations.append([repo, model, mode, name, _rho(spearman(ok[column], ok["energy_j"])),
                                     _rho(spearman(ok[column], ok[metric])) if metric else "-"])
    return groups, correlations


def _rho(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


GROUP_HEADERS = ["repo", "model", "mode", "trials", "success", "duration_s", "cpu_energy_j", "gpu_energy_j"]
CORRELATION_HEADERS = ["repo", "model", "mode", "hyperparameter", "rho(energy)", "rho(metric)"]
