"""A training that cannot start is refused before anything runs; one that keeps failing at once stops the campaign."""

from __future__ import annotations

import csv
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from energy_profiler.process.startable import executable_by, start_problem
from test.conftest import FAKE_TRAIN, fake_repo, invoke, only_run_dir

SETTINGS = {"experiment_name": "start", "runs_per_config": 6,
            "experiments": [{"mode": "default", "repo": "fake", "model": "tiny"}]}


def test_a_typo_in_the_script_name_is_refused_before_anything_is_written(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry = fake_registry(fake=fake_repo(command=[sys.executable, "fake_trian.py"]))
    settings = write_json("s.json", SETTINGS)
    result = invoke("--registry", registry, "--results-dir", tmp_path / "results", "run", settings)
    assert result.exit_code == 2, result.output
    message = (f"{registry}: repositories.fake.command: fake/tiny of {settings} cannot be started: "
               f"{Path(sys.executable).name} would be given the script 'fake_trian.py', which does not exist in "
               f"{FAKE_TRAIN.parent}")
    assert message in result.stderr
    assert not (tmp_path / "results").exists()
    # validate and doctor say the same: the campaign would not start.
    validated = invoke("--registry", registry, "validate", settings)
    assert validated.exit_code == 2 and message in validated.stderr
    doctor = invoke("--registry", registry, "doctor", settings)
    assert doctor.exit_code == 2 and message in " ".join(doctor.stdout.split())


def test_a_program_that_is_missing_or_not_executable_is_refused(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    program = tmp_path / "train.sh"
    program.write_text("#!/bin/sh\necho test_accuracy: 1\n")
    program.chmod(0o644)  # forgot chmod +x
    registry = fake_registry(fake=fake_repo(command=[str(program)]), other=fake_repo(command=["no-such-trainer$(x)"]))
    settings = write_json("s.json", {**SETTINGS, "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny"}, {"mode": "default", "repo": "other", "model": "tiny"}]})
    result = invoke("--registry", registry, "--results-dir", tmp_path / "results", "run", settings)
    assert result.exit_code == 2, result.output
    assert f"repositories.fake.command: fake/tiny of {settings} cannot be started: {program} is not executable by" \
        in result.stderr
    assert "repositories.other.command: other/tiny of" in result.stderr
    assert "cannot be started: 'no-such-trainer$(x)' is not on the training's PATH" in result.stderr
    assert not (tmp_path / "results").exists()


def test_executable_by_reads_the_mode_bits_for_the_user_who_runs_the_training(tmp_path: Path) -> None:
    program = tmp_path / "p"
    program.write_text("")
    info = program.stat()
    program.chmod(stat.S_IRWXU)  # 0700: its owner only
    assert executable_by(program, info.st_uid, [])
    stranger = info.st_uid + 12345
    assert not executable_by(program, stranger, [info.st_gid])  # under sudo: the invoking user, not root
    program.chmod(0o710)
    assert executable_by(program, stranger, [info.st_gid]) and not executable_by(program, stranger, [])
    assert executable_by(program, 0, [])  # root needs any x bit
    program.chmod(0o600)
    assert not executable_by(program, 0, [])
    assert not executable_by(tmp_path, info.st_uid, [])  # a folder is no program
    # -m and -c take no script file; a placeholder is filled in when the trial runs.
    env = dict(os.environ)
    assert start_problem([sys.executable, "-m", "no_such.module"], tmp_path, env) is None
    assert start_problem([sys.executable, "-c", "print('a/b.py')"], tmp_path, env) is None
    assert start_problem([sys.executable, "{trial_dir}/train.py"], tmp_path, env) is None


def test_trials_failing_the_same_way_at_once_stop_the_campaign(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry = fake_registry(fake=fake_repo("fail"))
    settings = write_json("s.json", SETTINGS)
    result = invoke("--registry", registry, "--results-dir", tmp_path / "results", "run", settings)
    assert result.exit_code == 1, result.output
    run_dir = only_run_dir(tmp_path / "results")
    with open(run_dir / "summary.csv", newline="") as table:
        assert [row["status"] for row in csv.DictReader(table)] == ["failed"] * 3  # not 6
    assert ("stopping after 3 of 6 trials: the last 3 failed the same way within 10 s of starting (exit code 4: "
            "Traceback: something broke)") in result.stdout
    assert "to continue:" in result.stdout
    never = write_json("never.json", {**SETTINGS, "stop_after_start_failures": 0})
    result = invoke("--registry", registry, "--results-dir", tmp_path / "again", "-q", "run", never)
    with open(only_run_dir(tmp_path / "again") / "summary.csv", newline="") as table:
        assert len(list(csv.DictReader(table))) == 6


def test_a_campaign_stopped_for_start_failures_runs_again_with_its_draws_free_and_no_escape_codes(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    # Seen by a user: a script that fails at once in colour (`\e[0;31m[ERROR]\e[0m No suitable Python
    # found`); the stop message said to fix the registry and run again as a new campaign, and that
    # run was refused: dedup counted the three failures as measured and the space had run out.
    coloured = ["/bin/sh", "-c", r"printf '\033[0;31m[ERROR]\033[0m No suitable Python found\n'; exit 1"]
    registry = fake_registry(fake=fake_repo(command=coloured, required_args=[]))
    settings = write_json("d.json", {"experiment_name": "d", "dedup": True, "experiments": [
        {"mode": "mutation", "repo": "fake", "model": "tiny", "mutate": ["epochs"], "runs_per_config": 4}]})
    results = tmp_path / "results"
    stopped = invoke("--registry", registry, "--results-dir", results, "run", settings)
    assert stopped.exit_code == 1 and "run the settings file again as a new campaign" in stopped.output
    with open(results / "summary_all.csv", newline="") as table:
        reasons = [row["status_reason"] for row in csv.DictReader(table)]
    assert reasons == ["exit code 1: [ERROR] No suitable Python found"] * 3  # no escape code in a cell
    assert "\x1b" not in stopped.output + (only_run_dir(results) / "session.log").read_text()
    fixed = fake_registry(fake=fake_repo())  # the registry fixed, the same settings file, a new campaign
    again = invoke("--registry", fixed, "--results-dir", results, "plan", settings)
    assert again.exit_code == 0, again.output
    assert "3 rows read, 0 comparable" in again.stdout
