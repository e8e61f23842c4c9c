"""`doctor [FILE]`: every energy backend, whether it works here, why not, and the fix."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from energy_profiler.cli.context import AppContext, energy_options, fail_config, global_options
from energy_profiler.config.errors import ConfigError
from energy_profiler.config.settings import load_settings
from energy_profiler.energy.selection import (
    CPU_CHAIN,
    GPU_CHAIN,
    EnergySettings,
    EnergySetupError,
    Hardware,
    choose,
    probe,
)


@click.command("doctor")
@click.argument("settings_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@global_options
@energy_options
def doctor_command(settings_file: Path | None) -> None:
    """Check every energy backend on this machine and say which a campaign would use.

    With SETTINGS_FILE, its `energy` block (and any command-line override) is what is checked.
    """
    app = click.get_current_context().ensure_object(AppContext)
    settings = EnergySettings()
    if settings_file is not None:
        try:
            settings = load_settings(settings_file, app.registry()).energy
        except ConfigError as error:
            fail_config(error)
    settings = replace(settings, **app.energy_overrides)
    hardware = Hardware()
    for kind, chain in (("CPU", CPU_CHAIN), ("GPU", GPU_CHAIN)):
        click.echo(f"{kind} energy backends")
        for name in chain:
            availability = probe(name, settings, hardware)
            click.echo(f"  {name:<11} {'yes' if availability.available else 'no ':<4}{availability.reason}")
            if availability.fix and not availability.available:
                click.echo(f"  {'':<11}     fix: {availability.fix}")
    click.echo("")
    try:
        choice = choose(settings, hardware)
    except EnergySetupError as error:
        click.echo("a campaign with these settings would not start:")
        for problem in error.problems:
            click.echo(f"  {problem}")
        return
    click.echo(f"a campaign would use: cpu={choice.cpu}, gpu={choice.gpu}")
