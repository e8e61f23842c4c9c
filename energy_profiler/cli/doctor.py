"""`doctor [FILE]`: every energy backend, whether it works here, why not, and the fix.

It runs the very selection a campaign runs (`choose`) and prints the same lines the campaign's
header prints, so the two cannot disagree; it exits 2 when a campaign with these settings would
not start, so it can serve as a pre-flight check in scripts.
"""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path

import click

from energy_profiler.cli.context import (
    AppContext,
    cleanup_command,
    energy_options,
    energy_problem_source,
    global_options,
    settings_and_plan,
    startable_issues,
)
from energy_profiler.cli.knobs_view import doctor_lines
from energy_profiler.cli.slurm_run import slurm_accepts
from energy_profiler.cli.tables import fitted, format_table, terminal_width
from energy_profiler.config.energy_settings import EnergySettings
from energy_profiler.config.errors import ConfigError
from energy_profiler.config.executor import LOCAL, Executor, SlurmOptions
from energy_profiler.energy.advice import advice
from energy_profiler.energy.selection import (
    CPU_CHAIN,
    GPU_CHAIN,
    EnergySetupError,
    Hardware,
    choose,
    probe,
)
from energy_profiler.errors import ExitCode, ended
from energy_profiler.execution.knob_keeper import check_on_machine
from energy_profiler.execution.slurm_jobs import SlurmError, describe_cluster
from energy_profiler.process.ledger import left_changed
from energy_profiler.system.gpu_knobs import KnobError

REASON_INDENT = "    "
"""A folded sentence's continuation, deeper than the two spaces a problem line starts with."""


@click.command("doctor")
@click.argument("settings_file", required=False, type=click.Path(path_type=Path, readable=False))
@global_options
@energy_options
def doctor_command(settings_file: Path | None) -> None:
    """Check every energy backend on this machine and say which a campaign would use.

    With SETTINGS_FILE, its `energy` block (and any command-line override) is what is checked.
    Exits 2 when a campaign with these settings would not start.
    """
    app = click.get_current_context().ensure_object(AppContext)
    settings = EnergySettings()
    executor: Executor = LOCAL
    cannot_start: list[str] = []
    if settings_file is not None:
        registry = app.registry()
        loaded, plan = settings_and_plan(app, registry, settings_file)
        settings, executor = loaded.energy, loaded.executor
        cannot_start = [str(issue) for issue in startable_issues(loaded, registry, plan)]
        if isinstance(executor, SlurmOptions):  # the check `run` makes before it writes anything
            try:
                slurm_accepts(executor, plan)
            except SlurmError as error:
                cannot_start.append(f"{settings_file}: executor slurm: {error}")
        try:  # the check `run` makes of the knobs the plan sets, before the first trial
            check_on_machine(plan, loaded)
        except (KnobError, ConfigError) as error:
            cannot_start += list(error.messages)
    settings = replace(settings, **app.energy_overrides)
    hardware = Hardware()
    problems: list[str] = []
    try:
        choice = choose(settings, hardware)
    except EnergySetupError as error:
        # A problem of a value the command line gave names that option, as `run` says it.
        choice, problems = error.choice, [energy_problem_source(problem, settings_file, app.energy_overrides)
                                          for problem in error.problems]
    rows: list[list[object]] = []
    for kind, chain in (("cpu", CPU_CHAIN), ("gpu", GPU_CHAIN)):
        for name in chain:
            # What the campaign's selection found, and a look at the backends it did not need to try.
            availability = choice.probed.get(name) or probe(name, settings, hardware)
            rows.append([kind, name, "yes" if availability.available else "no", availability.reason])
            if availability.fix and not availability.available:
                rows.append([" ", " ", " ", f"fix: {availability.fix}"])  # a continuation, not missing values
    width = terminal_width()
    if first := advice(choice, hardware):  # the fix that works here before the list of every backend's
        for line in first:
            click.echo(fitted(line, width, REASON_INDENT))
        click.echo("")
    click.echo(format_table(["device", "backend", "usable", "why"], rows, width))
    click.echo("")
    knob_rows = [[name, "yes" if why is None else "no", why or ("root, and the driver answers its limits"
                                                               if name.startswith("gpu") else "cpufreq files writable")]
                 for name, why in doctor_lines()]
    click.echo(format_table(["system knob", "settable", "why"], knob_rows, width))
    for line in left_changed(app.results_dir):
        click.echo(fitted(f"warning: {line}; to write it back: {cleanup_command(app.results_dir)}", width,
                          REASON_INDENT))
    click.echo("")
    for line in choice.describe():
        click.echo(fitted(line, width, REASON_INDENT))
    if isinstance(executor, SlurmOptions):  # Slurm's state matters only to a campaign that uses it
        for line in describe_cluster():
            click.echo(fitted(line, width, REASON_INDENT))
        # what each trial's job would be submitted with
        arguments = " ".join(shlex.quote(argument) for argument in executor.sbatch_options(None))
        click.echo(fitted(f"the trials would be submitted as one job array: sbatch --array=INDICES%"
                          f"{executor.max_parallel} {arguments} RUN_DIR/slurm/array_1.sh (task N runs trial N's "
                          "slurm_job.sh; its node chooses the energy backends: the lines above are this machine's)",
                          width, REASON_INDENT))
    problems += cannot_start
    if problems:
        click.echo("a campaign with these settings would not start:")
        for problem in problems:
            click.echo(fitted(f"  {problem}", width, REASON_INDENT))
        raise ended(ExitCode.REFUSED)
    click.echo(f"a campaign would use: cpu={choice.cpu}, gpu={choice.gpu}")

