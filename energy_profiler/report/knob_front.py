"""The report's section on system knobs: per model, the knob settings no other setting beats on both
energy and duration (the energy-time Pareto front, where a power limit or a clock cap pays off)."""

from __future__ import annotations

import pandas as pd

from energy_profiler.model.knob_fields import APPLIED_COLUMNS
from energy_profiler.report.pages import Section
from energy_profiler.report.stats import pareto_front

KNOB_HP_COLUMNS = tuple(f"hp_{name}" for name in APPLIED_COLUMNS)
MACHINE_OWN = "as the machine had them"
"""A trial that set no knob: the machine's own settings, the baseline a front is read against."""


def knob_front_section(table: pd.DataFrame, metric: str | None, metric_name: str) -> Section | None:
    """One row per trial on its model's energy-time front, per energy method; None when no trial set a knob."""
    knobs = [column for column in KNOB_HP_COLUMNS if column in table.columns and (table[column] != "").any()]
    if not knobs:
        return None
    ok = table[table["_ok"] & table["energy_j"].notna() & table["duration_s"].notna()]
    rows: list[list[object]] = []
    for (repo, model, method), group in ok.groupby(["repo", "model", "energy_method"], sort=False, observed=True):
        settings = [", ".join(f"{column.removeprefix('hp_')}={row[column]}" for column in knobs if row[column] != "")
                    or MACHINE_OWN for _, row in group.iterrows()]
        for index in pareto_front(group["energy_j"].to_numpy(), group["duration_s"].to_numpy(), higher_better=False):
            row = group.iloc[index]
            rows.append([repo, model, method, settings[index], f"{row['duration_s']:.4g}", f"{row['energy_j']:.4g}",
                         f"{row[metric]:.4g}" if metric and pd.notna(row[metric]) else "missing"])
    intro = ("Per repository, model and energy method, the successful trials no other beats on both energy and "
             f"duration, by energy; '{MACHINE_OWN}': a trial that set no knob. A setting missing here cost more "
             "energy without finishing sooner than one listed.")
    return Section("System knobs: the energy-duration Pareto front per model",
                   ["repo", "model", "energy method", "knob settings", "duration_s", "energy_j", metric_name], rows,
                   intro)
