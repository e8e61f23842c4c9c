"""Whole campaigns through the CLI: real trainings, the run folder, summary.csv and experiment.json."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from energy_profiler.results.rundir import create_run_dir
from test.conftest import FAKE_TRAIN, fake_repo, invoke, only_run_dir


def read_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "summary.csv", newline="") as table:
        return list(csv.DictReader(table))


def experiment(run_dir: Path, trial: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((run_dir / trial / "experiment.json").read_text())
    return document


def test_example_campaign_writes_the_run_folder(write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    settings = write_json("small.json", {
        "experiment_name": "small", "seed": 3,
        "experiments": [
            {"mode": "default", "repo": "examples", "model": "softmax", "hyperparameters": {"epochs": 1}},
            {"mode": "mutation", "repo": "examples", "model": "mlp", "mutate": ["learning_rate", "dropout"],
             "hyperparameters": {"epochs": 1}, "runs_per_config": 2}]})
    result = invoke("--results-dir", tmp_path / "results", "-ec", settings)
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(tmp_path / "results")
    assert run_dir.name.startswith("run_")
    assert (run_dir / "settings.json").read_bytes() == settings.read_bytes()
    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["seed"] == 3 and len(plan["trials"]) == 3
    assert "3 of 3 trials recorded: 3 success" in result.stdout
    assert "epoch 1/1" in result.stdout  # training output streams to the console

    rows = read_rows(run_dir)
    assert [row["trial"] for row in rows] == ["001_examples_softmax", "002_examples_mlp", "003_examples_mlp"]
    for row, planned in zip(rows, plan["trials"], strict=True):
        record = experiment(run_dir, row["trial"])
        # One Record feeds both: the same values, the same timestamps, what was passed is what is recorded.
        assert row["experiment_id"] == record["experiment_id"]
        assert (row["start_utc"], row["end_utc"]) == (record["start_utc"], record["end_utc"])
        assert float(row["duration_s"]) == record["duration_s"] > 0
        assert record["argv"] == planned["argv"]
        for name, value in planned["hyperparameters"].items():
            assert row[f"hp_{name}"] == value
            flag_position = record["argv"].index({"epochs": "--epochs", "learning_rate": "--lr",
                                                  "batch_size": "--batch-size", "dropout": "--dropout",
                                                  "weight_decay": "--weight-decay", "seed": "--seed"}[name])
            assert record["argv"][flag_position + 1] == value
        assert 0 < float(row["perf_test_accuracy"]) <= 1
        assert record["metrics"]["test_accuracy"] == float(row["perf_test_accuracy"])
        assert record["status"] == row["status"] == "success"
        assert (run_dir / row["trial"] / "attempt_1" / "training.log").is_file()
        assert record["host"]["python"] and record["host"]["cpu_logical_cores"] >= 1
    assert rows[1]["mutated"] == "learning_rate;dropout" and rows[0]["mutated"] == ""
    assert rows[1]["hp_learning_rate"] != rows[2]["hp_learning_rate"]

    table = pd.read_csv(run_dir / "summary.csv")
    # No energy hardware here (the tests hide it): empty cells (NaN), method none, a reason; never 0.
    assert table["cpu_energy_j"].isna().all() and table["gpu_energy_j"].isna().all()
    assert set(table["cpu_energy_method"]) == {"none"}
    no_backend = "No CPU energy backend is available (rapl: There is no powercap"
    assert table["cpu_energy_reason"].str.startswith(no_backend).all()
    assert table["gpu_energy_reason"].str.contains("nvml: nvidia-ml-py is not installed").all()
    assert table["hp_epochs"].dtype.kind == "i"
    log_lines = (run_dir / "session.log").read_text().splitlines()
    assert log_lines[0][:4] == str(datetime.now().year) and "campaign 'small'" in log_lines[0]


def campaign(write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path,
             repo: dict[str, Any], **top: Any) -> tuple[Any, Path]:
    registry = fake_registry(fake=repo)
    settings = write_json("s.json", {"experiment_name": "fake", "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny"}], **top})
    result = invoke("--registry", registry, "--results-dir", tmp_path / "results", "run", settings)
    return result, only_run_dir(tmp_path / "results")


def test_a_failing_training_is_retried_with_every_log_kept(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    result, run_dir = campaign(write_json, fake_registry, tmp_path, fake_repo("fail"), max_retries=2)
    assert result.exit_code == 1
    row = read_rows(run_dir)[0]
    assert row["status"] == "failed" and row["exit_code"] == "4" and row["attempts"] == "3"
    assert row["status_reason"] == "exit code 4: Traceback: something broke"
    assert row["perf_accuracy"] == ""
    record = experiment(run_dir, row["trial"])
    assert [a["attempt"] for a in record["attempts"]] == [1, 2, 3]
    for attempt in record["attempts"]:
        assert "Traceback" in (run_dir / attempt["log"]).read_text()
    assert "attempt 1 failed" in result.stdout and "retrying" in result.stdout


def test_a_training_killed_by_a_signal_python_cannot_name_is_recorded_by_its_number(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    # Signal 36 (a real-time signal) once ended the whole campaign: `36 is not a valid Signals`.
    repo = fake_repo("ok", command=["/bin/sh", "-c", "echo about to die; kill -36 $$"])
    result, run_dir = campaign(write_json, fake_registry, tmp_path, repo)
    assert result.exit_code == 1, result.output
    row = read_rows(run_dir)[0]
    assert (row["status"], row["exit_code"]) == ("failed", "-36")
    assert row["status_reason"] == "killed by signal 36: about to die"


def test_a_retry_that_succeeds_is_a_success_and_the_failed_attempt_stays(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    counter = tmp_path / "attempts"
    repo = fake_repo("fail-until-attempt", required_args=["--behaviour", "fail-until-attempt",
                                                          "--attempt-file", str(counter)])
    result, run_dir = campaign(write_json, fake_registry, tmp_path, repo, max_retries=3)
    assert result.exit_code == 0
    row = read_rows(run_dir)[0]
    assert (row["status"], row["attempts"], row["perf_accuracy"]) == ("success", "2", "0.6")
    assert "first attempt fails" in (run_dir / row["trial"] / "attempt_1" / "training.log").read_text()
    assert experiment(run_dir, row["trial"])["attempts"][0]["status"] == "failed"


def test_exit_zero_without_a_required_metric_is_not_a_success(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    result, run_dir = campaign(write_json, fake_registry, tmp_path, fake_repo("no-metrics"))
    assert result.exit_code == 1
    row = read_rows(run_dir)[0]
    assert (row["status"], row["exit_code"]) == ("metrics_missing", "0")
    assert row["status_reason"] == "required metric not found in the log: accuracy"


def test_a_hanging_training_times_out(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    result, run_dir = campaign(write_json, fake_registry, tmp_path, fake_repo("hang"), timeout_s=1, grace_s=1)
    assert result.exit_code == 1
    row = read_rows(run_dir)[0]
    assert row["status"] == "timeout" and row["exit_code"] == "-15"
    assert 1 <= float(row["duration_s"]) < 2


def test_arguments_reach_the_training_literally(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    tricky = ["a b", "it's", '"q"', "x;y", "$(touch pwned)", "`touch pwned`", "$HOME"]
    repo = fake_repo("echo-args", required_args=["--behaviour", "echo-args", *tricky])
    result, run_dir = campaign(write_json, fake_registry, tmp_path, repo)
    assert result.exit_code == 0, result.output
    log = (run_dir / "001_fake_tiny" / "attempt_1" / "training.log").read_text()
    argv = json.loads(next(line for line in log.splitlines() if line.startswith("ARGV "))[5:])
    assert argv[2:2 + len(tricky)] == tricky
    assert argv[-6:] == ["--model", "tiny", "--lr", "0.1", "--epochs", "2"]
    assert not (FAKE_TRAIN.parent / "pwned").exists()  # no shell ever saw these strings


def test_quiet_hides_training_output_but_not_the_summary(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry = fake_registry()
    settings = write_json("s.json", {"experiment_name": "q", "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny"}]})
    result = invoke("--registry", registry, "--results-dir", tmp_path / "r", "-q", "run", settings)
    assert result.exit_code == 0
    assert "starting tiny" not in result.stdout
    assert "1 of 1 trials recorded: 1 success" in result.stdout


def test_run_folders_are_never_reused_and_carry_the_experiment_name(tmp_path: Path) -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5)
    first, second = create_run_dir(tmp_path, "lr_study", now=moment), create_run_dir(tmp_path, "lr_study", now=moment)
    assert (first.name, second.name) == ("run_20260102_030405_lr_study", "run_20260102_030405_lr_study_2")
    # An ad-hoc name made from registry keys: nothing but a plain file name reaches the folder.
    hostile = create_run_dir(tmp_path, "adhoc_$(rm -rf ~);\nx/..", now=moment)
    assert hostile.name == "run_20260102_030405_adhoc___rm_-rf_____x_" and hostile.parent == tmp_path


def test_an_ad_hoc_run_records_the_settings_it_stands_for(tmp_path: Path, fake_registry: Callable[..., Path]) -> None:
    registry = fake_registry()
    result = invoke("--registry", registry, "--results-dir", tmp_path / "r",
                    "-r", "fake", "-m", "tiny", "-mt", "learning_rate", "-n", "2", "-s", "5", "-q")
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(tmp_path / "r")
    settings = json.loads((run_dir / "settings.json").read_text())
    assert settings["seed"] == 5 and settings["experiments"][0]["mutate"] == ["learning_rate"]
    rows = read_rows(run_dir)
    assert len(rows) == 2 and rows[0]["hp_learning_rate"] != rows[1]["hp_learning_rate"]


def test_cooldown_separates_trials(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry = fake_registry()
    settings = write_json("s.json", {"experiment_name": "c", "cooldown_s": 1.0, "runs_per_config": 2,
                                     "experiments": [{"mode": "default", "repo": "fake", "model": "tiny"}]})
    result = invoke("--registry", registry, "--results-dir", tmp_path / "r", "run", settings)
    assert result.exit_code == 0
    assert "cooling down for 1 s" in result.stdout
    first, second = read_rows(only_run_dir(tmp_path / "r"))
    gap_s = (datetime.fromisoformat(second["start_utc"]) - datetime.fromisoformat(first["end_utc"])).total_seconds()
    assert 1.0 <= gap_s < 3.0


def test_log_markers_and_per_model_metrics_decide_success_beside_the_exit_code(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    # An exit-0 run that printed a traceback, one that never printed its end marker, and a model that
    # requires a metric its sibling does not have.
    traceback = "Traceback (most recent call last):"
    models = {"tiny": {}, "big": {"metrics": {"top5": {"pattern": r"top5: ([0-9.]+)", "required": True}}}}

    def campaign(name: str, *arguments: str) -> list[dict[str, str]]:
        repo = fake_repo(arguments[0], required_args=["--behaviour", *arguments], models=models,
                         success_marker=r"^accuracy: ", failure_patterns=[r"^Traceback \(most recent call last\)"])
        settings = write_json(f"{name}.json", {"experiment_name": name, "experiments": [
            {"mode": "default", "repo": "fake", "model": "tiny"}, {"mode": "default", "repo": "fake", "model": "big"}]})
        result = invoke("--registry", write_json(f"{name}-models.json", {"repositories": {"fake": repo}}),
                        "--results-dir", tmp_path / name, "-q", "run", settings)
        assert result.exit_code in (0, 1), result.output
        with open(only_run_dir(tmp_path / name) / "summary.csv", newline="") as table:
            return list(csv.DictReader(table))

    haunted = campaign("haunted", "ok", "--say", traceback)
    assert [row["status"] for row in haunted] == ["failed", "failed"]
    assert haunted[0]["status_reason"] == ("exit code 0, but a log line matched the failure pattern "
                                           f"'^Traceback \\\\(most recent call last\\\\)': {traceback}")
    silent = campaign("silent", "no-metrics")
    assert silent[0]["status_reason"] == "exit code 0, but the success marker '^accuracy: ' never appeared in the log"
    plain = campaign("plain", "ok")
    assert [(row["status"], row["status_reason"]) for row in plain] == [
        ("success", ""), ("metrics_missing", "required metric not found in the log: top5")]
    assert plain[0]["perf_top5"] == "" and plain[0]["perf_accuracy"] != ""
