"""`plan FILE`: the trials a settings file expands to, as a table; writes nothing."""

from __future__ import annotations

from pathlib import Path

import click

from energy_profiler.cli.context import AppContext, global_options, load_and_plan
from energy_profiler.cli.tables import emit, format_option, format_table, terminal_width
from energy_profiler.planning.plan import Plan


@click.command("plan")
@click.argument("settings_file", type=click.Path(path_type=Path, readable=False))
@format_option("one row per trial")
@global_options
def plan_command(settings_file: Path, output_format: str) -> None:
    """Show the trials SETTINGS_FILE would run (mutated values marked *), without running them."""
    _, _, plan = load_and_plan(click.get_current_context().ensure_object(AppContext), settings_file)
    if output_format == "table":
        click.echo(plan_text(plan, terminal_width()))
    else:
        names = _names(plan)
        rows = [[trial.index, trial.name, trial.mode, trial.repo, trial.model, ";".join(trial.mutated),
                 *(dict(trial.hyperparameters).get(name) for name in names)] for trial in plan.trials]
        emit(["index", "trial", "mode", "repo", "model", "mutated", *names], rows, output_format)


def _names(plan: Plan) -> list[str]:
    return list(dict.fromkeys(name for trial in plan.trials for name, _ in trial.hyperparameters))


def plan_text(plan: Plan, width: int | None = None) -> str:
    names = _names(plan)
    rows = []
    for trial in plan.trials:
        values = dict(trial.hyperparameters)
        cells = [None if name not in values else values[name] + ("*" if name in trial.mutated else "")
                 for name in names]
        rows.append([trial.index, trial.mode, trial.repo, trial.model, *cells])
    # In a narrow terminal the hyperparameters no trial mutates are the ones left out (they are defaults
    # or fixed values, the same in every row of their model).
    constant = [name for name in names if not any(name in trial.mutated for trial in plan.trials)]
    seed_note = " (drawn: set \"seed\" in the settings to get this plan again)" if plan.seed_was_drawn else ""
    table = format_table(["#", "mode", "repo", "model", *names], rows, width, optional=constant)
    return "\n".join([table, "", f"{len(plan.trials)} trials, seed {plan.seed}{seed_note}; * = mutated",
                      *plan.lines()])
