"""The registry `repos/models.json`: training repositories, their models, hyperparameters, metrics.

Loading validates the file against the shipped schema and then checks what a schema cannot:
defaults inside their ranges, log-uniform ranges above zero, metric patterns with exactly one
capture group, model overrides of hyperparameters that exist, and paths inside the project.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from energy_profiler.config.errors import ConfigError, ConfigIssue, broken_under, did_you_mean, file_error
from energy_profiler.config.hyperparams import DEFAULT_FLOAT_PRECISION, HyperparameterSpec
from energy_profiler.config.json_file import read_json
from energy_profiler.config.system_knobs import KNOB_KINDS
from energy_profiler.config.validation import issue_sort_key, schema_issues
from energy_profiler.model.values import format_value

PYTHON_PLACEHOLDER = "{python}"


@dataclass(frozen=True)
class MetricSpec:
    """A performance metric scraped from the training log."""

    name: str
    pattern: re.Pattern[str]
    required: bool


@dataclass(frozen=True)
class ModelSpec:
    """A model of a repository, with its effective hyperparameters (repository specs + overrides)."""

    name: str
    hyperparameters: Mapping[str, HyperparameterSpec]
    timeout_s: float | None
    gpu_memory_mib: float | None = None
    metrics: Mapping[str, MetricSpec] = field(default_factory=dict)
    """The repository's metrics with this model's additions and changes."""
    success_marker: re.Pattern[str] | None = None
    """A line the log must have for a success (besides exit code 0), or None."""
    failure_patterns: tuple[re.Pattern[str], ...] = ()
    """Lines that make a training failed even with exit code 0 (a traceback, CUDA out of memory)."""


@dataclass(frozen=True)
class RepoSpec:
    """A training repository and how to run it."""

    name: str
    path: Path
    command: tuple[str, ...]
    python: str | None
    env: Mapping[str, str]
    model_flag: str | None
    required_args: tuple[str, ...]
    hyperparameters: Mapping[str, HyperparameterSpec]
    """Repository-level specs; a model's own (with its overrides) are in `models`."""
    models: Mapping[str, ModelSpec]
    metrics: Mapping[str, MetricSpec]
    timeout_s: float | None
    passes_all: bool = True
    """`pass: "all"` (every value, defaults too) or False for `pass: "given"` (fixed and mutated only)."""

    def resolved_command(self, default_python: str) -> tuple[str, ...]:
        """`command` with `{python}` replaced by the configured interpreter (or `default_python`)."""
        if self.command[0] != PYTHON_PLACEHOLDER:
            return self.command
        return (self.python or default_python, *self.command[1:])


@dataclass(frozen=True)
class Registry:
    """Every repository the registry file names, by name."""

    file: Path
    repositories: Mapping[str, RepoSpec]
    knobs: Mapping[str, HyperparameterSpec] = field(default_factory=dict)
    """The `system` block's knobs; each model's hyperparameters end with them too."""


def load_registry(file: Path) -> Registry:
    """Read and check the registry; raise ConfigError with every issue found.

    A relative repository path is relative to the registry file's folder (`repos/models.json` says
    `"path": "examples"` for `repos/examples`), so a registry means the same from any working folder.
    """
    document = read_json(file)
    if isinstance(document, dict) and "repositories" not in document and "models" in document:
        # The older tool's models_config.json: one pointer, not a page of schema errors.
        command = f"mutation.py migrate registry {shlex.quote(str(file))} -o repos/models.json"
        raise file_error(str(file), "is the older tool's registry format (a top-level 'models'); "
                                    f"convert it with `{command}`")
    issues = schema_issues(document, "registry", str(file))
    repositories_doc = document.get("repositories") if isinstance(document, dict) else None
    if not isinstance(repositories_doc, dict):
        raise ConfigError(issues)  # nothing to check further
    # Every problem in one pass: the parts the schema found sound are checked as well (a typo in one
    # key must not hide a default outside its range); the parts it reported are not read again.
    schema_found = tuple(issues)
    repositories = {}
    for repo_name, repo_doc in repositories_doc.items():
        if not isinstance(repo_doc, dict):
            continue
        repo, repo_issues = _build_repo(repo_name, repo_doc, str(file), file.resolve().parent, schema_found)
        issues.extend(repo_issues)
        repositories[repo_name] = repo
    knobs = _build_knobs(document.get("system"), str(file), schema_found)
    issues.extend(knobs[1])
    for repo in repositories.values():
        issues.extend(ConfigIssue(str(file), ("repositories", repo.name, "hyperparameters", name),
                                  f"'{name}' is a system knob's name (the registry's `system` block); "
                                  "give the training's hyperparameter another name")
                      for name in repo.hyperparameters if name in KNOB_KINDS)
    if issues:
        raise ConfigError(sorted(issues, key=lambda issue: issue_sort_key(issue.path[:2])))
    if knobs[0]:
        repositories = {name: replace(repo, models={model_name: replace(
            model, hyperparameters={**model.hyperparameters, **knobs[0]}) for model_name, model in repo.models.items()})
            for name, repo in repositories.items()}
    return Registry(file=file, repositories=repositories, knobs=knobs[0])


def _build_knobs(document: Any, file: str,
                 schema_found: tuple[ConfigIssue, ...]) -> tuple[dict[str, HyperparameterSpec], list[ConfigIssue]]:
    """The `system` block's knobs, as hyperparameters without a flag; a default is optional."""
    knobs: dict[str, HyperparameterSpec] = {}
    issues: list[ConfigIssue] = []
    for name, doc in document.items() if isinstance(document, dict) else ():
        where = ("system", name)
        if name not in KNOB_KINDS or broken_under(schema_found, where) or not isinstance(doc, dict):
            continue
        # Without a default the knob is left as the machine has it; the range's low end (or the first
        # value) stands in while the rest is checked, and is not kept.
        stand_in = doc.get("default", doc["values"][0] if doc["type"] == "choice" else doc["range"][0])
        spec, knob_issues = _build_hyperparameter(name, {**doc, "flag": "", "default": stand_in}, file, where)
        issues.extend(knob_issues)
        knobs[name] = replace(spec, knob=True, default=doc.get("default"))
    return knobs, issues


def _build_repo(
    name: str, doc: dict[str, Any], file: str, registry_folder: Path, schema_found: tuple[ConfigIssue, ...] = ()
) -> tuple[RepoSpec, list[ConfigIssue]]:
    """The repository and the issues of its parts; a part in `schema_found` is skipped (the RepoSpec
    is then incomplete, and only its issues count)."""
    base = ("repositories", name)
    issues: list[ConfigIssue] = []

    def sound(*path: str | int) -> bool:
        return not broken_under(schema_found, (*base, *path))

    def of(key: str, kind: type, empty: Any) -> Any:
        """doc[key] where it is of the right kind, else `empty` (an issue inside it is its parts' concern)."""
        value = doc.get(key, empty)
        return value if isinstance(value, kind) else empty

    path = Path(of("path", str, ".") if sound("path") else ".")
    if not path.is_absolute():
        path = (registry_folder / path).resolve()
        if not path.is_relative_to(registry_folder):
            issues.append(ConfigIssue(file, (*base, "path"),
                                      f"'{doc['path']}' leads outside the registry's folder {registry_folder} "
                                      "(relative paths are relative to it); give an absolute path for a "
                                      "repository elsewhere"))
    command = of("command", list, [])
    if "python" in doc and command and command[0] != PYTHON_PLACEHOLDER:
        issues.append(ConfigIssue(file, (*base, "python"),
                                  f"'python' is set but command does not start with '{PYTHON_PLACEHOLDER}'"))
    models_doc = of("models", dict, {})
    if len(models_doc) > 1 and "model_flag" not in doc:
        issues.append(ConfigIssue(file, (*base, "model_flag"),
                                  "several models but no model_flag: the training could not tell them apart"))

    hyperparameters = {}
    for hp_name, hp_doc in of("hyperparameters", dict, {}).items():
        if not sound("hyperparameters", hp_name):
            continue
        spec, hp_issues = _build_hyperparameter(hp_name, hp_doc, file, (*base, "hyperparameters", hp_name))
        issues.extend(hp_issues)
        hyperparameters[hp_name] = spec
    # A model's override of a hyperparameter the schema found wrong is not reported as unknown.
    reported = set(of("hyperparameters", dict, {})) - set(hyperparameters)

    metrics_doc = of("metrics", dict, {})
    metrics = _metrics({name: metric for name, metric in metrics_doc.items() if sound("metrics", name)}, {}, file,
                       (*base, "metrics"), issues)
    repo_marker = _pattern(of("success_marker", str, None), file, (*base, "success_marker"), issues)
    repo_failures = _patterns(of("failure_patterns", list, []), file, (*base, "failure_patterns"), issues)
    where: tuple[str | int, ...]

    models = {}
    for model_name, model_doc in models_doc.items():
        model_base = (*base, "models", model_name)
        if not isinstance(model_doc, dict):
            continue
        model_hps = dict(hyperparameters)
        overrides = model_doc.get("hyperparameters", {})
        for hp_name, override in overrides.items() if isinstance(overrides, dict) else ():
            where = (*model_base, "hyperparameters", hp_name)
            if broken_under(schema_found, where) or hp_name in reported:
                continue
            if hp_name not in hyperparameters:
                hint = did_you_mean(hp_name, hyperparameters)
                issues.append(ConfigIssue(file, where, f"overrides unknown hyperparameter '{hp_name}'{hint}"))
                continue
            merged = {**_spec_document(hyperparameters[hp_name]), **override}
            spec, hp_issues = _build_hyperparameter(hp_name, merged, file, where)
            issues.extend(hp_issues)
            model_hps[hp_name] = spec
        if broken_under(schema_found, model_base):
            continue  # the rest of this model is not to be read
        timeout = model_doc.get("timeout_s", doc.get("timeout_s"))
        model_metrics = _metrics(model_doc.get("metrics", {}), metrics_doc, file, (*model_base, "metrics"), issues) \
            if sound("metrics") else {}
        marker = _pattern(model_doc.get("success_marker"), file, (*model_base, "success_marker"), issues)
        failures = _patterns(model_doc.get("failure_patterns", []), file, (*model_base, "failure_patterns"), issues)
        models[model_name] = ModelSpec(
            model_name, model_hps, timeout, model_doc.get("gpu_memory_mib"), metrics={**metrics, **model_metrics},
            success_marker=marker if "success_marker" in model_doc else repo_marker,
            failure_patterns=(*repo_failures, *failures))

    repo = RepoSpec(
        name=name,
        path=path,
        command=tuple(command),
        python=doc.get("python"),
        env=dict(of("env", dict, {})),
        model_flag=doc.get("model_flag"),
        required_args=tuple(of("required_args", list, [])),
        hyperparameters=hyperparameters,
        models=models,
        metrics=metrics,
        timeout_s=doc.get("timeout_s"),
        passes_all=doc.get("pass", "all") == "all",
    )
    return repo, issues


def _metrics(documents: Mapping[str, Any], inherited: Mapping[str, Any], file: str, where: tuple[str | int, ...],
             issues: list[ConfigIssue]) -> dict[str, MetricSpec]:
    """The metrics `documents` describe; a name in `inherited` (the repository's) takes its fields first."""
    metrics = {}
    for name, document in documents.items():
        merged = {**inherited.get(name, {}), **document}
        if "pattern" not in merged:
            issues.append(ConfigIssue(file, (*where, name), f"metric '{name}' is not the repository's, so it needs "
                                      "a pattern"))
            continue
        pattern = _pattern(merged["pattern"], file, (*where, name, "pattern"), issues)
        if pattern is None:
            continue
        if pattern.groups != 1:
            issues.append(ConfigIssue(file, (*where, name, "pattern"),
                                      f"needs exactly one capture group, has {pattern.groups}"))
        metrics[name] = MetricSpec(name, pattern, bool(merged.get("required", False)))
    return metrics


def _pattern(text: str | None, file: str, where: tuple[str | int, ...],
             issues: list[ConfigIssue]) -> re.Pattern[str] | None:
    if text is None:
        return None
    try:
        return re.compile(text)
    except re.error as error:
        issues.append(ConfigIssue(file, where, f"not a valid regular expression: {error}"))
        return None


def _patterns(texts: list[str], file: str, where: tuple[str | int, ...],
              issues: list[ConfigIssue]) -> tuple[re.Pattern[str], ...]:
    compiled = (_pattern(text, file, (*where, index), issues) for index, text in enumerate(texts))
    return tuple(pattern for pattern in compiled if pattern is not None)


def _spec_document(spec: HyperparameterSpec) -> dict[str, Any]:
    """The registry document a model's overrides are laid over."""
    return {**_values_document(spec), **({"seed": True} if spec.seed else {})}


def _values_document(spec: HyperparameterSpec) -> dict[str, Any]:
    if spec.type in ("choice", "switch"):
        return {"flag": spec.flag, "type": spec.type, "default": spec.default,
                **({"values": list(spec.values)} if spec.type == "choice" else {})}
    document = {"flag": spec.flag, "type": spec.type, "default": spec.default,
                "range": [spec.low, spec.high], "distribution": spec.distribution,
                "zero_probability": spec.zero_probability, "precision": spec.precision}
    return document if spec.limits is None else {**document, "limits": list(spec.limits)}


def _build_hyperparameter(
    name: str, doc: dict[str, Any], file: str, where: tuple[str | int, ...]
) -> tuple[HyperparameterSpec, list[ConfigIssue]]:
    build = _build_discrete if doc["type"] in ("choice", "switch") else _build_number
    spec, issues = build(name, doc, file, where)
    return replace(spec, seed=bool(doc.get("seed", False))), issues


def _build_number(
    name: str, doc: dict[str, Any], file: str, where: tuple[str | int, ...]
) -> tuple[HyperparameterSpec, list[ConfigIssue]]:
    issues = []
    if not isinstance(doc["default"], int | float) or isinstance(doc["default"], bool):
        issues.append(ConfigIssue(file, (*where, "default"), f"the default of a{'n' if doc['type'] == 'int' else ''} "
                                  f"{doc['type']} must be a number, not {doc['default']!r}"))
        return HyperparameterSpec(name, doc["flag"], doc["type"], 0, 0, 0), issues
    low, high = doc["range"]
    spec = HyperparameterSpec(
        name=name, flag=doc["flag"], type=doc["type"], default=doc["default"], low=low, high=high,
        distribution=doc.get("distribution", "uniform"),
        zero_probability=doc.get("zero_probability", 0.0),
        precision=doc.get("precision", DEFAULT_FLOAT_PRECISION),
        limits=tuple(doc["limits"]) if "limits" in doc else None,
    )
    if low > high:
        issues.append(ConfigIssue(file, (*where, "range"), f"low end {low} is above high end {high}"))
    if spec.limits is not None and not spec.limits[0] <= low <= high <= spec.limits[1]:
        issues.append(ConfigIssue(file, (*where, "limits"),
                                  f"limits [{spec.limits[0]:g}, {spec.limits[1]:g}] do not contain the range "
                                  f"[{low:g}, {high:g}]: mutation could draw what a fixed value may not take"))
    if spec.type == "int":
        checked = [("default", doc["default"]), ("range", low), ("range", high),
                   *(("limits", value) for value in spec.limits or ())]
        for label, value in checked:
            if value != int(value):
                issues.append(ConfigIssue(file, (*where, label), f"{value} is not an integer"))
        limits = (int(spec.limits[0]), int(spec.limits[1])) if spec.limits is not None else None
        spec = replace(spec, default=int(doc["default"]), low=int(low), high=int(high), limits=limits)
    if spec.distribution == "log_uniform" and low <= 0:
        issues.append(ConfigIssue(file, (*where, "range"),
                                  "log_uniform needs a range above 0 (use zero_probability to draw 0)"))
    if not spec.allows(float(doc["default"])):
        issues.append(ConfigIssue(file, (*where, "default"), f"default {spec.default} is outside {spec.bounds_text()}"))
    return spec, issues


NUMERIC_ONLY = ("range", "limits", "distribution", "zero_probability", "precision")
"""Fields that mean nothing for a choice or a switch, whose draws are uniform over their values."""


def _build_discrete(name: str, doc: dict[str, Any], file: str,
                    where: tuple[str | int, ...]) -> tuple[HyperparameterSpec, list[ConfigIssue]]:
    """A choice (one of `values`) or a switch (its flag present or absent)."""
    issues = [ConfigIssue(file, (*where, field_name), f"'{field_name}' has no meaning for a {doc['type']}")
              for field_name in NUMERIC_ONLY if field_name in doc and field_name != "distribution"]
    values: tuple[str, ...] = ()
    if doc["type"] == "choice":
        canonical = []
        for position, value in enumerate(doc["values"]):
            try:
                text = format_value(value, "choice")
            except ValueError as error:
                issues.append(ConfigIssue(file, (*where, "values", position), str(error)))
                continue
            if text in canonical:
                issues.append(ConfigIssue(file, (*where, "values", position), f"{text!r} is listed twice"))
            canonical.append(text)
        values = tuple(dict.fromkeys(canonical))
    spec = HyperparameterSpec(name=name, flag=doc["flag"], type=doc["type"], default=doc["default"], low=0, high=0,
                              values=values)
    try:
        default = format_value(doc["default"], doc["type"])
    except ValueError as error:
        issues.append(ConfigIssue(file, (*where, "default"), str(error)))
        return spec, issues
    if not spec.accepts(default):
        issues.append(ConfigIssue(file, (*where, "default"), f"default {default!r} is not one of {spec.bounds_text()}"))
    return spec, issues
