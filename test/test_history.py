"""History dedup: draws already measured are skipped, whatever form the CSV gives their values."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

from energy_profiler.config.registry import load_registry
from energy_profiler.config.settings import settings_from_document
from energy_profiler.planning.history import load_history
from energy_profiler.planning.plan import build_plan
from test.conftest import PROJECT_ROOT, REAL_REGISTRY, fake_repo, invoke, only_run_dir

REGISTRY = load_registry(REAL_REGISTRY, PROJECT_ROOT)
HP = ["epochs", "learning_rate", "batch_size", "dropout", "weight_decay", "seed"]


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
    assert plan.history_lines() == [f"experiments[0]: {plan.history_skips[0][1]} draw(s) skipped: already "
                                    f"measured in {history}"]


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
    second_values = {line.split()[4].rstrip("*") for line in plan.stdout.splitlines()[1:10]}
    assert len(first_values) == 10 and len(second_values) == 9 and not first_values & second_values
    document["experiments"][0]["runs_per_config"] = 10  # 20 - default - 10 measured = 9 left
    third = invoke("--registry", registry, "--results-dir", results, "plan", write_json("d3.json", document))
    assert third.exit_code == 2
