"""`validate FILE...`: check settings files against the schema, the registry and the plan."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from energy_profiler.cli.context import EXIT_CONFIG, AppContext, fail_config, global_options, settings_and_plan
from energy_profiler.config.errors import ConfigError


@click.command("validate")
@click.argument("settings_files", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@global_options
def validate_command(settings_files: tuple[Path, ...]) -> None:
    """Check SETTINGS_FILES; print every problem of every file. Exit 0 if all are valid, else 2."""
    app = click.get_current_context().ensure_object(AppContext)
    try:
        registry = app.registry()
    except ConfigError as error:
        fail_config(error)
    problems = 0
    for settings_file in settings_files:
        try:
            _, plan = settings_and_plan(app, registry, settings_file)
        except ConfigError as error:
            problems += len(error.issues)
            for issue in error.issues:
                click.echo(f"error: {issue}", err=True)
            continue
        click.echo(f"ok: {settings_file} ({len(plan.trials)} trials)")
    if problems:
        click.echo(f"{problems} problem{'s' if problems != 1 else ''} found", err=True)
        sys.exit(EXIT_CONFIG)
