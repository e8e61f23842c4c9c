"""The global table and merge: every row kept, every column kept, experiment.json as the source."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from energy_profiler.model.record import Record
from energy_profiler.results.global_table import append_row
from test.conftest import fake_repo, invoke


def read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as table:
        reader = csv.DictReader(table)
        return list(reader.fieldnames or []), list(reader)


def test_new_columns_rewrite_the_table_with_their_union(tmp_path: Path) -> None:
    table = tmp_path / "summary_all.csv"
    assert append_row(table, {"a": "1", "b": "x,y"}) is False
    assert append_row(table, {"a": "2", "b": ""}) is False
    assert append_row(table, {"c": "new", "a": "3"}) is True
    assert append_row(table, {"b": "4"}) is False
    header, rows = read(table)
    assert header == ["a", "b", "c"]
    assert rows == [{"a": "1", "b": "x,y", "c": ""}, {"a": "2", "b": "", "c": ""},
                    {"a": "3", "b": "", "c": "new"}, {"a": "", "b": "4", "c": ""}]


def test_campaigns_with_different_columns_share_one_table(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    results = tmp_path / "results"
    first = write_json("a.json", {"experiment_name": "a", "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny"}]})
    assert invoke("--registry", fake_registry(), "--results-dir", results, "-q", "run", first).exit_code == 0
    second = write_json("b.json", {"experiment_name": "b", "experiments": [
        {"mode": "default", "repo": "examples", "model": "softmax", "hyperparameters": {"epochs": 1}}]})
    result = invoke("--results-dir", results, "run", second)
    assert result.exit_code == 0 and "summary_all.csv: new columns, table rewritten" in result.stdout
    header, rows = read(results / "summary_all.csv")
    assert len(rows) == 2 and len(header) == len(set(header))
    assert rows[0]["hp_learning_rate"] == "0.1" and rows[0]["perf_accuracy"] == "0.6"  # kept, not shifted
    assert rows[0]["hp_batch_size"] == "" and rows[1]["hp_batch_size"] == "32"
    assert rows[1]["perf_accuracy"] == "" and float(rows[1]["perf_test_accuracy"]) > 0.3
    for row in rows:  # every row lines up with its own run's summary.csv
        _, own = read(results / row["run_id"] / "summary.csv")
        assert {k: v for k, v in own[0].items()} == {k: row[k] for k in own[0]}


def test_merge_rebuilds_the_run_tables_from_experiment_json(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    results = tmp_path / "results"
    registry = fake_registry(fake=fake_repo("fail"), ok=fake_repo())
    mixed = write_json("m.json", {"experiment_name": "m", "max_retries": 1, "seed": 4, "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny"},
        {"mode": "mutation", "repo": "ok", "model": "tiny", "mutate": ["learning_rate"], "runs_per_config": 2},
        {"mode": "parallel", "foreground": {"repo": "ok", "model": "tiny"},
         "background": {"repo": "fake", "model": "tiny"}}]})
    assert invoke("--registry", registry, "--results-dir", results, "-q", "run", mixed).exit_code == 1
    run_dir = next(results.glob("run_*"))
    merged = tmp_path / "merged.csv"
    result = invoke("merge", run_dir, "-o", merged)
    assert result.stdout == f"4 rows from 1 run folder(s) written to {merged}\n"
    assert merged.read_text() == (run_dir / "summary.csv").read_text()  # the same table, to the byte


def test_record_from_json_is_the_inverse_of_to_json(tmp_path: Path) -> None:
    from test.test_results import a_record

    record = a_record(hyperparameters=(("epochs", "12"), ("lr", "6.36e-05"), ("wd", "0.0"), ("big", "1e+16")))
    document = json.loads(json.dumps(record.to_json()))
    assert Record.from_json(document) == record
    assert Record.from_json(document).to_row() == record.to_row()


def test_merge_of_parallel_runs_keeps_the_background_columns(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    # Sleeping trainings: the shipped parallel example trains for real (test_example_repo.py runs it).
    registry = fake_registry(fg=fake_repo("sleep", required_args=["--behaviour", "sleep", "--seconds", "0.3"]),
                             bg=fake_repo("sleep", required_args=["--behaviour", "sleep", "--seconds", "0.2"]))
    settings = write_json("p.json", {"experiment_name": "merge", "energy": {"cpu": "none", "gpu": "none"},
                                     "experiments": [{"mode": "parallel", "foreground": {"repo": "fg", "model": "tiny"},
                                                      "background": {"repo": "bg", "model": "tiny"},
                                                      "runs_per_config": 2}]})
    results = tmp_path / "results"
    assert invoke("--registry", registry, "--results-dir", results, "-q", "run", settings).exit_code == 0
    merged = tmp_path / "all.csv"
    assert invoke("merge", *results.glob("run_*"), "-o", merged).exit_code == 0
    header, rows = read(merged)
    assert len(rows) == 2 and "bg_iterations_started" in header
    assert header == read(results / "summary_all.csv")[0]


def test_a_global_table_this_tool_did_not_write_is_never_appended_to(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    # Pointing the tool at the older tool's results folder used to union-rewrite its summary_all.csv.
    results = tmp_path / "results"
    results.mkdir()
    older = results / "summary_all.csv"
    older.write_text("experiment_id,repository,model,training_success,hyperparam_epochs\nx,examples,mnist,True,10\n")
    before = older.read_bytes()
    settings = write_json("s.json", {"experiment_name": "s", "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny"}]})
    result = invoke("--registry", fake_registry(), "--results-dir", results, "run", settings)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {older} is not a table this tool wrote (no column run_id, trial, status; the older tool's "
        "summary_all.csv looks like this), so no row is added to it: move it aside, or give another --results-dir")
    assert older.read_bytes() == before and sorted(p.name for p in results.iterdir()) == ["summary_all.csv"]
