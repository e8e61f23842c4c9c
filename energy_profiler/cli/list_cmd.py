"""`list` (and `-l`): the repositories, models, hyperparameters and metrics of the registry."""

from __future__ import annotations

import json
from typing import Any

import click

from energy_profiler.cli.context import AppContext, global_options
from energy_profiler.cli.knobs_view import knob_documents, knob_lines
from energy_profiler.cli.tables import emit, format_option, format_table, terminal_width
from energy_profiler.config.hyperparams import HyperparameterSpec
from energy_profiler.config.registry import Registry
from energy_profiler.model.values import canonical_to_json, format_value

HEADERS = ["hyperparameter", "flag", "type", "default", "range", "distribution", "p(zero)"]
INDENT = "  "


@click.command("list")
@format_option("json: each model with its own hyperparameters (typed) and metrics; csv: a row per model and "
               "hyperparameter or metric")
@global_options
def list_command(output_format: str) -> None:
    """List repositories, models, hyperparameters (flags, defaults, ranges) and metrics."""
    print_registry(click.get_current_context().ensure_object(AppContext), output_format)


def print_registry(app: AppContext, output_format: str = "table") -> None:
    registry = app.registry()
    if output_format == "table":
        click.echo(registry_text(registry, terminal_width()))
    elif output_format == "json":
        click.echo(json.dumps(registry_document(registry), indent=1))
    else:
        emit(CSV_HEADERS, csv_rows(registry), output_format)


def hyperparameter_document(spec: HyperparameterSpec) -> dict[str, Any]:
    """One hyperparameter as a model has it, with typed values: numbers as numbers, ranges as lists."""
    numeric = spec.discrete_values is None
    return {
        "name": spec.name, "flag": spec.flag, "type": spec.type,
        "default": canonical_to_json(spec.default_text) if spec.default is not None else None,
        "range": [_typed(spec.low, spec), _typed(spec.high, spec)] if numeric else None,
        "limits": [_typed(value, spec) for value in spec.limits] if numeric and spec.limits else None,
        "values": [canonical_to_json(value) for value in spec.discrete_values or ()] if not numeric else None,
        "distribution": spec.distribution if numeric else "uniform",
        "zero_probability": spec.zero_probability if numeric else None,
        "precision": spec.precision if spec.type == "float" else None,
        "seed": spec.seed,
        "knob": spec.knob,
    }


def _typed(value: float, spec: HyperparameterSpec) -> int | float:
    return int(value) if spec.type == "int" else float(value)


def registry_document(registry: Registry) -> dict[str, Any]:
    """The registry as each model sees it (its overrides applied), for scripts."""
    return {"registry": str(registry.file), "repositories": [{
        "name": repo.name, "path": str(repo.path), "command": list(repo.command), "python": repo.python,
        "model_flag": repo.model_flag, "required_args": list(repo.required_args),
        "pass": "all" if repo.passes_all else "given",
        "models": [{
            "name": model.name, "timeout_s": model.timeout_s, "gpu_memory_mib": model.gpu_memory_mib,
            "hyperparameters": [hyperparameter_document(spec) for spec in model.hyperparameters.values()],
            "metrics": [{"name": metric.name, "pattern": metric.pattern.pattern, "required": metric.required}
                        for metric in model.metrics.values()],
        } for model in repo.models.values()],
    } for repo in registry.repositories.values()], "system": knob_documents(registry)}


CSV_HEADERS = ["repo", "model", "kind", "name", "flag", "type", "default", "low", "high", "limit_low", "limit_high",
               "values", "distribution", "zero_probability", "precision", "seed", "pattern", "required"]
"""One row per model and hyperparameter (kind `hyperparameter`, or `knob` for the registry's system knobs, which
every model has) or metric (kind `metric`)."""


def csv_rows(registry: Registry) -> list[list[object]]:
    rows: list[list[object]] = []
    for repo in registry.repositories.values():
        for model in repo.models.values():
            for spec in model.hyperparameters.values():
                entry = hyperparameter_document(spec)
                low, high = entry["range"] or (None, None)
                limit_low, limit_high = entry["limits"] or (None, None)
                values = ";".join(format_value(value, spec.type) for value in spec.discrete_values or ())
                rows.append([repo.name, model.name, "knob" if spec.knob else "hyperparameter", spec.name, spec.flag,
                             spec.type,
                             spec.default_text, low, high, limit_low, limit_high, values or None,
                             entry["distribution"], entry["zero_probability"], entry["precision"],
                             str(spec.seed).lower(), None, None])
            for metric in model.metrics.values():
                rows.append([repo.name, model.name, "metric", metric.name, *[None] * 11, None, metric.pattern.pattern,
                             str(metric.required).lower()])
    return rows


def _row(spec: HyperparameterSpec) -> list[object]:
    kind = f"{spec.type} (seed)" if spec.seed else spec.type  # a seed: `mutate: ["all"]` leaves it out
    return [spec.name, spec.flag, kind, spec.default_text, _values(spec),
            spec.distribution if spec.discrete_values is None else "uniform", spec.zero_probability or None]


def registry_text(registry: Registry, width: int | None = None) -> str:
    blocks = [f"registry: {registry.file}"]
    for repo in registry.repositories.values():
        lines = [f"{repo.name}  ({repo.path})", f"  command: {' '.join(repo.command)}",
                 f"  models: {', '.join(repo.models)}"]
        if not repo.passes_all:
            lines.append("  passes: only fixed and mutated values (pass: given); the script's defaults apply otherwise")
        base = repo.hyperparameters
        rows = [_row(spec) for spec in base.values()]
        table = format_table(HEADERS, rows, None if width is None else width - len(INDENT),
                             optional=["distribution", "p(zero)"])
        lines += [INDENT + line for line in table.splitlines()]
        for model in repo.models.values():
            changed = [f"{name} {_difference(base[name], spec)}" for name, spec in model.hyperparameters.items()
                       if not spec.knob and spec != base[name]]
            if changed:
                lines.append(f"  {model.name} overrides: " + "; ".join(changed))
        metrics = [f"{metric.name}{' (required)' if metric.required else ''}" for metric in repo.metrics.values()]
        lines.append(f"  metrics: {', '.join(metrics) or '(none)'}")
        blocks.append("\n".join(lines))
    if registry.knobs:
        blocks.append("\n".join(knob_lines(registry, width)))
    return "\n\n".join(blocks)


def _number(value: float, spec: HyperparameterSpec) -> str:
    return format_value(value, spec.type)


def _values(spec: HyperparameterSpec) -> str:
    """`[1, 20]` for a range; `{adam, sgd}` for a choice's values; `{false, true}` for a switch."""
    discrete = spec.discrete_values
    if discrete is not None:
        return "{" + ", ".join(json.dumps(value) if not value.isprintable() else value for value in discrete) + "}"
    drawn = f"[{_number(spec.low, spec)}, {_number(spec.high, spec)}]"
    if spec.limits is None:
        return drawn
    return f"{drawn} limits [{_number(spec.limits[0], spec)}, {_number(spec.limits[1], spec)}]"


def _difference(base: HyperparameterSpec, spec: HyperparameterSpec) -> str:
    parts = []
    if spec.default != base.default:
        parts.append(f"default {spec.default_text}")
    if (spec.low, spec.high, spec.values) != (base.low, base.high, base.values):
        parts.append(f"values {_values(spec)}")
    if spec.distribution != base.distribution:
        parts.append(spec.distribution)
    if spec.zero_probability != base.zero_probability:
        parts.append(f"p(zero) {spec.zero_probability}")
    return ", ".join(parts)
