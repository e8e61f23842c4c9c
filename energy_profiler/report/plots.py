"""PNG plots of campaign results (matplotlib's Agg backend: no display needed).

Only successful trials with the values a plot needs are drawn: a failed run or an unmeasured
energy is left out, never drawn as 0. Every figure is 640 x 480 pixels.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, whatever the environment's display

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from energy_profiler.report.tables import higher_is_better, mutated_names

SIZE_IN = (6.4, 4.8)
DPI = 100


def energy_label(data: pd.DataFrame) -> str:
    """`energy (J; cpu: rapl, gpu: nvml_counter)`: the axis says how its numbers were obtained."""
    parts = []
    for device in ("cpu", "gpu"):
        column = f"{device}_energy_method"
        methods = sorted({str(m) for m in data.get(column, pd.Series(dtype=str)).dropna() if m != "none"})
        if methods:
            parts.append(f"{device}: {', '.join(methods)}")
    return f"energy (J; {'; '.join(parts) or 'not measured'})"


def _safe(text: object) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(text))


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


def _numeric(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    data = frame.copy()
    for column in columns:
        data[column] = pd.to_numeric(data[column], errors="coerce")
    return data.dropna(subset=list(columns))


def pareto_front(energy: Sequence[float], metric: Sequence[float], higher_better: bool) -> list[int]:
    """Indices of the points no other point beats on both: less energy and a better metric."""
    order = sorted(range(len(energy)), key=lambda i: (energy[i], -metric[i] if higher_better else metric[i]))
    front, best = [], None
    for index in order:
        value = metric[index]
        if best is None or (value > best if higher_better else value < best):
            front.append(index)
            best = value
    return front


def energy_vs_metric(table: pd.DataFrame, metric: str, folder: Path) -> list[Path]:
    paths = []
    ok = _numeric(table[table["status"] == "success"], "energy_j", metric)
    for (repo, model), group in ok.groupby(["repo", "model"], sort=False):
        figure, axes = plt.subplots(figsize=SIZE_IN)
        for mode, points in group.groupby("mode", sort=False):
            axes.scatter(points["energy_j"], points[metric], label=str(mode), alpha=0.8)
        front = pareto_front(list(group["energy_j"]), list(group[metric]), higher_is_better(metric))
        best = group.iloc[front]
        axes.plot(best["energy_j"], best[metric], "k--", marker="o", markerfacecolor="none", label="Pareto front")
        axes.set(xlabel=energy_label(group), ylabel=metric.removeprefix("perf_"), title=f"{repo}/{model}")
        axes.legend()
        name = f"energy_vs_{_safe(metric.removeprefix('perf_'))}_{_safe(repo)}_{_safe(model)}.png"
        paths.append(_save(figure, folder / name))
    return paths


def energy_vs_hyperparameters(table: pd.DataFrame, folder: Path) -> list[Path]:
    paths = []
    ok = table[table["status"] == "success"]
    for (repo, model), group in ok.groupby(["repo", "model"], sort=False):
        for name in mutated_names(group):
            data = _numeric(group, f"hp_{name}", "energy_j")
            if data.empty:
                continue
            figure, axes = plt.subplots(figsize=SIZE_IN)
            axes.scatter(data[f"hp_{name}"], data["energy_j"], alpha=0.8)
            values = data[f"hp_{name}"]
            if (values > 0).all() and values.max() / values.min() > 100:
                axes.set_xscale("log")  # log-uniform ranges spread over decades
            axes.set(xlabel=name, ylabel=energy_label(data), title=f"{repo}/{model}: energy against {name}")
            paths.append(_save(figure, folder / f"energy_vs_hp_{_safe(name)}_{_safe(repo)}_{_safe(model)}.png"))
    return paths


def parallel_vs_alone(table: pd.DataFrame, folder: Path) -> list[Path]:
    """Mean energy of each foreground configuration measured alone and beside backgrounds."""
    paths = []
    ok = _numeric(table[table["status"] == "success"], "energy_j")
    hp_columns = [column for column in ok.columns if column.startswith("hp_")]
    for (repo, model), group in ok.groupby(["repo", "model"], sort=False):
        group = group.assign(_config=group[hp_columns].astype(str).agg("|".join, axis=1))
        alone = group[group["mode"] != "parallel"].groupby("_config")["energy_j"].mean()
        shared = group[group["mode"] == "parallel"].groupby("_config")["energy_j"].mean()
        both = pd.concat([alone.rename("alone"), shared.rename("parallel")], axis=1).dropna()
        if both.empty:
            continue
        figure, axes = plt.subplots(figsize=SIZE_IN)
        axes.scatter(both["alone"], both["parallel"])
        top = float(max(both["alone"].max(), both["parallel"].max()))
        axes.plot([0, top], [0, top], "k:", label="same energy")
        axes.set(xlabel="energy alone (J)", ylabel="energy with backgrounds (J)", title=f"{repo}/{model}")
        axes.legend()
        paths.append(_save(figure, folder / f"parallel_vs_alone_{_safe(repo)}_{_safe(model)}.png"))
    return paths


def power_over_time(trial_dir: Path, folder: Path) -> Path | None:
    """CPU (packages + DRAM, from RAPL readings) and GPU power over the last attempt's window."""
    attempts = sorted(trial_dir.glob("attempt_*/energy"), key=lambda p: int(p.parent.name.split("_")[1]))
    if not attempts:
        return None
    energy = attempts[-1]
    cpu = _cpu_power(energy / "cpu_samples.csv")
    gpu = _gpu_power(energy / "gpu_samples.csv")
    if not cpu and not gpu:
        return None
    figure, axes = plt.subplots(figsize=SIZE_IN)
    for label, series in (*cpu.items(), *gpu.items()):
        axes.plot([t for t, _ in series], [w for _, w in series], label=label)
    axes.set(xlabel="time (s)", ylabel="power (W)", title=f"power: {trial_dir.name}")
    axes.legend()
    return _save(figure, folder / f"power_{_safe(trial_dir.name)}.png")


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def _cpu_power(path: Path) -> dict[str, list[tuple[float, float]]]:
    readings: dict[float, float] = {}
    for row in _rows(path):
        if row["quantity"] == "energy_uj" and row["source"].startswith(("package", "dram")):
            readings.setdefault(float(row["monotonic_s"]), 0.0)
            readings[float(row["monotonic_s"])] += float(row["value"])
    times = sorted(readings)
    if len(times) < 2:
        return {}
    start = times[0]
    # Energy between readings over their spacing; a counter wrap would show as a negative step.
    series = [(t1 - start, (readings[t1] - readings[t0]) / 1e6 / (t1 - t0))
              for t0, t1 in itertools.pairwise(times) if t1 > t0 and readings[t1] >= readings[t0]]
    return {"cpu (packages + DRAM)": series} if series else {}


def _gpu_power(path: Path) -> dict[str, list[tuple[float, float]]]:
    series: dict[str, list[tuple[float, float]]] = {}
    start = None
    for row in _rows(path):
        if row["quantity"] == "power" and row["value"]:
            time_s = float(row["monotonic_s"])
            start = time_s if start is None else start
            series.setdefault(row["source"], []).append((time_s - start, float(row["value"])))
    return series
