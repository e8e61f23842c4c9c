"""PNG plots of campaign results (matplotlib's Agg backend: no display needed).

Only successful trials with the values a plot needs are drawn: a failed run or an unmeasured
energy is left out, never drawn as 0. Trials measured by different energy methods are separate
series (own marker, own legend entry) and never share a Pareto front. Axes follow the registry:
log for a log_uniform range, categories for a choice or a switch. Every figure is 640 x 480 pixels.
"""

from __future__ import annotations

import multiprocessing
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, whatever the environment's display

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator

from energy_profiler.report.frame import mutated_names, mutated_together
from energy_profiler.report.metric import METRIC_NAME
from energy_profiler.report.stats import higher_is_better, pareto_front, staircase
from energy_profiler.report.tables import Kinds, context_without

SIZE_IN = (6.4, 4.8)
DPI = 100
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
FADED = 0.25
MAX_POINTS = 5000
FEW_POINTS = 1000


def safe_name(text: object) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(text))


def save(figure: Figure, path: Path) -> Path:
    # zlib's fastest level: 5,000 markers make a PNG that takes 30 ms to compress at the default
    # level 6 and half that at 1, for a file about 7 % larger.
    figure.savefig(path, dpi=DPI, pil_kwargs={"compress_level": 1})
    plt.close(figure)
    return path


def new_figure() -> tuple[Figure, Axes]:
    # Fixed margins: a layout engine measures every artist, 25,000 markers included, on each save.
    figure, axes = plt.subplots(figsize=SIZE_IN)
    figure.subplots_adjust(left=0.15, right=0.96, bottom=0.12, top=0.88)
    return figure, axes


def legend(axes: Axes, points: int, **options: Any) -> None:
    """`best` placement tests every point against the legend box: only worth it for a few points."""
    axes.legend(loc="best" if points <= FEW_POINTS else "upper right", fontsize="small", **options)


def _size(points: int) -> float:
    """Marker area: large enough to see a few trials, small enough not to blot thousands."""
    return 36.0 if points <= FEW_POINTS else 10.0


def drawn(data: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """At most MAX_POINTS rows, drawn at random (fixed seed), and the note that says so.

    A 640 x 480 scatter of 25,000 markers is a blot that takes a second to draw; a random
    5,000 shows the same spread. The statistics and Pareto fronts use every trial.
    """
    if len(data) <= MAX_POINTS:
        return data, ""
    return data.sample(MAX_POINTS, random_state=0).sort_index(), f"\n({MAX_POINTS:,} of {len(data):,} drawn at random)"


def plotted(table: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """The successful trials, with only the columns a plot reads: each plot copies its rows, and a
    copy of 60 columns of 100,000 rows costs more than drawing the plot."""
    columns = ["repo", "model", "mode", "mutated", "_config", "_context", "duration_s", "energy_j", "energy_method",
               *([metric, METRIC_NAME] if metric else []),
               *(column for column in table.columns if column.startswith("hp_"))]
    return table.loc[table["_ok"], columns]


def with_energy_series(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` with `_energy_series`: the energy method, and `, parallel` for parallel trials when the
    rows also hold trials measured alone (a system-wide figure beside backgrounds is not theirs alone)."""
    series = rows["energy_method"].astype(str)
    parallel = rows["mode"].astype(str) == "parallel"
    if parallel.any() and not parallel.all():
        series = series.where(~parallel, series + ", parallel")
    return rows.assign(_energy_series=series)


def energy_axis(energy: str, methods: Sequence[str]) -> str:
    """`energy (J, total; cpu rapl (system) + gpu nvml)`: the axis says what was measured and how."""
    how = methods[0] if len(methods) == 1 else "per method, see legend"
    return f"energy (J, {energy}; {how})"


class Categories:
    """A categorical axis: each value a position, labelled with the value (numbers in numeric order)."""

    def __init__(self, values: pd.Series):
        distinct = list(dict.fromkeys(str(v) for v in values))
        numbers = pd.to_numeric(pd.Series(distinct), errors="coerce")
        if numbers.notna().all():
            distinct = [value for _, value in sorted(zip(numbers, distinct, strict=True))]
        else:
            distinct.sort()
        self.labels = distinct
        self.position = {value: index for index, value in enumerate(distinct)}

    def place(self, values: pd.Series) -> np.ndarray:
        return values.astype(str).map(self.position).to_numpy(dtype=float)

    def label(self, axes: Axes) -> None:
        axes.set_xticks(range(len(self.labels)), [label[:16] for label in self.labels],
                        rotation=30 if len(self.labels) > 4 else 0)


def _x_values(data: pd.Series, kind: str, axes: Axes) -> np.ndarray:
    if kind == "categorical":
        categories = Categories(data)
        categories.label(axes)
        return categories.place(data)
    numbers = pd.to_numeric(data, errors="coerce").to_numpy(dtype=float)
    if kind == "log":
        positive = numbers[numbers > 0]
        if len(positive) == len(numbers):
            axes.set_xscale("log")
            plain_log_ticks(axes.xaxis)
        elif len(positive):  # a log_uniform range that may draw 0 (zero_probability): linear around 0 only
            axes.set_xscale("symlog", linthresh=float(positive.min()))
    return numbers


LABELLED_SUBDIVISIONS_DECADES = 3.2
"""A log axis spanning at most this many decades (its view, margins included: data over 0.001-0.22
show 0.0008-0.29) labels its 2 and 5 ticks too: they fit beside the decades (at most 10 labels
across a 640-pixel plot), where one labelled decade alone would leave the reader guessing (`0.01`
the only label over 0.0017-0.05)."""


def plain_log_ticks(axis: Axis) -> None:
    """Every decade labelled `0.001`, `1e-05` (plain text: matplotlib's 10^-3 labels go through its
    TeX parser, a third of a plot's time), minor ticks at 2 and 5, labelled where they fit."""
    axis.set_major_locator(LogLocator(subs=(1.0,), numticks=99))  # every decade, not every other one
    axis.set_major_formatter(FuncFormatter(lambda value, _position: f"{value:g}"))
    axis.set_minor_locator(LogLocator(subs=(2.0, 5.0), numticks=99))

    def minor(value: float, _position: int | None) -> str:
        low, high = sorted(axis.get_view_interval())
        fits = low > 0 and np.log10(high / low) <= LABELLED_SUBDIVISIONS_DECADES
        return f"{value:g}" if fits else ""

    axis.set_minor_formatter(FuncFormatter(minor))


def _colour_by(group: pd.DataFrame, name: str) -> str | None:
    """Another hyperparameter mutated in the same trials as `name`: the points are coloured by it."""
    together = mutated_together(group)
    others = [other for other in together if other != name and f"hp_{other}" in group.columns]
    return others[0] if name in together and others else None


def _scatter(axes: Axes, figure: Figure, data: pd.DataFrame, x: np.ndarray, *, y: str, series: str,
             colour: str | None, colour_kind: str = "linear") -> None:
    """One marker per series; colours show `colour`'s values where it is set (on a log scale for a
    log_uniform hyperparameter)."""
    shade = None
    norm: Normalize | None = None
    if colour is not None:
        values = data[f"hp_{colour}"]
        numbers = pd.to_numeric(values, errors="coerce")
        shade = (numbers if numbers.notna().all() else pd.Series(Categories(values).place(values),
                                                                 index=values.index)).to_numpy(dtype=float)
        low, high = float(np.nanmin(shade)), float(np.nanmax(shade))
        norm = LogNorm(low, high) if colour_kind == "log" and low > 0 else Normalize(low, high)
    mappable = None
    handles = []
    for index, (label, part) in enumerate(data.groupby(series, sort=False, observed=True)):
        rows = data.index.get_indexer(part.index)
        marker = MARKERS[index % len(MARKERS)]
        handles.append(Line2D([], [], marker=marker, linestyle="", color="grey" if shade is not None else f"C{index}",
                              label=str(label)))
        if shade is None:
            axes.scatter(x[rows], part[y], marker=marker, color=f"C{index}", alpha=0.8, s=_size(len(data)),
                         linewidths=0)
        else:
            mappable = axes.scatter(x[rows], part[y], c=shade[rows], cmap="viridis", marker=marker,
                                    alpha=0.8, s=_size(len(data)), linewidths=0, norm=norm)
    if mappable is not None and colour is not None:
        bar = figure.colorbar(mappable, ax=axes, label=f"{colour} (mutated together: effects confounded)")
        if isinstance(norm, LogNorm):
            plain_log_ticks(bar.ax.yaxis)
    legend(axes, len(data), handles=handles)


@dataclass(frozen=True)
class Plot:
    """One figure to draw: its file name, and the function that draws it (run here or in a worker)."""

    name: str
    draw: Callable[[], Figure | None]
    caption: str = ""
    """What is plotted and from how many trials, under the figure in the pages."""


def against_hyperparameters(table: pd.DataFrame, metric: str | None, *, energy: str, kinds: Kinds) -> list[Plot]:
    """Metric, duration and (where measured) energy against each mutated hyperparameter."""
    plots = []
    ok = plotted(table, metric)
    for (repo, model), group in ok.groupby(["repo", "model"], sort=False, observed=True):
        for name in mutated_names(group):
            column = f"hp_{name}"
            if column not in group.columns:
                continue
            kind = kinds.get((str(repo), str(model), name), "linear")
            colour = _colour_by(group, name)
            colour_kind = kinds.get((str(repo), str(model), colour), "linear") if colour else "linear"
            measured = with_energy_series(group[group["energy_j"].notna()])
            wanted = [(metric, _metric_label(group), "mode", group)] if metric else []
            wanted.append(("duration_s", "duration (s)", "mode", group))
            if not measured.empty:  # the legend names each series' method (and mode where that matters)
                wanted.append(("energy_j", f"energy (J, {energy})", "_energy_series", measured))
            for y, label, series, rows in wanted:
                assert y is not None
                data = with_context_series(_drew(rows, name), series, name)
                data[y] = pd.to_numeric(data[y], errors="coerce")
                data = data[data[y].notna()]
                if data.empty:
                    continue
                trials = len(data)
                data, sampled = drawn(data)
                what = "energy" if y == "energy_j" else label.split(" (")[0]
                stem = "energy" if y == "energy_j" else safe_name(what)
                labels = (f"{name}{' (log scale)' if kind == 'log' else ''}", label,
                          f"{repo}/{model}: {what} against {name}{sampled}")
                caption = (f"{repo}/{model}: {what} against {name}, one point per successful trial that drew "
                           f"{name} ({trials:,}{f', {MAX_POINTS:,} of them drawn at random' if sampled else ''})"
                           + (f"; colour: {colour}, mutated in the same trials" if colour else ""))
                plots.append(Plot(
                    f"{stem}_vs_hp_{safe_name(name)}_{safe_name(repo)}_{safe_name(model)}.png",
                    partial(_hyperparameter_figure, data, column=column, kind=kind, y=y, series="_series",
                            colour=colour, colour_kind=colour_kind, labels=labels), caption))
    return plots


def _drew(rows: pd.DataFrame, name: str) -> pd.DataFrame:
    """The trials that drew `name`: where it was held fixed its value tells nothing of its effect."""
    cells = rows["mutated"].astype(str)
    drew = cells.map({cell: name in cell.split(";") for cell in cells.unique()}).astype(bool)
    return rows[drew & (rows[f"hp_{name}"] != "")]


def with_context_series(rows: pd.DataFrame, series: str, name: str) -> pd.DataFrame:
    """`rows` (a copy) with `_series`: `series`'s value, and what the trials held fixed where that
    differs (`epochs=3`), so that trials of different fixed settings are separate series."""
    labels = rows["_context"].astype(str).map(lambda label: context_without(label, name))
    base = rows[series].astype(str)
    series_of = base + " | " + labels if labels.nunique() > 1 else base
    return rows.assign(_series=series_of)


def _hyperparameter_figure(data: pd.DataFrame, *, column: str, kind: str, y: str, series: str, colour: str | None,
                           colour_kind: str, labels: tuple[str, str, str]) -> Figure:
    figure, axes = new_figure()
    x = _x_values(data[column], kind, axes)
    _scatter(axes, figure, data, x, y=y, series=series, colour=colour, colour_kind=colour_kind)
    xlabel, ylabel, title = labels
    axes.set(xlabel=xlabel, ylabel=ylabel, title=title)
    axes.title.set_fontsize("medium")
    return figure


def energy_vs_metric(table: pd.DataFrame, metric: str, energy: str) -> list[Plot]:
    """Energy against the metric, a Pareto staircase per energy series, dominated trials faded."""
    ok = plotted(table, metric)
    ok = ok[ok["energy_j"].notna()].copy()
    ok[metric] = pd.to_numeric(ok[metric], errors="coerce")
    ok = ok[ok[metric].notna()]
    return [Plot(f"energy_vs_{safe_name(_metric_label(group))}_{safe_name(repo)}_{safe_name(model)}.png",
                 partial(_trade_off_figure, with_energy_series(group), metric=metric, name=_metric_label(group),
                         energy=energy, title=f"{repo}/{model}: trade-off (steps: best reachable)"),
                 f"{repo}/{model}: energy ({energy}) against {_metric_label(group)}, one point per successful trial "
                 f"with both measured ({len(group):,}); the steps join the Pareto front of each energy method")
            for (repo, model), group in ok.groupby(["repo", "model"], sort=False, observed=True)]


def _metric_label(rows: pd.DataFrame) -> str:
    """The main metric's name in `rows` (one repository's): `_metric_name` where the report set it."""
    return str(rows[METRIC_NAME].iloc[0]) if METRIC_NAME in rows.columns and len(rows) else "metric"


def _trade_off_figure(group: pd.DataFrame, *, metric: str, name: str, energy: str, title: str) -> Figure:
    figure, axes = new_figure()
    higher = higher_is_better(name)
    methods = list(group["_energy_series"].unique())
    for index, (method, points) in enumerate(group.groupby("_energy_series", sort=False)):
        energy_j, values = points["energy_j"].to_numpy(), points[metric].to_numpy()
        front = pareto_front(energy_j, values, higher)
        on_front = np.zeros(len(points), dtype=bool)
        on_front[front] = True
        marker = MARKERS[index % len(MARKERS)]
        colour = f"C{index}"
        dominated, sampled = drawn(points[~on_front])
        axes.scatter(dominated["energy_j"], dominated[metric], marker=marker, color=colour, alpha=FADED, s=14,
                     linewidths=0, label=f"{method}: dominated{sampled.replace(chr(10), ' ')}")
        axes.scatter(energy_j[on_front], values[on_front], marker=marker, color=colour, s=30,
                     edgecolors="black", label=f"{method}: Pareto front")
        xs, ys = staircase(list(energy_j[front]), list(values[front]), float(energy_j.max()))
        axes.plot(xs, ys, color=colour, linewidth=1.2)
    axes.set(xlabel=energy_axis(energy, methods),
             ylabel=f"{name} ({'higher' if higher else 'lower'} is better)", title=title)
    legend(axes, len(group))
    return figure


def parallel_vs_alone(table: pd.DataFrame, energy: str) -> list[Plot]:
    """Mean energy of each foreground configuration measured alone and beside backgrounds, same method."""
    plots = []
    ok = plotted(table)
    ok = ok[ok["energy_j"].notna()]
    for (repo, model), group in ok.groupby(["repo", "model"], sort=False, observed=True):
        pairs = {}
        for method, points in group.groupby("energy_method", sort=False, observed=True):
            alone = points[points["mode"] != "parallel"].groupby("_config", observed=True)["energy_j"].mean()
            shared = points[points["mode"] == "parallel"].groupby("_config", observed=True)["energy_j"].mean()
            both = pd.concat([alone.rename("alone"), shared.rename("parallel")], axis=1).dropna()
            if not both.empty:
                pairs[str(method)] = both
        if pairs:
            plots.append(Plot(f"parallel_vs_alone_{safe_name(repo)}_{safe_name(model)}.png",
                              partial(_parallel_figure, pairs, energy=energy,
                                      title=f"{repo}/{model}: the same configurations, alone and in parallel"),
                              f"{repo}/{model}: mean energy ({energy}) of each configuration measured alone and "
                              f"beside backgrounds, by the same method ({sum(len(both) for both in pairs.values())} "
                              "configurations); above the dotted line, the backgrounds cost energy"))
    return plots


def _parallel_figure(pairs: dict[str, pd.DataFrame], *, energy: str, title: str) -> Figure:
    figure, axes = new_figure()
    for index, (method, both) in enumerate(pairs.items()):
        axes.scatter(both["alone"], both["parallel"], marker=MARKERS[index % len(MARKERS)], label=method)
    top = max(float(max(both["alone"].max(), both["parallel"].max())) for both in pairs.values())
    axes.plot([0, top], [0, top], "k:", label="same energy")
    # The method of each series is in the legend: the axes say what is compared.
    axes.set(xlabel=f"energy alone (J, {energy})", ylabel=f"energy with backgrounds (J, {energy})", title=title)
    axes.title.set_fontsize("medium")
    legend(axes, sum(len(both) for both in pairs.values()))
    return figure


MAX_WORKERS = 8
_PENDING: list[tuple[Sequence[Plot], Path]] = []
"""The plots a worker pool draws: set before the fork, so each worker finds them by index (a
closure cannot be pickled to a worker; a forked one has it already)."""


def workers_for(plots: int) -> int:
    """Worker processes for `plots` figures: one per core, at most MAX_WORKERS, none for a few."""
    return 1 if plots < MIN_PLOTS_FOR_WORKERS else min(os.cpu_count() or 1, plots, MAX_WORKERS)


MIN_PLOTS_FOR_WORKERS = 4


def render(plots: Sequence[Plot], folder: Path) -> list[Path]:
    """Draw and save every plot, on several cores where there are enough plots to pay for the fork.

    Each figure is independent, and drawing one is most of a report's time on a large table (about
    0.3 s for 5,000 markers): forked workers draw them side by side. A figure that draws nothing
    (`draw` returns None) leaves no file.
    """
    workers = workers_for(len(plots))
    if workers <= 1:
        return [path for plot in plots if (path := _draw_and_save(plot, folder)) is not None]
    _PENDING[:] = [(plots, folder)]
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            made = pool.map(_render_pending, range(len(plots)), chunksize=1)
    finally:
        _PENDING.clear()
    return [path for path in made if path is not None]


def _render_pending(index: int) -> Path | None:
    plots, folder = _PENDING[0]
    return _draw_and_save(plots[index], folder)


def _draw_and_save(plot: Plot, folder: Path) -> Path | None:
    figure = plot.draw()
    return None if figure is None else save(figure, folder / plot.name)
