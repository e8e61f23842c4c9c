"""Power over time of one trial, from its raw readings (`energy/{cpu,gpu}_samples.csv`).

Drawn as steps, because a RAPL figure is the mean power over the interval between two readings
and a GPU reading holds until the next one; time from the attempt's start (t = 0), power from
0 W, so a constant 22 W looks constant. Readings closer together than half the usual spacing are
merged first: two RAPL reads 1.6 ms apart can see the same counter value, a false 0 W. The idle
and background baselines the campaign measured are drawn as lines.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from energy_profiler.report.plots import Plot, new_figure, render, safe_name

MERGE_FRACTION = 0.5


@dataclass(frozen=True)
class Steps:
    edges: np.ndarray
    watts: np.ndarray
    """`watts[i]` holds from `edges[i]` to `edges[i + 1]` (seconds from the attempt's start)."""


def _readings(path: Path) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame(columns=["time_unix_s", "source", "quantity", "value"])
    frame = pd.read_csv(path, usecols=["time_unix_s", "source", "quantity", "value"], dtype={"source": str})
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    return frame.dropna(subset=["value"])


def keep_spaced(times: np.ndarray) -> np.ndarray:
    """Indices of readings at least half the median spacing apart (the first and last always kept)."""
    if len(times) < 3:
        return np.arange(len(times))
    minimum = MERGE_FRACTION * float(np.median(np.diff(times)))
    kept = [0]
    for index in range(1, len(times) - 1):
        if times[index] - times[kept[-1]] >= minimum:
            kept.append(index)
    if times[-1] - times[kept[-1]] < minimum and len(kept) > 1:
        kept.pop()  # the last reading closes the window: merge the one before it instead
    kept.append(len(times) - 1)
    return np.asarray(kept)


def cpu_steps(path: Path, start_unix_s: float | None) -> Steps | None:
    """Packages + DRAM power between kept readings; an interval where a counter went back is a gap."""
    readings = _readings(path)
    counters = readings[(readings["quantity"] == "energy_uj")
                        & readings["source"].str.startswith(("package", "dram"), na=False)]
    if counters.empty:
        return None
    wide = counters.pivot_table(index="time_unix_s", columns="source", values="value", aggfunc="last").sort_index()
    steps = wide.diff()
    wrapped = (steps < 0).any(axis=1)
    energy_uj = steps.sum(axis=1).where(~wrapped).fillna(0.0).cumsum().to_numpy()
    times = wide.index.to_numpy(dtype=float)
    kept = keep_spaced(times)
    if len(kept) < 2:
        return None
    times, energy_uj = times[kept], energy_uj[kept]
    gap = np.array([wrapped.iloc[a + 1:b + 1].any() for a, b in itertools.pairwise(kept)])
    watts = np.diff(energy_uj) / 1e6 / np.diff(times)
    watts[gap] = np.nan
    origin = start_unix_s if start_unix_s is not None else times[0]
    return Steps(times - origin, watts)


def gpu_steps(path: Path, start_unix_s: float | None) -> Steps | None:
    """The sum over GPUs of each sampling round's power (a round ends when a GPU repeats)."""
    readings = _readings(path)
    power = readings[readings["quantity"] == "power"].sort_values("time_unix_s", kind="stable")
    if power.empty:
        return None
    rounds: list[int] = []
    seen: set[str] = set()
    number = 0
    for source in power["source"]:
        if source in seen:
            number, seen = number + 1, set()
        seen.add(source)
        rounds.append(number)
    per_round = power.assign(round=rounds).groupby("round").agg(time=("time_unix_s", "first"), watts=("value", "sum"))
    times, watts = per_round["time"].to_numpy(dtype=float), per_round["watts"].to_numpy(dtype=float)
    kept = keep_spaced(times)
    times, watts = times[kept], watts[kept]
    if len(times) < 2:
        return None
    origin = start_unix_s if start_unix_s is not None else times[0]
    return Steps(times - origin, watts[:-1])


def _attempt_start(trial_dir: Path, attempt: int) -> float | None:
    try:
        record = json.loads((trial_dir / "experiment.json").read_text())
        started = next(a["start_utc"] for a in record["attempts"] if a["attempt"] == attempt)
        return datetime.fromisoformat(started).timestamp()
    except (OSError, ValueError, KeyError, StopIteration, TypeError):
        return None


def power_plot(trial_dir: Path, row: pd.Series) -> Plot:
    """The plot of a trial's power over time (drawn by `render`; nothing where it has no readings)."""
    return Plot(f"power_{safe_name(trial_dir.name)}.png", partial(_power_figure, trial_dir, row),
                f"{trial_dir.parent.name}/{trial_dir.name}: CPU and GPU power over its last attempt, as sampled, "
                "with its idle and background baselines where they were measured")


def power_over_time(trial_dir: Path, row: pd.Series, folder: Path) -> Path | None:
    """One PNG of the last attempt's CPU and GPU power with the trial's baselines, or None without readings."""
    made = render([power_plot(trial_dir, row)], folder)
    return made[0] if made else None


def _power_figure(trial_dir: Path, row: pd.Series) -> Figure | None:
    attempts = sorted(trial_dir.glob("attempt_*/energy"), key=lambda p: int(p.parent.name.split("_")[1]))
    if not attempts:
        return None
    energy = attempts[-1]
    start = _attempt_start(trial_dir, int(energy.parent.name.split("_")[1]))
    series = {"cpu (packages + DRAM)": cpu_steps(energy / "cpu_samples.csv", start),
              "gpu (all GPUs)": gpu_steps(energy / "gpu_samples.csv", start)}
    if all(steps is None for steps in series.values()):
        return None
    figure, axes = new_figure()
    for index, (label, steps) in enumerate(series.items()):
        if steps is None:
            continue
        colour = f"C{index}"
        axes.stairs(steps.watts, steps.edges, label=label, color=colour, linewidth=1.2)
        device = label[:3]
        for kind, style in (("idle", "--"), ("background", ":")):
            baseline = row.get(f"{device}_{kind}_w")
            if baseline is not None and pd.notna(baseline):
                axes.axhline(float(baseline), color=colour, linestyle=style, linewidth=1,
                             label=f"{device} {kind} baseline {float(baseline):.3g} W")
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    energy_j, duration_s = row.get("energy_j"), row.get("duration_s")
    if energy_j is not None and pd.notna(energy_j) and duration_s:
        mean_w = float(energy_j) / float(duration_s)
        summary = f"{float(energy_j):.4g} J ({row.get('energy_method')}), mean {mean_w:.3g} W"
    else:
        summary = "energy not measured"
    axes.set(xlabel="time since the attempt started (s)", ylabel="power (W)",
             title=f"{trial_dir.name}\n{summary}")
    axes.title.set_fontsize("medium")
    axes.legend(fontsize="small")
    return figure
