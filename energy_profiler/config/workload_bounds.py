"""A workload's own bounds in a settings file: `ranges` (narrower draws) and `limits` (wider fixed values).

`ranges` narrows what mutation draws for this experiment, inside the registry's range. `limits`
lets this experiment's fixed values lie outside the registry's limits (a 1-epoch quick run below
an epochs range of [5, 15]): the exception is written where it is needed, so every other file
keeps the registry's typo protection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from energy_profiler.config.errors import ConfigIssue, broken_under, suggest_name
from energy_profiler.config.hyperparams import HyperparameterSpec, narrowed

Where = tuple[str | int, ...]


def check_ranges(entry: dict[str, Any], where: Where, *, file: str, specs: Mapping[str, HyperparameterSpec],
                 mutate: list[str], label: str,
                 schema_found: Sequence[ConfigIssue]) -> tuple[dict[str, HyperparameterSpec], list[ConfigIssue]]:
    """`ranges`: narrower draws for mutated hyperparameters, inside the registry's; and their issues."""
    given = entry.get("ranges", {})
    if not isinstance(given, dict) or broken_under(schema_found, (*where, "ranges")):
        return {}, []
    narrowed_specs: dict[str, HyperparameterSpec] = {}
    issues = []
    for hp_name, bounds in given.items():
        range_where = (*where, "ranges", hp_name)
        spec = specs.get(hp_name)
        if spec is None:
            issues.append(_unknown(file, range_where, hp_name, specs, label))
        elif hp_name not in mutate:
            issues.append(ConfigIssue(file, range_where, f"'{hp_name}' is not drawn in this experiment: a range "
                                                         "narrows what mutate draws (name it in mutate, or leave "
                                                         "its range out)"))
        elif isinstance(result := narrowed(spec, bounds), str):
            issues.append(ConfigIssue(file, range_where, result))
        else:
            narrowed_specs[hp_name] = result
    return narrowed_specs, issues


def with_limits(entry: dict[str, Any], where: Where, *, file: str, specs: Mapping[str, HyperparameterSpec],
                label: str, schema_found: Sequence[ConfigIssue]
                ) -> tuple[dict[str, HyperparameterSpec], list[ConfigIssue]]:
    """`specs` with this workload's `limits` in place of the registry's (for its fixed values only)."""
    given = entry.get("limits", {})
    if not isinstance(given, dict) or broken_under(schema_found, (*where, "limits")):
        return dict(specs), []
    given_fixed = entry.get("hyperparameters")
    fixed = given_fixed if isinstance(given_fixed, dict) else {}
    widened = dict(specs)
    issues = []
    for hp_name, bounds in given.items():
        limit_where = (*where, "limits", hp_name)
        spec = specs.get(hp_name)
        if spec is None:
            issues.append(_unknown(file, limit_where, hp_name, specs, label))
        elif hp_name not in fixed:
            issues.append(ConfigIssue(file, limit_where, f"'{hp_name}' has no fixed value in this experiment: limits "
                                                         "only let a fixed value (in hyperparameters) lie outside the "
                                                         "registry's"))
        elif spec.discrete_values is not None or spec.type not in ("int", "float"):
            issues.append(ConfigIssue(file, limit_where, f"'{hp_name}' is a {spec.type}: limits are for numbers"))
        elif (len(bounds) != 2 or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
              or bounds[0] > bounds[1]):
            issues.append(ConfigIssue(file, limit_where, "expected [low, high], two numbers with low <= high"))
        else:
            widened[hp_name] = replace(spec, limits=(bounds[0], bounds[1]))
    return widened, issues


def _unknown(file: str, where: Where, hp_name: str, specs: Mapping[str, HyperparameterSpec],
             label: str) -> ConfigIssue:
    aliases = {name: [other.flag] for name, other in specs.items()}
    return ConfigIssue(file, where, f"unknown hyperparameter '{hp_name}' for {label}{suggest_name(hp_name, aliases)}")
