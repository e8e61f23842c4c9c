"""History dedup: draws already measured are skipped, whatever form the CSV gives their values."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from energy_profiler.config.registry import load_registry
from energy_profiler.config.settings import settings_from_document
from energy_profiler.planning.history import load_history
from energy_profiler.planning.plan import build_plan
from test.conftest import PROJECT_ROOT, REAL_REGISTRY, fake_repo, invoke, only_run_dir

REGISTRY = load_registry(REAL_REGISTRY)
HP = ["epochs", "learning_rate", "batch_size", "dropout", "weight_decay", "seed"]


def plan_column(output: str, name: str, trials: int) -> list[str]:
    """The cells of column `name` in `plan`'s table (one word each), for its first `trials` rows."""
    lines = output.splitlines()
    position = lines[0].split().index(name)
    return [line.split()[position] for line in lines[1:trials + 1]]


def history_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    columns = ["repo", "model", "mode", "status", *(f"hp_{name}" for name in HP)]
    with open(path, "w", newline="") as table:
        writer = csv.DictWriter(table, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


def row(epochs: str, status: str = "success", mode: str = "mutation", model: str = "mlp") -> dict[str, str]:
    return {"repo": "examples", "model": model, "mode": mode, "status": status, "hp_epochs": epochs,
            "hp_learning_rate": "0.05000", "hp_batch_size": "32.0", "hp_dropout": "0",
            "hp_weight_decay": "1e-4", "hp_seed": "42"}


def epochs_plan(history_file: Path | None, runs: int) -> Any:
    document = {"experiment_name": "h", "seed": 3, "experiments": [
        {"mode": "mutation", "repo": "examples", "model": "mlp", "mutate": ["epochs"], "runs_per_config": runs}]}
    settings = settings_from_document(document, PROJECT_ROOT / "h.json", REGISTRY)
    history = load_history([history_file], REGISTRY) if history_file else None
    return build_plan(settings, REGISTRY, 3, python="python", history=history)


def test_int_and_float_forms_in_the_csv_match_the_canonical_values(tmp_path: Path) -> None:
    # epochs as "12", "13.0" and "14.000000"; the other values in forms the plan never writes.
    history = history_csv(tmp_path / "old.csv", [row("12"), row("13.0"), row("14.000000")])
    plan = epochs_plan(history, runs=16)  # 20 values - the default 5 - the 3 measured = 16: all the rest
    drawn = sorted(int(dict(trial.hyperparameters)["epochs"]) for trial in plan.trials)
    assert drawn == [n for n in range(1, 21) if n not in (5, 12, 13, 14)]
    assert plan.history_skips[0][1] > 0
    skipped = plan.history_skips[0][1]
    assert plan.history_lines() == [f"history {history}: 3 rows read, 3 comparable, {skipped} draw(s) skipped",
                                    f"experiments[0]: {skipped} draw(s) skipped: already measured in {history}"]


def test_the_space_left_by_the_history_is_counted_before_drawing(tmp_path: Path) -> None:
    history = history_csv(tmp_path / "old.csv", [row("12"), row("13.0")])
    try:
        epochs_plan(history, runs=18)
    except Exception as error:
        assert "asks for 18 unique combinations of epochs, but only 17 exist" in str(error)
    else:
        raise AssertionError("a too-small space was not refused")


def test_only_measured_rows_of_the_same_model_and_mode_count(tmp_path: Path) -> None:
    history = history_csv(tmp_path / "old.csv", [
        row("1", status="interrupted"), row("2", status="skipped_memory"), row("3", mode="default"),
        row("4", model="deep_mlp"), row("6", status="failed"), row("7", status="timeout")])
    measured = load_history([history], REGISTRY)
    assert measured.rows_read == 6 and measured.rows_compared == 4
    plan = epochs_plan(history, runs=17)  # 19 drawable minus the two measured mutation rows (6, 7)
    drawn = {dict(trial.hyperparameters)["epochs"] for trial in plan.trials}
    assert {"1", "2", "3", "4"} <= drawn and not {"6", "7"} & drawn


def test_dedup_true_reads_the_global_table_of_the_results_folder(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    # A fake training that exits at once (the bundled one takes up to a second per run): 20 epochs values.
    repo = fake_repo("ok", hyperparameters={"epochs": {"flag": "--epochs", "type": "int", "default": 2,
                                                       "range": [1, 20]}})
    registry = fake_registry(fake=repo)
    results = tmp_path / "results"
    settings = write_json("d.json", {"experiment_name": "d", "seed": 1, "dedup": True, "experiments": [
        {"mode": "mutation", "repo": "fake", "model": "tiny", "mutate": ["epochs"], "runs_per_config": 10}]})
    first = invoke("--registry", registry, "--results-dir", results, "-q", "run", settings, "--cpu-energy", "none")
    assert first.exit_code == 0, first.output
    # Different seed, same history: the second campaign draws only what the first did not measure.
    document: dict[str, Any] = {"experiment_name": "d", "seed": 2, "dedup": True, "experiments": [
        {"mode": "mutation", "repo": "fake", "model": "tiny", "mutate": ["epochs"], "runs_per_config": 9}]}
    second_settings = write_json("d2.json", document)
    plan = invoke("--registry", registry, "--results-dir", results, "plan", second_settings)
    assert plan.exit_code == 0 and "draw(s) skipped: already measured in" in plan.stdout
    with open(only_run_dir(results) / "summary.csv", newline="") as table:
        first_values = {r["hp_epochs"] for r in csv.DictReader(table)}
    second_values = {value.rstrip("*") for value in plan_column(plan.stdout, "epochs", 9)}
    assert len(first_values) == 10 and len(second_values) == 9 and not first_values & second_values
    document["experiments"][0]["runs_per_config"] = 10  # 20 - default - 10 measured = 9 left
    third = invoke("--registry", registry, "--results-dir", results, "plan", write_json("d3.json", document))
    assert third.exit_code == 2


def test_a_repository_that_passes_only_what_is_given_leaves_the_rest_to_the_script(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    # The older tool passed only fixed and mutated values; its users' scripts have their own defaults
    # (an unseeded baseline must not get `--seed`). `pass: "given"` keeps that, and says so in the record.
    repo = fake_repo("echo-args", hyperparameters={
        "epochs": {"flag": "--epochs", "type": "int", "default": 2, "range": [1, 20]},
        "seed": {"flag": "--seed", "type": "int", "default": 1334, "range": [0, 9999]}},
        metrics={}, **{"pass": "given"})
    registry = fake_registry(fake=repo)
    results = tmp_path / "results"
    settings = write_json("g.json", {"experiment_name": "g", "seed": 1, "dedup": True, "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny"},
        {"mode": "mutation", "repo": "fake", "model": "tiny", "mutate": ["epochs"], "runs_per_config": 4}]})
    first = invoke("--registry", registry, "--results-dir", results, "-q", "run", settings, "--cpu-energy", "none")
    assert first.exit_code == 0, first.output
    run_dir = only_run_dir(results)
    with open(run_dir / "summary.csv", newline="") as table:
        rows = list(csv.DictReader(table))
    baseline = json.loads((run_dir / rows[0]["trial"] / "experiment.json").read_text())
    assert baseline["hyperparameters"] == {} and baseline["not_passed"] == ["epochs", "seed"]
    logged = (run_dir / rows[0]["trial"] / "attempt_1" / "training.log").read_text()
    assert "--seed" not in logged and "--epochs" not in logged  # the script's own defaults stay in force
    assert [r["not_passed"] for r in rows] == ["epochs;seed"] + ["seed"] * 4
    assert "hp_seed" not in rows[0] and rows[0]["hp_epochs"] == ""  # no value is claimed for what was not passed
    mutated = json.loads((run_dir / rows[1]["trial"] / "experiment.json").read_text())
    assert mutated["argv"][-2:] == ["--epochs", rows[1]["hp_epochs"]] and "--seed" not in mutated["argv"]
    # These rows are history that compares: a second campaign skips what the first measured, and never
    # draws the default (epochs 2 spelt out is the baseline's training again): 20 - 4 - 1 = 15 are left.
    again = write_json("g2.json", {"experiment_name": "g", "seed": 2, "dedup": True, "experiments": [
        {"mode": "mutation", "repo": "fake", "model": "tiny", "mutate": ["epochs"], "runs_per_config": 15}]})
    plan = invoke("--registry", registry, "--results-dir", results, "plan", again)
    assert plan.exit_code == 0, plan.output
    drawn = {value.rstrip("*") for value in plan_column(plan.stdout, "epochs", 15)}
    assert not drawn & {r["hp_epochs"] for r in rows[1:]} and len(drawn) == 15 and "2" not in drawn
    one_more = write_json("g3.json", {**json.loads(again.read_text()), "experiments": [
        {"mode": "mutation", "repo": "fake", "model": "tiny", "mutate": ["epochs"], "runs_per_config": 16}]})
    refused = invoke("--registry", registry, "--results-dir", results, "plan", one_more)
    assert refused.exit_code == 2 and "only 15 exist besides the defaults" in refused.stderr


def test_a_history_table_that_compares_with_nothing_is_an_error_that_says_why(
        write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    # The older tool's raw_data.csv: `repository`, `hyperparam_*`, no `mode` for sequential rows.
    older = tmp_path / "raw_data.csv"
    older.write_text("experiment_id,repository,model,training_success,hyperparam_epochs,hyperparam_learning_rate\n"
                     "default__examples_mnist_001,examples,mnist,True,10,0.01\n"
                     "mutation__examples_mnist_002,examples,mnist,True,12,\n")
    foreign = history_csv(tmp_path / "other.csv", [{**row("3"), "repo": "nowhere"}])
    useful = history_csv(tmp_path / "ours.csv", [row("12"), row("6", status="interrupted")])
    settings = write_json("h.json", {"experiment_name": "h", "dedup": {"history": [str(useful), str(older),
                                                                                  str(foreign)]},
                                     "experiments": [{"mode": "mutation", "repo": "examples", "model": "mlp",
                                                      "mutate": ["epochs"], "runs_per_config": 2}]})
    result = invoke("plan", settings)
    assert result.exit_code == 2
    lines = [line.strip() for line in result.stderr.splitlines()[1:]]
    assert lines == [
        f"{settings}: dedup.history[1]: {older}: none of its 2 rows can be compared: it is the older tool's "
        "table format (repository, hyperparam_*), and this tool reads repo, model, mode and hp_<name> columns",
        f"{settings}: dedup.history[2]: {foreign}: none of its 1 rows can be compared (1 of a repository or model the "
        "registry does not have)"]
    useful_only = write_json("h2.json", {"experiment_name": "h", "seed": 4, "dedup": {"history": [str(useful)]},
                                       "experiments": [{"mode": "mutation", "repo": "examples", "model": "mlp",
                                                        "mutate": ["epochs"], "runs_per_config": 18}]})
    plan = invoke("plan", useful_only)  # 20 values - default 5 - the measured 12 = 18: every one left, no retry
    assert plan.exit_code == 0, plan.output
    assert f"history {useful}: 2 rows read, 1 comparable, " in plan.stdout


def test_choice_and_switch_values_survive_records_merge_and_dedup(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    repo = fake_repo("echo-args", hyperparameters={
        "optimizer": {"flag": "--optimizer", "type": "choice", "default": "adam", "values": ["adam", "sgd"]},
        "tied": {"flag": "--tied", "type": "switch", "default": False}})
    registry = fake_registry(fake=repo)
    results = tmp_path / "results"
    document: dict[str, Any] = {"experiment_name": "c", "seed": 1, "dedup": True, "experiments": [
        {"mode": "mutation", "repo": "fake", "model": "tiny", "mutate": ["optimizer", "tied"], "runs_per_config": 3}]}
    first = invoke("--registry", registry, "--results-dir", results, "-q", "run", write_json("c.json", document))
    assert first.exit_code == 0, first.output
    run_dir = only_run_dir(results)
    with open(run_dir / "summary.csv", newline="") as table:
        rows = list(csv.DictReader(table))
    assert {(r["hp_optimizer"], r["hp_tied"]) for r in rows} == {("sgd", "false"), ("adam", "true"), ("sgd", "true")}
    record = json.loads((run_dir / rows[0]["trial"] / "experiment.json").read_text())
    values = record["hyperparameters"]
    assert isinstance(values["tied"], bool) and isinstance(values["optimizer"], str)
    logged = (run_dir / rows[0]["trial"] / "attempt_1" / "training.log").read_text()
    argv = json.loads(next(line for line in logged.splitlines() if line.startswith("ARGV "))[5:])
    assert ("--tied" in argv) == (rows[0]["hp_tied"] == "true") and argv[argv.index("--optimizer") + 1] == \
        rows[0]["hp_optimizer"]
    merged = tmp_path / "merged.csv"
    assert invoke("merge", run_dir, "-o", merged).exit_code == 0
    assert merged.read_bytes() == (run_dir / "summary.csv").read_bytes()  # Record.from_json inverts to_json
    report = invoke("report", run_dir, "-o", tmp_path / "report")  # non-numeric columns: no rank correlation
    assert report.exit_code == 0, report.output
    assert [line for line in report.stdout.splitlines() if line.startswith("fake ") and
            line.split()[3] in ("optimizer", "tied")] == []
    assert "optimizer is categorical: no rank correlation" in report.stdout
    assert "tied is categorical: no rank correlation" in report.stdout
    planned = invoke("--registry", registry, "--results-dir", tmp_path / "elsewhere", "plan",
                     write_json("c1.json", document))
    assert set(plan_column(planned.stdout, "optimizer", 3)) <= {"adam*", "sgd*", "adam", "sgd"}
    document["experiments"][0]["runs_per_config"] = 1  # 2 x 2 - the default - the 3 measured = nothing left
    again = invoke("--registry", registry, "--results-dir", results, "plan", write_json("c2.json", document))
    assert again.exit_code == 2 and "but only 0 exist" in again.stderr
