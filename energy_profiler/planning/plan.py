"""Expanding validated settings into the ordered list of trials a session runs.

The plan is a pure function of (settings, registry, seed): the same three give the identical list,
draws included. Mutation draws are unique across the whole plan for each repository and model, and
never repeat the experiment's base configuration (registry defaults plus its fixed values).
"""

from __future__ import annotations

import math
import random
import re
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any

from energy_profiler.config.errors import ConfigError, ConfigIssue
from energy_profiler.config.hyperparams import HyperparameterSpec, draw, value_count
from energy_profiler.config.registry import Registry
from energy_profiler.config.settings import Experiment, Settings, Workload
from energy_profiler.model.values import NOT_PASSED
from energy_profiler.planning.history import History, company_key

MAX_DRAWS_PER_TRIAL = 200
"""Draw attempts allowed per wanted trial before a float space is declared too small."""

ConfigKey = tuple[str, ...]


@dataclass(frozen=True)
class BackgroundRun:
    """A training looping in the background of a parallel trial."""

    index: int
    """1-based: background_<index>.sh, bg<index>_run_<i>.log."""
    repo: str
    model: str
    hyperparameters: tuple[tuple[str, str], ...]
    argv: tuple[str, ...]
    cwd: str
    env: tuple[tuple[str, str], ...]
    restart_delay_s: float
    gpu_memory_mib: float | None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["hyperparameters"] = dict(self.hyperparameters)
        data["env"] = dict(self.env)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BackgroundRun:
        return cls(**{**data, "hyperparameters": tuple(data["hyperparameters"].items()), "argv": tuple(data["argv"]),
                      "env": tuple(data["env"].items())})


@dataclass(frozen=True)
class Trial:
    """One training to run: everything needed to start it and to label its record."""

    index: int
    experiment_index: int
    run: int
    mode: str
    repo: str
    model: str
    hyperparameters: tuple[tuple[str, str], ...]
    """(name, canonical value) of every hyperparameter passed, in registry order."""
    mutated: tuple[str, ...]
    argv: tuple[str, ...]
    cwd: str
    env: tuple[tuple[str, str], ...]
    timeout_s: float | None
    background: tuple[BackgroundRun, ...] = ()
    warmup_s: float = 0.0
    gpu_memory_mib: float | None = None
    not_passed: tuple[str, ...] = ()
    """Hyperparameters left to the script's own default (`pass: "given"`): no value is known for them."""

    @property
    def name(self) -> str:
        """Folder name of the trial: `001_examples_mlp`, or `003_examples_mlp_parallel`."""
        suffix = "_parallel" if self.mode == "parallel" else ""
        return f"{self.index:03d}_{_safe(self.repo)}_{_safe(self.model)}{suffix}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["hyperparameters"] = dict(self.hyperparameters)
        data["env"] = dict(self.env)
        data["background"] = [run.to_json() for run in self.background]
        data["name"] = self.name
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trial:
        """The trial a plan.json entry was written from."""
        fields = {key: value for key, value in data.items() if key != "name"}
        return cls(**{**fields, "hyperparameters": tuple(data["hyperparameters"].items()),
                      "mutated": tuple(data["mutated"]), "argv": tuple(data["argv"]), "env": tuple(data["env"].items()),
                      "not_passed": tuple(data.get("not_passed", ())),
                      "background": tuple(BackgroundRun.from_json(run) for run in data["background"])})


@dataclass(frozen=True)
class TopUp:
    """An experiment with `runs_total`: how many successful runs its history holds, so how many it plans."""

    experiment_index: int
    wanted: int
    held: int
    where: str
    """`repo/model mode` (and the mutated names): what was counted."""

    @property
    def to_run(self) -> int:
        return max(self.wanted - self.held, 0)

    def line(self) -> str:
        plan = f"{self.to_run} to run" if self.to_run else "nothing to run"
        return (f"experiments[{self.experiment_index}] ({self.where}): history holds {self.held} of {self.wanted} "
                f"successful runs (runs_total): {plan}")

    def to_json(self) -> dict[str, Any]:
        return {"experiment_index": self.experiment_index, "wanted": self.wanted, "held": self.held,
                "where": self.where}


@dataclass(frozen=True)
class Plan:
    seed: int
    seed_was_drawn: bool
    trials: tuple[Trial, ...]
    history_skips: tuple[tuple[int, int], ...] = ()
    """(experiment index, draws skipped because the history had measured them)."""
    history_files: tuple[str, ...] = ()
    history_tables: tuple[tuple[str, int, int, int], ...] = ()
    """(file, rows read, rows comparable, draws skipped) for each history table that exists."""
    seeds_left_out: tuple[tuple[int, tuple[str, ...]], ...] = ()
    knobs_left_out: tuple[tuple[int, tuple[str, ...]], ...] = ()
    """(experiment index, system knobs that `mutate: ["all"]` left as the machine has them)."""
    """(experiment index, seeds that `mutate: ["all"]` left at their value)."""
    top_ups: tuple[TopUp, ...] = ()
    """What each `runs_total` experiment found in its history, and so planned."""

    def to_json(self) -> dict[str, Any]:
        tables = [{"file": file, "rows_read": read, "rows_comparable": compared, "draws_skipped": skipped}
                  for file, read, compared, skipped in self.history_tables]
        return {"seed": self.seed, "seed_was_drawn": self.seed_was_drawn,
                "history": {"files": list(self.history_files), "tables": tables,
                            "draws_skipped": {f"experiments[{index}]": count for index, count in self.history_skips}},
                **({"top_ups": [top_up.to_json() for top_up in self.top_ups]} if self.top_ups else {}),
                "trials": [trial.to_json() for trial in self.trials]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        """The plan a plan.json was written from (what --resume continues)."""
        history = data.get("history", {})
        skips = tuple((int(key.split("[")[1].rstrip("]")), count)
                      for key, count in history.get("draws_skipped", {}).items())
        tables = tuple((table["file"], table["rows_read"], table["rows_comparable"], table["draws_skipped"])
                       for table in history.get("tables", ()))
        return cls(seed=data["seed"], seed_was_drawn=data["seed_was_drawn"],
                   trials=tuple(Trial.from_json(trial) for trial in data["trials"]),
                   history_skips=skips, history_files=tuple(history.get("files", ())), history_tables=tables,
                   top_ups=tuple(TopUp(**top_up) for top_up in data.get("top_ups", ())))

    def lines(self) -> list[str]:
        """What people should know about the plan besides its trials: history, seeds left out."""
        seeds = [f"experiments[{index}]: mutate all leaves {', '.join(names)} out (a seed in the registry: "
                 "drawn, it would mix run-to-run noise into every effect); name it in mutate to draw it"
                 for index, names in self.seeds_left_out]
        seeds += [f"experiments[{index}]: mutate all leaves the system knobs {', '.join(names)} as the machine has "
                  f"them; to draw one, name it beside all: [\"all\", \"{names[0]}\"]"
                  for index, names in self.knobs_left_out]
        return self.history_lines() + [top_up.line() for top_up in self.top_ups] + seeds

    def history_lines(self) -> list[str]:
        """What the history did, for people: one line per table, one per experiment that lost draws to it."""
        sources = ", ".join(self.history_files)
        tables = [f"history {file}: {read} rows read, {compared} comparable, {skipped} draw(s) skipped"
                  for file, read, compared, skipped in self.history_tables]
        return tables + [f"experiments[{index}]: {count} draw(s) skipped: already measured in {sources}"
                         for index, count in self.history_skips if count]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def build_plan(settings: Settings, registry: Registry, seed: int, python: str = sys.executable,
               history: History | None = None) -> Plan:
    """The trials of `settings`, in order; ConfigError when a mutation space is too small.

    With a `history`, draws already measured there (same repo, model, mode and company) are skipped.
    """
    trials: list[Trial] = []
    skips: list[tuple[int, int]] = []
    issues: list[ConfigIssue] = []
    seen: dict[tuple[str, str, str], set[ConfigKey]] = {}
    skipped_per_table: dict[int, int] = {}
    top_ups: list[TopUp] = []
    for experiment in settings.experiments:
        repo = registry.repositories[experiment.repo]
        specs = {**repo.models[experiment.model].hyperparameters, **experiment.foreground.ranges}
        base = _configuration(specs, experiment.fixed, passes_all=repo.passes_all)
        background = tuple(_background_run(position, workload, registry, python)
                           for position, workload in enumerate(experiment.background, start=1))
        # Draws are unique per repository, model and company: the same foreground measured beside
        # other backgrounds (or alone) is a different measurement, not a repeat.
        company = company_key((run.repo, run.model, run.hyperparameters) for run in background)
        seen_here = seen.setdefault((experiment.repo, experiment.model, company), set())
        space = (experiment.repo, experiment.model, experiment.mode, company)
        measured = history.keys(space) if history else {}
        if experiment.runs_total is not None:
            # Runs count toward the total when they are this experiment's: its fixed values, and drawn
            # values its ranges could draw; and a top-up never draws again what the history measured.
            ours = partial(_counts_toward, mutated=experiment.mutate, base=base, specs=specs)
            held = history.successful(space, experiment.mutate, ours) if history else 0
            measured = history.keys(space, always=True) if history else {}
            drawn = f" of {', '.join(experiment.mutate)}" if experiment.mutate else ""
            top_up = TopUp(experiment.index, experiment.runs_total, held,
                           f"{experiment.repo}/{experiment.model} {experiment.mode}{drawn}")
            top_ups.append(top_up)
            experiment = replace(experiment, runs=top_up.to_run)
        if not experiment.mutate:
            configs = [base] * experiment.runs
            seen_here.add(tuple(base.values()))
        else:
            rng = random.Random(f"{seed}:{experiment.index}")
            configs, skipped, issue = _draw_unique(experiment, specs, base=base, seen=seen_here, measured=measured,
                                                   rng=rng, file=str(settings.file))
            if issue:
                issues.append(issue)
                continue
            skips.append((experiment.index, sum(skipped.values())))
            for table, count in skipped.items():
                skipped_per_table[table] = skipped_per_table.get(table, 0) + count
        for run, config in enumerate(configs, start=1):
            trials.append(Trial(
                index=len(trials) + 1, experiment_index=experiment.index, run=run,
                mode=experiment.mode, repo=experiment.repo, model=experiment.model,
                hyperparameters=_passed(config), mutated=experiment.mutate,
                not_passed=_not_passed(config, specs),
                argv=_argv(registry, experiment.repo, experiment.model, config, python), cwd=str(repo.path),
                env=tuple({**repo.env, **experiment.foreground.env}.items()), timeout_s=experiment.timeout_s,
                background=background, warmup_s=experiment.warmup_s,
                gpu_memory_mib=experiment.foreground.gpu_memory_mib,
            ))
    if issues:
        raise ConfigError(issues)
    deduped = history is not None and history.dedup
    tables = tuple((table.file, table.rows_read, table.rows_compared, skipped_per_table.get(index, 0))
                   for index, table in enumerate(history.tables)) if history and deduped else ()
    return Plan(seed=seed, seed_was_drawn=settings.seed is None, trials=tuple(trials), history_skips=tuple(skips),
                history_files=tuple(str(path) for path in history.files) if history and deduped else (),
                history_tables=tables, top_ups=tuple(top_ups),
                seeds_left_out=tuple((e.index, e.seeds_left_out) for e in settings.experiments if e.seeds_left_out),
                knobs_left_out=tuple((e.index, e.knobs_left_out) for e in settings.experiments if e.knobs_left_out))


def _configuration(specs: Mapping[str, HyperparameterSpec], fixed: Mapping[str, str], *,
                   passes_all: bool = True) -> dict[str, str]:
    """Every hyperparameter's value: the fixed ones, else the registry default, or NOT_PASSED for a
    repository that passes only what is given (canonical strings)."""
    def unfixed(spec: HyperparameterSpec) -> str:
        # A knob is the machine's, not the script's: its default (or none: left as it is) holds either way.
        return spec.default_text if passes_all or spec.knob else NOT_PASSED

    return {name: fixed[name] if name in fixed else unfixed(spec) for name, spec in specs.items()}


def _passed(config: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple((name, value) for name, value in config.items() if value != NOT_PASSED)


def _not_passed(config: Mapping[str, str], specs: Mapping[str, HyperparameterSpec]) -> tuple[str, ...]:
    """Hyperparameters left to the script; a knob left as the machine has it is not one of them."""
    return tuple(name for name, value in config.items() if value == NOT_PASSED and not specs[name].knob)


def _argv(registry: Registry, repo_name: str, model: str, config: Mapping[str, str], python: str) -> tuple[str, ...]:
    """`command... required_args... model_flag MODEL flag value ...`: every value passed explicitly,
    except those a `pass: "given"` repository leaves to the script."""
    repo = registry.repositories[repo_name]
    specs = repo.models[model].hyperparameters
    argv = [*repo.resolved_command(python), *repo.required_args]
    if repo.model_flag:
        argv += [repo.model_flag, model]
    for name, value in _passed(config):
        if specs[name].knob:
            continue  # set on the machine by the tool, never passed to the script
        if specs[name].type == "switch":
            argv += [specs[name].flag] if value == "true" else []  # a switch is its flag, or nothing
        else:
            argv += [specs[name].flag, value]
    return tuple(argv)


def _background_run(position: int, workload: Workload, registry: Registry, python: str) -> BackgroundRun:
    repo = registry.repositories[workload.repo]
    # The machine's knobs are the measured foreground's: a background only shares them.
    specs = {name: spec for name, spec in repo.models[workload.model].hyperparameters.items() if not spec.knob}
    config = _configuration(specs, workload.fixed, passes_all=repo.passes_all)
    return BackgroundRun(
        index=position, repo=workload.repo, model=workload.model, hyperparameters=_passed(config),
        argv=_argv(registry, workload.repo, workload.model, config, python), cwd=str(repo.path),
        env=tuple({**repo.env, **workload.env}.items()), restart_delay_s=workload.restart_delay_s,
        gpu_memory_mib=workload.gpu_memory_mib,
    )


def _draw_unique(
    experiment: Experiment,
    specs: Mapping[str, HyperparameterSpec],
    *,
    base: dict[str, str],
    seen: set[ConfigKey],
    measured: Mapping[ConfigKey, int],
    rng: random.Random,
    file: str,
) -> tuple[list[dict[str, str]], dict[int, int], ConfigIssue | None]:
    """`experiment.runs` configurations that differ from `base`, from `seen`, from `measured` (the
    history: key -> the table that has it) and from each other; and the draws each table rejected."""
    where = ("experiments", experiment.index)
    names = experiment.mutate
    # The defaults' combination is the base run; under `pass: "given"` the base passes no value, and
    # drawing every mutated one at its default would repeat that training with the values spelt out.
    spelt_out = {**base, **{name: specs[name].default_text for name in names if base[name] == NOT_PASSED}}
    excluded = {tuple(base.values()), tuple(spelt_out.values())} | {key for key in seen | measured.keys()
                                                                    if _same_fixed_part(key, base, names, specs)}
    counts = [value_count(specs[name]) for name in names]
    if all(count is not None for count in counts):
        drawable = [key for key in excluded if _drawable(key, names, specs)]
        available = math.prod(count for count in counts if count is not None) - len(drawable)
        if available < experiment.runs:
            message = (f"asks for {experiment.runs} unique combinations of {', '.join(names)}, but only "
                       f"{max(available, 0)} exist besides the defaults, earlier trials and the history; "
                       "widen the ranges, mutate more hyperparameters or lower runs_per_config")
            return [], {}, ConfigIssue(file, (*where, "runs_per_config"), message)

    configs: list[dict[str, str]] = []
    skipped: dict[int, int] = {}
    attempts = 0
    while len(configs) < experiment.runs and attempts < MAX_DRAWS_PER_TRIAL * experiment.runs:
        attempts += 1
        config = dict(base)
        for name in names:
            config[name] = draw(specs[name], rng)
        key = tuple(config.values())
        if key in excluded:
            if key in measured:
                skipped[measured[key]] = skipped.get(measured[key], 0) + 1
            continue
        excluded.add(key)
        seen.add(key)
        configs.append(config)
    if len(configs) < experiment.runs:
        message = (f"could draw only {len(configs)} of {experiment.runs} unique combinations of "
                   f"{', '.join(names)} in {attempts} attempts; widen the ranges or lower runs_per_config")
        return [], skipped, ConfigIssue(file, (*where, "runs_per_config"), message)
    return configs, skipped, None


def _counts_toward(key: ConfigKey, *, mutated: tuple[str, ...], base: dict[str, str],
                   specs: Mapping[str, HyperparameterSpec]) -> bool:
    """Whether a measured configuration is a run of this experiment (for runs_total): its fixed values,
    and mutated values its ranges could draw (default mode: exactly its configuration)."""
    if not mutated:
        return key == tuple(base.values())
    return _same_fixed_part(key, base, mutated, specs) and _drawable(key, mutated, specs)


def _drawable(key: ConfigKey, mutated: tuple[str, ...], specs: Mapping[str, HyperparameterSpec]) -> bool:
    """Whether a draw could produce `key`'s mutated values: a default outside the range (limits) or
    not passed at all (`pass: "given"`) takes no place in the space being counted."""
    return all(value != NOT_PASSED and specs[name].drawable(value)
               for name, value in zip(specs, key, strict=True) if name in mutated)


def _same_fixed_part(
    key: ConfigKey, base: dict[str, str], mutated: tuple[str, ...], specs: Mapping[str, HyperparameterSpec]
) -> bool:
    """Whether an earlier configuration lies in this experiment's space (same non-mutated values)."""
    return all(value == base[name] for name, value in zip(specs, key, strict=True) if name not in mutated)
