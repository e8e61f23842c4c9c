"""`budget`: limits a campaign stops scheduling at (wall time, energy, CO2e), and its checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from energy_profiler.config.errors import ConfigIssue

LIMITS = {"wall_h": "h", "energy_kwh": "kWh", "co2e_kg": "kg"}
"""Each limit and its unit, as the settings and the messages name them."""


@dataclass(frozen=True)
class Budget:
    wall_h: float | None = None
    energy_kwh: float | None = None
    co2e_kg: float | None = None

    def limits(self) -> dict[str, float]:
        """The limits set, by name."""
        return {name: value for name in LIMITS if (value := getattr(self, name)) is not None}


def budget_settings(budget: Any) -> Budget | None:
    """The `budget` block as a value (None when absent)."""
    if not isinstance(budget, dict):
        return None
    return Budget(**{name: float(budget[name]) for name in LIMITS if isinstance(budget.get(name), int | float)})


def budget_issues(document: dict[str, Any], file: str) -> list[ConfigIssue]:
    """A CO2e limit needs a carbon intensity to count what is spent."""
    budget, carbon = document.get("budget"), document.get("carbon")
    has_intensity = isinstance(carbon, dict) and ("g_per_kwh" in carbon or "region" in carbon)
    if isinstance(budget, dict) and "co2e_kg" in budget and not has_intensity:
        return [ConfigIssue(file, ("budget", "co2e_kg"), "a CO2e limit needs a carbon intensity: add "
                                                         "carbon.region or carbon.g_per_kwh")]
    return []
