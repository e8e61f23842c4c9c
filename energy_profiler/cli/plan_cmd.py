"""`plan FILE`: the trials a settings file expands to, with what each is forecast to take; writes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from energy_profiler.cli.context import AppContext, cooldown_in, forecast_history, global_options, load_and_plan
from energy_profiler.cli.display import duration
from energy_profiler.cli.tables import emit, fitted, format_option, format_table, terminal_width
from energy_profiler.config.budget import LIMITS
from energy_profiler.config.errors import ConfigError
from energy_profiler.config.settings import Settings
from energy_profiler.execution.knob_keeper import check_on_machine
from energy_profiler.model.energy_fields import JOULES_PER_KWH
from energy_profiler.model.rounding import rounded
from energy_profiler.planning.forecast import Prediction, between_trials_s, predict
from energy_profiler.planning.plan import Plan
from energy_profiler.system.gpu_knobs import KnobError

FORECAST_HEADERS = ["predicted_duration_s", "predicted_energy_j", "predicted_cpu_energy_j", "predicted_gpu_energy_j",
                    "prediction_n", "prediction_reason"]


@click.command("plan")
@click.argument("settings_file", type=click.Path(path_type=Path, readable=False))
@format_option("one row per trial")
@global_options
def plan_command(settings_file: Path, output_format: str) -> None:
    """Show the trials SETTINGS_FILE would run (mutated values marked *) and what each is forecast to
    take from the history, without running them."""
    app = click.get_current_context().ensure_object(AppContext)
    registry, settings, plan = load_and_plan(app, settings_file)
    history = forecast_history(settings, registry, app.results_dir)
    predictions = [predict(trial, history, registry) for trial in plan.trials]
    between = between_trials_s(history, cooldown_in(app.results_dir))
    if output_format == "table":
        click.echo(plan_text(plan, terminal_width(), predictions, settings, between))
    else:
        names = _names(plan)
        rows = [[trial.index, trial.name, trial.mode, trial.repo, trial.model, ";".join(trial.mutated),
                 *(dict(trial.hyperparameters).get(name) for name in names),
                 *(rounded(value, name) for value, name in zip(
                     (prediction.duration_s, prediction.energy_j, prediction.cpu_energy_j, prediction.gpu_energy_j),
                     FORECAST_HEADERS, strict=False)),
                 prediction.n, prediction.reason]
                for trial, prediction in zip(plan.trials, predictions, strict=True)]
        emit(["index", "trial", "mode", "repo", "model", "mutated", *names, *FORECAST_HEADERS], rows, output_format)
    try:  # what `run` checks before the first trial, said here as a note: the plan may be for another machine
        check_on_machine(plan, settings)
    except (KnobError, ConfigError) as error:
        width = terminal_width()
        click.echo(fitted("note: `run` on this machine would refuse these system knobs:", width), err=True)
        for message in error.messages:
            click.echo(fitted(f"  {message}", width, "    "), err=True)


def _names(plan: Plan) -> list[str]:
    return list(dict.fromkeys(name for trial in plan.trials for name, _ in trial.hyperparameters))


def plan_text(plan: Plan, width: int | None = None, predictions: Sequence[Prediction] = (),
              settings: Settings | None = None, between: tuple[float, int] | None = None) -> str:
    names = _names(plan)
    forecast = bool(predictions)
    rows = []
    for position, trial in enumerate(plan.trials):
        values = dict(trial.hyperparameters)
        cells = [None if name not in values else values[name] + ("*" if name in trial.mutated else "")
                 for name in names]
        prediction = predictions[position] if forecast else None
        predicted = [_round(prediction.duration_s), _round(prediction.energy_j),
                     f"{prediction.basis}({prediction.n})" if prediction.n else None] if prediction else []
        rows.append([trial.index, trial.mode, trial.repo, trial.model, *predicted, *cells])
    # In a narrow terminal the hyperparameters no trial mutates are the ones left out (they are defaults
    # or fixed values, the same in every row of their model).
    constant = [name for name in names if not any(name in trial.mutated for trial in plan.trials)]
    seed_note = " (drawn: set \"seed\" in the settings to get this plan again)" if plan.seed_was_drawn else ""
    headers = ["#", "mode", "repo", "model", *(["forecast_s", "forecast_j", "from"] if forecast else []), *names]
    table = format_table(headers, rows, width, optional=[*constant, "from", "forecast_j", "forecast_s"])
    totals = [fitted(line, width) for line in forecast_lines(predictions, settings, between)] \
        if forecast and settings is not None else []
    legend = "; from: the same configuration, scaled by epochs, or other values (runs)" if forecast else ""
    trials = f"{len(plan.trials)} trial{'' if len(plan.trials) == 1 else 's'}"
    return "\n".join([table, "", fitted(f"{trials}, seed {plan.seed}{seed_note}; * = mutated{legend}", width),
                      *totals, *plan.lines()])


def forecast_lines(predictions: Sequence[Prediction], settings: Settings,
                   between: tuple[float, int] | None = None) -> list[str]:
    """The campaign's forecast total (trainings, cool-downs, the time between trials the history
    measured, energy per device, CO2e and cost where the settings give a carbon intensity and a
    price), saying how many trials it leaves out, and a warning where it passes the budget."""
    known = [prediction for prediction in predictions if prediction.duration_s is not None]
    if not known:
        return ["forecast: none (no successful comparable run in the history: `plan --format csv` says why "
                "for each trial)"]
    trainings_s = sum(prediction.duration_s or 0.0 for prediction in known)
    cooldowns_s = settings.cooldown_s * max(len(predictions) - 1, 0)
    between_s = between[0] * len(predictions) if between else 0.0
    parts = [f"forecast: about {duration(trainings_s + cooldowns_s + between_s)} = trainings {duration(trainings_s)}"
             f" + cool-downs {duration(cooldowns_s)}"
             + (f" + between trials {duration(between_s)} ({between[0]:.2g} s a trial, measured over "
                f"{between[1]} gap(s) in the history)" if between else "")]
    energy = {kind: [getattr(prediction, f"{kind}_energy_j") for prediction in known
                     if getattr(prediction, f"{kind}_energy_j") is not None] for kind in ("cpu", "gpu")}
    measured = {kind: sum(values) / JOULES_PER_KWH for kind, values in energy.items() if values}
    carbon = settings.carbon
    total_kwh = sum(measured.values()) if measured else None
    co2e_g = total_kwh * carbon.g_per_kwh if total_kwh is not None and carbon and carbon.g_per_kwh is not None \
        else None
    if total_kwh is not None:
        parts.append(", ".join(f"{kind} {kwh:.3g} kWh" for kind, kwh in measured.items()))
        if co2e_g is not None:
            parts.append(f"co2e {co2e_g:.3g} g")
        if carbon is not None and carbon.price_per_kwh is not None:
            parts.append(f"cost {total_kwh * carbon.price_per_kwh:.3g} {carbon.currency or ''}".rstrip())
    else:
        parts.append("no energy measured in the history's runs")
    missing = len(predictions) - len(known)
    if missing:
        parts.append(f"{missing} of {len(predictions)} trials without a forecast (not in the sums)")
    forecast_totals = {"wall_h": (trainings_s + cooldowns_s + between_s) / 3600, "energy_kwh": total_kwh,
                       "co2e_kg": co2e_g / 1000 if co2e_g is not None else None}
    over = [f"budget.{name} {limit:.3g} {LIMITS[name]} (forecast {forecast_totals[name] or 0:.3g} {LIMITS[name]})"
            for name, limit in (settings.budget.limits() if settings.budget else {}).items()
            if (forecast_totals[name] or 0) > limit]
    warning = [f"warning: the forecast passes {', '.join(over)}: the campaign will stop before its end"] if over else []
    return ["; ".join(parts), *warning]


def _round(value: float | None) -> float | None:
    return float(f"{value:.3g}") if value is not None else None
