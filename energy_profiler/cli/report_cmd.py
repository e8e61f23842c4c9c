"""`report RUN_DIR|CSV... [-o DIR]`: tables on the console, PNG plots, report.md and report.html on disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from energy_profiler.cli.context import AppContext, global_options
from energy_profiler.cli.tables import emit, fitted, format_option, terminal_width
from energy_profiler.config.errors import ConfigError
from energy_profiler.config.registry import Registry

if TYPE_CHECKING:  # pandas: imported when the report is built, not when the CLI loads
    from energy_profiler.report.tables import Tables


@click.command("report")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for report.md, report.html and the plots [default: report/ inside the first input's "
                   "folder].")
@click.option("--metric", help="The metric to compare with energy [default: each repository's first metric "
                                "that has numbers, in the registry's order].")
@click.option("--energy", type=click.Choice(["total", "above-idle", "above-background"]), default="total",
              show_default=True, help="Energy to report: as measured, or above the idle or background baseline.")
@click.option("--trace", "traces", multiple=True, help="Trial (e.g. 003_examples_mlp) to plot power over time "
              "for; repeatable [default: the 3 longest successful trials].")
@click.option("--no-plots", is_flag=True, help="Tables and pages only (faster on huge tables).")
@format_option("the per-group table")
@global_options
def report_command(inputs: tuple[Path, ...], *, output: Path | None, metric: str | None, energy: str,
                   traces: tuple[str, ...], no_plots: bool, output_format: str) -> None:
    """Summarise run folders, results folders or summary CSVs: statistics, correlations, plots."""
    # pandas and matplotlib take half a second to import: only this command pays for them.
    from energy_profiler.report import build  # noqa: PLC0415

    app = click.get_current_context().ensure_object(AppContext)
    folder = output if output is not None else _default_output(inputs[0])
    registry = _registry(app)
    report = build(inputs, folder, metric=metric, traces=traces, energy=energy, kind_of=_kinds(registry),
                   metric_order=_metric_order(registry), plots_wanted=not no_plots)  # ReportInputError: exit 2
    tables = report.tables
    if output_format != "table":  # one table for a script: the per-group statistics
        emit(tables.headers("groups"), tables.groups, output_format)
        return
    # Left out first, last first, where the terminal is too narrow (report.html has every column).
    optional = {"groups": ["co2e_g", "duration_s", "configs", "success"], "repeats": ["duration_s"], "correlations": [],
                "costs": []}
    method = tables.headers("groups").index("energy")
    if all(str(row[method]).startswith("none") for row in tables.groups):  # all 'missing': the note says why
        optional["groups"] += ["energy_j", "energy"]
    keys, width = fixed_keys(tables), terminal_width()
    for which, rows in (("groups", tables.groups), ("repeats", tables.repeats), ("correlations", tables.correlations),
                        ("costs", tables.costs)):
        if rows:
            if which != "groups":
                click.echo("")
            headers = tables.headers(which)
            if "fixed" in headers:  # a short key in the table, the settings below it
                column = headers.index("fixed")
                rows = [[*row[:column], keys.get(str(row[column]), row[column]), *row[column + 1:]] for row in rows]
            emit(headers, rows, optional=optional[which])
            click.echo(fitted(LEGENDS[which], width))
    for label, key in keys.items():
        click.echo(fitted(f"fixed {key}: {label}", width, "    "))
    for note in report.notes:
        click.echo(fitted(f"note: {note}", width))
    click.echo(f"\n{report.rows} trials; {len(report.plots)} plots; {report.html} and {report.markdown.name}")


LEGENDS = {
    "groups": "(cells: median (min–max) over successful trials: what the campaign tried, not run-to-run noise)",
    "repeats": "(cells: mean ± sd over the repeats of one configuration: the run-to-run noise)",
    "correlations": "(n pairs, rho and its 95 % interval, none below 10 pairs; an interval that spans 0 is no "
                    "evidence of an effect)",
    "costs": "(each study's totals over every trial: what it emitted and cost; 'k of n' trials: only k have a "
             "CO2e figure, the others ran without a carbon intensity)",
}
"""What the cells of each table are, printed under it as report.md says above it."""


def fixed_keys(tables: Tables) -> dict[str, str]:
    """`F1`, `F2`... for the `fixed` labels of the terminal's tables (one can hold several settings,
    too wide for a column); report.md and report.html show them whole."""
    if not tables.fixed:
        return {}
    labels: dict[str, None] = {}
    for which, rows in (("groups", tables.groups), ("correlations", tables.correlations)):
        column = tables.headers(which).index("fixed")
        labels.update((str(row[column]), None) for row in rows if row[column] not in (None, "-"))
    return {label: f"F{number}" for number, label in enumerate(labels, start=1)}


def _default_output(first: Path) -> Path:
    """report/ beside the data: in a run or results folder, or in the folder of a CSV file."""
    return (first if first.is_dir() else first.parent) / "report"


def _registry(app: AppContext) -> Registry | None:
    """The registry, where one can be read: it knows axis kinds and metric order; without it the values decide."""
    try:
        return app.registry()
    except (ConfigError, OSError):
        return None


def _metric_order(registry: Registry | None) -> Callable[[str], tuple[str, ...]]:
    def order_of(repo: str) -> tuple[str, ...]:
        known = registry.repositories.get(repo) if registry is not None else None
        return tuple(known.metrics) if known is not None else ()

    return order_of


def _kinds(registry: Registry | None) -> Callable[[str, str, str], str | None]:
    """The registry's axis kind of each hyperparameter; without a registry, the values decide."""

    def kind_of(repo: str, model: str, name: str) -> str | None:
        if registry is None or repo not in registry.repositories:
            return None
        models = registry.repositories[repo].models
        spec = models[model].hyperparameters.get(name) if model in models else None
        if spec is None:
            return None
        if spec.discrete_values is not None:
            return "categorical"
        return "log" if spec.distribution == "log_uniform" else "linear"

    return kind_of
