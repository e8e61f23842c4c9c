"""What every command shares: global options, loading the registry and settings, error output."""

from __future__ import annotations

import json
import math
import os
import secrets
import shlex
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from energy_profiler.config.errors import ConfigError, ConfigIssue, file_error
from energy_profiler.config.executor import SlurmOptions
from energy_profiler.config.registry import Registry, load_registry
from energy_profiler.config.settings import Settings, SettingsError, load_settings
from energy_profiler.config.validation import issue_sort_key, load_schema
from energy_profiler.planning.history import History, load_history
from energy_profiler.planning.plan import Plan, build_plan
from energy_profiler.process.startable import plan_problems
from energy_profiler.results.global_table import GLOBAL_TABLE
from energy_profiler.system.sudo import invoking_user

F = TypeVar("F", bound=Callable[..., Any])


REGISTRY_VARIABLE = "MUTATION_REGISTRY"
RESULTS_VARIABLE = "MUTATION_RESULTS"


def default_registry(base: Path | None = None) -> Path:
    """$MUTATION_REGISTRY, else `repos/models.json` of `base` (the working folder by default)."""
    return Path(os.environ.get(REGISTRY_VARIABLE) or (base or Path.cwd()) / "repos" / "models.json")


def default_results(base: Path | None = None) -> Path:
    """$MUTATION_RESULTS, else `results/` of `base` (the working folder by default)."""
    return Path(os.environ.get(RESULTS_VARIABLE) or (base or Path.cwd()) / "results")


@dataclass
class AppContext:
    """Global options, settable before or after the command name.

    The defaults are the working folder's `repos/models.json` and `results/` (or the environment's
    MUTATION_REGISTRY and MUTATION_RESULTS): an installed `mutation` command works in whatever
    project it is run in, and never writes inside its own package. `mutation.py` of a checkout
    passes the checkout as the base instead, as the tool always did.
    """

    results_dir: Path = field(default_factory=default_results)
    registry_file: Path = field(default_factory=default_registry)
    registry_given: bool = False
    """--registry was named on the command line (a resume then compares it with the recorded one)."""
    quiet: bool = False
    verbose: bool = False
    energy_overrides: dict[str, Any] = field(default_factory=dict)
    """Energy settings given on the command line; they override the settings file's `energy`."""
    detach: bool = False
    """`run --detach`: submit a Slurm campaign's jobs and exit."""
    governor: str | None = None
    """`-g/--governor`: the CPU governor for this campaign, over the settings file's `governor`."""
    executor: str | None = None
    """`run --executor local|slurm`, over the settings file's `executor`."""
    project: Path | None = None
    """The checkout whose mutation.py runs (None for the installed command): where its .venv is."""
    budget: dict[str, float] = field(default_factory=dict)
    """`run --budget-*`: limits over the settings' `budget` (by its key)."""

    def registry(self) -> Registry:
        if not self.registry_file.exists():
            if self.registry_given:  # the user named it: where else to look is not the news
                raise file_error(str(self.registry_file), "file not found (given with --registry)")
            raise file_error(str(self.registry_file), "file not found: run in a project folder that has "
                                                      f"repos/models.json, or name the registry with --registry "
                                                      f"FILE or {REGISTRY_VARIABLE}")
        return load_registry(self.registry_file)

    def info(self, message: str) -> None:
        if not self.quiet:
            click.echo(message)

    def detail(self, message: str) -> None:
        if self.verbose and not self.quiet:
            click.echo(message)


def global_options(function: F) -> F:
    """Add --results-dir, --registry, -q, -v; a value given here overrides the group's."""

    @click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="Where run folders are written [default: $MUTATION_RESULTS, else ./results].")
    @click.option("--registry", "-c", "--config", "registry_file", type=click.Path(path_type=Path, readable=False),
                  default=None, help="The repository registry [default: $MUTATION_REGISTRY, else "
                                     "./repos/models.json]; -c/--config as the older tool spelt it.")
    @click.option("-q", "--quiet", is_flag=True, default=None, help="Only results and errors; no training output.")
    @click.option("-v", "--verbose", is_flag=True, default=None, help="Also the exact command lines and details.")
    @wraps(function)
    def wrapper(*args: Any, results_dir: Path | None, registry_file: Path | None,
                quiet: bool | None, verbose: bool | None, **kwargs: Any) -> Any:
        app = click.get_current_context().ensure_object(AppContext)
        if results_dir is not None:
            app.results_dir = results_dir
        if registry_file is not None:
            app.registry_file = registry_file
            app.registry_given = True
        if quiet:
            app.quiet = True
        if verbose:
            app.verbose = True
        return function(*args, **kwargs)

    return cast(F, wrapper)  # the wrapper takes the extra options click adds


def resolve_seed(settings: Settings) -> int:
    """The settings' seed, or a fresh one (recorded in plan.json and printed)."""
    return settings.seed if settings.seed is not None else secrets.randbelow(2**31)


def load_and_plan(app: AppContext, settings_file: Path) -> tuple[Registry, Settings, Plan]:
    """Registry, settings and plan; ConfigError with every problem found."""
    registry = app.registry()
    settings, plan = settings_and_plan(app, registry, settings_file)
    return registry, settings, plan


def settings_and_plan(app: AppContext, registry: Registry, settings_file: Path) -> tuple[Settings, Plan]:
    """The file's settings and plan; ConfigError with every problem in one pass: the file's own, and
    the plan's (space sizes, history) for each experiment whose own structure is sound."""
    try:
        settings = load_settings(settings_file, registry)
    except SettingsError as error:
        issues = list(error.issues)
        if error.partial is not None:
            try:
                _plan(app, registry, error.partial)
            except ConfigError as planning:
                issues.extend(planning.issues)
        raise ConfigError(sorted(issues, key=lambda issue: issue_sort_key(issue.path))) from None
    return settings, _plan(app, registry, settings)


def checked_plan(app: AppContext, registry: Registry, settings_file: Path) -> tuple[Plan | None, list[ConfigIssue]]:
    """What `validate` says of one file: its plan, or every problem `run` would refuse it for."""
    try:
        settings, plan = settings_and_plan(app, registry, settings_file)
    except ConfigError as error:
        return None, list(error.issues)
    if startable := startable_issues(settings, registry, plan):
        return None, startable
    return plan, []


def _plan(app: AppContext, registry: Registry, settings: Settings) -> Plan:
    return build_plan(settings, registry, resolve_seed(settings), history=history_for(settings, registry, app))


def startable_issues(settings: Settings, registry: Registry, plan: Plan) -> list[ConfigIssue]:
    """A training of the plan that could not even be started (every trial and retry would fail at
    once), as an issue of the registry's command; none for Slurm, whose nodes start the trainings."""
    if isinstance(settings.executor, SlurmOptions):
        return []
    run_as = None if settings.run_as_root else invoking_user()
    uid, gids = (run_as.uid, run_as.popen_options()["extra_groups"]) if run_as else (None, ())
    models: dict[tuple[str, str], list[str]] = {}  # one issue per repository and problem, naming its models
    for repo, model, problem in plan_problems(plan.trials, uid, gids):
        models.setdefault((repo, problem), []).append(model)
    return [ConfigIssue(str(registry.file), ("repositories", repo, "command"),
                        f"{', '.join(f'{repo}/{model}' for model in names)} of {settings.file} cannot be started: "
                        f"{problem}")
            for (repo, problem), names in models.items()]


def history_for(settings: Settings, registry: Registry, app: AppContext) -> History | None:
    """The measurements the settings' `dedup` points at (`true`: the results folder's global table);
    without dedup, the global table when an experiment tops up to `runs_total` (counted, never skipped)."""
    topping_up = any(experiment.runs_total is not None for experiment in settings.experiments)
    if settings.dedup is False and not topping_up:
        return None
    # runs_total counts in the history dedup reads, else in the results folder's global table.
    files = [Path(f) for f in settings.dedup] if isinstance(settings.dedup, tuple) else [app.results_dir / GLOBAL_TABLE]
    history = load_history(files, registry, dedup=settings.dedup is not False)
    if not history.dedup:
        return history
    # A table that compares with nothing would silently dedup against nothing: an error, at its path.
    paths = {table_file: ("dedup",) if settings.dedup is True else ("dedup", "history", index)
             for index, table_file in enumerate(str(f) for f in files)}
    issues = [ConfigIssue(str(settings.file), paths[table.file], f"{table.file}: {reason}")
              for table in history.tables if (reason := table.useless())]
    if issues:
        raise ConfigError(issues)
    return history


def forecast_history(settings: Settings, registry: Registry, results_dir: Path) -> History:
    """What a forecast learns from: the results folder's global table and the settings' dedup tables,
    read for their successful trials only (nothing is skipped because of them)."""
    tables = settings.dedup if isinstance(settings.dedup, tuple) else ()
    files = [results_dir / GLOBAL_TABLE, *(Path(table) for table in tables)]
    return load_history(list(dict.fromkeys(files)), registry, dedup=False)


def cooldown_in(results_dir: Path) -> Callable[[str], float | None]:
    """The cool-down a run folder of `results_dir` ran with (its settings.json), None where unknown."""

    def cooldown(run_id: str) -> float | None:
        try:
            document = json.loads((results_dir / run_id / "settings.json").read_text(encoding="utf-8"))
            return float(document.get("cooldown_s", 0))
        except (OSError, ValueError, TypeError, AttributeError):
            return None

    return cooldown


class FiniteRange(click.FloatRange):
    """A FloatRange that also refuses nan (which compares false with any bound, so passes FloatRange)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def _energy_maximum(key: str) -> float | None:
    """The schema's bound for `energy.<key>`, so the command line accepts what a file may hold."""
    maximum: float | None = load_schema("settings")["$defs"]["energy"]["properties"][key].get("maximum")
    return maximum


ENERGY_FLAGS = {"cpu": "--cpu-energy", "gpu": "--gpu-energy", "interval_s": "--interval-s",
                "gpu_interval_s": "--gpu-interval-s", "baseline_s": "--baseline-s",
                "background_baseline_s": "--background-baseline-s", "require": "--require", "cpu_tdp_w": "--cpu-tdp-w"}
"""Each energy override's key in `energy_overrides` (and the settings' `energy`) and its option."""


def energy_arguments(overrides: dict[str, Any]) -> list[str]:
    """The energy options that give `overrides` again: how a Slurm job gets the submitter's command line.

    A float is written as its shortest exact form (`5.12`, never `5.1200000000000001`)."""
    arguments: list[str] = []
    for name, value in overrides.items():
        for item in value if name == "require" else (value,):
            arguments += [ENERGY_FLAGS[name], option_text(item)]
    return arguments


def option_text(value: object) -> str:
    """An option's value as the command line gives it; a float in its shortest form that reads back exactly."""
    return repr(value).removesuffix(".0") if isinstance(value, float) else str(value)


def cleanup_command(results_root: Path) -> str:
    """The command that ends what dead campaigns of `results_root` left running and writes back what they changed."""
    return shlex.join([*invocation(), "--results-dir", str(results_root.absolute()), "cleanup"])


def invocation() -> list[str]:
    """The words that start this tool as it was started, for a command the user is told to paste:
    `/path/.venv/bin/python /path/mutation.py` (absolute, so it works from any folder, with the
    interpreter that has the dependencies), `mutation` when installed, `sudo` first under sudo."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("mutation.py")
    if script.name == "mutation.py" and script.exists():
        words = [sys.executable, str(script.resolve())]
    elif script.name == "mutation":
        words = ["mutation"]
    elif script.name == "__main__.py" and script.parent.name == "energy_profiler":
        words = [sys.executable, "-m", "energy_profiler"]
    else:
        words = ["mutation.py"]  # started some other way (a test runner): the plain name
    return (["sudo"] if os.environ.get("SUDO_UID") and os.geteuid() == 0 else []) + words


def energy_options(function: F) -> F:
    """Command-line overrides of the settings' `energy` block."""
    def seconds(key: str, low: float) -> FiniteRange:
        return FiniteRange(min=low, max=_energy_maximum(key))

    def flag(name: str, **attributes: Any) -> Callable[[F], F]:
        return click.option(ENERGY_FLAGS[name], name, **attributes)

    options = [
        flag("cpu", type=click.Choice(["auto", "rapl", "perf", "estimate", "none"]),
               help="CPU energy method [default: the settings', else auto]."),
        flag("gpu", type=click.Choice(["auto", "nvml", "nvidia_smi", "none"]),
               help="GPU energy method [default: the settings', else auto]."),
        flag("interval_s", type=seconds("interval_s", 0.001), help="CPU sampling interval."),
        flag("gpu_interval_s", type=seconds("gpu_interval_s", 0.01), help="GPU sampling interval."),
        flag("baseline_s", type=seconds("baseline_s", 0), help="Idle baseline duration."),
        flag("background_baseline_s", type=seconds("background_baseline_s", 0),
               help="Parallel trials: seconds of power with only the backgrounds running."),
        flag("require", type=click.Choice(["cpu", "gpu"]), multiple=True,
               help="Refuse to start unless this is measured (repeatable)."),
        flag("cpu_tdp_w", type=FiniteRange(min=0, min_open=True, max=_energy_maximum("cpu_tdp_w")),
               help="CPU TDP in watts, for the estimate method."),
    ]

    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        app = click.get_current_context().ensure_object(AppContext)
        for name in ENERGY_FLAGS:
            value = kwargs.pop(name)
            if value not in (None, ()):
                app.energy_overrides[name] = tuple(value) if name == "require" else value
        return function(*args, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return cast(F, wrapper)


def energy_problem_source(problem: str, source: Path | None, given: Mapping[str, Any]) -> str:
    """`--cpu-energy rapl: ...` for a problem of a command-line value, else `FILE: energy.cpu: ...`."""
    key, _, message = problem.partition(": ")
    name = key.removeprefix("energy.")
    if name not in given:
        return f"{source}: {problem}" if source is not None else problem
    values = given[name] if isinstance(given[name], tuple) else (given[name],)
    return f"{' '.join(f'{ENERGY_FLAGS[name]} {value}' for value in values)}: {message}"
