"""`run FILE` (and `-ec FILE`, `-r REPO -m MODEL ...`): execute a campaign and print its outcome."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from energy_profiler.cli.closing import print_outcome
from energy_profiler.cli.context import (
    AppContext,
    FiniteRange,
    cooldown_in,
    energy_options,
    energy_problem_source,
    forecast_history,
    global_options,
    invocation,
    load_and_plan,
    resolve_seed,
    startable_issues,
)
from energy_profiler.cli.display import LiveProgress, PlainStream, timestamped
from energy_profiler.cli.plan_cmd import forecast_lines
from energy_profiler.cli.resume import RunOptions, options_notes, resume_hint, resume_run
from energy_profiler.cli.signals import stop_on_signals
from energy_profiler.config.budget import Budget, budget_settings
from energy_profiler.config.energy_settings import EnergySettings
from energy_profiler.config.errors import ConfigError
from energy_profiler.config.executor import LOCAL, SlurmOptions
from energy_profiler.config.registry import Registry
from energy_profiler.config.settings import Settings, settings_from_document
from energy_profiler.energy.perf import PerfSpare
from energy_profiler.energy.recorder import EnergyPlan
from energy_profiler.energy.selection import EnergySetupError, Hardware, choose
from energy_profiler.errors import ExitCode, ToolExit
from energy_profiler.execution.knob_keeper import check_on_machine, trial_knobs
from energy_profiler.execution.run_folder import finished_records
from energy_profiler.execution.runtime import Output, StopRequest
from energy_profiler.execution.session import run_session
from energy_profiler.fs import NO_ROOM
from energy_profiler.planning.forecast import between_trials_s, predict
from energy_profiler.planning.plan import Plan, build_plan
from energy_profiler.results.global_table import GLOBAL_TABLE, foreign_table
from energy_profiler.results.rundir import run_dirs
from energy_profiler.system import governor
from energy_profiler.system.gpu_knobs import KnobError


@click.command("run")
@click.argument("settings_file", type=click.Path(path_type=Path, readable=False))
@click.option("--resume", is_flag=False, flag_value="", default=None, metavar="[RUN_DIR]",
              help="Continue an interrupted campaign: RUN_DIR, or the latest run folder made from SETTINGS_FILE.")
@click.option("--executor", type=click.Choice(["local", "slurm"]), default=None,
              help="Where the trials run, over the settings' `executor`: here, or each as an exclusive Slurm job.")
@click.option("--detach", is_flag=True,
              help="Slurm: submit the trials and exit; `status RUN_DIR` shows them, `--resume` writes their rows.")
@click.option("--budget-wall-h", type=FiniteRange(min=0, min_open=True), default=None,
              help="Over the settings' budget.wall_h: stop scheduling before the campaign's wall time would pass it.")
@click.option("--budget-energy-kwh", type=FiniteRange(min=0, min_open=True), default=None,
              help="Over the settings' budget.energy_kwh.")
@click.option("--budget-co2e-kg", type=FiniteRange(min=0, min_open=True), default=None,
              help="Over the settings' budget.co2e_kg (needs carbon in the settings).")
@click.option("--override-options", is_flag=True,
              help="With --resume: options given here replace those the run folder started with (else a "
                   "difference is refused).")
@global_options
@energy_options
def run_command(settings_file: Path, *, resume: str | None, executor: str | None, detach: bool,
                override_options: bool, budget_wall_h: float | None, budget_energy_kwh: float | None,
                budget_co2e_kg: float | None) -> None:
    """Run every experiment of SETTINGS_FILE (the same as `-ec SETTINGS_FILE`)."""
    app = click.get_current_context().ensure_object(AppContext)
    app.budget = {name: value for name, value in (("wall_h", budget_wall_h), ("energy_kwh", budget_energy_kwh),
                                                  ("co2e_kg", budget_co2e_kg)) if value is not None}
    app.executor = executor
    app.detach = detach
    if resume is None:
        if override_options:
            raise click.UsageError("--override-options is for --resume: a new campaign takes the options it is given")
        run_settings_file(app, settings_file)
    else:
        resume_run(app, settings_file, resume or None, override=override_options, execute=execute)


def run_settings_file(app: AppContext, settings_file: Path) -> None:
    registry, settings, plan = load_and_plan(app, settings_file)
    execute(app, registry, settings, plan, settings_bytes=settings_file.read_bytes(), settings_file=settings_file)


def run_ad_hoc(app: AppContext, *, repo: str, model: str, mutate: str, runs: int,
               max_retries: int, seed: int | None) -> None:
    """One mutation experiment from the command line, checked exactly like a settings file."""
    document: dict[str, Any] = {
        "experiment_name": f"adhoc_{repo}_{model}".replace("/", "_"),
        "max_retries": max_retries,
        "experiments": [{"mode": "mutation", "repo": repo, "model": model,
                         "mutate": [name.strip() for name in mutate.split(",") if name.strip()],
                         "runs_per_config": runs}],
    }
    if seed is not None:
        document["seed"] = seed
    registry = app.registry()
    settings = settings_from_document(document, Path("<command line>"), registry)
    plan = build_plan(settings, registry, resolve_seed(settings))
    execute(app, registry, settings, plan, settings_bytes=None)


def execute(app: AppContext, registry: Registry, settings: Settings, plan: Plan, *,
            settings_bytes: bytes | None, resume_dir: Path | None = None, settings_file: Path | None = None,
            options: RunOptions | None = None) -> None:
    """Run the session with signal handling, print the outcome, and exit with its code.

    `settings_file` is the file the user named (the resume line names it again); `options` are
    those a resumed run folder runs with (else this command line's, recorded in plan.json).
    """
    if not plan.trials and resume_dir is None:  # every experiment's runs_total is in the history already
        for line in plan.lines():
            app.info(line)
        click.echo(f"nothing to run: {settings.file} plans no trial (no run folder made)")  # also under -q
        return
    options = options or RunOptions.of(app)
    settings_file = settings_file or settings.file
    settings = with_budget(settings, settings_file, app.budget, resumed=resume_dir is not None)
    # A resumed run writes its rows to the results folder it is in, whatever --results-dir says now.
    results_root = resume_dir.parent if resume_dir is not None else app.results_dir
    if foreign := foreign_table(results_root / GLOBAL_TABLE):  # before anything is started or written
        raise ToolExit(foreign)
    executor = settings.executor if app.executor is None else LOCAL if app.executor == LOCAL else \
        settings.executor if isinstance(settings.executor, SlurmOptions) else SlurmOptions()
    if isinstance(executor, SlurmOptions) and (knobs := sorted({name for trial in plan.trials
                                                                 for name in trial_knobs(trial)})):
        raise ToolExit(f"{settings.file}: {', '.join(knobs)}: system knobs, which a Slurm campaign cannot set on its "
                       "nodes; run it with --executor local")
    if isinstance(executor, SlurmOptions):  # the nodes prepare themselves: governor and energy are theirs
        from energy_profiler.cli.slurm_run import execute_on_slurm  # noqa: PLC0415 - it imports this module

        execute_on_slurm(app, registry, settings, plan, executor, settings_bytes=settings_bytes, resume_dir=resume_dir,
                         detach=app.detach, settings_file=settings_file, run_options=options,
                         results_root=results_root)
        return
    if app.detach:
        raise ToolExit(f"{settings.file}: --detach is for the Slurm executor (a local campaign runs in this "
                       "process: run it in tmux or screen)")
    if app.governor is not None:
        settings = replace(settings, governor=app.governor)
    if settings.governor is not None:
        try:
            governor.check(governor.cpufreq_root(), settings.governor)
        except governor.GovernorError as error:
            given = f"-g/--governor {app.governor}" if app.governor is not None else f"{settings.file}: governor"
            fix = ("" if app.governor is not None else
                   "; to run with the governor as it is, remove \"governor\" from the settings file")
            raise governor.GovernorError(f"{given}: {error}{fix}") from None
    _check_startable(settings, registry, plan)
    check_on_machine(plan, settings)  # every knob settable here, to every value planned; nothing changed yet
    energy = energy_plan(replace(settings.energy, **app.energy_overrides), settings.file, app.energy_overrides)
    stop = StopRequest()
    output = _output(app)
    # A resume forecasts what is left to run, not the trials recorded already.
    recorded = finished_records(resume_dir, plan) if resume_dir is not None else {}
    left = replace(plan, trials=tuple(trial for trial in plan.trials if trial.name not in recorded))
    forecast, predicted = _forecast(results_root, registry, settings, left)
    earlier = set(run_dirs(results_root))  # a full disk: the resume line names the folder this campaign made
    with stop_on_signals(stop):
        try:
            result = run_session(settings, registry, plan, results_root=results_root, output=output, stop=stop,
                                 settings_bytes=settings_bytes, energy=energy, resume_dir=resume_dir,
                                 options=options.to_json(), notes=[*options_notes(options, resume_dir), *forecast],
                                 forecast=predicted)
        except OSError as error:
            if error.errno not in NO_ROOM:
                raise
            # Everything was ended and restored on the way out; the rows written are whole.
            full = error.filename or results_root
            made = [folder for folder in run_dirs(results_root) if folder not in earlier]
            run_dir = resume_dir or (made[-1] if made else None)
            resume = resume_hint(settings_file, run_dir, options) if run_dir else \
                shlex.join([*invocation(), "run", str(settings_file)])
            raise ToolExit(f"{full}: {error.strerror}: the campaign stopped. The trials recorded so far are intact; "
                           "free space (or make the folder writable), then continue with:", details=[resume],
                           exit_code=ExitCode.FAILED) from None
        except governor.GovernorError as error:  # checked above, yet refused now: every CPU was restored
            raise ToolExit(f"{error} (every CPU's previous governor was written back)",
                           exit_code=ExitCode.FAILED) from None
        except KnobError as error:  # checked above, yet refused now: what was changed was written back
            raise ToolExit(*error.messages, details=["the campaign stopped; the trials recorded so far are intact, "
                                                     "and the knobs changed were written back"],
                           exit_code=ExitCode.FAILED) from None
        finally:
            output.progress.close()
    print_outcome(result, registry, resume_hint(settings_file, result.run_dir, options))


def _check_startable(settings: Settings, registry: Registry, plan: Plan) -> None:
    """Exit 2, before anything is written, when a training of the plan could not even be started."""
    if issues := startable_issues(settings, registry, plan):
        raise ConfigError(issues)


def _output(app: AppContext) -> Output:
    """A live panel in a terminal; plain timestamped lines without control characters elsewhere."""
    if app.quiet:
        return Output(say=lambda _: None, detail=lambda _: None, training=None)
    if sys.stdout.isatty():
        live = LiveProgress(Console())
        return Output(say=live.say, detail=live.say if app.verbose else lambda _: None, training=None,
                      progress=live)
    say = timestamped(click.echo)
    return Output(say=say, detail=say if app.verbose else lambda _: None,
                  training=PlainStream(sys.stdout.buffer))


def energy_plan(settings: EnergySettings, source: Path, given: Mapping[str, Any] | None = None) -> EnergyPlan:
    """The backends this campaign will use, or exit 2 (nothing written) if the settings cannot be met.

    A problem with a value the command line gave (`given`, as energy overrides) names that option,
    not the settings file, which does not hold it.
    """
    hardware = Hardware()
    try:
        choice = choose(settings, hardware)
    except EnergySetupError as error:
        raise ToolExit(*(energy_problem_source(problem, source, given or {}) for problem in error.problems)) from None
    spare = PerfSpare(hardware.perf, hardware.perf_events) if choice.cpu == "perf" else None
    return EnergyPlan(choice=choice, settings=settings, hardware=hardware, perf_spare=spare)


def _forecast(results_root: Path, registry: Registry, settings: Settings,
              plan: Plan) -> tuple[list[str], dict[str, tuple[float | None, float | None]]]:
    """The plan's forecast total for the campaign's header (as `plan` prints it), and each trial's
    forecast duration and energy (for the time left and the budget)."""
    history = forecast_history(settings, registry, results_root)  # a resume's: its own results folder
    predictions = [predict(trial, history, registry) for trial in plan.trials]
    return (forecast_lines(predictions, settings, between_trials_s(history, cooldown_in(results_root))),
            {trial.name: (prediction.duration_s, prediction.energy_j)
             for trial, prediction in zip(plan.trials, predictions, strict=True)})


def with_budget(settings: Settings, settings_file: Path, given: Mapping[str, float], *, resumed: bool) -> Settings:
    """The settings with the budget in force: a resume takes the named settings file's `budget` (raised
    there to continue: the run folder's own copy holds the old one), and the command line's over it."""
    budget = settings.budget
    if resumed and settings_file.is_file():
        try:
            document = json.loads(settings_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            document = None
        named = budget_settings(document.get("budget")) if isinstance(document, dict) else None
        if named is not None and named != budget:
            shown = ", ".join(f"{name} {value:g}" for name, value in named.limits().items())
            click.echo(f"note: the budget of {settings_file} is the one in force: {shown}", err=True)
            budget = named
    if given:
        budget = replace(budget or Budget(), **given)
    if budget is not None and budget.co2e_kg is not None and (settings.carbon is None or
                                                               settings.carbon.g_per_kwh is None):
        raise ToolExit(f"{settings.file}: a CO2e budget needs a carbon intensity (carbon.region or carbon.g_per_kwh)")
    return replace(settings, budget=budget)
