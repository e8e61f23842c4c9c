"""The report's tables: per repository, model, mode and energy method; repeats per configuration;
rank correlations per mutated hyperparameter.

Failed trials are counted (trials, success rate), never averaged; a value that was not measured
stays missing. A random search tries a different configuration in nearly every trial, so the
group table describes what was tried (median and range), and mean ± sd, the run-to-run noise, is
only computed over repeats of one configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pandas as pd

from energy_profiler.model.knob_fields import APPLIED_COLUMNS
from energy_profiler.report.frame import as_numbers, mutated_names, mutated_together
from energy_profiler.report.stats import Correlation, spearman, spread

AxisKind = str
"""`log` (a log_uniform range), `linear`, or `categorical` (a choice, a switch, text)."""
KindOf = Callable[[str, str, str], AxisKind | None]
"""The registry's axis kind of (repo, model, hyperparameter), None where the registry does not say."""
Kinds = Mapping[tuple[str, str, str], AxisKind]
"""The axis kind decided for each (repo, model, mutated hyperparameter)."""

GROUP_KEYS = ["repo", "model", "mode", "energy_method"]
GROUP_HEADERS = ["repo", "model", "mode", "energy", "trials", "success", "configs", "duration_s", "energy_j"]
REPEAT_HEADERS = ["repo", "model", "mode", "energy", "configuration", "n", "duration_s", "energy_j"]
CORRELATION_HEADERS = ["repo", "model", "mode", "hyperparameter", "against", "n", "rho [95% CI]"]
COST_HEADERS = ["repo", "model", "mutated", "trials", "co2e_g", "cost"]
"""What each study (repository, model, the hyperparameters it mutated) emitted and cost: every trial's."""
MAX_REPEATS = 50
LOG_SPAN = 100.0
"""Without the registry's word, positive values spanning more than two decades get a log axis."""


@dataclass
class Tables:
    metric: str | None
    groups: list[list[object]] = field(default_factory=list)
    repeats: list[list[object]] = field(default_factory=list)
    correlations: list[list[object]] = field(default_factory=list)
    costs: list[list[object]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    fixed: bool = False
    """Trials of a model differ in what they held fixed: the group and correlation tables say how."""
    carbon: bool = False
    """Some rows have a co2e_g: the group table adds each group's total (every trial's: a failed one
    emitted too; `-` for a group with none)."""
    metric_names: dict[str, str] = field(default_factory=dict)
    """Each repository's main metric (`metric` is then the `_metric` column that holds its values)."""

    def headers(self, which: str) -> list[str]:
        metric = self.metric_name
        fixed = ["fixed"] if self.fixed else []
        carbon = ["co2e_g"] if self.carbon else []
        return {"groups": [*GROUP_HEADERS[:4], *fixed, *GROUP_HEADERS[4:], *carbon, metric],
                "repeats": [*REPEAT_HEADERS, metric],
                "correlations": [*CORRELATION_HEADERS[:4], *fixed, *CORRELATION_HEADERS[4:]],
                "costs": COST_HEADERS}[which]

    @property
    def metric_name(self) -> str:
        """The metric column's header: its name when every repository has the same, else `metric`."""
        names = set(self.metric_names.values())
        return names.pop() if len(names) == 1 else "metric"

    def metric_cell(self, repo: str, text: str) -> str:
        """A metric cell; prefixed with the repository's metric name where repositories differ in it."""
        if self.metric_name != "metric" or text == "missing" or repo not in self.metric_names:
            return text
        return f"{self.metric_names[repo]}: {text}"


def axis_kind(values: pd.Series, numbers: pd.Series, registry_kind: AxisKind | None) -> AxisKind:
    """How a hyperparameter's values (and the same as numbers) are laid out: the registry's kind, else
    what the values look like."""
    present = values != ""
    if registry_kind == "categorical" or (present & numbers.isna()).any():
        return "categorical"
    if registry_kind is not None:
        return registry_kind
    positive = numbers[present]
    if len(positive) and (positive > 0).all() and positive.max() / positive.min() > LOG_SPAN:
        return "log"
    return "linear"


def axis_kinds(ok: pd.DataFrame, kind_of: KindOf) -> Kinds:
    """The axis kind of every mutated hyperparameter of each repository and model (successful trials)."""
    kinds: dict[tuple[str, str, str], AxisKind] = {}
    hp_columns = [column for column in ok.columns if column.startswith("hp_")]
    narrow = ok[["repo", "model", "mutated", *hp_columns]]
    for (repo, model), group in narrow.groupby(["repo", "model"], sort=False, observed=True):
        for name in mutated_names(group):
            column = f"hp_{name}"
            if column in group.columns:
                numbers = as_numbers(group[column])
                kinds[(str(repo), str(model), name)] = axis_kind(group[column], numbers,
                                                                 kind_of(str(repo), str(model), name))
    return kinds


def add_configurations(table: pd.DataFrame) -> pd.DataFrame:
    """`_config`: one number per distinct set of hyperparameter values within a repository and model."""
    hp_columns = [column for column in table.columns if column.startswith("hp_")]
    keys = ["repo", "model", *hp_columns]
    table["_config"] = table.groupby(keys, dropna=False, sort=False, observed=True).ngroup()
    return table


DRAWN = "*"
"""A hyperparameter's state in `_context` where it was mutated (drawn) in the trial."""


MACHINE_OWN_STATE = "machine's own"
"""A system knob's state in a trial that did not set it."""


def add_contexts(table: pd.DataFrame) -> pd.DataFrame:
    """`_context`: what a trial held fixed that other trials of its repository and model did not.

    Each hyperparameter's state in a trial is its value, or `*` where the trial mutated it. Those
    whose state differs between trials of a repository and model (epochs fixed at 3 in one
    campaign and at 20 in another, or drawn in one experiment and fixed in another) make the
    label, `epochs=20 weight_decay=*`; where none differs it is empty. Statistics never pool trials
    of different labels: a duration or a correlation over them would mix fixed settings with the
    effect they are read for.
    """
    hp_columns = [column for column in table.columns if column.startswith("hp_")]
    labels = np.full(len(table), "", dtype=object)
    for _, positions in table.groupby(["repo", "model"], sort=False, observed=True).indices.items():
        group = table.iloc[positions]
        cells = group["mutated"].astype(str)
        drawn_sets = {cell: set(cell.split(";")) for cell in cells.unique()}
        unpassed = group["not_passed"].astype(str)
        unpassed_sets = {cell: set(cell.split(";")) for cell in unpassed.unique()}
        parts = []
        for column in hp_columns:
            name = column.removeprefix("hp_")
            drawn = cells.map({cell: name in names for cell, names in drawn_sets.items()}).to_numpy(dtype=bool)
            # Not passed: the script's own default, whether or not a value was written beside it (the
            # older tool wrote the registry's default; this tool leaves the cell empty).
            left = unpassed.map({cell: name in names for cell, names in unpassed_sets.items()}).to_numpy(dtype=bool)
            state = np.where(drawn, DRAWN, np.where(left, "", group[column].astype(str).to_numpy()))
            if name in APPLIED_COLUMNS:  # a knob not set: the machine's own setting, not a missing value
                state = np.where(state == "", MACHINE_OWN_STATE, state)
            if len(set(state.tolist())) > 1:
                parts.append(np.char.add(f"{name}=", state.astype(str)))
        if parts:
            label = parts[0]
            for part in parts[1:]:
                label = np.char.add(np.char.add(label, " "), part)
            labels[positions] = label
    table["_context"] = pd.Categorical(labels)
    return table


def context_without(label: str, name: str) -> str:
    """The label with `name=*` left out: in a row about `name`, that it was drawn goes without saying."""
    return " ".join(part for part in label.split(" ") if part and part != f"{name}={DRAWN}")


def summarize(table: pd.DataFrame, metric: str | None, kinds: Kinds,
              metric_names: dict[str, str] | None = None) -> Tables:
    tables = Tables(metric, metric_names=dict(metric_names or {}))
    tables.fixed = bool((table["_context"].astype(str) != "").any())
    tables.carbon = bool(table["co2e_g"].notna().any())
    keys = [*GROUP_KEYS, "_context"]
    narrow = table[[*keys, "_ok", "_config", "duration_s", "energy_j", "co2e_g", *([metric] if metric else [])]]
    for key, group in narrow.groupby(keys, sort=False, observed=True):
        good = group[group["_ok"]]
        *named, context = key
        tables.groups.append([*named, *([context or "-"] if tables.fixed else []), len(group),
                              f"{len(good) / len(group):.0%}", group["_config"].nunique(),
                              spread(good["duration_s"]), spread(good["energy_j"]),
                              *([_total(group["co2e_g"])] if tables.carbon else []),
                              tables.metric_cell(str(named[0]), spread(good[metric])) if metric else "missing"])
    if tables.carbon:
        tables.notes.append("co2e_g is each group's total over every trial (a failed one emitted too), at the "
                            "intensity each row names (co2e_source)")
    if tables.fixed:
        tables.notes.append("'fixed' names what differs between the trials of a model: values held fixed "
                            "(name=value) or drawn (name=*); trials that differ there are never pooled")
    ok = table[table["_ok"]]
    tables.repeats, more = _repeats(ok, metric, tables)
    if more:
        tables.notes.append(f"{more} more repeated configurations are not listed (the {MAX_REPEATS} most repeated are)")
    _correlations(tables, ok, metric, kinds)
    if tables.carbon or table["cost"].notna().any():
        tables.costs = _costs(table)
    return tables


def _costs(table: pd.DataFrame) -> list[list[object]]:
    """Per repository, model and mutated set (`-`: default runs): trials, total co2e_g and cost (with its
    currency where the rows name one), over every trial."""
    rows: list[list[object]] = []
    currency = table["cost_currency"] if "cost_currency" in table.columns else pd.Series("", index=table.index)
    for (repo, model, mutated), group in table.groupby(["repo", "model", "mutated"], sort=False, observed=True):
        money = group["cost"].dropna()
        names = sorted({str(name) for name in currency[group.index] if str(name) not in ("", "nan")})
        cost = f"{money.sum():.4g} {'/'.join(names)}".rstrip() if not money.empty else "-"
        with_co2e = int(group["co2e_g"].notna().sum())
        trials = len(group) if with_co2e == len(group) else f"{with_co2e} of {len(group)}"  # never a silent gap
        rows.append([repo, model, str(mutated).replace(";", ", ") or "-", trials, _total(group["co2e_g"]), cost])
    return rows


def _total(values: pd.Series) -> str:
    """The sum of the values there are (4 significant digits), `-` when there are none."""
    present = values.dropna()
    return f"{present.sum():.4g}" if not present.empty else "-"


def _correlations(tables: Tables, ok: pd.DataFrame, metric: str | None, kinds: Kinds) -> None:
    """Spearman's rho of each numeric mutated hyperparameter against duration, the metric and the energy
    of each method, per repository, model and mode, over the trials that drew it and held everything
    else alike (one row per `_context`). Positions and numpy arrays in the loop: a pandas lookup per
    pair costs more than the correlation of 25,000 trials."""
    numeric = {f"hp_{name}" for (_, _, name), kind in kinds.items() if kind != "categorical"}
    numbers = {column: as_numbers(ok[column]).to_numpy() for column in numeric}
    duration = ok["duration_s"].to_numpy(dtype=float, na_value=np.nan)
    metric_values = ok[metric].to_numpy(dtype=float, na_value=np.nan) if metric else None
    energy = ok["energy_j"].to_numpy(dtype=float, na_value=np.nan)
    methods = ok["energy_method"].astype(str).to_numpy()
    contexts = ok["_context"].astype(str).to_numpy()
    cells = ok["mutated"].astype(str).to_numpy()
    by_mode = ok[["repo", "model", "mode", "mutated"]]
    indices = by_mode.groupby(["repo", "model", "mode"], sort=False, observed=True).indices
    for key, positions in indices.items():
        repo, model, mode = cast(tuple[str, str, str], key)
        group = by_mode.iloc[positions]
        together = mutated_together(group)
        if len(together) > 1:
            tables.notes.append(f"{repo}/{model} ({mode}): {', '.join(together)} were mutated together, so each "
                                "correlation mixes their effects")
        for name in mutated_names(group):
            column, kind = f"hp_{name}", kinds.get((str(repo), str(model), name))
            if kind is None:  # not a column of these tables
                continue
            if kind == "categorical":
                tables.notes.append(f"{repo}/{model} ({mode}): {name} is categorical: no rank correlation, see "
                                    "its plots")
                continue
            # Only the trials that drew it: where it was fixed, its value says nothing of its effect.
            drawn = np.array([name in cell.split(";") for cell in cells[positions]], dtype=bool)
            drew: np.ndarray = np.asarray(positions)[drawn]
            strata = list(dict.fromkeys(contexts[drew]))
            if len(strata) > 1:
                shown = "; ".join(context_without(label, name) or "-" for label in strata)
                tables.notes.append(f"{repo}/{model} ({mode}): the trials that drew {name} held other settings "
                                    f"differently ({shown}): each set has its own correlations, never pooled")
            for label in strata:
                rows = drew[contexts[drew] == label]
                fixed = [context_without(label, name) or "-"] if tables.fixed else []
                targets = _targets(tables.metric_names.get(str(repo), "metric"), rows, duration=duration,
                                   metric_values=metric_values, energy=energy, methods=methods)
                for against, values, taken in targets:
                    x, target = numbers[column][taken], values[taken]
                    tables.correlations.append([repo, model, mode, name, *fixed, against,
                                                int((~np.isnan(x) & ~np.isnan(target)).sum()),
                                                _rho(spearman(x, target))])


def _targets(metric_name: str, rows: np.ndarray, *, duration: np.ndarray, metric_values: np.ndarray | None,
             energy: np.ndarray, methods: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(what, its values, the rows they are taken from): duration, the metric, the energy of each method."""
    targets = [("duration_s", duration, rows)]
    if metric_values is not None:
        targets.append((metric_name, metric_values, rows))
    measured = rows[~np.isnan(energy[rows])]
    for method in dict.fromkeys(methods[measured]):
        targets.append((f"energy ({method})", energy, measured[methods[measured] == method]))
    return targets


def _repeats(ok: pd.DataFrame, metric: str | None, tables: Tables) -> tuple[list[list[object]], int]:
    """Configurations measured more than once (same method): mean ± sd of each over its repeats, the most
    repeated first; and how many more there were than MAX_REPEATS."""
    keys = [*GROUP_KEYS, "_config"]
    counts = ok.groupby(keys, sort=False, observed=True)["status"].transform("size")
    repeated = ok[counts > 1]
    if repeated.empty:
        return [], 0
    columns = ["duration_s", "energy_j", *([metric] if metric else [])]
    grouped = repeated.groupby(keys, sort=False, observed=True)
    stats = grouped[columns].agg(["mean", "std", "count"])
    stats[("_n", "")] = grouped.size()
    stats = stats.sort_values(("_n", ""), ascending=False, kind="stable")
    shown = stats.head(MAX_REPEATS)
    firsts = grouped.head(1).set_index(keys).loc[shown.index]
    varying = _varying_columns(ok)
    # Plain lists: a pandas lookup per cell costs more than the whole aggregation.
    first_values = {column: firsts[column].astype(str).tolist()
                    for column in firsts.columns if column.startswith("hp_")}
    cells = {(column, stat): shown[(column, stat)].tolist() for column in columns for stat in ("mean", "std", "count")}
    repeat_counts = shown[("_n", "")].tolist()
    rows = []
    for position, (repo, model, mode, method, _) in enumerate(shown.index):
        label = " ".join(f"{c.removeprefix('hp_')}={first_values[c][position]}"
                         for c in varying.get((repo, model), [])) or "(one)"
        stats_cells = [_mean_sd(cells[(c, "count")][position], cells[(c, "mean")][position],
                                cells[(c, "std")][position]) for c in columns]
        if metric:
            stats_cells[-1] = tables.metric_cell(str(repo), stats_cells[-1])
        rows.append([repo, model, mode, method, label, int(repeat_counts[position]), *stats_cells,
                     *([] if metric else ["missing"])])
    return rows, max(0, len(stats) - MAX_REPEATS)


def _mean_sd(count: float, mean: float, sd: float) -> str:
    if not count:
        return "missing"
    return f"{mean:.4g}" if count == 1 else f"{mean:.4g} ± {sd:.2g}"


def _varying_columns(ok: pd.DataFrame) -> Mapping[tuple[str, str], list[str]]:
    """Per repository and model, the hyperparameter columns whose value changes between trials."""
    hp_columns = [column for column in ok.columns if column.startswith("hp_")]
    varying = {}
    narrow = ok[["repo", "model", *hp_columns]]
    for (repo, model), group in narrow.groupby(["repo", "model"], sort=False, observed=True):
        varying[(str(repo), str(model))] = [c for c in hp_columns if group[c].nunique(dropna=False) > 1]
    return varying


def _rho(correlation: Correlation | None) -> str:
    return "-" if correlation is None else correlation.text()
