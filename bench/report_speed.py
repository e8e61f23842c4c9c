"""Report speed: `mutation.py report` on a generated 100,000-row summary_all.csv.

The table has the real summary columns (model.record.summary_columns): 2 repositories x 2 models,
modes mutation and parallel, learning_rate (log_uniform) and batch_size mutated together, an
optimizer choice, 5 % failures, CPU energy from rapl (system scope) in most rows and the
process-tree estimate in the rest, GPU energy from nvml. Measured: the whole command in a child
process (interpreter start and imports included), its wall time and peak resident memory, once
with plots and once with --no-plots. Target (issue 13): <= 2 s and <= 300 MB. Floor: pandas
reading the same CSV. The same two runs on a 1,000-row table (the same figures but parallel_vs_alone,
which needs a configuration repeated alone and in parallel) split the time into what the rows cost
and what the command costs whatever the rows.

Run: .venv/bin/python bench/report_speed.py [--rows 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from energy_profiler.model.record import summary_columns

PROJECT = Path(__file__).resolve().parents[1]


def generate(rows: int, path: Path, seed: int = 1) -> None:
    """A summary table of `rows` trials with plausible values (energy rising with batch work)."""
    rng = np.random.default_rng(seed)
    columns = summary_columns(["learning_rate", "batch_size", "optimizer", "epochs"], ["accuracy", "loss"])
    table = pd.DataFrame(index=range(rows), columns=columns, dtype=object)
    index = np.arange(rows)
    repo = np.where(index % 2 == 0, "vision", "text")
    model = np.where(index % 4 < 2, "small", "large")
    learning_rate = np.exp(rng.uniform(np.log(1e-5), np.log(1e-1), rows))
    batch_size = rng.integers(16, 513, rows)
    status = np.where(rng.random(rows) < 0.95, "success", "failed")
    duration_s = 60 + batch_size * 0.5 + rng.normal(0, 5, rows)
    estimate = rng.random(rows) < 0.2
    cpu_j = duration_s * np.where(estimate, 30.0, 65.0) + rng.normal(0, 50, rows)
    gpu_j = duration_s * 250 + rng.normal(0, 200, rows)
    table["experiment_id"] = [f"e{i}" for i in index]
    table["run_id"] = "run_20260101_000000"
    table["trial"] = [f"{i + 1:06d}_{r}_{m}" for i, r, m in zip(index, repo, model, strict=True)]
    table["mode"] = np.where(index % 3 == 0, "parallel", "mutation")
    table["repo"], table["model"], table["status"] = repo, model, status
    table["duration_s"] = duration_s.round(3)
    table["mutated"] = "learning_rate;batch_size"
    table["hp_learning_rate"] = [f"{v:.3g}" for v in learning_rate]
    table["hp_batch_size"] = batch_size
    table["hp_optimizer"] = np.where(index % 2 == 0, "adam", "sgd")
    table["hp_epochs"] = 10
    table["perf_accuracy"] = (0.9 - 0.02 * np.abs(np.log10(learning_rate) + 3) + rng.normal(0, 0.01, rows)).round(4)
    table["perf_loss"] = (1 - table["perf_accuracy"]).round(4)
    table["cpu_energy_j"] = cpu_j.round(3)
    table["cpu_energy_method"] = np.where(estimate, "estimate", "rapl")
    table["cpu_energy_scope"] = np.where(estimate, "process_tree", "system")
    table["cpu_idle_w"] = np.where(estimate, np.nan, 20.0)
    table["cpu_energy_above_idle_j"] = np.where(estimate, np.nan, (cpu_j - 20 * duration_s).round(3))
    table["gpu_energy_j"] = gpu_j.round(3)
    table["gpu_energy_method"] = "nvml"
    table["gpu_idle_w"] = 60.0
    table["gpu_energy_above_idle_j"] = (gpu_j - 60 * duration_s).round(3)
    table["hostname"], table["tool_version"] = "node1", "0.1.0"
    failed = status == "failed"
    table.loc[failed, ["perf_accuracy", "perf_loss"]] = np.nan
    table.to_csv(path, index=False)


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a child process, as an installed tool runs: with its
    modules' bytecode cached (some sandboxes set PYTHONDONTWRITEBYTECODE, which makes every start
    compile the whole package again)."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=environment)
    _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not the largest child's so far
    wall_s = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {child.returncode}")
    return wall_s, usage.ru_maxrss / 1024


SMALL_ROWS = 1000
"""A table that draws the large one's figures (but parallel_vs_alone): what it costs, any size costs."""


def report(table: Path, output: Path, extra: list[str]) -> list[str]:
    """The `mutation.py report` command line for `table`, written to `output`."""
    return [sys.executable, str(PROJECT / "mutation.py"), "report", str(table), "-o", str(output), *extra]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="Write the table and the report here and keep them.")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = arguments.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        table = folder / "summary_all.csv"
        generate(arguments.rows, table)
        size_mb = table.stat().st_size / 1e6
        start = time.perf_counter()
        pd.read_csv(table)
        floor_s = time.perf_counter() - start
        print(f"table: {arguments.rows} rows, {size_mb:.1f} MB; pandas.read_csv alone: {floor_s:.2f} s")
        timed([sys.executable, str(PROJECT / "mutation.py"), "--version"])  # writes the bytecode cache
        wall_s: dict[str, float] = {}
        for label, extra in (("tables only (--no-plots)", ["--no-plots"]), ("tables and plots", [])):
            wall_s[label], peak_mb = timed(report(table, folder / "report", extra))
            verdict = "meets" if wall_s[label] <= 2 and peak_mb <= 300 else "misses"
            print(f"report, {label}: {wall_s[label]:.2f} s, peak {peak_mb:.0f} MB ({verdict} <= 2 s and <= 300 MB)")
        # The same report on a table of SMALL_ROWS trials draws nearly the same figures: what it costs is
        # what the command costs whatever the rows (start-up, imports, drawing each figure).
        small = folder / "small" / "summary_all.csv"
        small.parent.mkdir(exist_ok=True)
        generate(SMALL_ROWS, small)
        small_s = {label: timed(report(small, small.parent / "report", extra))[0]
                   for label, extra in (("tables", ["--no-plots"]), ("plots", []))}
        figures = len(list((small.parent / "report").glob("*.png")))
        print(f"the same report on {SMALL_ROWS:,} rows: {small_s['tables']:.2f} s tables only, "
              f"{small_s['plots']:.2f} s with plots ({figures} figures: "
              f"{small_s['plots'] - small_s['tables']:.2f} s of them)")
        print(f"what the {arguments.rows:,} rows add: {wall_s['tables only (--no-plots)'] - small_s['tables']:.2f} s "
              f"to the tables, {wall_s['tables and plots'] - small_s['plots']:.2f} s to the whole report")


if __name__ == "__main__":
    main()
