"""The closing table of a campaign: per trial its outcome, energy with the method, and what made it differ.

In a terminal the table fits the width (text columns fold, numbers stay whole); in a pipe or file
every cell is whole. A trial is named by the values that differ from the registry's defaults
(`learning_rate=0.0272 batch_size=64`), so rows tell apart even in a 60-column pane.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NoReturn

import click

from energy_profiler.cli.display import duration
from energy_profiler.cli.tables import fitted, format_table, terminal_width
from energy_profiler.config.registry import Registry
from energy_profiler.energy.base import Kind
from energy_profiler.energy.recorder import EnergyPlan
from energy_profiler.errors import ended
from energy_profiler.execution.run_folder import SessionResult
from energy_profiler.model.record import Record

BRIEF_CHARS = 80
Defaults = Callable[[str, str], Mapping[str, str]]
"""The canonical default of each hyperparameter of (repo, model); empty where unknown."""


def print_outcome(result: SessionResult, registry: Registry, resume_line: str) -> NoReturn:
    """The closing table, the line that says how to continue an unfinished campaign, and the exit.

    `resume_line` is printed whole on a line of its own, however narrow the terminal: it is meant
    to be copied.
    """
    click.echo(summary_text(result, terminal_width(), defaults_of(registry)))
    for why in (result.budget_stop, result.stopped_on_request):  # said again: -q hid the session's lines
        if why:
            click.echo(fitted(why, terminal_width()))
    if result.stopped_by is not None or len(result.records) < result.planned:
        click.echo("to continue:")
        click.echo(resume_line)
    raise ended(result.exit_code)


def no_defaults(_repo: str, _model: str) -> Mapping[str, str]:
    return {}


def defaults_of(registry: Registry) -> Defaults:
    def defaults(repo: str, model: str) -> Mapping[str, str]:
        if repo not in registry.repositories or model not in registry.repositories[repo].models:
            return {}  # a run made with another registry: its mutated values are named instead
        specs = registry.repositories[repo].models[model].hyperparameters
        return {name: spec.default_text for name, spec in specs.items()}

    return defaults


def summary_text(result: SessionResult, width: int | None = None, defaults: Defaults = no_defaults) -> str:
    """One line per trial (fitted to `width` columns when given), then counts and where the files are.

    Only required metrics are shown (summary.csv has them all).
    """
    records = sorted(result.records, key=lambda record: record.trial_index)  # Slurm's end in any order
    repos = {record.repo for record in records} | {b.repo for r in records for b in r.background}
    parallel = any(record.background for record in records)
    metric_names = list(dict.fromkeys(name for record in records for name in record.required_metrics))
    above_idle = any(_above_idle_j(record) is not None for record in records)

    def label(repo: str, model: str) -> str:
        return model if len(repos) == 1 else f"{repo}/{model}"

    rows: list[Sequence[object]] = []
    for record in records:
        metrics = dict(record.metrics)
        company = ["+".join(label(b.repo, b.model) for b in record.background) or "-"] if parallel else []
        rows.append([record.trial_index, label(record.repo, record.model), *company, record.status,
                     round(record.duration_s, 1), _energy_j(record), _methods(record),
                     *([_above_idle_j(record)] if above_idle else []),
                     *(metrics.get(name) for name in metric_names),
                     _differences(record, defaults(record.repo, record.model))])
    headers = ["#", "model", *(["with"] if parallel else []), "status", "duration_s", "energy_j", "method",
               *(["above_idle_j"] if above_idle else []), *metric_names, "values"]
    # Left out first when the terminal is too narrow: the last of these (summary.csv has them all).
    optional = [*metric_names, "duration_s"]
    if not any(_energy_j(record) is not None for record in records):
        optional += ["method", "energy_j"]  # all "-": the energy line below says why; the metric is news
    table = format_table(headers, rows, width, optional=optional) if rows else "(no trials ran)"
    counts: dict[str, int] = {}
    for record in records:
        counts[record.status] = counts.get(record.status, 0) + 1
    tally = ", ".join(f"{count} {status}" for status, count in counts.items()) or "no trial finished"
    trainings_s = sum(record.duration_s for record in records)
    energy = f"energy: {energy_total(records, 'cpu', result.energy)}; {energy_total(records, 'gpu', result.energy)}"
    carbon = carbon_total(records)
    return "\n".join(["", table, "", f"{len(records)} of {result.planned} trials recorded: {tally}",
                      fitted(energy, width), *([fitted(carbon, width)] if carbon else []),
                      f"time: trainings {duration(trainings_s)}, this session {duration(result.wall_s)}",
                      f"summary: {result.run_dir / 'summary.csv'}"])


def _energy_j(record: Record) -> float | None:
    """The sum of the devices that were measured; None (shown `-`) when none was."""
    joules = record.energy.measured_j
    return round(joules, 1) if joules is not None else None


def _methods(record: Record) -> str:
    methods = [method for joules, method in ((record.energy.cpu_energy_j, record.energy.cpu_energy_method),
                                             (record.energy.gpu_energy_j, record.energy.gpu_energy_method))
               if joules is not None]
    return "+".join(methods) or "none"


def _above_idle_j(record: Record) -> float | None:
    """Energy above the idle baseline, where every measured device has that figure."""
    energy = record.energy
    parts = [(energy.cpu_energy_j, energy.cpu_energy_above_idle_j),
             (energy.gpu_energy_j, energy.gpu_energy_above_idle_j)]
    measured = [(total, above) for total, above in parts if total is not None]
    if not measured or any(above is None for _, above in measured):
        return None
    return round(sum(above for _, above in measured if above is not None), 1)


def _differences(record: Record, defaults: Mapping[str, str]) -> str:
    """`name=value` for each value that is not the default (mutated ones where defaults are unknown)."""
    if defaults:
        changed = [(name, value) for name, value in record.hyperparameters
                   if name in defaults and defaults[name] != value]
    else:
        changed = [(name, value) for name, value in record.hyperparameters if name in record.mutated]
    return " ".join(f"{name}={value}" for name, value in changed) or "(defaults)"


def energy_total(records: Sequence[Record], kind: Kind, energy: EnergyPlan | None = None) -> str:
    """`cpu 12.3 kJ (rapl)`, saying how many trials were not measured; never a 0 for unmeasured.

    A device measured in no trial gets its reason in a few words and where to look for the fix.
    """
    measured = [(getattr(r.energy, f"{kind}_energy_j"), getattr(r.energy, f"{kind}_energy_method"))
                for r in records if getattr(r.energy, f"{kind}_energy_j") is not None]
    if not measured:
        if energy is None or not records:
            return f"{kind} not measured"
        if energy.choice.chosen(kind) == "none":
            why = energy.choice.brief(kind)
        else:
            reason = next((getattr(r.energy, f"{kind}_energy_reason") for r in records
                           if getattr(r.energy, f"{kind}_energy_reason")), None) or "no reason given"
            why = f"{energy.choice.chosen(kind)} gave nothing: {reason.rstrip('.')}"
            why = why if len(why) <= BRIEF_CHARS else why[: BRIEF_CHARS - 1] + "…"
        return f"{kind} not measured ({why}; run `mutation.py doctor`)"
    total_j = sum(joules for joules, _ in measured)
    amount = f"{total_j / 1000:.4g} kJ" if total_j >= 1000 else f"{total_j:.4g} J"
    methods = ", ".join(sorted({method for _, method in measured}))
    missing = len(records) - len(measured)
    return f"{kind} {amount} ({methods})" + (f", {missing} trial(s) not measured" if missing else "")


def carbon_total(records: Sequence[Record]) -> str | None:
    """`co2e: 12.3 g at 381 g/kWh (source); cost: 0.0042 EUR` over the trials that have it; None when
    the settings gave no carbon intensity or price (every row then says so)."""
    with_co2e = [r.energy for r in records if r.energy.co2e_g is not None]
    with_cost = [r.energy for r in records if r.energy.cost is not None]
    if not with_co2e and not with_cost:
        return None
    parts = []
    if with_co2e:
        grams = sum(fields.co2e_g or 0.0 for fields in with_co2e)
        first = with_co2e[0]
        amount = f"{grams / 1000:.4g} kg" if grams >= 1000 else f"{grams:.4g} g"
        missing = len(records) - len(with_co2e)
        parts.append(f"co2e: {amount} at {first.co2e_g_per_kwh:g} g/kWh ({first.co2e_source})"
                     + (f", {missing} trial(s) without" if missing else ""))
    if with_cost:
        parts.append(f"cost: {sum(fields.cost or 0.0 for fields in with_cost):.4g} {with_cost[0].cost_currency or ''}"
                     .rstrip())
    return "; ".join(parts)
