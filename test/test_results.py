"""Metric scraping, the summary table and atomic files."""

from __future__ import annotations

import csv
import os
import re
import stat
from pathlib import Path

import pytest

from energy_profiler.config.registry import MetricSpec
from energy_profiler.fs import atomic_write_json
from energy_profiler.metrics import scrape_metrics
from energy_profiler.model.energy_fields import EnergyFields
from energy_profiler.model.record import Record, summary_columns
from energy_profiler.results.summary import SummaryTable
from test.conftest import invoke


def metric(name: str, pattern: str, required: bool = False) -> MetricSpec:
    return MetricSpec(name, re.compile(pattern), required)


def test_the_last_match_wins_and_non_numbers_do_not_count(tmp_path: Path) -> None:
    log = tmp_path / "training.log"
    log.write_text("accuracy: 0.5\nepoch 2\naccuracy: 0.75\naccuracy: nan\naccuracy: n/a\nloss=1e-3\n")
    found = scrape_metrics(log, {"accuracy": metric("accuracy", r"accuracy: (\S+)"),
                                 "loss": metric("loss", r"loss=(\S+)"),
                                 "f1": metric("f1", r"f1: (\S+)")})
    assert found == {"accuracy": 0.75, "loss": 0.001, "f1": None}


def test_undecodable_bytes_do_not_stop_scraping(tmp_path: Path) -> None:
    log = tmp_path / "training.log"
    log.write_bytes(b"\xff\xfe progress \x1b[2K\raccuracy: 0.9\n")
    assert scrape_metrics(log, {"a": metric("a", r"accuracy: ([0-9.]+)")}) == {"a": 0.9}


def test_summary_rows_follow_the_fixed_header_and_are_on_disk_at_once(tmp_path: Path) -> None:
    path = tmp_path / "summary.csv"
    table = SummaryTable(path, ["a", "b", "c"])
    table.append({"a": "1", "c": "x,y"})
    table.append({"b": 'say "hi"'})
    with open(path, newline="") as file:  # a second reader sees both rows while the writer lives
        rows = list(csv.reader(file))
    assert rows == [["a", "b", "c"], ["1", "", "x,y"], ["", 'say "hi"', ""]]
    with pytest.raises(ValueError, match="not in the header"):
        table.append({"d": "1"})
    SummaryTable(path, ["a", "b", "c"])  # reopening does not write a second header
    assert path.read_text().count("a,b,c") == 1


def test_summary_rows_are_in_trial_order_whatever_order_they_come_in(tmp_path: Path) -> None:
    path = tmp_path / "summary.csv"
    table = SummaryTable(path, ["trial", "note"])
    seen = []
    for order, note in [(2, "second"), (4, "fourth"), (1, 'first, with "quotes"\nand a line'), (3, "third")]:
        table.append({"trial": str(order), "note": note}, order=order)
        with open(path, newline="") as file:  # every row so far is on disk, in order, after each append
            seen.append([row["trial"] for row in csv.DictReader(file)])
    assert seen == [["2"], ["2", "4"], ["1", "2", "4"], ["1", "2", "3", "4"]]
    assert [p.name for p in tmp_path.iterdir()] == ["summary.csv"]  # the rewrite left no temporary file
    reopened = SummaryTable(path, ["trial", "note"])  # rows already there stay, first
    reopened.append({"trial": "0", "note": "late"}, order=0)
    with open(path, newline="") as file:
        assert [(row["trial"], row["note"]) for row in csv.DictReader(file)][:2] == \
            [("1", 'first, with "quotes"\nand a line'), ("2", "second")]
    SummaryTable(path, ["trial", "note"], rows=[(5, {"trial": "5"}), (3, {"trial": "3"})])  # a resume's rebuild
    assert path.read_text() == "trial,note\n3,\n5,\n"


def test_atomic_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "experiment.json"
    atomic_write_json(target, {"x": 1})
    atomic_write_json(target, {"x": 2})
    assert target.read_text() == '{\n  "x": 2\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["experiment.json"]


def a_record(**fields: object) -> Record:
    """A complete Record with plausible values; tests override what they look at."""
    values: dict[str, object] = dict(
        experiment_id="e", run_id="run_x", trial="001_fake_tiny", trial_index=1, experiment_index=0, run=1,
        mode="mutation", repo="fake", model="tiny", status="success", status_reason=None, exit_code=0,
        start_utc="2026-01-01T00:00:00+00:00", end_utc="2026-01-01T00:00:01+00:00", duration_s=1.0,
        argv=("python", "t.py"), hyperparameters=(("epochs", "12"), ("learning_rate", "6.36e-05")),
        mutated=("learning_rate",), metrics=(("accuracy", 0.5), ("loss", None)), required_metrics=("accuracy",),
        energy=EnergyFields(), energy_details={}, host={"hostname": "h"}, repo_git={"commit": None, "dirty": None})
    values.update(fields)
    return Record(**values)  # type: ignore[arg-type]


def test_json_and_row_come_from_the_same_values() -> None:
    record = a_record()
    document, row = record.to_json(), record.to_row()
    assert document["hyperparameters"] == {"epochs": 12, "learning_rate": 6.36e-05}
    assert (row["hp_epochs"], row["hp_learning_rate"]) == ("12", "6.36e-05")
    assert document["metrics"] == {"accuracy": 0.5, "loss": None}
    assert (row["perf_accuracy"], row["perf_loss"]) == ("0.5", "")
    assert (row["cpu_energy_j"], row["cpu_energy_method"]) == ("", "none")
    assert document["energy"]["cpu_energy_j"] is None and document["energy"]["cpu_energy_reason"]
    assert set(row) == set(summary_columns(["epochs", "learning_rate"], ["accuracy", "loss"]))


def test_a_record_refuses_a_status_that_does_not_exist() -> None:
    with pytest.raises(ValueError, match="unknown status 'sucess'"):
        a_record(status="sucess")


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_records_are_written_with_the_umask_not_mkstemps_0600(mask: int, mode: int, tmp_path: Path) -> None:
    # Colleagues sharing a results folder could not read experiment.json, plan.json, settings.json.
    from energy_profiler.fs import atomic_write_bytes

    previous = os.umask(mask)
    try:
        atomic_write_bytes(tmp_path / "experiment.json", b"{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "experiment.json").stat().st_mode) == mode


def test_merge_says_what_it_needs_instead_of_a_traceback_or_an_empty_table(tmp_path: Path) -> None:
    results = tmp_path / "results"
    (results / "run_20261201_000000" / "001_examples_mlp").mkdir(parents=True)
    (results / "run_20261201_000000" / "001_examples_mlp" / "experiment.json").write_text("{}")
    missing = invoke("merge", results / "run_20261201_000000", "-o", tmp_path / "nowhere" / "table.csv")
    assert missing.exit_code == 2 and "the folder of -o" in missing.stderr and "does not exist" in missing.stderr
    wrong_level = invoke("merge", results, "-o", tmp_path / "table.csv")
    assert wrong_level.exit_code == 2
    assert f"{results} is not a run folder (no trial with an experiment.json): it holds 1 run folder(s)" in \
        wrong_level.stderr
    assert not (tmp_path / "table.csv").exists()


def test_measured_floats_keep_the_digits_their_unit_resolves_and_no_binary_noise() -> None:
    from energy_profiler.model.rounding import rounded

    document = {"cpu_energy_j": 34.380433000000004, "gpu_power_avg_w": 251.33333333, "window_s": 1.23456789123,
                "gpu_util_avg_pct": 33.333333, "gpu_mem_max_mib": 1024.0001234, "ratio": 0.1 + 0.2,
                "events_j": {"energy-pkg": 12.3456789}, "per_gpu": [{"power_avg_w": 1.00049}],
                "samples": 12, "flag": True, "nothing": None, "drift_j": -0.0001}
    assert rounded(document) == {
        "cpu_energy_j": 34.38, "gpu_power_avg_w": 251.333, "window_s": 1.234568, "gpu_util_avg_pct": 33.33,
        "gpu_mem_max_mib": 1024.0, "ratio": 0.3, "events_j": {"energy-pkg": 12.346},
        "per_gpu": [{"power_avg_w": 1.0}], "samples": 12, "flag": True, "nothing": None, "drift_j": 0.0}
    assert repr(rounded({"x_j": -0.0001})["x_j"]) == "0.0"  # never a -0.0 in a table
