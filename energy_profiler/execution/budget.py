"""Before each trial: would what the campaign has spent plus the next trial pass a limit of its budget?

Spent: the wall time of this session and of the earlier sessions' trials (their attempts' wall
time), the energy measured (every device measured) and its CO2e, over every trial recorded. The next
trial: its forecast (duration and energy) where the plan has one, else the mean of the trials this
campaign has recorded; with neither, nothing to judge by and the trial runs.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from energy_profiler.config.budget import LIMITS, Budget
from energy_profiler.fs import atomic_write_json
from energy_profiler.model.energy_fields import JOULES_PER_KWH
from energy_profiler.model.record import Record

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class BudgetGuard:
    budget: Budget
    g_per_kwh: float | None
    earlier_wall_s: float
    """The wall time the earlier sessions' trials took (a resume's)."""
    started_s: float
    """When this session started (monotonic)."""

    def crossed(self, records: Sequence[Record], forecast: tuple[float | None, float | None],
                now_s: float, cooldown_s: float = 0.0) -> str | None:
        """Which limit the next trial (after its cool-down) would pass, in a sentence with the figures;
        None when none."""
        measured = [joules for record in records if (joules := record.energy.measured_j) is not None]
        forecast_s, forecast_j = forecast
        next_s = forecast_s if forecast_s is not None else _mean([record.duration_s for record in records])
        next_j = forecast_j if forecast_j is not None else _mean(measured)
        basis = "its forecast" if forecast_s is not None else "this campaign's mean"
        spent_kwh = sum(measured) / JOULES_PER_KWH
        figures = {
            "wall_h": ((self.earlier_wall_s + now_s - self.started_s) / SECONDS_PER_HOUR,
                       (next_s + cooldown_s) / SECONDS_PER_HOUR if next_s is not None else None),
            "energy_kwh": (spent_kwh, next_j / JOULES_PER_KWH if next_j is not None else None),
            "co2e_kg": (sum(r.energy.co2e_g or 0.0 for r in records) / 1000,
                        next_j / JOULES_PER_KWH * self.g_per_kwh / 1000
                        if next_j is not None and self.g_per_kwh is not None else None),
        }
        for name, limit in self.budget.limits().items():
            spent, upcoming = figures[name]
            if upcoming is not None and spent + upcoming > limit:
                unit = LIMITS[name]
                return (f"budget.{name} {limit:.3g} {unit} would be passed: spent {spent:.3g} {unit} + the next trial "
                        f"about {upcoming:.3g} {unit} ({basis})")
        return None


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def earlier_wall_s(records: Sequence[Record]) -> float:
    """What earlier sessions' trials took: each attempt's wall time (its duration where that is unknown)."""
    return sum(attempt.wall_s or attempt.duration_s or 0.0 for record in records for attempt in record.attempts)


BUDGET_STOP = "budget_stop.json"
"""In the run folder: why the last session stopped scheduling (for `status`); a resume that runs on removes it."""


def stop_for_budget(run_dir: Path, crossed: str, not_run: int, say: Callable[[str], None]) -> str:
    """Say why the campaign stops scheduling, and keep it for `status`; the sentence, for the closing lines."""
    said = (f"{crossed}: stopping with {not_run} trial(s) not run; raise the budget (the settings' budget, or "
            "--budget-wall-h, --budget-energy-kwh, --budget-co2e-kg) and --resume to run them")
    say(said)
    atomic_write_json(run_dir / BUDGET_STOP, {"reason": crossed, "not_run": not_run})
    return said
