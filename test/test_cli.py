"""The command line: every command's output and exit code, through click's CliRunner."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from energy_profiler.config.executor import SlurmOptions, executor_from_document
from test.conftest import PROJECT_ROOT, fake_repo, invoke

QUICKSTART = PROJECT_ROOT / "settings" / "quickstart.json"


def test_list_shows_models_flags_defaults_ranges_and_metrics() -> None:
    result = invoke("list")
    assert result.exit_code == 0
    out = result.stdout
    assert "examples" in out and "models: softmax, mlp, deep_mlp" in out
    line = next(line for line in out.splitlines() if line.strip().startswith("learning_rate"))
    assert line.split() == ["learning_rate", "--lr", "float", "0.05", "[0.001,", "0.3]", "log_uniform", "-"]
    assert "deep_mlp overrides: learning_rate default 0.02" in out
    assert "metrics: test_accuracy (required), test_loss, train_time_s" in out
    assert invoke("-l").stdout == out


def test_plan_prints_every_trial_and_writes_nothing(tmp_path: Path) -> None:
    result = invoke("--results-dir", tmp_path / "results", "plan", QUICKSTART)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["#", "mode", "repo", "model", "forecast_s", "forecast_j", "from", "epochs",
                                "learning_rate", "batch_size", "dropout", "weight_decay", "seed"]
    assert lines[1].split()[4:7] == ["-", "-", "-"]  # an empty results folder: no history, no forecast
    assert lines[1].split()[:4] == ["1", "default", "examples", "softmax"]
    assert sum("*" in line for line in lines[1:8]) == 5  # the five mutation trials mark their drawn values
    assert "7 trials, seed 7; * = mutated" in result.stdout
    assert not (tmp_path / "results").exists()
    assert invoke("--results-dir", tmp_path / "results", "plan", QUICKSTART).stdout == result.stdout  # same seed


def test_plan_without_a_seed_says_which_one_it_drew(write_json: Callable[[str, Any], Path]) -> None:
    file = write_json("noseed.json", {"experiment_name": "n", "experiments": [
        {"mode": "mutation", "repo": "examples", "model": "mlp", "mutate": ["dropout"]}]})
    result = invoke("plan", file)
    assert result.exit_code == 0
    assert 'drawn: set "seed" in the settings to get this plan again' in result.stdout


def test_validate_reports_each_file(write_json: Callable[[str, Any], Path]) -> None:
    bad = write_json("bad.json", {"experiment_name": "b", "experiments": [
        {"mode": "default", "repo": "examples", "model": "cnn"}]})
    result = invoke("validate", QUICKSTART, bad)
    assert result.exit_code == 2
    assert f"ok: {QUICKSTART} (7 trials)" in result.stdout
    assert result.stderr.splitlines()[0] == "error: 1 problem found:"  # the format every command uses
    assert result.stderr.splitlines()[1].startswith(f"  {bad}: experiments[0].model: unknown model 'cnn'")
    assert invoke("validate", QUICKSTART).exit_code == 0


@pytest.mark.parametrize(("args", "message"), [
    (["-ec", QUICKSTART, "list"], "use only one of: -ec, a command"),
    (["-ec", QUICKSTART, "-r", "examples"], "use only one of: -ec, -r/-m/-mt"),
    (["-r", "examples", "-m", "mlp"], "an ad-hoc run needs -r, -m and -mt; missing -mt"),
    (["-r", "examples", "-m", "mlp", "-mt", "lr"], "unknown hyperparameter 'lr' for examples/mlp"),
    (["-n", "0", "-r", "examples"], "Invalid value for '-n'"),
    (["frobnicate"], "No such command 'frobnicate'"),
    (["validate"], "Missing argument"),
])
def test_usage_errors_exit_2(args: list[Any], message: str, tmp_path: Path) -> None:
    result = invoke("--results-dir", tmp_path / "r", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (tmp_path / "r").exists()


def test_global_options_work_after_the_command_too(tmp_path: Path) -> None:
    result = invoke("plan", QUICKSTART, "--registry", tmp_path / "missing.json")
    assert result.exit_code == 2
    assert "missing.json: file not found" in result.stderr


def test_no_arguments_prints_help() -> None:
    result = invoke()
    assert result.exit_code == 0
    assert "mutation.py -ec settings/quickstart.json" in result.stdout
    for command in ("run", "list", "validate", "plan"):
        assert command in result.stdout


def test_version() -> None:
    assert invoke("--version").stdout.startswith("mutation.py, version ")


def test_the_closing_table_fits_a_narrow_terminal_and_names_each_trial_by_its_values(tmp_path: Path) -> None:
    from energy_profiler.cli.closing import summary_text
    from energy_profiler.execution.run_folder import SessionResult
    from energy_profiler.model.energy_fields import EnergyFields
    from test.test_results import a_record

    energy = EnergyFields(cpu_energy_j=1234.5, cpu_energy_method="rapl", cpu_energy_above_idle_j=1000.0)
    records = [a_record(trial_index=i, hyperparameters=(("learning_rate", f"0.00012{i}"), ("batch_size", "1024"),
                                                        ("epochs", "5")),
                        mutated=("learning_rate", "batch_size"), energy=energy) for i in range(1, 4)]
    result = SessionResult(tmp_path, records, planned=5, stopped_by=None)
    defaults = {"learning_rate": "0.001", "batch_size": "1024", "epochs": "10"}
    text = summary_text(result, width=60, defaults=lambda _repo, _model: defaults)
    lines = text.splitlines()
    table = lines[1:lines.index("", 1)]
    assert max(len(line) for line in table) <= 60  # (the file paths below it wrap as the terminal wraps them)
    assert lines[1].split() == ["#", "model", "status", "energy_j", "method", "above_", "values"]
    # Each row shows its energy with the method and every value that differs from the defaults, whole.
    row = " ".join(lines[lines.index(next(line for line in lines if line.startswith("1 "))):][:3])
    assert "1234  rapl" in row and "1000" in row
    assert re.sub(r"\s+", "", row).endswith("learning_rate=0.000121epochs=5")  # batch_size is the default
    assert "(not shown at this width: accuracy, duration_s;" in text
    assert "3 of 5 trials recorded: 3 success" in text
    plain = summary_text(result, defaults=lambda _repo, _model: defaults)  # not a terminal: nothing folded
    assert "learning_rate=0.000123 epochs=5" in plain and "duration_s" in plain


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--interval-s", "nan", "'nan' is not a finite number"),
    ("--baseline-s", "1e9", "1000000000.0 is not in the range 0<=x<=3600"),
    ("--cpu-tdp-w", "inf", "is not in the range 0<x<=5000"),
])
def test_energy_overrides_are_bounded_like_the_settings(option: str, value: str, message: str, tmp_path: Path) -> None:
    # NaN passes click's FloatRange (it compares false with every bound), and Infinity hung a baseline.
    result = invoke("--results-dir", tmp_path / "r", "run", PROJECT_ROOT / "settings" / "quickstart.json",
                    option, value)
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "r").exists()


def test_doctor_speaks_of_slurm_only_for_settings_that_use_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_json: Callable[[str, Any], Path]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    result = invoke("doctor")
    assert result.exit_code == 0, result.output
    assert "slurm" not in result.stdout.lower()  # a local campaign needs none of it
    settings = write_json("s.json", {"experiment_name": "s", "executor": {"slurm": {}},
                                     "experiments": [{"mode": "default", "repo": "examples", "model": "mlp"}]})
    result = invoke("doctor", settings)
    assert ("slurm: sbatch, squeue, scancel, scontrol not found on PATH: run this on a Slurm login node (or put "
            "Slurm's commands on PATH) (needed only for executor slurm)") in result.stdout


def test_doctor_puts_the_fix_that_works_here_first_and_says_when_nothing_would_be_measured(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A virtual machine: the hypervisor flag, no RAPL, no perf power events, no known TDP, no GPU.
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\n"
                       "flags\t\t: fpu vme sse2 hypervisor avx2\n")
    monkeypatch.setenv("MUTATION_CPUINFO", str(cpuinfo))
    lines = invoke("doctor").stdout.splitlines()
    assert lines[0] == ("cpu: the fix that works here: set energy.cpu_tdp_w (or --cpu-tdp-w) to the CPU's TDP in "
                        "watts, from its datasheet (estimate)")  # not `modprobe`, which cannot work on a VM
    assert "a campaign would measure no energy at all, only durations and metrics (--require cpu turns that into " \
           "an error)" in lines
    scaling = next(line for line in lines if line.startswith("this is a virtual machine:"))
    assert f"divides it over the {os.cpu_count()} logical cores visible here" in scaling
    assert lines.index(scaling) < next(i for i, line in enumerate(lines) if line.startswith("device"))
    with_tdp = invoke("doctor", "--cpu-tdp-w", "5").stdout.splitlines()
    assert "cpu: a labelled estimate (CPU time x TDP) is the best this machine allows" in with_tdp
    assert not any("no energy at all" in line for line in with_tdp)
    cpuinfo.write_text("flags\t\t: fpu vme sse2\n")  # bare metal: loading the RAPL driver may work
    assert invoke("doctor").stdout.splitlines()[0].startswith("cpu: the fix that works here: load the driver")


def test_with_no_energy_anywhere_a_narrow_closing_table_keeps_the_metric_and_folds_the_energy_line(
        tmp_path: Path) -> None:
    from energy_profiler.cli.closing import summary_text
    from energy_profiler.execution.run_folder import SessionResult
    from test.test_results import a_record

    records = [a_record(trial_index=i, hyperparameters=(("learning_rate", "0.000123"),), mutated=("learning_rate",))
               for i in range(1, 3)]
    text = summary_text(SessionResult(tmp_path, records, planned=2, stopped_by=None), width=52)
    lines = text.splitlines()
    assert "accuracy" in lines[1] and "energy_j" not in lines[1]  # all "-" columns go first, the metric stays
    assert "method, energy_j;" in " ".join(lines)
    assert all(len(line) <= 52 for line in lines if not line.startswith("summary: "))
    # Narrower: the metric goes too, before a value is cut in two (learning_rate=0.0 / 00123 misreads).
    narrow = summary_text(SessionResult(tmp_path, records, planned=2, stopped_by=None), width=44).splitlines()
    assert narrow[2].split() == ["1", "tiny", "success", "learning_rate=0.000123"], narrow
    assert "accuracy, duration_s," in " ".join(narrow)


def test_plan_and_list_print_csv_and_json_for_scripts() -> None:
    import csv as csv_module

    quickstart = Path(__file__).resolve().parents[1] / "settings" / "quickstart.json"
    planned = invoke("plan", quickstart, "--format", "csv")
    assert planned.exit_code == 0, planned.output
    trials = list(csv_module.DictReader(planned.stdout.splitlines()))
    assert [row["index"] for row in trials] == [str(i) for i in range(1, 8)]
    assert trials[2]["mutated"] == "learning_rate;batch_size" and trials[2]["learning_rate"] == "0.0042"



def test_list_for_scripts_gives_each_models_own_typed_values_and_metrics(
        write_json: Callable[[str, Any], Path]) -> None:
    # Seen by a user: deep_mlp's learning_rate default 0.02 came out as 0.05, numbers and ranges as
    # strings, metrics and limits missing.
    import csv as csv_module
    import json as json_module

    repo = fake_repo(model_flag="--model", models={"tiny": {}, "big": {
        "hyperparameters": {"learning_rate": {"default": 0.02}, "epochs": {"limits": [1, 50]}},
        "metrics": {"top5": {"pattern": "top5: ([0-9.]+)", "required": True}}}})
    repo["hyperparameters"]["optimizer"] = {"flag": "--opt", "type": "choice", "values": ["adam", 0.5],
                                            "default": "adam"}
    registry = write_json("models.json", {"repositories": {"fake": repo}})
    listed = json_module.loads(invoke("--registry", registry, "list", "--format", "json").stdout)
    models = {model["name"]: model for model in listed["repositories"][0]["models"]}
    big = {hp["name"]: hp for hp in models["big"]["hyperparameters"]}
    tiny = {hp["name"]: hp for hp in models["tiny"]["hyperparameters"]}
    assert big["learning_rate"]["default"] == 0.02 and tiny["learning_rate"]["default"] == 0.1
    assert big["learning_rate"]["range"] == [0.001, 0.4] and big["learning_rate"]["distribution"] == "log_uniform"
    assert big["epochs"] == {"name": "epochs", "flag": "--epochs", "type": "int", "default": 2, "range": [1, 5],
                             "limits": [1, 50], "values": None, "distribution": "uniform", "zero_probability": 0.0,
                             "precision": None, "seed": False, "knob": False}
    assert tiny["epochs"]["limits"] is None
    assert tiny["optimizer"]["values"] == ["adam", 0.5] and tiny["optimizer"]["range"] is None
    assert [(m["name"], m["required"]) for m in models["big"]["metrics"]] == [
        ("accuracy", True), ("loss", False), ("top5", True)]
    assert [m["name"] for m in models["tiny"]["metrics"]] == ["accuracy", "loss"]

    rows = list(csv_module.DictReader(invoke("--registry", registry, "list", "--format", "csv").stdout.splitlines()))
    learning_rate = {row["model"]: row for row in rows if row["name"] == "learning_rate"}
    assert (learning_rate["big"]["default"], learning_rate["tiny"]["default"]) == ("0.02", "0.1")
    epochs = next(row for row in rows if row["model"] == "big" and row["name"] == "epochs")
    assert (epochs["low"], epochs["high"], epochs["limit_low"], epochs["limit_high"]) == ("1", "5", "1", "50")
    top5 = next(row for row in rows if row["name"] == "top5")
    assert (top5["kind"], top5["pattern"], top5["required"]) == ("metric", "top5: ([0-9.]+)", "true")


def slurm_options(document: dict[str, Any]) -> SlurmOptions:
    options = executor_from_document({"slurm": document})
    assert isinstance(options, SlurmOptions)
    return options


def test_every_slurm_option_is_one_sbatch_argument_and_the_time_limit_follows_the_timeout() -> None:
    options = slurm_options({
        "partition": "gpu;x", "account": "a b", "qos": "q", "constraint": "a100", "gres": "gpu:a100:4",
        "gpus_per_trial": 2, "cpus_per_trial": 8, "extra_args": ["--comment=$(x)"], "max_parallel": 3})
    assert options.sbatch_options(600) == [  # 600 s + 5 minutes for monitors and teardown = 15 minutes
        "--exclusive", "--nodes=1", "--ntasks=1", "--partition=gpu;x", "--account=a b", "--qos=q",
        "--constraint=a100", "--gres=gpu:a100:4", "--gpus=2", "--cpus-per-task=8", "--time=15", "--comment=$(x)"]
    assert "--time=2:00:00" in slurm_options({"time": "2:00:00"}).sbatch_options(600)
    assert not any(a.startswith("--time") for a in slurm_options({}).sbatch_options(None))
    assert executor_from_document("local") == "local" and executor_from_document(None) == "local"


def test_bad_executor_settings_name_their_json_path_and_exit_2(write_json: Callable[[str, Any], Path]) -> None:
    settings = write_json("s.json", {"experiment_name": "x", "executor": {"slurm": {
        "max_parallel": 0, "shared_check_s": -1, "bogus": 1}}, "experiments": [
        {"mode": "default", "repo": "examples", "model": "mlp"}]})
    result = invoke("validate", settings)
    assert result.exit_code == 2
    for path in ("executor.slurm.bogus", "executor.slurm.max_parallel", "executor.slurm.shared_check_s"):
        assert f"{settings}: {path}: " in result.stderr


def test_the_executor_option_overrides_the_settings(
        write_json: Callable[[str, Any], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    experiments = [{"mode": "default", "repo": "examples", "model": "mlp", "hyperparameters": {"epochs": 1}}]
    local = write_json("local.json", {"experiment_name": "here", "experiments": experiments})
    on_slurm = write_json("slurm.json", {"experiment_name": "there", "executor": {"slurm": {}},
                                         "experiments": experiments})
    results = tmp_path / "results"
    # --executor local runs a Slurm settings file here: no sbatch is looked for, no job written.
    result = invoke("--results-dir", results, "-q", "run", on_slurm, "--executor", "local")
    assert result.exit_code == 0, result.output
    assert not list(results.glob("run_*/slurm_jobs.json"))
    # --executor slurm sends a local settings file to Slurm: without Slurm's commands that is exit 2.
    monkeypatch.setenv("PATH", str(tmp_path / "no-slurm"))
    result = invoke("--results-dir", tmp_path / "other", "run", local, "--executor", "slurm")
    assert result.exit_code == 2 and "sbatch, squeue, scancel, scontrol not found on PATH" in result.stderr
    assert not (tmp_path / "other").exists()
