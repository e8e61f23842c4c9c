"""Where a settings file may not name a system knob: in a background, or in a Slurm campaign."""

from __future__ import annotations

from typing import Any

from energy_profiler.config.errors import ConfigIssue
from energy_profiler.config.registry import Registry


def knob_issues(document: dict[str, Any], file: str, registry: Registry) -> list[ConfigIssue]:
    """System knobs where they cannot be: fixed in a background (a knob is the machine's, set for the
    measured foreground), or in a campaign Slurm runs (its nodes are set by the cluster, not by us)."""
    slurm = isinstance(document.get("executor"), dict) or document.get("executor") == "slurm"
    issues = []
    for index, entry in enumerate(document["experiments"]):
        if not isinstance(entry, dict):
            continue
        parallel = entry.get("mode") == "parallel"
        foreground = entry.get("foreground") if parallel else entry
        backgrounds = entry.get("background") if parallel else []
        here: tuple[str | int, ...] = ("experiments", index, "foreground") if parallel else ("experiments", index)
        workloads: list[tuple[tuple[str | int, ...], Any]] = [(here, foreground)]
        if isinstance(backgrounds, list):
            workloads += [(("experiments", index, "background", position), workload)
                          for position, workload in enumerate(backgrounds)]
        elif parallel:
            workloads.append((("experiments", index, "background"), backgrounds))
        for where, workload in workloads:
            if not isinstance(workload, dict):
                continue
            given = workload.get("hyperparameters")
            fixed = [(("hyperparameters", name), name) for name in given if name in registry.knobs] \
                if isinstance(given, dict) else []
            listed = workload.get("mutate")
            mutated = [(("mutate", position), name) for position, name in enumerate(listed)
                       if isinstance(name, str) and name in registry.knobs] if isinstance(listed, list) else []
            for tail, name in fixed + mutated:
                if "background" in where:
                    issues.append(ConfigIssue(file, (*where, *tail), f"'{name}' is a system knob, which only the "
                                              "measured foreground may set (a background shares its machine): "
                                              "move it to the foreground"))
                elif slurm:
                    issues.append(ConfigIssue(file, (*where, *tail), f"'{name}' is a system knob, which a Slurm "
                                              "campaign cannot set on its nodes; run this experiment locally"))
    return issues
