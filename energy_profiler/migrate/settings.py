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

import re
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from energy_profiler.config.validation import load_schema
from energy_profiler.migrate.registry import registry_limits, shown

NAME = re.compile(r"[A-Za-z0-9_.-]+")
"""What this tool's experiment_name may hold."""
LEFT_OUT = "experiments that ran nothing in the older tool, left out"
NOT_PASSED = "experiments whose hyperparameters the older runner never passed (kept as annotations)"
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
    annotated: dict[str, int] = field(default_factory=dict)
    """Keys kept as `_`-annotations, with how often each was met."""
    attention: list[str] = field(default_factory=list)
    """What a user must act on or check, a few words each (the whole note is in `notes`): what ran is
    not what the file says. Repeated words are counted in MIGRATION.md's short list."""

    def warn(self, note: str, short: str) -> None:
        self.notes.append(note)
        self.attention.append(short)


def campaign_name(file_name: str) -> str:
    """The file's stem as an experiment_name: other characters become `_`; `migrated` if none is left."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", PurePath(file_name).stem).strip("_.")
    return name or "migrated"


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


def convert_settings(document: dict[str, Any] | list[Any], older_registry: dict[str, Any],
                     file_name: str = "") -> ConvertedSettings:
    """One older settings document (of the file `file_name`); `older_registry` is the older
    models_config.json it ran against."""
    converted = ConvertedSettings({})
    notes = converted.notes
    if isinstance(document, list):  # the older runner crashed on it; its author's intent is plain
        converted.warn(f"the file is a JSON list of {len(document)} experiments, which the older runner could not "
                     "read (it crashed): converted into a settings object with the same experiments",
                       "a JSON list: converted into a settings object")
        document = {"experiments": document}
    runs_default = document.get("runs_per_config", 1)
    mode_default = document.get("mode", OLDER_DEFAULT_MODE)
    name = document.get("experiment_name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        name = campaign_name(file_name)
        notes.append(f"the file: no experiment_name: named {name!r} after the file")
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
        if "repository" in experiment and "repo" not in experiment:
            why = ("it says 'repository' where the older runner read 'repo' (the older runner failed on it: "
                   "KeyError)")
        converted.warn(f"{where}: ran 0 trainings in the older tool: {why}; left out "
                     "(kept under _not_run_by_the_older_tool)", LEFT_OUT)
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
        converted.warn(f"{where}: its hyperparameters were never passed in mutation mode by the older runner; "
                     "kept as an annotation — make it a default-mode experiment if they were meant", NOT_PASSED)
    mutate = _mutate(experiment.get("mutate"), supported, where, converted,
                     ignored_alias="mutate_params" in experiment)
    if mutate is None:
        return None
    out["mutate"] = mutate
    converted.older_trials += runs
    converted.older_runs.append((f"{where} mutation {repo}/{model} mutating {', '.join(mutate)}", runs))
    return out


def _mutate(mutate: Any, supported: dict[str, Any], where: str, converted: ConvertedSettings, *,
            ignored_alias: bool) -> list[str] | None:
    """The older runner's mutate list: `all` when absent; names the registry lacks dropped."""
    notes = converted.notes
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
        converted.warn(f"{where}: ran 0 trainings in the older tool: nothing valid to mutate; left out", LEFT_OUT)
        return None
    return valid


def _fixed(workload: dict[str, Any], supported: dict[str, Any], where: str, converted: ConvertedSettings) -> None:
    """Keep the fixed values the older runner passed (those the registry knows); a value outside the
    older limits (it passed them unchecked: 1-epoch quick runs) gets `limits` on this workload only."""
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
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        low, high = registry_limits(supported[name])
        if not low <= value <= high:
            workload.setdefault("limits", {})[name] = [min(low, value), max(high, value)]
            converted.notes.append(
                f"{where}: {shown(workload['repo'])}.{shown(name)} is fixed at {value:g}, outside [{low:g}, {high:g}] "
                f"(the older runner passed it unchecked): `limits` {workload['limits'][name]} written on this "
                "experiment only; the registry keeps its limits")


def _parallel(experiment: dict[str, Any], where: str, runs_default: int, registry: dict[str, Any],
              converted: ConvertedSettings) -> dict[str, Any] | None:
    foreground, background = experiment.get("foreground") or {}, experiment.get("background") or {}
    if not foreground or not background:
        converted.warn(f"{where}: a parallel experiment without foreground and background: the older runner skipped "
                     "it; left out", LEFT_OUT)
        return None
    for role, workload in (("foreground", foreground), ("background", background)):
        if (why := _model_known(workload.get("repo"), workload.get("model"), registry)) is not None:
            converted.warn(f"{where}: ran 0 trainings in the older tool: its {role}: {why}; left out", LEFT_OUT)
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
        mutate = _mutate(foreground.get("mutate"), fg_supported, f"{where}.foreground", converted,
                         ignored_alias="mutate_params" in foreground)
        if mutate is None:
            return None
        fg.update(mode="mutation", mutate=mutate)
        if foreground.get("hyperparameters"):
            fg["_hyperparameters_not_passed_by_the_older_tool"] = foreground["hyperparameters"]
            converted.warn(f"{where}.foreground: its hyperparameters were never passed in mutation mode by the older "
                         "runner; kept as an annotation", NOT_PASSED)
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
