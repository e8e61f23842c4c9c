"""`report RUN_DIR|CSV... [-o DIR]`: tables on the console, PNG plots and report.md on disk."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from energy_profiler.cli.context import EXIT_CONFIG, global_options
from energy_profiler.cli.tables import format_table


@click.command("report")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=Path("report"),
              show_default=True, help="Folder for report.md and the plots.")
@click.option("--metric", help="The metric to compare with energy [default: the first one in the tables].")
@click.option("--trace", "traces", multiple=True, help="Trial (e.g. 003_examples_mlp) to plot power over time "
              "for; repeatable [default: the 3 longest successful trials].")
@global_options
def report_command(inputs: tuple[Path, ...], output: Path, metric: str | None, traces: tuple[str, ...]) -> None:
    """Summarise run folders, results folders or summary CSVs: statistics, correlations, plots."""
    # pandas and matplotlib take half a second to import: only this command pays for them.
    from energy_profiler.report import build  # noqa: PLC0415
    from energy_profiler.report.tables import CORRELATION_HEADERS, GROUP_HEADERS  # noqa: PLC0415

    try:
        report = build(inputs, output, metric, traces)
    except (FileNotFoundError, KeyError) as error:
        click.echo(f"error: {error.args[0] if error.args else error}", err=True)
        sys.exit(EXIT_CONFIG)
    metric_name = report.metric.removeprefix("perf_") if report.metric else "metric"
    click.echo(format_table([*GROUP_HEADERS, metric_name], report.groups))
    if report.correlations:
        click.echo("")
        click.echo(format_table([*CORRELATION_HEADERS[:-1], f"rho({metric_name})"], report.correlations))
    click.echo(f"\n{report.rows} trials; {len(report.plots)} plots and {report.markdown}")
