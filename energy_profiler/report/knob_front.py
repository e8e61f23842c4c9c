"""The report's section on system knobs: per model, the knob settings no other setting beats on both
energy and duration (the energy-time Pareto front, where a power limit or a clock cap pays off)."""

from __future__ import annotations

import pandas as pd

from energy_profiler.model.knob_fields import APPLIED_COLUMNS
from energy_profiler.report.pages import Section
from energy_profiler.report.stats import pareto_front

KNOB_HP_COLUMNS = tuple(f"hp_{name}" for name in APPLIED_COLUMNS)
MACHINE_OWN = "machine's own"
"""A trial that set no knob: the machine's own settings, the baseline a front is read against."""


def knob_front_section(table: pd.DataFrame, metric: str | None, metric_name: str) -> Section | None:
    """One row per configuration on its model's energy-time front, per energy method; None when no trial
    set a knob. A configuration run several times stands by its medians (one lucky repeat does not
    make the front)."""
    knobs = [column for column in KNOB_HP_COLUMNS if column in table.columns and (table[column] != "").any()]
    if not knobs:
        return None
    ok = table[table["_ok"] & table["energy_j"].notna() & table["duration_s"].notna()]
    rows: list[list[object]] = []
    for (repo, model, method), group in ok.groupby(["repo", "model", "energy_method"], sort=False, observed=True):
        medians = group.groupby("_config", sort=False, observed=True).agg(
            energy_j=("energy_j", "median"), duration_s=("duration_s", "median"), n=("energy_j", "size"),
            **({"metric": (metric, "median")} if metric else {}))
        firsts = group.groupby("_config", sort=False, observed=True).first()
        for index in pareto_front(medians["energy_j"].to_numpy(), medians["duration_s"].to_numpy(),
                                  higher_better=False):
            config = medians.index[index]
            line, first = medians.loc[config], firsts.loc[config]
            settings = ", ".join(f"{column.removeprefix('hp_')}={first[column]}" for column in knobs
                                 if first[column] != "") or MACHINE_OWN
            value = line["metric"] if metric else None
            rows.append([repo, model, method, settings, int(line["n"]), f"{line['duration_s']:.4g}",
                         f"{line['energy_j']:.4g}", f"{value:.4g}" if value is not None and pd.notna(value)
                         else "missing"])
    intro = ("Per repository, model and energy method, the configurations no other beats on both energy and "
             f"duration (medians over each configuration's n successful trials), by energy; '{MACHINE_OWN}': "
             "trials that set no knob. A setting missing here cost more energy without finishing sooner than one "
             "listed.")
    return Section("System knobs: the energy-duration Pareto front per model",
                   ["repo", "model", "energy method", "knob settings", "n", "duration_s", "energy_j", metric_name],
                   rows, intro)
