"""The report: tables computed from a known input, methods never pooled, axes from the registry,
statistics with n and intervals, PNGs that decode, a self-contained HTML page, and bad inputs
refused with one line before anything is written."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.legend import Legend

from energy_profiler.report import plots, power, stats
from energy_profiler.report.stats import pareto_front, spearman, staircase
from test.conftest import invoke

COLUMNS = ["experiment_id", "run_id", "trial", "mode", "repo", "model", "status", "duration_s", "mutated", "hp_x",
           "perf_accuracy", "cpu_energy_j", "cpu_energy_method", "gpu_energy_j", "gpu_energy_method"]


def write_table(path: Path, rows: list[list[object]], columns: list[str] = COLUMNS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as table:
        writer = csv.writer(table)
        writer.writerow(columns)
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
    # The failed trial (1000 J) is counted in trials and success rate, never part of a figure.
    assert "| r | m | mutation | cpu rapl | 4 | 75% | 4 | 2 (1–3) | 20 (10–30) | 0.8 (0.7–0.9) |" in report
    # Three points: rho is exact, and n says how little that means; no interval is claimed from 3.
    assert "| r | m | mutation | x | energy (cpu rapl) | 3 | +1.00 |" in report
    assert "| r | m | mutation | x | accuracy | 3 | -1.00 |" in report
    assert "4 trials: 3 success, 1 failed." in report
    # The terminal says what the cells are, as the pages do.
    assert "(cells: median (min–max) over successful trials: what the campaign tried, not run-to-run noise)" \
        in result.stdout


def test_the_plots_are_real_pngs_of_the_expected_size_and_in_both_pages(tmp_path: Path) -> None:
    run = known_run(tmp_path)
    assert invoke("report", run, "-o", tmp_path / "out").exit_code == 0
    pngs = sorted((tmp_path / "out").glob("*.png"))
    assert [p.name for p in pngs] == ["accuracy_vs_hp_x_r_m.png", "duration_vs_hp_x_r_m.png",
                                      "energy_vs_accuracy_r_m.png", "energy_vs_hp_x_r_m.png"]
    report = (tmp_path / "out" / "report.md").read_text()
    page = (tmp_path / "out" / "report.html").read_text()
    for png in pngs:
        assert matplotlib.image.imread(png).shape == (480, 640, 4)
        assert f"]({png.name})" in report
    assert page.count('src="data:image/png;base64,') == len(pngs)  # inline: the page stands alone


def test_the_html_page_needs_no_network_and_escapes_every_cell(tmp_path: Path) -> None:
    hostile = '<script>alert("x")</script>|\nrepo'
    table = write_table(tmp_path / "t.csv", [
        ["e1", "run_a", "001", "default", hostile, "m", "success", 1.0, "", 1, 0.9, 10, "rapl", "", "none"],
    ])
    assert invoke("report", table, "-o", tmp_path / "out").exit_code == 0
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert page.count("<script>") == 1 and "querySelectorAll(\"table.sortable\")" in page  # only the page's sorter
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched from anywhere
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "&lt;" not in markdown and "\\|" in markdown  # a `|` in a cell does not split the row
    assert not any(line.startswith("repo") for line in markdown.splitlines())  # the newline stayed in its cell


def test_without_energy_the_metric_and_duration_are_still_drawn_and_the_report_says_why(tmp_path: Path) -> None:
    columns = [*COLUMNS, "cpu_energy_reason", "gpu_energy_reason"]
    table = write_table(tmp_path / "t.csv", [
        ["e1", "run_a", "001", "mutation", "r", "m", "success", 1.0, "x", 1, 0.5, "", "none", "", "none",
         "No CPU energy backend is available (rapl: no powercap)", "nvidia-smi was not found"],
        ["e2", "run_a", "002", "mutation", "r", "m", "success", 2.0, "x", 2, 0.6, "", "none", "", "none",
         "No CPU energy backend is available (rapl: no powercap)", "nvidia-smi was not found"],
    ], columns)
    result = invoke("report", table, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert names == ["accuracy_vs_hp_x_r_m.png", "duration_vs_hp_x_r_m.png"]  # no energy drawn as 0
    assert ("No energy plots: energy was not measured (method none): No CPU energy backend is available "
            "(rapl: no powercap); nvidia-smi was not found") in result.stdout


@pytest.fixture
def drawn_figures(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Figure]]:
    """Each figure the report saves, by file name, kept open so its axes can be inspected."""
    figures: dict[str, Figure] = {}
    real_save = plots.save

    def keep(figure: Figure, path: Path) -> Path:
        figures[path.name] = figure
        figure.savefig(path, dpi=plots.DPI)
        return path

    monkeypatch.setattr(plots, "save", keep)
    monkeypatch.setattr(plots, "workers_for", lambda _plots: 1)  # drawn here, where the figures can be seen
    yield figures
    for figure in figures.values():
        real_save(figure, Path("/dev/null"))


def legend_of(axes: Axes) -> Legend:
    legend = axes.get_legend()
    assert legend is not None
    return legend


def mixed_methods(path: Path) -> Path:
    """Three trials measured by RAPL (system) and three by the process-tree estimate."""
    columns = [*COLUMNS, "cpu_energy_scope"]
    rows = []
    for index in range(6):
        estimate = index >= 3
        rows.append([f"e{index}", "run_a", f"{index:03d}", "mutation", "r", "m", "success", 1.0 + index, "x",
                     index + 1, 0.5 + index / 10, 5 + index if estimate else 50 + index,
                     "estimate" if estimate else "rapl", "", "none", "process_tree" if estimate else "system"])
    return write_table(path, rows, columns)


def test_methods_and_scopes_are_never_pooled(tmp_path: Path, drawn_figures: dict[str, Figure]) -> None:
    result = invoke("report", mixed_methods(tmp_path / "t.csv"), "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| r | m | mutation | cpu rapl (system) | 3 | 100% | 3 | 2 (1–3) | 51 (50–52) |" in report
    assert "| r | m | mutation | cpu estimate (process_tree) | 3 | 100% | 3 | 5 (4–6) | 9 (8–10) |" in report
    assert "| energy (cpu rapl (system)) | 3 |" in report and "| energy (cpu estimate (process_tree)) | 3 |" in report
    axes = drawn_figures["energy_vs_hp_x_r_m.png"].axes[0]
    assert [text.get_text() for text in legend_of(axes).get_texts()] == ["cpu rapl (system)",
                                                                          "cpu estimate (process_tree)"]
    assert axes.get_ylabel() == "energy (J, total)"
    # Each method has its own Pareto front: 2 series x (dominated, front) + their 2 staircases.
    trade_off = drawn_figures["energy_vs_accuracy_r_m.png"].axes[0]
    assert len(trade_off.collections) == 4 and len(trade_off.lines) == 2


def test_axes_follow_the_registry_log_for_log_uniform_categories_for_a_choice(
        tmp_path: Path, drawn_figures: dict[str, Figure]) -> None:
    columns = ["experiment_id", "run_id", "trial", "mode", "repo", "model", "status", "duration_s", "mutated",
               "hp_learning_rate", "hp_optimizer", "perf_accuracy"]
    rows = [[f"e{i}", "run_a", f"{i:03d}", "mutation", "examples", "mlp", "success", 1 + i,
             "learning_rate;optimizer", lr, optimizer, 0.9 - i / 100]
            for i, (lr, optimizer) in enumerate([("0.001", "adam"), ("0.002", "sgd"), ("0.004", "adam"),
                                                 ("0.003", "sgd")])]
    table = write_table(tmp_path / "t.csv", rows, columns)
    registry = tmp_path / "models.json"
    registry.write_text(json.dumps({"repositories": {"examples": {
        "path": str(tmp_path), "command": ["{python}", "train.py"], "models": {"mlp": {}},
        "metrics": {"accuracy": {"pattern": "accuracy: (\\S+)"}},
        "hyperparameters": {
            "learning_rate": {"flag": "--lr", "type": "float", "default": 0.001, "range": [0.0001, 0.1],
                              "distribution": "log_uniform"},
            "optimizer": {"flag": "--opt", "type": "choice", "values": ["adam", "sgd"], "default": "adam"}}}}}))
    result = invoke("report", table, "-o", tmp_path / "out", "--registry", registry)
    assert result.exit_code == 0, result.output
    # Values spanning less than a decade: only the registry's word makes this axis log.
    learning_rate = drawn_figures["accuracy_vs_hp_learning_rate_examples_mlp.png"].axes[0]
    assert learning_rate.get_xscale() == "log"
    # Decades in plain text (matplotlib's default 10^-3 goes through its TeX parser, slow per plot).
    assert learning_rate.xaxis.get_major_formatter()(0.001, 0) == "0.001"
    optimizer = drawn_figures["accuracy_vs_hp_optimizer_examples_mlp.png"].axes[0]
    assert [tick.get_text() for tick in optimizer.get_xticklabels()] == ["adam", "sgd"]
    # Mutated together: coloured by the other one, and the report says their effects are confounded.
    assert any("confounded" in axes.get_ylabel() for axes in drawn_figures[
        "accuracy_vs_hp_learning_rate_examples_mlp.png"].axes[1:])
    assert "learning_rate, optimizer were mutated together" in result.stdout
    assert "optimizer is categorical: no rank correlation" in result.stdout


def test_the_pareto_front_keeps_only_undominated_points_and_is_drawn_as_steps() -> None:
    energy, accuracy = [10, 12, 11, 30, 25], [0.8, 0.9, 0.7, 0.95, 0.85]
    front = pareto_front(energy, accuracy, higher_better=True)
    assert front == [0, 1, 3]  # by energy
    assert pareto_front(energy, [0.5, 0.4, 0.6, 0.1, 0.3], higher_better=False) == [0, 1, 4, 3]
    xs, ys = staircase([10, 12, 30], [0.8, 0.9, 0.95], upto=40)
    # Level until the next front trial's energy, then up: no diagonal claims an untried trade-off.
    assert list(zip(xs, ys, strict=True)) == [(10, 0.8), (12, 0.8), (12, 0.9), (30, 0.9), (30, 0.95), (40, 0.95)]


def test_rank_correlations_carry_n_and_an_interval_that_shrinks_with_n() -> None:
    generator = np.random.default_rng(3)
    few = spearman(pd.Series([1.0, 2.0, 3.0]), pd.Series([3.0, 2.0, 1.0]))
    # -1.00 from 3 points proves nothing; a bootstrap of 3 points would claim [-1, -1].
    assert few is not None and few.rho == -1 and few.n == 3 and few.low is None and few.high is None
    # 2 and 3 pairs read alike: rho and n, no interval (the legend says so once); 2 was a bare '-'.
    two = spearman(pd.Series([1.0, 2.0]), pd.Series([2.0, 1.0]))
    assert two is not None and two.text() == "-1.00" and few.text() == "-1.00" and two.n == 2
    x = pd.Series(generator.normal(size=60))
    many = spearman(x, x * 2 + pd.Series(generator.normal(size=60)))
    assert many is not None and many.n == 60 and many.method == "bootstrap"
    assert many.low is not None and many.high is not None and 0 < many.low < many.rho < many.high
    x = pd.Series(generator.normal(size=5000))
    large = spearman(x, x + pd.Series(generator.normal(size=5000)))
    assert large is not None and large.method == "fisher-z"
    assert large.low is not None and large.high is not None and large.high - large.low < 0.05
    assert spearman(pd.Series([1.0, 1.0, 1.0]), pd.Series([1.0, 2.0, 3.0])) is None  # a constant has no rank order


def test_the_bootstrap_interval_is_the_one_pandas_ranking_gives_with_ties() -> None:
    # Hyperparameters from a `choice` tie heavily; each resample must rank ties by their mean rank.
    generator = np.random.default_rng(5)
    x = generator.choice([0.001, 0.01, 0.1], size=80)
    y = np.round(x * 100 + generator.normal(size=80), 1)
    picks = np.random.default_rng(stats.BOOTSTRAP_SEED).integers(0, 80, size=(stats.BOOTSTRAP_RESAMPLES, 80))
    by_pandas = [pd.Series(x[row]).rank().corr(pd.Series(y[row]).rank()) for row in picks]  # rho = r of ranks
    low, high = np.percentile([rho for rho in by_pandas if not np.isnan(rho)], [2.5, 97.5])
    result = spearman(x, y)
    assert result is not None and result.method == "bootstrap"
    assert result.low == pytest.approx(low, abs=1e-12) and result.high == pytest.approx(high, abs=1e-12)


def test_repeats_of_a_configuration_are_summarised_per_configuration(tmp_path: Path) -> None:
    rows = []
    for index, (x, joules) in enumerate([(1, 10), (1, 12), (1, 14), (2, 40), (2, 44), (3, 90)]):
        rows.append([f"e{index}", "run_a", f"{index:03d}", "mutation", "r", "m", "success", 1.0, "x", x, 0.5,
                     joules, "rapl", "", "none"])
    assert invoke("report", write_table(tmp_path / "t.csv", rows), "-o", tmp_path / "out").exit_code == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| r | m | mutation | cpu rapl | 6 | 100% | 3 | 1 | 27 (10–90) |" in report  # what was tried
    assert "| r | m | mutation | cpu rapl | x=1 | 3 | 1 ± 0 | 12 ± 2 | 0.5 ± 0 |" in report  # the noise, per config
    assert "| r | m | mutation | cpu rapl | x=2 | 2 | 1 ± 0 | 42 ± 2.8 | 0.5 ± 0 |" in report
    repeats = report.split("## Repeated configurations")[1].split("\n## ")[0]
    assert "x=1 |" in repeats and "x=3 |" not in repeats  # measured once: no noise to show


def test_energy_above_idle_never_adds_one_devices_total_to_anothers_excess(tmp_path: Path) -> None:
    columns = [*COLUMNS, "cpu_energy_above_idle_j", "gpu_energy_above_idle_j"]
    table = write_table(tmp_path / "t.csv", [
        ["e1", "run_a", "001", "default", "r", "m", "success", 1.0, "", 1, 0.5, 100, "rapl", 300, "nvml", 40, 200],
        ["e2", "run_a", "002", "default", "r", "m", "success", 1.0, "", 1, 0.5, 100, "rapl", 300, "nvml", "", 200],
    ], columns)
    result = invoke("report", table, "-o", tmp_path / "out", "--energy", "above-idle")
    assert result.exit_code == 0, result.output
    # e2's CPU has no idle figure: its value is missing, not 200 J of GPU alone.
    assert "| r | m | default | cpu rapl + gpu nvml | 2 | 100% | 1 | 1 | 240 | 0.5 |" in (
        tmp_path / "out" / "report.md").read_text()


def write_samples(energy: Path, cpu: list[tuple[float, float]], gpu: list[tuple[float, str, float]]) -> None:
    energy.mkdir(parents=True)
    header = "time_unix_s,monotonic_s,source,quantity,value,unit\n"
    (energy / "cpu_samples.csv").write_text(header + "".join(
        f"{t},{t - 1.7e9},package-0,energy_uj,{uj},uJ\n" for t, uj in cpu))
    (energy / "gpu_samples.csv").write_text(header + "".join(
        f"{t},{t - 1.7e9},{source},power,{watts},W\n" for t, source, watts in gpu))


def test_power_is_drawn_as_steps_from_the_attempts_start_with_baselines(
        tmp_path: Path, drawn_figures: dict[str, Figure]) -> None:
    run = known_run(tmp_path)
    trial = run / "003_r_m"
    start = 1.7e9
    # RAPL at 1 s spacing, 40 W; one extra read 1.6 ms after t=5 s sees the same counter (a false 0 W).
    cpu = [(start + 0.5 + i, 40e6 * i) for i in range(11)]
    cpu.insert(6, (start + 5.5016, 40e6 * 5))
    gpu = [(start + 0.5 + i, source, 100.0) for i in range(11) for source in ("gpu0", "gpu1")]
    write_samples(trial / "attempt_1" / "energy", cpu, gpu)
    (trial / "experiment.json").write_text(json.dumps(
        {"attempts": [{"attempt": 1, "start_utc": "2023-11-14T22:13:20+00:00"}]}))  # = 1.7e9
    steps = power.cpu_steps(trial / "attempt_1" / "energy" / "cpu_samples.csv", start)
    assert steps is not None and steps.edges[0] == pytest.approx(0.5) and np.allclose(steps.watts, 40)
    gpu_steps = power.gpu_steps(trial / "attempt_1" / "energy" / "gpu_samples.csv", start)
    assert gpu_steps is not None and np.allclose(gpu_steps.watts, 200)  # both GPUs of each round
    row = pd.Series({"energy_j": 400.0, "duration_s": 10.0, "energy_method": "cpu rapl", "cpu_idle_w": 12.0,
                     "gpu_idle_w": None, "cpu_background_w": None, "gpu_background_w": None})
    path = power.power_over_time(trial, row, tmp_path)
    assert path is not None and matplotlib.image.imread(path).shape == (480, 640, 4)
    axes = drawn_figures[path.name].axes[0]
    assert axes.get_ylim()[0] == 0 and axes.get_xlim()[0] == 0
    assert "400 J (cpu rapl), mean 40 W" in axes.get_title()
    labels = [text.get_text() for text in legend_of(axes).get_texts()]
    assert labels == ["cpu (packages + DRAM)", "cpu idle baseline 12 W", "gpu (all GPUs)"]


def test_the_report_goes_beside_its_data_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = known_run(tmp_path / "results")
    monkeypatch.chdir(tmp_path)
    assert invoke("report", run).exit_code == 0
    assert (run / "report" / "report.html").is_file() and not (tmp_path / "report").exists()


@pytest.mark.parametrize("output_format", ["csv", "json"])
def test_report_tables_for_scripts(tmp_path: Path, output_format: str) -> None:
    result = invoke("report", known_run(tmp_path), "-o", tmp_path / "out", "--format", output_format)
    assert result.exit_code == 0, result.output
    if output_format == "csv":
        rows = list(csv.DictReader(result.stdout.splitlines()))
    else:
        rows = json.loads(result.stdout)
    assert rows[0]["energy"] == "cpu rapl" and rows[0]["trials"] in ("4", 4)


def text_file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def older_raw_data(path: Path) -> Path:
    source = Path(__file__).parent / "fixtures" / "older"
    older = next(source.rglob("*.csv"))
    path.write_bytes(older.read_bytes())
    return path


@pytest.mark.parametrize(("make", "args", "message"), [
    (known_run, ["--metric", "f1"], "no metric 'f1'; the tables have: accuracy"),
    (known_run, ["--trace", "999_nothing"], "--trace '999_nothing': no such trial"),
    (lambda d: d, [], "has neither summary.csv (a run folder) nor summary_all.csv"),
    (lambda d: text_file(d / "empty.csv", ""), [], "empty.csv: is empty"),
    (lambda d: write_table(d / "header.csv", []), [], "no trial recorded yet"),
    (lambda d: text_file(d / "foreign.csv", "a,b\n1,2\n"), [],
     "is not a summary table of this tool: no column repo, model, status"),
    (lambda d: older_raw_data(d / "raw_data.csv"), [], "`mutation.py migrate history` converts it"),
    (lambda d: d / "missing.csv", [], "missing.csv: does not exist"),
])
def test_bad_inputs_exit_2_with_one_line_and_write_nothing(make: Any, args: list[str], message: str,
                                                           tmp_path: Path) -> None:
    target = make(tmp_path)
    result = invoke("report", target, "-o", tmp_path / "out", *args)
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_parallel_energy_is_compared_with_the_same_foreground_alone(tmp_path: Path,
                                                                   drawn_figures: dict[str, Figure]) -> None:
    table = write_table(tmp_path / "t.csv", [
        ["a1", "run_a", "001_r_m", "default", "r", "m", "success", 1.0, "", 1, 0.9, 10, "rapl", "", "none"],
        ["a2", "run_a", "002_r_m_parallel", "parallel", "r", "m", "success", 1.0, "", 1, 0.9, 25, "rapl", "", "none"],
        ["a3", "run_a", "003_r_m_parallel", "parallel", "r", "m", "success", 1.0, "", 2, 0.9, 40, "rapl", "", "none"],
    ])
    assert invoke("report", table, "-o", tmp_path / "out").exit_code == 0
    axes = drawn_figures["parallel_vs_alone_r_m.png"].axes[0]
    # hp_x=1 was measured both ways (10 J alone, 25 J in parallel); hp_x=2 only in parallel.
    assert np.asarray(axes.collections[0].get_offsets()).tolist() == [[10, 25]]
    assert axes.get_xlabel() == "energy alone (J, total)"
    assert [text.get_text() for text in legend_of(axes).get_texts()] == ["cpu rapl", "same energy"]


def test_parallel_trials_are_their_own_energy_series_beside_trials_measured_alone(
        tmp_path: Path, drawn_figures: dict[str, Figure]) -> None:
    rows = [[f"e{i}", "run_a", f"{i:03d}", mode, "r", "m", "success", 1.0, "x", 1 + i % 3, 0.5 + i / 100,
             10 + i if mode != "parallel" else 40 + i, "rapl", "", "none"]
            for i, mode in enumerate(["mutation"] * 3 + ["parallel"] * 3)]
    assert invoke("report", write_table(tmp_path / "t.csv", rows), "-o", tmp_path / "out").exit_code == 0
    energy = drawn_figures["energy_vs_hp_x_r_m.png"].axes[0]
    assert [text.get_text() for text in legend_of(energy).get_texts()] == ["cpu rapl", "cpu rapl, parallel"]
    trade_off = drawn_figures["energy_vs_accuracy_r_m.png"].axes[0]
    assert len(trade_off.lines) == 2  # a Pareto staircase each: a parallel trial never dominates one alone


def pooled_study(path: Path) -> Path:
    """Seen by a user: weight_decay drawn in 12 short trials (epochs 3); 12 others held it fixed, drew the
    learning rate and trained 20 epochs, 6x longer. Pooled, weight_decay 'explained' the duration."""
    columns = ["experiment_id", "run_id", "trial", "mode", "repo", "model", "status", "duration_s", "mutated",
               "hp_epochs", "hp_learning_rate", "hp_weight_decay", "perf_accuracy", "cpu_energy_j",
               "cpu_energy_method"]
    rng = np.random.default_rng(3)
    rows = []
    for index in range(24):
        short = index < 12
        decay = float(rng.uniform(1e-5, 1e-3)) if short else 0.0001
        rate = 0.05 if short else float(rng.uniform(0.01, 0.1))
        seconds = float(rng.uniform(1.0, 1.2)) if short else float(rng.uniform(6.0, 7.0))
        rows.append([f"e{index}", "run_a", f"{index:03d}", "mutation", "r", "m", "success", seconds,
                     "weight_decay" if short else "learning_rate", 3 if short else 20, rate, decay, 0.8,
                     seconds * 10, "rapl"])
    # The fixed weight_decay is the lowest value of all: pooled, weight_decay and duration rank alike.
    return write_table(path, rows, columns)


def test_statistics_never_pool_trials_that_held_other_settings_differently(
        tmp_path: Path, drawn_figures: dict[str, Figure]) -> None:
    result = invoke("report", pooled_study(tmp_path / "t.csv"), "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    report = (tmp_path / "out" / "report.md").read_text()
    # The per-model cells: one row per setting held fixed, never one median over both.
    assert "| r | m | mutation | cpu rapl | epochs=3 learning_rate=0.05 weight_decay=* | 12 | 100% | 12 |" in report
    assert "| r | m | mutation | cpu rapl | epochs=20 learning_rate=* weight_decay=0.0001 | 12 | 100% | 12 |" in report
    # weight_decay's correlations use only the 12 trials that drew it.
    decay = [line for line in report.splitlines() if line.startswith("| r | m | mutation | weight_decay |")]
    assert decay and all("| epochs=3 learning_rate=0.05 | " in line and "| 12 |" in line for line in decay), decay
    assert "fixed" in report and "(name=value) or drawn (name=*)" in report
    # The terminal keys the labels (F1, F2...) and spells them out below the tables.
    assert "fixed F1: epochs=3 learning_rate=0.05 weight_decay=*" in result.stdout
    assert "fixed F2: epochs=20 learning_rate=* weight_decay=0.0001" in result.stdout
    # The plots likewise: 12 points of weight_decay, 12 of the learning rate.
    figure = drawn_figures["duration_vs_hp_weight_decay_r_m.png"]
    assert sum(np.asarray(collection.get_offsets()).shape[0] for collection in figure.axes[0].collections) == 12


def test_a_hyperparameter_drawn_under_two_fixed_settings_gets_a_correlation_for_each(tmp_path: Path) -> None:
    columns = ["experiment_id", "run_id", "trial", "mode", "repo", "model", "status", "duration_s", "mutated",
               "hp_epochs", "hp_x", "perf_accuracy", "cpu_energy_j", "cpu_energy_method"]
    rows: list[list[object]] = [
            [f"e{i}", "run_a", f"{i:03d}", "mutation", "r", "m", "success", (1 if i < 10 else 5) + i % 10 / 10, "x",
             3 if i < 10 else 20, i % 10, 0.5, 1.0, "rapl"] for i in range(20)]
    result = invoke("report", write_table(tmp_path / "t.csv", rows, columns), "-o", tmp_path / "out", "--no-plots")
    assert result.exit_code == 0, result.output
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| r | m | mutation | x | epochs=3 | duration_s | 10 | +1.00 [" in report
    assert "| r | m | mutation | x | epochs=20 | duration_s | 10 | +1.00 [" in report
    assert "the trials that drew x held other settings differently (epochs=3; epochs=20)" in report


def test_each_repository_is_compared_on_its_own_metric(tmp_path: Path) -> None:
    # VulBERTa reports a loss, a ResNet an accuracy: one metric for both left the other `missing`.
    columns = [*COLUMNS[:10], "perf_eval_loss", "perf_test_accuracy", *COLUMNS[11:]]
    table = write_table(tmp_path / "summary.csv", [
        ["v1", "", "", "mutation", "VulBERTa", "mlp", "success", 1.0, "x", 1, 0.5, "", 10, "rapl", "", "none"],
        ["v2", "", "", "mutation", "VulBERTa", "mlp", "success", 2.0, "x", 2, 0.4, "", 20, "rapl", "", "none"],
        ["r1", "", "", "mutation", "resnet", "r20", "success", 1.0, "x", 1, "", 91.0, 10, "rapl", "", "none"],
        ["r2", "", "", "mutation", "resnet", "r20", "success", 2.0, "x", 2, "", 92.0, 20, "rapl", "", "none"],
    ], columns)
    result = invoke("report", table, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    report = (tmp_path / "out" / "report.md").read_text()
    assert ("| VulBERTa | mlp | mutation | cpu rapl | 2 | 100% | 2 | 1.5 (1–2) | 15 (10–20) | "
            "eval_loss: 0.45 (0.4–0.5) |") in report
    assert ("| resnet | r20 | mutation | cpu rapl | 2 | 100% | 2 | 1.5 (1–2) | 15 (10–20) | "
            "test_accuracy: 91.5 (91–92) |") in report
    plotted = sorted(path.name for path in (tmp_path / "out").glob("*.png"))
    assert {"energy_vs_eval_loss_VulBERTa_mlp.png", "energy_vs_test_accuracy_resnet_r20.png",
            "eval_loss_vs_hp_x_VulBERTa_mlp.png", "test_accuracy_vs_hp_x_resnet_r20.png"} <= set(plotted)


def test_rows_are_never_dropped_silently_for_their_id(tmp_path: Path) -> None:
    run = known_run(tmp_path / "results")
    # The results folder's table holds the run's rows again (the same trials): counted once, said so.
    (tmp_path / "results" / "summary_all.csv").write_bytes((run / "summary.csv").read_bytes())
    again = invoke("report", run, tmp_path / "results", "-o", tmp_path / "out")
    assert again.exit_code == 0, again.output
    assert "\n4 trials;" in again.stdout
    assert "4 row(s) are trials an earlier input already has (same experiment_id): each counted once" in again.stdout
    # One table whose rows share an id (a table of other origin): every row is a trial of its own.
    shared = write_table(tmp_path / "shared.csv", [
        ["same", "", "", "mutation", "r", "m", "success", 1.0, "x", 1, 0.9, 10, "rapl", "", "none"],
        ["same", "", "", "mutation", "r", "m", "success", 2.0, "x", 2, 0.8, 20, "rapl", "", "none"]])
    both = invoke("report", shared, "-o", tmp_path / "out2")
    assert both.exit_code == 0 and "\n2 trials;" in both.stdout
    assert "2 rows share 1 experiment_id(s): every row counted as a trial of its own" in both.stdout


def test_older_rows_that_measured_nothing_are_not_pooled_with_this_tools(tmp_path: Path) -> None:
    # A converted history row without energy (the older tool recorded none) and a new row measured with
    # `none`: both unmeasured, but trainings of two tools; one duration spread over both would mix them.
    columns = [*COLUMNS, "source_table"]
    table = write_table(tmp_path / "both.csv", [
        ["old", "", "", "mutation", "r", "m", "success", 3000.0, "x", 1, 0.9, "", "none", "", "none",
         "data/raw_data.csv"],
        ["new", "", "", "mutation", "r", "m", "success", 4.0, "x", 2, 0.8, "", "none", "", "none", ""]], columns)
    result = invoke("report", table, "-o", tmp_path / "out", "--no-plots")
    assert result.exit_code == 0, result.output
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| r | m | mutation | none (older tool) | 1 | 100% | 1 | 3000 | missing |" in report
    assert "| r | m | mutation | none | 1 | 100% | 1 | 4 | missing |" in report


def test_a_traced_trial_without_power_samples_says_so(tmp_path: Path) -> None:
    run = known_run(tmp_path)  # its trials have rows but no energy/ folders: nothing was sampled
    result = invoke("report", run, "-o", tmp_path / "out", "--trace", "002_r_m")
    assert result.exit_code == 0, result.output
    assert (f"--trace {run.name}/002_r_m: no power samples recorded for it (energy method cpu rapl): nothing to draw"
            in result.stdout.replace("\n", " ").replace("  ", " "))
    assert not list((tmp_path / "out").glob("power_*.png"))


def test_log_axes_and_colour_bars_label_every_decade_and_their_2_and_5_where_they_fit(
        tmp_path: Path, drawn_figures: dict[str, Figure]) -> None:
    # Seen in a report: over 0.0017-0.05 only `0.01` was labelled, and the colour bar one value.
    columns = ["experiment_id", "run_id", "trial", "mode", "repo", "model", "status", "duration_s", "mutated",
               "hp_learning_rate", "hp_weight_decay", "perf_accuracy"]
    values = [(0.0017, 0.0017), (0.004, 0.05), (0.012, 0.003), (0.05, 0.02), (0.03, 0.008)]
    rows = [[f"e{i}", "run_a", f"{i:03d}", "mutation", "examples", "mlp", "success", 1 + i,
             "learning_rate;weight_decay", lr, decay, 0.9 - i / 100] for i, (lr, decay) in enumerate(values)]
    rows += [[f"w{i}", "run_a", f"w{i:02d}", "mutation", "examples", "wide", "success", 1 + i, "learning_rate",
              lr, "", 0.5] for i, lr in enumerate([1e-6, 1e-4, 1e-2, 1.0])]  # six decades: decades only
    registry = tmp_path / "models.json"
    log_range = {"type": "float", "default": 0.001, "range": [1e-6, 1], "distribution": "log_uniform"}
    registry.write_text(json.dumps({"repositories": {"examples": {
        "path": str(tmp_path), "command": ["{python}", "train.py"], "models": {"mlp": {}, "wide": {}},
        "model_flag": "-m",
        "metrics": {"accuracy": {"pattern": "accuracy: (\\S+)"}},
        "hyperparameters": {"learning_rate": {"flag": "--lr", **log_range},
                            "weight_decay": {"flag": "--wd", **log_range}}}}}))
    result = invoke("report", write_table(tmp_path / "t.csv", rows, columns), "-o", tmp_path / "out",
                    "--registry", registry)
    assert result.exit_code == 0, result.output

    def labels(axis: Any) -> list[str]:
        axis.figure.canvas.draw()
        low, high = sorted(axis.get_view_interval())
        ticks = [*axis.get_major_ticks(), *axis.get_minor_ticks()]
        return sorted((label for tick in ticks if low * 0.999 <= tick.get_loc() <= high * 1.001
                       and (label := tick.label1.get_text() or tick.label2.get_text())), key=float)

    figure = drawn_figures["accuracy_vs_hp_learning_rate_examples_mlp.png"]
    assert labels(figure.axes[0].xaxis) == ["0.002", "0.005", "0.01", "0.02", "0.05"]
    assert labels(figure.axes[1].yaxis) == ["0.002", "0.005", "0.01", "0.02", "0.05"]  # the colour bar
    wide = drawn_figures["accuracy_vs_hp_learning_rate_examples_wide.png"].axes[0].xaxis
    assert [label for label in labels(wide) if float(label) >= 1e-6] == ["1e-06", "1e-05", "0.0001", "0.001", "0.01",
                                                                         "0.1", "1"]
