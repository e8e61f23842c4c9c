"""A resume keeps the options its campaign started with, names its settings file, and is found by name."""

from __future__ import annotations

import csv
import json
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from energy_profiler.cli.context import energy_arguments
from energy_profiler.results.rundir import run_dir_lock
from test.conftest import PROJECT_ROOT, fake_repo, invoke, wait_for
from test.test_terminal_width import in_terminal, lines_of


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "summary.csv", newline="") as table:
        return list(csv.DictReader(table))


def sleepy_campaign(write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
                    seconds: float = 0.2, name: str = "tdp") -> tuple[Path, Path]:
    registry = fake_registry(fake=fake_repo("sleep", required_args=["--behaviour", "sleep", "--seconds",
                                                                    str(seconds)]))
    settings = write_json(f"{name}.json", {"experiment_name": name, "runs_per_config": 4, "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny"}]})
    return registry, settings


def test_a_resume_keeps_the_energy_options_its_campaign_started_with(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    # Seen by a user: `run FILE --cpu-tdp-w 100`, Ctrl-C, then the printed resume line (which dropped
    # the option): trials 1-2 `estimate`, 3-4 `none`, in one summary.csv without a word.
    registry, settings = sleepy_campaign(write_json, fake_registry, seconds=1.0)
    results = tmp_path / "results"
    tool = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "mutation.py"), "--registry", str(registry),
                             "--results-dir", str(results), "run", str(settings), "--cpu-tdp-w", "100"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_for(lambda: any(results.glob("run_*/002_fake_tiny/attempt_1/training.log")), 30)
        tool.send_signal(signal.SIGINT)
        output, _ = tool.communicate(timeout=30)
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.wait()
    assert tool.returncode == 130, output
    run_dir = next(results.glob("run_*"))
    hint = output.rstrip().splitlines()[-1]
    assert output.rstrip().splitlines()[-2] == "to continue:"
    assert hint == f"{sys.executable} {PROJECT_ROOT / 'mutation.py'} run {settings} --resume {run_dir} --cpu-tdp-w 100"
    recorded = json.loads((run_dir / "plan.json").read_text())["options"]
    assert recorded["energy"] == {"cpu_tdp_w": 100.0} and recorded["registry"] == str(registry)

    # An option that differs is refused before anything is written, naming the difference.
    before = (run_dir / "summary.csv").read_bytes()
    refused = invoke("--registry", registry, "--results-dir", results, "run", settings, "--resume", run_dir,
                     "--cpu-tdp-w", "80", "--cpu-energy", "none")
    assert refused.exit_code == 2, refused.output
    assert "--cpu-energy: the run folder started with not given, this command gives none" in refused.stderr
    assert "--cpu-tdp-w: the run folder started with 100, this command gives 80" in refused.stderr
    assert "--override-options" in refused.stderr
    assert (run_dir / "summary.csv").read_bytes() == before and not (run_dir / "003_fake_tiny").exists()

    # The line without its option (as a user would shorten it) still resumes with the campaign's options.
    words = shlex.split(hint)[2:]  # after the interpreter and mutation.py
    resumed = invoke("--registry", registry, *words[: words.index("--cpu-tdp-w")])
    assert resumed.exit_code == 0, resumed.output
    assert "options this run folder runs with: --cpu-tdp-w 100" in resumed.stdout
    assert [row["cpu_energy_method"] for row in rows(run_dir)] == ["estimate"] * 4
    assert "options this run folder runs with: --cpu-tdp-w 100" in (run_dir / "session.log").read_text()


def test_override_options_changes_them_from_the_next_trial_and_plan_json_keeps_the_earlier(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry, settings = sleepy_campaign(write_json, fake_registry, seconds=0.05)
    results = tmp_path / "results"
    assert invoke("--registry", registry, "--results-dir", results, "-q", "run", settings,
                  "--cpu-tdp-w", "100").exit_code == 0
    run_dir = next(results.glob("run_*"))
    record_path = run_dir / "004_fake_tiny" / "experiment.json"
    record = json.loads(record_path.read_text())
    record["status"] = "interrupted"
    record_path.write_text(json.dumps(record))
    result = invoke("--registry", registry, "--results-dir", results, "-q", "run", settings, "--resume", run_dir,
                    "--cpu-energy", "none", "--override-options")
    assert result.exit_code == 0, result.output
    assert [row["cpu_energy_method"] for row in rows(run_dir)] == ["estimate"] * 3 + ["none"]
    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["options"]["energy"] == {"cpu_tdp_w": 100.0, "cpu": "none"}
    assert [entry["options"]["energy"] for entry in plan["options_replaced"]] == [{"cpu_tdp_w": 100.0}]
    assert invoke("--registry", registry, "run", settings, "--override-options").exit_code == 2  # not without --resume


def test_a_resume_names_the_settings_file_of_its_campaign_and_an_existing_folder(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry, settings = sleepy_campaign(write_json, fake_registry, seconds=0.01)
    results = tmp_path / "results"
    assert invoke("--registry", registry, "--results-dir", results, "-q", "run", settings).exit_code == 0
    run_dir = next(results.glob("run_*"))
    assert run_dir.name.endswith("_tdp")  # run_YYYYMMDD_HHMMSS_<experiment_name>
    _, other = sleepy_campaign(write_json, fake_registry, name="another")
    wrong = invoke("--registry", registry, "--results-dir", results, "run", other, "--resume", run_dir)
    assert wrong.exit_code == 2
    assert wrong.stderr == (f"error: {other}: experiment_name is 'another', but {run_dir} is a run of 'tdp': give "
                            f"the settings file it was made from (its copy is {run_dir / 'settings.json'})\n")
    gone = invoke("--registry", registry, "--results-dir", results, "run", settings, "--resume", tmp_path / "nope")
    assert gone.exit_code == 2
    assert gone.stderr == f"error: {tmp_path / 'nope'}: no such run folder (looked for it as a path and in {results})\n"
    # The folder's name alone, under --results-dir, from another working folder.
    by_name = invoke("--registry", registry, "--results-dir", results, "-q", "run", settings, "--resume", run_dir.name)
    assert by_name.exit_code == 0, by_name.output
    assert not list(results.glob("run_*/run_*"))


def test_status_counts_agree_shows_reasons_and_finds_the_run_by_name_or_as_the_latest(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path,
        monkeypatch: Any) -> None:
    registry = fake_registry(fake=fake_repo("fail"))
    settings = write_json("s.json", {"experiment_name": "st", "runs_per_config": 3, "stop_after_start_failures": 0,
                                     "experiments": [{"mode": "default", "repo": "fake", "model": "tiny"}]})
    results = tmp_path / "results"
    assert invoke("--registry", registry, "--results-dir", results, "-q", "run", settings).exit_code == 1
    run_dir = next(results.glob("run_*"))
    record_path = run_dir / "003_fake_tiny" / "experiment.json"
    record = json.loads(record_path.read_text())
    record["status"], record["status_reason"] = "interrupted", "interrupted by SIGINT"
    record_path.write_text(json.dumps(record))  # as a Ctrl-C leaves it: a record and a row

    monkeypatch.chdir(tmp_path)  # another working folder: the run is found in --results-dir by its name
    for named in (["status", run_dir.name], ["status"]):  # by name, and the latest without one
        shown = invoke("--results-dir", results, *named, "--format", "csv")
        assert shown.exit_code == 0, shown.output
        table = list(csv.DictReader(shown.stdout.splitlines()))
        assert list(table[0]) == ["trial", "record", "in_summary", "reason"]  # no Slurm columns on a local run
        assert [(row["record"], row["reason"]) for row in table] == [
            ("failed", "exit code 4: Traceback: something broke")] * 2 + [("interrupted", "interrupted by SIGINT")]
    text = invoke("--results-dir", results, "status").stdout
    # Every count from the same rows: 3 recorded, of which 1 interrupted and so still to run; 3 rows.
    assert "3 trials: 3 recorded (2 failed, 1 interrupted), 1 still to run, 3 in summary.csv" in text
    assert invoke("--results-dir", tmp_path / "empty", "status").exit_code == 2


def test_runs_lists_each_run_folder_with_its_state_and_counts(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry, settings = sleepy_campaign(write_json, fake_registry, seconds=0.01)
    results = tmp_path / "results"
    assert invoke("--registry", registry, "--results-dir", results, "-q", "run", settings).exit_code == 0
    assert invoke("--registry", registry, "--results-dir", results, "-q", "run", settings).exit_code == 0
    first, second = sorted(results.glob("run_*"))
    record_path = second / "004_fake_tiny" / "experiment.json"
    record = json.loads(record_path.read_text())
    record["status"] = "interrupted"
    record_path.write_text(json.dumps(record))
    listed = invoke("--results-dir", results, "runs", "--format", "json")
    assert listed.exit_code == 0, listed.output
    runs = {row["run"]: row for row in json.loads(listed.stdout)}
    assert (runs[first.name]["experiment"], runs[first.name]["state"], runs[first.name]["trials"],
            runs[first.name]["recorded"], runs[first.name]["success"]) == ("tdp", "finished", 4, 4, 4)
    # As status counts: 4 records (one interrupted), 1 still to run.
    assert (runs[second.name]["state"], runs[second.name]["recorded"], runs[second.name]["to_run"]) == \
        ("incomplete", 4, 1)
    assert energy_arguments({"cpu_tdp_w": 5.12, "require": ("cpu",)}) == ["--cpu-tdp-w", "5.12", "--require", "cpu"]
    assert runs[first.name]["size_mib"] >= 0 and runs[first.name]["started_utc"].startswith("20")
    with run_dir_lock(second):  # a campaign holds it
        assert json.loads(invoke("--results-dir", results, "runs", "--format", "json").stdout)[1]["state"] == \
            "running"
    text = invoke("--results-dir", results, "runs").stdout
    assert first.name in text and f"2 run folder(s) in {results}" in text
    assert invoke("--results-dir", tmp_path / "none", "runs").stdout == f"no run folder in {tmp_path / 'none'}\n"
    # In a 60-column terminal the run's name, what one copies, stays whole: other columns go first.
    code, seen = in_terminal(["--results-dir", str(results), "runs"], 60)
    assert code == 0 and any(line.startswith(f"{first.name} ") for line in lines_of(seen)), seen
