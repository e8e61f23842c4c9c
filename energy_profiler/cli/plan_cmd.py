"""`plan FILE`: the trials a settings file expands to, as a table; writes nothing."""

from __future__ import annotations

from pathlib import Path

import click

from energy_profiler.cli.context import AppContext, global_options, load_and_plan
from energy_profiler.cli.tables import format_table
from energy_profiler.planning.plan import Plan


@click.command("plan")
@click.argument("settings_file", type=click.Path(path_type=Path, readable=False))
@global_options
def plan_command(settings_file: Path) -> None:
    """Show the trials SETTINGS_FILE would run (mutated values marked *), without running them."""
    _, _, plan = load_and_plan(click.get_current_context().ensure_object(AppContext), settings_file)
    click.echo(plan_text(plan))


def plan_text(plan: Plan) -> str:
    names = list(dict.fromkeys(name for trial in plan.trials for name, _ in trial.hyperparameters))
    rows = []
    for trial in plan.trials:
        values = dict(trial.hyperparameters)
        cells = [None if name not in values else values[name] + ("*" if name in trial.mutated else "")
                 for name in names]
        rows.append([trial.index, trial.mode, trial.repo, trial.model, *cells])
    seed_note = " (drawn: set \"seed\" in the settings to get this plan again)" if plan.seed_was_drawn else ""
    return "\n".join([format_table(["#", "mode", "repo", "model", *names], rows), "",
                      f"{len(plan.trials)} trials, seed {plan.seed}{seed_note}; * = mutated", *plan.history_lines()])
