"""Experiment settings files: schema validation, registry cross-checks, typed frozen objects.

`load_settings` either returns a `Settings` that every later stage can trust, or raises a
ConfigError listing every problem with its JSON path. Nothing is started or written here.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from energy_profiler.config.budget import Budget, budget_issues, budget_settings
from energy_profiler.config.carbon import CarbonSettings, carbon_issues, carbon_settings
from energy_profiler.config.energy_settings import EnergySettings, energy_settings
from energy_profiler.config.errors import ConfigError, ConfigIssue, broken_under, did_you_mean, suggest_name
from energy_profiler.config.executor import LOCAL, Executor, executor_from_document
from energy_profiler.config.hyperparams import HyperparameterSpec
from energy_profiler.config.json_file import StructureError, read_json
from energy_profiler.config.knob_checks import knob_issues
from energy_profiler.config.older_format import older_project_above, older_settings_markers
from energy_profiler.config.registry import Registry
from energy_profiler.config.validation import issue_sort_key, load_schema, schema_issues
from energy_profiler.config.workload_bounds import check_ranges, with_limits
from energy_profiler.model.values import format_value

Mode = Literal["default", "mutation", "parallel"]
MUTATE_ALL = "all"
DEFAULT_GRACE_S = 10.0
DEFAULT_KNOB_SETTLE_S = 1.0
"""Not measured on a GPU yet (no device was lent): see docs/energy.md."""
DEFAULT_STOP_AFTER_START_FAILURES = 3


@dataclass(frozen=True)
class Workload:
    """One training process of an experiment: what to run and with which fixed values."""

    repo: str
    model: str
    fixed: Mapping[str, str]
    """Fixed hyperparameter values given in the settings, as canonical strings."""
    env: Mapping[str, str]
    """Environment for the training: the settings' `env`, plus CUDA_VISIBLE_DEVICES from `gpus`."""
    gpu_memory_mib: float | None
    """GPU memory it needs (settings, else registry), or None if unknown."""
    restart_delay_s: float = 0.0
    """Background workloads only: the pause between two runs of the loop."""
    ranges: Mapping[str, HyperparameterSpec] = field(default_factory=dict)
    """Mutated hyperparameters whose draws this campaign narrows (settings `ranges`), as narrowed specs."""


@dataclass(frozen=True)
class Experiment:
    """One entry of `experiments`, checked against the registry.

    In parallel mode the measured training is the foreground (its fields are the ones here), and
    `background` lists the workloads looping beside it.
    """

    index: int
    mode: Mode
    foreground: Workload
    mutate: tuple[str, ...]
    """Hyperparameters of the foreground to draw (`all` already expanded); empty for fixed values."""
    runs: int
    timeout_s: float | None
    background: tuple[Workload, ...] = ()
    warmup_s: float = 0.0
    seeds_left_out: tuple[str, ...] = ()
    """Seeds (`"seed": true` in the registry) that `mutate: ["all"]` did not draw."""
    knobs_left_out: tuple[str, ...] = ()
    """System knobs that `mutate: ["all"]` did not draw (name them beside it to draw them)."""
    runs_total: int | None = None
    """Top up to this many successful runs (`runs_total`): the plan runs it minus those the history holds."""

    @property
    def repo(self) -> str:
        return self.foreground.repo

    @property
    def model(self) -> str:
        return self.foreground.model

    @property
    def fixed(self) -> Mapping[str, str]:
        return self.foreground.fixed


@dataclass(frozen=True)
class Settings:
    """A whole settings file, ready to be planned."""

    file: Path
    document: Mapping[str, Any]
    experiment_name: str
    seed: int | None
    max_retries: int
    cooldown_s: float
    grace_s: float
    dedup: bool | tuple[str, ...]
    """True: the global table is the history; a tuple: these tables are; False: no history."""
    run_as_root: bool
    """Under sudo: true runs trainings as root; false (default) as the invoking user."""
    governor: str | None
    """CPU frequency governor to set for the campaign (restored afterwards), or None to leave it."""
    energy: EnergySettings
    experiments: tuple[Experiment, ...]
    executor: Executor = LOCAL
    """Where the trials run: `"local"`, or each as an exclusive Slurm job (SlurmOptions)."""
    stop_after_start_failures: int = DEFAULT_STOP_AFTER_START_FAILURES
    """Trials in a row failing the same way within seconds of starting after which the campaign stops."""
    carbon: CarbonSettings | None = None
    """What a kWh emits and costs (each row's co2e_g and cost), or None when the settings do not say."""
    budget: Budget | None = None
    """Limits the campaign stops scheduling at, or None."""
    knob_settle_s: float = DEFAULT_KNOB_SETTLE_S
    """Seconds waited after a trial's system knobs are set, before its window opens."""


def load_settings(file: Path, registry: Registry) -> Settings:
    """Read a settings file; raise ConfigError with every issue found."""
    try:
        document = read_json(file)
    except StructureError as error:  # the older tool's files repeat keys: say what the file is first
        older_format_pointer(error.document, str(file))
        raise
    try:
        return settings_from_document(document, file, registry)
    except ConfigError:  # a file of the older tool is not to be fixed line by line: it is to be converted
        older_format_pointer(document, str(file))
        raise


def older_format_pointer(document: Any, name: str) -> None:
    """Raise one ConfigError line naming `migrate` when `document` is the older tool's format."""
    project = older_project_above(Path(name))
    if markers := older_settings_markers(document, project):
        command = f"mutation.py migrate settings {shlex.quote(name)} -o settings/"
        whole = (f" (or the whole project: `mutation.py migrate {shlex.quote(str(project))} --to DIR`)"
                 if project else "")
        raise ConfigError([ConfigIssue(name, (), f"is the older tool's settings format ({', '.join(markers)}); "
                                                 f"convert it with `{command}`{whole}", whole_file=True)])


def settings_from_document(document: Any, file: Path, registry: Registry) -> Settings:
    """Check an already-parsed settings document (a file's, or one built for an ad-hoc run).

    Every problem comes in one pass: an experiment the schema finds wrong is still cross-checked
    with the registry wherever its parts are sound (an unknown model beside a `runs_per_config: 0`),
    only the parts the schema already reported are skipped, and only sound experiments are built.
    """
    name = str(file)
    issues = schema_issues(document, "settings", name)
    if not isinstance(document, dict) or not isinstance(document.get("experiments"), list):
        raise ConfigError(issues)  # nothing to check the experiments against
    schema_found = list(issues)
    if not broken_under(schema_found, ("carbon",)):
        issues.extend(carbon_issues(document, name))
    if not broken_under(schema_found, ("budget",)):
        issues.extend(budget_issues(document, name))
    # Top-level problems (an unknown key, a bad type) do not stop the experiments being checked in the
    # same pass, so a file is fixed in one round; only what the experiments inherit is guarded.
    top_level = {issue.path[0] for issue in issues if issue.path and issue.path[0] != "experiments"}
    inherited_ok = not any(broken_under(schema_found, (key,)) for key in ("runs_per_config", "timeout_s"))
    default_runs = document.get("runs_per_config", 1) if inherited_ok else 1
    experiments = []
    for index, entry in enumerate(document["experiments"]):
        if not isinstance(entry, dict):
            continue  # the schema said what it should be
        experiment, entry_issues = _check_experiment(
            index, entry, default_runs=default_runs, document=document, file=name, registry=registry,
            schema_found=schema_found, build=inherited_ok and not broken_under(schema_found, ("experiments", index)))
        issues.extend(entry_issues)
        if experiment is not None:
            experiments.append(experiment)
    if registry.knobs:
        issues.extend(knob_issues(document, name, registry))
    if issues:
        issues.sort(key=lambda issue: issue_sort_key(issue.path[:2]))  # by experiment; in file order within one
        # Keys the schema does not know change nothing the settings hold; any other top-level problem might.
        whole = any(not issue.path or issue.path == ("experiments",) for issue in schema_found if not issue.harmless)
        sound = experiments and not whole and top_level <= set(document) - set(load_schema("settings")["properties"])
        raise SettingsError(issues, _settings(file, document, experiments) if sound else None)
    return _settings(file, document, experiments)


class SettingsError(ConfigError):
    """Every issue of a settings file, and the settings its sound experiments make (None when the file's
    own top level is wrong), so that planning checks those experiments in the same pass."""

    def __init__(self, issues: Sequence[ConfigIssue], partial: Settings | None):
        super().__init__(issues)
        self.partial = partial


def _settings(file: Path, document: dict[str, Any], experiments: list[Experiment]) -> Settings:
    return Settings(
        file=file,
        document=document,
        experiment_name=document["experiment_name"],
        seed=document.get("seed"),
        max_retries=document.get("max_retries", 0),
        cooldown_s=float(document.get("cooldown_s", 0)),
        grace_s=float(document.get("grace_s", DEFAULT_GRACE_S)),
        dedup=_dedup(document.get("dedup", False)),
        run_as_root=bool(document.get("run_as_root", False)),
        governor=document.get("governor"),
        energy=energy_settings(document.get("energy", {})),
        experiments=tuple(experiments),
        executor=executor_from_document(document.get("executor")),
        stop_after_start_failures=document.get("stop_after_start_failures", DEFAULT_STOP_AFTER_START_FAILURES),
        carbon=carbon_settings(document.get("carbon")),
        budget=budget_settings(document.get("budget")),
        knob_settle_s=float(document.get("knob_settle_s", DEFAULT_KNOB_SETTLE_S)),
    )


def _value_kind_issue(value: object, value_type: str) -> str | None:
    """Why a settings value is of the wrong JSON kind for its hyperparameter's type, or None."""
    shown = f"the string {value!r}" if isinstance(value, str) else repr(value).lower()
    if value_type in ("int", "float") and (isinstance(value, bool) or not isinstance(value, int | float)):
        return f"expected a number, got {shown}"
    if value_type == "switch" and not isinstance(value, bool):
        return f"expected true or false (a switch), got {shown}"
    if value_type == "choice" and isinstance(value, bool):
        return f"expected one of the choice's values, got {shown}"
    return None


def _check_experiment(
    index: int, entry: dict[str, Any], *, default_runs: int, document: dict[str, Any], file: str,
    registry: Registry, schema_found: Sequence[ConfigIssue] = (), build: bool = True,
) -> tuple[Experiment | None, list[ConfigIssue]]:
    """The experiment and its cross-check issues; with `build` false (the schema found it wrong) only
    the issues, from the parts `schema_found` did not already report."""
    where = ("experiments", index)
    parallel = entry.get("mode") == "parallel"
    foreground_entry = entry.get("foreground") if parallel else entry
    foreground_where = (*where, "foreground") if parallel else where
    checked = _check_workload(foreground_entry, foreground_where, file, registry, may_mutate=True,
                              schema_found=schema_found)
    issues = list(checked.issues)
    background: list[Workload] = []
    if parallel:
        listed = entry.get("background")
        entries = listed if isinstance(listed, list) else [listed]
        for position, background_entry in enumerate(entries):
            background_where = (*where, "background", position) if isinstance(listed, list) \
                else (*where, "background")
            checked_background = _check_workload(background_entry, background_where, file, registry,
                                                 may_mutate=False, schema_found=schema_found)
            issues.extend(checked_background.issues)
            if checked_background.workload is not None:
                background.append(checked_background.workload)
    if "runs_total" in entry and "runs_per_config" in entry:
        issues.append(ConfigIssue(file, where, "give runs_per_config or runs_total, not both: a number of runs, "
                                               "or the number to top the history up to"))
    if checked.workload is None or issues or not build:
        return None, issues
    foreground_mode = foreground_entry.get("mode", "default") if isinstance(foreground_entry, dict) else "default"
    if foreground_mode == "mutation" and not checked.mutate:
        mutate_where = (*foreground_where, "mutate")
        return None, [ConfigIssue(file, mutate_where, "nothing left to mutate: every hyperparameter is fixed")]
    model = registry.repositories[checked.workload.repo].models[checked.workload.model]
    timeout = entry.get("timeout_s", document.get("timeout_s", model.timeout_s))
    experiment = Experiment(
        index=index,
        mode=entry["mode"],
        foreground=checked.workload,
        mutate=checked.mutate,
        runs=entry.get("runs_per_config", default_runs),
        timeout_s=float(timeout) if timeout is not None else None,
        background=tuple(background),
        warmup_s=float(entry.get("warmup_s", 0.0)),
        seeds_left_out=checked.seeds_left_out,
        knobs_left_out=checked.knobs_left_out,
        runs_total=entry.get("runs_total"),
    )
    return experiment, []


@dataclass(frozen=True)
class _CheckedWorkload:
    workload: Workload | None
    mutate: tuple[str, ...]
    issues: list[ConfigIssue]
    seeds_left_out: tuple[str, ...] = ()
    knobs_left_out: tuple[str, ...] = ()


def _check_workload(entry: Any, where: tuple[str | int, ...], file: str, registry: Registry, *,
                    may_mutate: bool, schema_found: Sequence[ConfigIssue] = ()) -> _CheckedWorkload:
    """Cross-check one workload (an experiment, a foreground or a background) against the registry.

    A part the schema found wrong (in `schema_found`) is not checked again; a workload with such a
    part gets its issues but no Workload.
    """
    def sound(*path: str | int) -> bool:
        return not broken_under(schema_found, (*where, *path))

    if not isinstance(entry, dict) or not isinstance(entry.get("repo"), str) or not sound("repo"):
        return _CheckedWorkload(None, (), [])
    repo = registry.repositories.get(entry["repo"])
    if repo is None:
        hint = did_you_mean(entry["repo"], registry.repositories)
        known = ", ".join(registry.repositories)
        message = f"unknown repository '{entry['repo']}'{hint}; {registry.file} has: {known}"
        return _CheckedWorkload(None, (), [ConfigIssue(file, (*where, "repo"), message)])
    if not repo.path.is_dir():
        message = f"folder {repo.path} of repository '{repo.name}' does not exist (see {registry.file})"
        return _CheckedWorkload(None, (), [ConfigIssue(file, (*where, "repo"), message)])
    if not isinstance(entry.get("model"), str) or not sound("model"):
        return _CheckedWorkload(None, (), [])
    model = repo.models.get(entry["model"])
    if model is None:
        hint = did_you_mean(entry["model"], repo.models)
        known = ", ".join(repo.models)
        message = f"unknown model '{entry['model']}' for repository '{repo.name}'{hint}; it has: {known}"
        return _CheckedWorkload(None, (), [ConfigIssue(file, (*where, "model"), message)])

    label = f"{repo.name}/{model.name}"
    # The workload's own `limits` widen what its fixed values may be; draws keep the registry's ranges.
    specs, issues = with_limits(entry, where, file=file, specs=model.hyperparameters, label=label,
                                schema_found=schema_found)
    aliases = {name: [spec.flag, "".join(part[:1] for part in name.split("_"))] for name, spec in specs.items()}
    fixed = {}
    given = entry.get("hyperparameters", {})
    for hp_name, value in (given.items() if isinstance(given, dict) and sound("hyperparameters") else ()):
        hp_where = (*where, "hyperparameters", hp_name)
        if not sound("hyperparameters", hp_name):
            continue
        spec = specs.get(hp_name)
        if spec is None:
            hint = suggest_name(hp_name, aliases)
            issues.append(ConfigIssue(file, hp_where, f"unknown hyperparameter '{hp_name}' for {label}{hint}"))
            continue
        if (wrong_kind := _value_kind_issue(value, spec.type)) is not None:
            issues.append(ConfigIssue(file, hp_where, wrong_kind))
            continue
        try:
            canonical = format_value(value, spec.type)
        except ValueError:
            issues.append(ConfigIssue(file, hp_where, f"{value!r} is not a valid {spec.type} for '{hp_name}'"))
            continue
        if not spec.accepts(canonical):
            zero = " (or 0)" if spec.zero_probability > 0 else ""
            verb = "is not one of" if spec.discrete_values is not None else "is outside"
            shown = repr(canonical) if spec.type == "choice" else canonical
            message = f"{shown} {verb} {spec.bounds_text()}{zero} of '{hp_name}'"
            issues.append(ConfigIssue(file, hp_where, message))
            continue
        fixed[hp_name] = canonical

    mutate: list[str] = []
    seeds_left_out: list[str] = []
    knobs_left_out: list[str] = []
    listed = entry.get("mutate", []) if may_mutate and sound("mutate") else []
    for position, hp_name in enumerate(listed if isinstance(listed, list) else []):
        mutate_where = (*where, "mutate", position)
        if not isinstance(hp_name, str) or not sound("mutate", position):
            continue
        if hp_name == MUTATE_ALL:
            # A seed drawn beside the others would add run-to-run noise to every other effect; a
            # system knob changes the machine (and needs root), so it is drawn only when named, here
            # beside 'all' too.
            named = {name for name in listed if isinstance(name, str) and name != MUTATE_ALL}
            if extra := [name for name in named if name not in specs or not (specs[name].seed or specs[name].knob)]:
                issues.append(ConfigIssue(file, mutate_where, f"'all' already draws {extra[0]!r}: beside 'all', "
                                          "name only what it leaves out (seeds and system knobs)"))
            mutate.extend(name for name in specs if name not in fixed and not specs[name].seed
                          and not specs[name].knob)
            seeds_left_out.extend(name for name in specs if name not in fixed and name not in named
                                  and specs[name].seed)
            knobs_left_out.extend(name for name in specs if name not in fixed and name not in named
                                  and specs[name].knob)
            continue
        if hp_name not in specs:
            hint = suggest_name(hp_name, aliases)
            issues.append(ConfigIssue(file, mutate_where, f"unknown hyperparameter '{hp_name}' for {label}{hint}"))
        elif hp_name in fixed:
            issues.append(ConfigIssue(file, mutate_where,
                                      f"'{hp_name}' is both mutated and fixed in hyperparameters"))
        else:
            mutate.append(hp_name)

    ranges = check_ranges(entry, where, file=file, specs=model.hyperparameters, mutate=mutate, label=label,
                           schema_found=schema_found) if may_mutate else ({}, [])
    issues += ranges[1]
    if broken_under(schema_found, where):
        return _CheckedWorkload(None, tuple(mutate), issues)  # its other fields are not to be read
    env = dict(entry.get("env", {}))
    if "gpus" in entry:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(gpu) for gpu in entry["gpus"])
    workload = Workload(repo=repo.name, model=model.name, fixed=fixed, env=env,
                        gpu_memory_mib=entry.get("gpu_memory_mib", model.gpu_memory_mib),
                        restart_delay_s=float(entry.get("restart_delay_s", 0.0)), ranges=ranges[0])
    return _CheckedWorkload(workload, tuple(mutate), issues, tuple(seeds_left_out), tuple(knobs_left_out))


def _dedup(value: bool | dict[str, Any]) -> bool | tuple[str, ...]:
    if isinstance(value, bool):
        return value
    return tuple(value.get("history", ()))
