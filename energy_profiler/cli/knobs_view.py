"""The registry's system knobs as `list` and `doctor` show them: the range declared, and what this
machine takes and whether this process may set it (read, never changed)."""

from __future__ import annotations

from typing import Any

from energy_profiler.cli.tables import fitted
from energy_profiler.config.hyperparams import HyperparameterSpec
from energy_profiler.config.registry import Registry
from energy_profiler.config.system_knobs import KNOB_KINDS, KNOB_NAMES
from energy_profiler.model.values import canonical_to_json, format_value
from energy_profiler.system import knobs
from energy_profiler.system.governor import cpufreq_root
from energy_profiler.system.gpu_knobs import KnobError


def machine() -> knobs.Machine:
    return knobs.Machine(None, cpufreq_root())


def here(name: str) -> tuple[dict[str, list[Any]] | None, str | None]:
    """(what this machine takes for `name`: {"GPU 0": [low, high], ...} for a GPU knob, {"CPUs": ...}
    for a CPU one, or None where it cannot be read; why this process cannot set it, or None)."""
    where = machine()
    try:
        allowed: dict[str, list[Any]]
        if name in knobs.GPU_KNOBS:
            allowed = {f"GPU {gpu}": list(bounds) for gpu, bounds in knobs.allowed_by_gpu(name, where).items()}
        else:
            allowed = {"CPUs": [*knobs.allowed(name, where)]}
    except KnobError as error:
        return None, error.said()
    return allowed, knobs.why_not(name, where)


def declared(spec: HyperparameterSpec) -> str:
    """`[150, 300]` or `{performance, powersave}`, and the default or that the machine's value stays."""
    shown = "{" + ", ".join(spec.values) + "}" if spec.type == "choice" else \
        f"[{format_value(spec.low, spec.type)}, {format_value(spec.high, spec.type)}]"
    default = f"default {spec.default_text}" if spec.default is not None else "no default: left as the machine has it"
    return f"{shown}, {default}"


def knob_lines(registry: Registry, width: int | None = None) -> list[str]:
    """`list`'s block: each knob declared, with what this machine takes and who may set it."""
    if not registry.knobs:
        return []
    lines = ["system knobs (set by the tool for each trial that names them, restored after it):"]
    for name, spec in registry.knobs.items():
        allowed, why_not = here(name)
        machine_says = ("here: " + _shown(name, allowed)) if allowed is not None else f"here: {why_not}"
        if allowed is not None and why_not:
            machine_says += f" (cannot be set by this process: {why_not})"
        lines.append(fitted(f"  {name}  {declared(spec)}; {machine_says}", width, "      "))
    return lines


def _shown(name: str, allowed: dict[str, list[Any]]) -> str:
    def one(values: list[Any]) -> str:
        if name == "cpu_governor":
            return "{" + ", ".join(values) + "}"
        return f"[{knobs.shown(values[0])}, {knobs.shown(values[1])}]"

    if list(allowed) == ["CPUs"]:
        return one(allowed["CPUs"])
    return ", ".join(f"{device} {one(values)}" for device, values in allowed.items())


def knob_documents(registry: Registry) -> list[dict[str, Any]]:
    """`list --format json`'s `system`: each knob with its declaration and this machine's answer."""
    documents = []
    for name, spec in registry.knobs.items():
        allowed, why_not = here(name)
        documents.append({
            "name": name, "type": spec.type, "what": KNOB_KINDS[name].what,
            "range": [spec.low, spec.high] if spec.type != "choice" else None,
            "values": list(spec.values) if spec.type == "choice" else None,
            "default": canonical_to_json(spec.default_text) if spec.default is not None else None,
            "distribution": spec.distribution, "machine_allows": allowed, "cannot_set_because": why_not,
        })
    return documents


def doctor_lines() -> list[tuple[str, str | None]]:
    """(knob, why this process cannot set it here or None) for every knob there is."""
    return [(name, knobs.why_not(name, machine())) for name in KNOB_NAMES]
