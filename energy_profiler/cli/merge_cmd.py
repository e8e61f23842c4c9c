"""`merge RUN_DIR... -o FILE`: one table rebuilt from trial folders, no hand-written script needed."""

from __future__ import annotations

from pathlib import Path

import click

from energy_profiler.cli.context import global_options
from energy_profiler.results.merge import merge


@click.command("merge")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The CSV file to write.")
@global_options
def merge_command(run_dirs: tuple[Path, ...], output: Path) -> None:
    """Rebuild one summary table from the experiment.json of every trial in RUN_DIRS."""
    if not output.parent.is_dir():
        raise click.UsageError(f"the folder of -o {output} does not exist: create it first")
    for folder in run_dirs:
        if not any(folder.glob("*/experiment.json")):
            runs = len(list(folder.glob("run_*/")))
            hint = f": it holds {runs} run folder(s), give those (e.g. {folder}/run_*)" if runs else ""
            raise click.UsageError(f"{folder} is not a run folder (no trial with an experiment.json){hint}")
    rows = merge(run_dirs, output)
    click.echo(f"{rows} rows from {len(run_dirs)} run folder(s) written to {output}")
