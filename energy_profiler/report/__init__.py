"""`mutation.py report`: tables and plots from campaign results, in report.md and report.html.

Every input problem (a missing or foreign table, an unknown metric or trial) is found before the
output folder is made, so a refused report writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from energy_profiler.fs import atomic_write_bytes
from energy_profiler.report.frame import ReportInputError as ReportInputError
from energy_profiler.report.frame import energy_missing_reason, load, trial_dir
from energy_profiler.report.knob_front import knob_front_section
from energy_profiler.report.metric import METRIC, MetricOrder, main_metrics, with_metric
from energy_profiler.report.pages import Page, Plotted, Section, html_page, markdown
from energy_profiler.report.tables import (
    KindOf,
    Tables,
    add_configurations,
    add_contexts,
    axis_kinds,
    summarize,
)
from energy_profiler.report.trials import failures_section, header, trials_section

DEFAULT_TRACES = 3


@dataclass(frozen=True)
class Report:
    tables: Tables
    plots: list[Path]
    markdown: Path
    html: Path
    rows: int
    notes: list[str] = field(default_factory=list)


def _no_kinds(_repo: str, _model: str, _name: str) -> None:
    return None


def _no_order(_repo: str) -> tuple[str, ...]:
    return ()


def build(inputs: Sequence[Path], folder: Path, *, metric: str | None = None, traces: Sequence[str] = (),
          energy: str = "total", kind_of: KindOf = _no_kinds, metric_order: MetricOrder = _no_order,
          plots_wanted: bool = True) -> Report:
    """Read the tables, write the plots, report.md and report.html into `folder`."""
    table = add_contexts(add_configurations(load(inputs, energy)))
    try:
        metrics = main_metrics(table, metric, metric_order)
    except KeyError as error:
        raise ReportInputError(str(error.args[0])) from None
    table = with_metric(table, metrics)
    chosen_metric = METRIC if metrics else None
    traced = _trace_rows(table, traces)
    folder.mkdir(parents=True, exist_ok=True)
    kinds = axis_kinds(table[table["_ok"]], kind_of)
    tables = summarize(table, chosen_metric, kinds, {repo: column.removeprefix("perf_")
                                                     for repo, column in metrics.items()})
    notes = [*table.attrs.get("notes", []), *tables.notes]
    if missing := energy_missing_reason(table, energy):
        notes.insert(0, f"No energy plots: {missing}.")
    if chosen_metric is None:
        notes.insert(0, "No metric plots: no perf_ column has numbers.")
    made: list[Plotted] = []
    if plots_wanted:
        # matplotlib takes most of a second to import: a --no-plots report does not pay for it.
        from energy_profiler.report import plots  # noqa: PLC0415
        from energy_profiler.report.power import power_plot  # noqa: PLC0415

        wanted = plots.against_hyperparameters(table, chosen_metric, energy=energy, kinds=kinds)
        if chosen_metric:
            wanted += plots.energy_vs_metric(table, chosen_metric, energy)
        wanted += plots.parallel_vs_alone(table, energy)
        power = [power_plot(directory, row) for directory, row in traced]
        captions = {plot.name: plot.caption for plot in wanted + power}
        made = [Plotted(path, captions[path.name] or path.stem) for path in plots.render(wanted + power, folder)]
        if traces:  # asked for by name: one that draws nothing says so
            drawn = {plot.path.name for plot in made}
            notes += [f"--trace {directory.parent.name}/{directory.name}: no power samples recorded for it "
                      f"(energy method {row.get('energy_method')}): nothing to draw"
                      for (directory, row), plot in zip(traced, power, strict=True) if plot.name not in drawn]
    page = _page(inputs, table, tables, notes=notes, made=made, energy=energy, folder=folder)
    markdown_path, html_path = folder / "report.md", folder / "report.html"
    atomic_write_bytes(markdown_path, markdown(page, folder).encode())
    atomic_write_bytes(html_path, html_page(page).encode())
    return Report(tables, [plot.path for plot in made], markdown_path, html_path, len(table), notes)


def _trace_rows(table: pd.DataFrame, wanted: Sequence[str]) -> list[tuple[Path, pd.Series]]:
    """The trials to draw power for: those named (each must exist), else the longest successful ones."""
    if wanted:
        unknown = [name for name in wanted if name not in set(table["trial"])]
        if unknown:
            examples = ", ".join(list(table["trial"].head(3)))
            raise ReportInputError(f"--trace {unknown[0]!r}: no such trial in the tables (trials look like "
                                   f"{examples})")
        chosen = table[table["trial"].isin(wanted)]
    else:
        chosen = table[table["_ok"]].nlargest(DEFAULT_TRACES, "duration_s")
    return [(directory, row) for _, row in chosen.iterrows() if (directory := trial_dir(row)) is not None]


def _page(inputs: Sequence[Path], table: pd.DataFrame, tables: Tables, *, notes: list[str], made: list[Plotted],
          energy: str, folder: Path) -> Page:
    statuses = ", ".join(f"{count} {status}" for status, count in table["status"].value_counts().items() if count)
    paragraphs = [f"{len(table)} trials: {statuses}.",
                  f"Energy: {energy}, the sum of the devices that were measured; trials measured by different "
                  "methods or scopes are never pooled. Failed trials are counted, never averaged; 'missing' means "
                  "not measured."]
    sections = [
        Section("Per repository, model, mode and energy method", tables.headers("groups"), tables.groups,
                "Median (min–max) over successful trials: what the campaign tried, not run-to-run noise."),
    ]
    if tables.repeats:
        sections.append(Section("Repeated configurations", tables.headers("repeats"), tables.repeats,
                                "Mean ± sd over the repeats of one configuration: the run-to-run noise."))
    if tables.correlations:
        sections.append(Section("Mutated hyperparameters: Spearman's rank correlation", tables.headers("correlations"),
                                tables.correlations, "n pairs, rho and its 95 % interval (bootstrap; Fisher z above "
                                                     "400 pairs; none below 10). An interval that spans 0 is no "
                                                     "evidence of an effect."))
    if front := knob_front_section(table, tables.metric, tables.metric_name):
        sections.append(front)
    if tables.costs:
        sections.append(Section("What each study emitted and cost", tables.headers("costs"), tables.costs,
                                "Totals over every trial (a failed one emitted too), per repository, model and "
                                "the hyperparameters it mutated (-: default runs), at each row's carbon intensity "
                                "and price; 'k of n' trials: only k have a CO2e figure."))
    if failures := failures_section(table, folder):
        sections.insert(0, failures)
    sections.append(trials_section(table, folder))
    return Page("Campaign report", header(inputs, table), paragraphs, sections, notes, made)
