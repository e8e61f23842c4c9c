"""The report: tables computed from a known input, PNGs that decode, partial and failed tables."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib.image
import pytest

from energy_profiler.report.plots import pareto_front
from test.conftest import invoke

COLUMNS = ["experiment_id", "run_id", "trial", "mode", "repo", "model", "status", "duration_s", "mutated", "hp_x",
           "perf_accuracy", "cpu_energy_j", "cpu_energy_method", "gpu_energy_j", "gpu_energy_method"]


def write_table(path: Path, rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as table:
        writer = csv.writer(table)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return path


def known_run(folder: Path) -> Path:
    run = folder / "run_20260101_000000"
    write_table(run / "summary.csv", [
        ["e1", run.name, "001_r_m", "mutation", "r", "m", "success", 1.0, "x", 1, 0.9, 10, "rapl", "", "none"],
        ["e2", run.name, "002_r_m", "mutation", "r", "m", "success", 2.0, "x", 2, 0.8, 20, "rapl", "", "none"],
        ["e3", run.name, "003_r_m", "mutation", "r", "m", "success", 3.0, "x", 3, 0.7, 30, "rapl", "", "none"],
        ["e4", run.name, "004_r_m", "mutation", "r", "m", "failed", 9.0, "x", 4, "", 1000, "rapl", "", "none"],
    ])
    return run


def test_the_tables_hold_the_values_of_a_known_input(tmp_path: Path) -> None:
    run = known_run(tmp_path)
    result = invoke("report", run, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    report = (tmp_path / "out" / "report.md").read_text()
    # The failed trial (1000 J) is counted in trials and success rate, never averaged.
    assert "| r | m | mutation | 4 | 75% | 2 ± 1 | 20 ± 10 | missing | 0.8 ± 0.1 |" in report
    assert "| r | m | mutation | x | +1.00 | -1.00 |" in report  # x rises with energy, falls with accuracy
    assert "4 trials: 3 success, 1 failed." in report
    assert "4 trials; 2 plots" in result.stdout


def test_the_plots_are_real_pngs_of_the_expected_size_and_linked(tmp_path: Path) -> None:
    run = known_run(tmp_path)
    assert invoke("report", run, "-o", tmp_path / "out").exit_code == 0
    pngs = sorted((tmp_path / "out").glob("*.png"))
    assert [p.name for p in pngs] == ["energy_vs_accuracy_r_m.png", "energy_vs_hp_x_r_m.png"]
    report = (tmp_path / "out" / "report.md").read_text()
    for png in pngs:
        assert matplotlib.image.imread(png).shape == (480, 640, 4)
        assert f"]({png.name})" in report


def test_failures_and_missing_energy_do_not_crash(tmp_path: Path) -> None:
    table = write_table(tmp_path / "old.csv", [
        ["e1", "run_a", "001_r_m", "default", "r", "m", "failed", 1.0, "", 1, "", "", "none", "", "none"],
        ["e2", "run_a", "002_r_m", "default", "r", "m", "success", 2.0, "", 1, 0.5, "", "none", "", "none"],
    ])
    result = invoke("report", table, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "| r | m | default | 2 | 50% | 2 | missing | missing | 0.5 |" in (tmp_path / "out" / "report.md").read_text()
    assert list((tmp_path / "out").glob("energy_vs_*.png")) == []  # nothing to draw: no energy, no zeros


def test_power_over_time_is_drawn_from_the_raw_traces(tmp_path: Path) -> None:
    run = known_run(tmp_path)
    energy = run / "003_r_m" / "attempt_1" / "energy"
    energy.mkdir(parents=True)
    with open(energy / "cpu_samples.csv", "w", newline="") as samples:
        writer = csv.writer(samples)
        writer.writerow(["time_unix_s", "monotonic_s", "source", "quantity", "value", "unit"])
        for i in range(11):
            writer.writerow([1.7e9 + i, 100 + i, "package-0", "energy_uj", 40_000_000 * i, "uJ"])
    (energy / "gpu_samples.csv").write_text("time_unix_s,monotonic_s,source,quantity,value,unit\n"
                                            + "".join(f"{1.7e9 + i},{100 + i},gpu0,power,{200 + i},W\n"
                                                      for i in range(11)))
    result = invoke("report", run, "-o", tmp_path / "out", "--trace", "003_r_m")
    assert result.exit_code == 0, result.output
    assert matplotlib.image.imread(tmp_path / "out" / "power_003_r_m.png").shape == (480, 640, 4)


def test_the_pareto_front_keeps_only_undominated_points() -> None:
    energy, accuracy = [10, 12, 11, 30, 25], [0.8, 0.9, 0.7, 0.95, 0.85]
    assert sorted(pareto_front(energy, accuracy, higher_better=True)) == [0, 1, 3]
    assert sorted(pareto_front(energy, [0.5, 0.4, 0.6, 0.1, 0.3], higher_better=False)) == [0, 1, 3, 4]


@pytest.mark.parametrize(("args", "message"), [(["--metric", "f1"], "no metric 'f1'; the tables have: accuracy"),
                                               ([], "has neither summary.csv nor summary_all.csv")])
def test_report_errors_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    target = known_run(tmp_path) if args else tmp_path
    result = invoke("report", target, "-o", tmp_path / "out", *args)
    assert result.exit_code == 2 and message in result.stderr
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_parallel_energy_is_compared_with_the_same_foreground_alone(tmp_path: Path) -> None:
    table = write_table(tmp_path / "t.csv", [
        ["a1", "run_a", "001_r_m", "default", "r", "m", "success", 1.0, "", 1, 0.9, 10, "rapl", "", "none"],
        ["a2", "run_a", "002_r_m_parallel", "parallel", "r", "m", "success", 1.0, "", 1, 0.9, 25, "rapl", "", "none"],
        ["a3", "run_a", "003_r_m_parallel", "parallel", "r", "m", "success", 1.0, "", 2, 0.9, 40, "rapl", "", "none"],
    ])
    assert invoke("report", table, "-o", tmp_path / "out").exit_code == 0
    plot = tmp_path / "out" / "parallel_vs_alone_r_m.png"  # hp_x=1 was measured both ways; hp_x=2 only in parallel
    assert matplotlib.image.imread(plot).shape == (480, 640, 4)
