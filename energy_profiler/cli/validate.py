"""`validate FILE...`: check settings files against the schema, the registry and the plan."""

from __future__ import annotations

from pathlib import Path

import click

from energy_profiler.cli.context import AppContext, checked_plan, global_options
from energy_profiler.config.errors import ConfigError


@click.command("validate")
@click.argument("settings_files", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@global_options
def validate_command(settings_files: tuple[Path, ...]) -> None:
    """Check SETTINGS_FILES; print every problem of every file. Exit 0 if all are valid, else 2."""
    app = click.get_current_context().ensure_object(AppContext)
    registry = app.registry()
    issues = []
    for settings_file in settings_files:
        plan, problems = checked_plan(app, registry, settings_file)  # what `run` would refuse
        if plan is None:
            issues.extend(problems)
            continue
        click.echo(f"ok: {settings_file} ({len(plan.trials)} trial{'' if len(plan.trials) == 1 else 's'})")
    if issues:
        raise ConfigError(issues)  # the one error format every command uses
