"""The older tool's registry (`mutation/models_config.json`) as this tool's `models.json`.

What the converted registry means is what the older runner (`mutation/command_runner.py`) did:
it ran `cd <path> && <train_script> [model_flag MODEL] [required_args split on spaces] [flag value
for each fixed or mutated hyperparameter]`, passed no model flag for a model named `default`,
passed no value it was not given (so the script's own defaults applied: `pass: "given"`), and
judged a run by its exit code only (its `log_patterns` were scraped, never required). Every
difference the conversion cannot avoid is a note, worded for MIGRATION.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from energy_profiler.config.errors import PLAIN_KEY

OLDER_FILE = "mutation/models_config.json"
HYPERPARAMETER_FIELDS = ("flag", "type", "default", "range", "distribution", "zero_probability")


@dataclass
class Converted:
    """A converted document and what a user must know about it, one sentence per note."""

    document: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def is_older_registry(document: object) -> TypeGuard[dict[str, Any]]:
    """The older format: a top-level `models` of repositories with `supported_hyperparams`."""
    return (isinstance(document, dict) and "repositories" not in document and isinstance(document.get("models"), dict)
            and any(isinstance(repo, dict) and "supported_hyperparams" in repo
                    for repo in document["models"].values()))


def shown(name: str) -> str:
    """A name as notes show it: as written when plain, else as a JSON string (no raw newline or escape)."""
    return name if PLAIN_KEY.fullmatch(name) else json.dumps(name)


def convert_registry(document: dict[str, Any], older_project: Path) -> Converted:
    """`document` (an older models_config.json) as a registry; repository paths resolved against
    `older_project` (the folder holding `mutation/`), so they point at the repositories where they are."""
    converted = Converted({"description": f"Converted by `mutation.py migrate` from {older_project / OLDER_FILE}.",
                           "repositories": {}})
    for name, repo in document["models"].items():
        converted.document["repositories"][name] = _repository(name, repo, older_project, converted.notes)
    return converted


def _repository(name: str, repo: dict[str, Any], older_project: Path, notes: list[str]) -> dict[str, Any]:
    path = Path(repo["path"])
    models = list(repo.get("models", []))
    entry: dict[str, Any] = {
        "path": str(path if path.is_absolute() else (older_project / path).resolve()),
        "command": [repo["train_script"]],
        "pass": "given",
        "models": {model: {} for model in models},
        "hyperparameters": {hp: _hyperparameter(name, hp, spec, notes)
                            for hp, spec in repo.get("supported_hyperparams", {}).items()},
        "metrics": {metric: {"pattern": pattern, "required": False}
                    for metric, pattern in repo.get("performance_metrics", {}).get("log_patterns", {}).items()},
    }
    if "model_flag" in repo:
        entry["model_flag"] = repo["model_flag"]
        if "default" in models:
            flag = shown(str(repo["model_flag"]))
            notes.append(f"{shown(name)}: the older runner passed no `{flag}` for its model `default`; this tool "
                         f"passes `{flag} default`. Rename the model or give it a repository of its own if the "
                         "script does not accept that name.")
    required = [word for value in repo.get("required_args", {}).values() for word in str(value).split()]
    if required:
        entry["required_args"] = required
    if not entry["metrics"]:
        notes.append(f"{shown(name)}: no log patterns, so no performance metric is recorded; "
                     "add `metrics` to record one.")
    return entry


def _hyperparameter(repo: str, name: str, spec: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    converted = {key: spec[key] for key in HYPERPARAMETER_FIELDS if key in spec}
    low, high = spec["range"]
    default = spec["default"]
    if not low <= default <= high:
        converted["limits"] = registry_limits(spec)
        notes.append(f"{shown(repo)}.{shown(name)}: its default {default:g} lies outside its range "
                     f"[{low:g}, {high:g}]; the range stays what mutation draws from, and `limits` "
                     f"{converted['limits']} let the default (and fixed values) lie outside it.")
    if "seed" in name.lower():
        notes.append(f"{shown(repo)}.{shown(name)}: looks like a random seed. The older tool drew it with "
                     "`mutate: all`, and so does the converted registry; add `\"seed\": true` to it so that "
                     "`mutate: [\"all\"]` leaves it out (drawn, it mixes run-to-run noise into every effect).")
    return converted


def registry_limits(spec: dict[str, Any]) -> list[Any]:
    """The limits the converted registry gives an older hyperparameter: its range, stretched to hold
    its default (fixed values outside them get `limits` in their own experiment, not here)."""
    low, high = spec["range"]
    return [min(low, spec["default"]), max(high, spec["default"])]
