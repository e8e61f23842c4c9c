"""The older tool's settings files as this tool's, meaning what its runner did with them.

The rules are those of the older `MutationRunner.run_from_experiment_config` (mutation/runner.py):
- an experiment's mode is its own `mode`, else the file's, else `mutation`; `parallel` and
  `default` are themselves, and every other value (`nonparallel`, a misspelling) ran as mutation;
- a mutation experiment mutates its `mutate` list (hyperparameters the registry lacks dropped),
  or all of them without one; its `hyperparameters` were never passed; `mutate_params` and
  `num_mutations` were never read;
- runs: the experiment's `runs_per_config`, (parallel: else the foreground's), else the file's,
  else 1; `max_retries` defaulted to 2; it slept 60 s between runs;
- an experiment it could not run (no `repo`, an unknown repository or model, nothing valid to
  mutate, a parallel one without foreground or background) raised or warned and ran nothing.
Keys this tool does not know are kept as `_`-annotations. Every surprise is a note for MIGRATION.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from energy_profiler.config.validation import load_schema
from energy_profiler.migrate.registry import shown

OLDER_MAX_RETRIES = 2
OLDER_RUN_SLEEP_S = 60
OLDER_DEFAULT_MODE = "mutation"


@dataclass
class ConvertedSettings:
    document: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    older_trials: int = 0
    """Trainings the older runner would have started (before its retries; fewer if a space ran out)."""
    older_runs: list[tuple[str, int]] = field(default_factory=list)
    """(what, trainings) per converted experiment, in the converted file's order, for MIGRATION.md."""
    fixed_values: list[tuple[str, str, str, Any]] = field(default_factory=list)
    """(repo, model, hyperparameter, value) of every fixed value, for the registry's limits."""
    annotated: dict[str, int] = field(default_factory=dict)
    """Keys kept as `_`-annotations, with how often each was met."""


def _schema_keys(definition: str | None) -> set[str]:
    schema = load_schema("settings")
    node = schema if definition is None else schema["$defs"][definition]
    return set(node["properties"])


def _annotated(document: dict[str, Any], known: set[str], converted: ConvertedSettings) -> dict[str, Any]:
    """`document` with every key this tool does not know renamed `_key` (kept, read by nobody)."""
    kept = {}
    for key, value in document.items():
        if key in known or key.startswith("_"):
            kept[key] = value
        else:
            kept[f"_{key}"] = value
            converted.annotated[key] = converted.annotated.get(key, 0) + 1
    return kept


def convert_settings(document: dict[str, Any], older_registry: dict[str, Any]) -> ConvertedSettings:
    """One older settings document; `older_registry` is the older models_config.json it ran against."""
    converted = ConvertedSettings({})
    notes = converted.notes
    runs_default = document.get("runs_per_config", 1)
    mode_default = document.get("mode", OLDER_DEFAULT_MODE)
    name = document.get("experiment_name", "unnamed")
    top = {key: value for key, value in document.items()
           if key not in ("experiments", "mode", "runs_per_config", "max_retries", "use_deduplication",
                          "historical_csvs", "experiment_name")}
    out: dict[str, Any] = {"experiment_name": name,
                           **_annotated(top, _schema_keys(None), converted),
                           "max_retries": document.get("max_retries", OLDER_MAX_RETRIES),
                           "cooldown_s": OLDER_RUN_SLEEP_S}
    if "max_retries" not in document:
        notes.append(f"the file: no max_retries: the older runner retried {OLDER_MAX_RETRIES} times, written out")
    if document.get("use_deduplication"):  # the project migration turns it into `dedup` (migrate/history.py)
        out["_use_deduplication"] = True
        out["_historical_csvs"] = document.get("historical_csvs", [])
    experiments, not_run = [], []
    for index, experiment in enumerate(document.get("experiments", [])):
        where = f"experiments[{index}]"
        result = _experiment(experiment, where, mode_default, runs_default, registry=older_registry,
                             converted=converted)
        if result is None:
            not_run.append(experiment)
        else:
            experiments.append(result)
    out["experiments"] = experiments
    if converted.annotated:
        counts = ", ".join(f"{shown(key)} ({count})" if count > 1 else shown(key)
                           for key, count in sorted(converted.annotated.items()))
        notes.append(f"kept as `_`-annotations, as the older runner never read them: {counts}")
    if not_run:
        out["_not_run_by_the_older_tool"] = not_run
    converted.document = out
    return converted


def _model_known(repo: Any, model: Any, registry: dict[str, Any]) -> str | None:
    """Why the older runner could not run repo/model, or None."""
    if not isinstance(repo, str):
        return "it has no 'repo' (the older runner failed on it: KeyError)"
    if repo not in registry["models"]:
        return f"repository {shown(repo)} is not in the older registry"
    if model not in registry["models"][repo].get("models", []):
        return f"model {shown(str(model))} is not a model of {shown(repo)}"
    return None


def _experiment(experiment: dict[str, Any], where: str, mode_default: str, runs_default: int, *,
                registry: dict[str, Any], converted: ConvertedSettings) -> dict[str, Any] | None:
    notes = converted.notes
    mode = experiment.get("mode", mode_default)
    runs = experiment.get("runs_per_config", runs_default)
    if mode == "parallel":
        return _parallel(experiment, where, runs_default, registry, converted)
    repo, model = experiment.get("repo"), experiment.get("model")
    if (why := _model_known(repo, model, registry)) is not None:
        hint = " — did you mean 'repo'?" if "repository" in experiment and "repo" not in experiment else ""
        notes.append(f"{where}: ran 0 trainings in the older tool: {why}{hint}; left out "
                     "(kept under _not_run_by_the_older_tool)")
        return None
    supported = registry["models"][repo]["supported_hyperparams"]
    known = _schema_keys("experiment")
    ignored = ("hyperparameters",) if mode != "default" else ()
    rest = {key: value for key, value in experiment.items()
            if key not in ("mode", "runs_per_config", "mutate", *ignored)}
    out = {"mode": "default" if mode == "default" else "mutation", "repo": repo, "model": model,
           **_annotated(rest, known, converted), "runs_per_config": runs}
    if mode == "default":
        if "mutate" in experiment:
            out["_mutate"] = experiment["mutate"]
            notes.append(f"{where}: 'mutate' in a default-mode experiment was never read by the older runner; "
                         "kept as an annotation")
        converted.older_trials += runs
        converted.older_runs.append((f"{where} default {repo}/{model}", runs))
        _fixed(out, supported, where, converted)
        return out
    if mode not in ("mutation",):
        notes.append(f"{where}: mode {shown(str(mode))} ran as mutation in the older tool"
                     + (" (its name for one training at a time)" if mode == "nonparallel" else "; check it was meant"))
    if experiment.get("hyperparameters"):
        out["_hyperparameters_not_passed_by_the_older_tool"] = experiment["hyperparameters"]
        notes.append(f"{where}: its hyperparameters were never passed in mutation mode by the older runner; "
                     "kept as an annotation — make it a default-mode experiment if they were meant")
    mutate = _mutate(experiment.get("mutate"), supported, where, notes,
                     ignored_alias="mutate_params" in experiment)
    if mutate is None:
        return None
    out["mutate"] = mutate
    converted.older_trials += runs
    converted.older_runs.append((f"{where} mutation {repo}/{model} mutating {', '.join(mutate)}", runs))
    return out


def _mutate(mutate: Any, supported: dict[str, Any], where: str, notes: list[str], *,
            ignored_alias: bool) -> list[str] | None:
    """The older runner's mutate list: `all` when absent; names the registry lacks dropped."""
    if mutate is None:
        alias = " (its 'mutate_params' was never read)" if ignored_alias else ""
        notes.append(f"{where}: no 'mutate'{alias}: the older runner mutated every hyperparameter — "
                     "written as [\"all\"]; list the ones you meant if that was not intended")
        return ["all"]
    if "all" in mutate:
        return ["all"]
    valid = [name for name in mutate if name in supported]
    dropped = [name for name in mutate if name not in supported]
    if dropped:
        notes.append(f"{where}: mutate lists {', '.join(shown(str(name)) for name in dropped)}, which the "
                     "registry lacks; the older runner dropped them silently")
    if not valid:
        notes.append(f"{where}: ran 0 trainings in the older tool: nothing valid to mutate; left out")
        return None
    return valid


def _fixed(workload: dict[str, Any], supported: dict[str, Any], where: str, converted: ConvertedSettings) -> None:
    """Keep the fixed values the older runner passed (those the registry knows), recording each."""
    values = workload.get("hyperparameters")
    if not isinstance(values, dict):
        return
    unknown = [name for name in values if name not in supported]
    if unknown:
        converted.notes.append(f"{where}: hyperparameters {', '.join(shown(name) for name in unknown)} are not in "
                               "the registry; the older runner passed nothing for them; left out")
    workload["hyperparameters"] = {name: value for name, value in values.items() if name in supported}
    if not workload["hyperparameters"]:
        del workload["hyperparameters"]
    for name, value in workload.get("hyperparameters", {}).items():
        converted.fixed_values.append((workload["repo"], workload["model"], name, value))


def _parallel(experiment: dict[str, Any], where: str, runs_default: int, registry: dict[str, Any],
              converted: ConvertedSettings) -> dict[str, Any] | None:
    notes = converted.notes
    foreground, background = experiment.get("foreground") or {}, experiment.get("background") or {}
    if not foreground or not background:
        notes.append(f"{where}: a parallel experiment without foreground and background: the older runner skipped "
                     "it; left out")
        return None
    for role, workload in (("foreground", foreground), ("background", background)):
        if (why := _model_known(workload.get("repo"), workload.get("model"), registry)) is not None:
            notes.append(f"{where}: ran 0 trainings in the older tool: its {role}: {why}; left out")
            return None
    runs = experiment.get("runs_per_config", foreground.get("runs_per_config", runs_default))
    rest = {key: value for key, value in experiment.items()
            if key not in ("mode", "runs_per_config", "foreground", "background", "mutate")}
    out: dict[str, Any] = {"mode": "parallel", **_annotated(rest, _schema_keys("experiment") - {
        "repo", "model", "hyperparameters", "env", "gpus", "gpu_memory_mib"}, converted), "runs_per_config": runs}
    fg_supported = registry["models"][foreground["repo"]]["supported_hyperparams"]
    fg_rest = {key: value for key, value in foreground.items()
               if key not in ("mode", "mutate", "runs_per_config", "hyperparameters")}
    fg = {**_annotated(fg_rest, _schema_keys("foreground"), converted)}
    if foreground.get("mode", "mutation") == "mutation":
        mutate = _mutate(foreground.get("mutate"), fg_supported, f"{where}.foreground", notes,
                         ignored_alias="mutate_params" in foreground)
        if mutate is None:
            return None
        fg.update(mode="mutation", mutate=mutate)
        if foreground.get("hyperparameters"):
            fg["_hyperparameters_not_passed_by_the_older_tool"] = foreground["hyperparameters"]
            notes.append(f"{where}.foreground: its hyperparameters were never passed in mutation mode by the older "
                         "runner; kept as an annotation")
    else:
        fg.update(mode="default", hyperparameters=foreground.get("hyperparameters", {}))
        _fixed(fg, fg_supported, f"{where}.foreground", converted)
    bg_supported = registry["models"][background["repo"]]["supported_hyperparams"]
    bg = _annotated({key: value for key, value in background.items() if key != "mode"},
                    _schema_keys("backgroundWorkload"), converted)
    if "mode" in background:  # never read: a background always ran its given values
        bg["_mode"] = background["mode"]
        converted.annotated["mode"] = converted.annotated.get("mode", 0) + 1
    _fixed(bg, bg_supported, f"{where}.background", converted)
    out["foreground"], out["background"] = fg, bg
    converted.older_trials += runs
    converted.older_runs.append((f"{where} parallel {fg['repo']}/{fg['model']} ({fg['mode']}) beside "
                                 f"{bg['repo']}/{bg['model']}", runs))
    return out
