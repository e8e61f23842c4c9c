"""`budget`: a campaign stops scheduling before a limit would be passed, ends normally, and a resume
with a raised budget runs the rest, each trial once."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from test.conftest import fake_repo, invoke, only_run_dir

Write = Callable[[str, Any], Path]
SLEEPER = fake_repo("sleep", required_args=["--behaviour", "sleep", "--seconds", "0.3"])


def campaign(write_json: Write, name: str = "s.json", **top: Any) -> Path:
    return write_json(name, {"experiment_name": "budget", "seed": 3, **top, "experiments": [
        {"mode": "mutation", "repo": "fake", "model": "tiny", "mutate": ["learning_rate"], "runs_per_config": 6}]})


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "summary.csv", newline="") as table:
        return list(csv.DictReader(table))


def test_a_wall_budget_stops_scheduling_and_a_raised_one_resumes_the_rest(
        write_json: Write, fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry, results = fake_registry(fake=SLEEPER), tmp_path / "results"
    settings = campaign(write_json, budget={"wall_h": 1.2 / 3600})  # 1.2 s: room for two or three 0.3 s trials
    first = invoke("--registry", registry, "--results-dir", results, "run", settings)
    assert first.exit_code == 0, first.output  # ends normally: every trial run succeeded
    run_dir = only_run_dir(results)
    ran = rows(run_dir)
    assert 1 <= len(ran) < 6 and all(row["status"] == "success" for row in ran)
    assert "budget.wall_h 0.000333 h would be passed: spent " in first.stdout
    assert f"stopping with {6 - len(ran)} trial(s) not run" in first.stdout
    status = invoke("--registry", registry, "--results-dir", results, "status", run_dir).stdout
    assert status.count("not run (budget") == 6 - len(ran) and "the campaign stopped scheduling: budget.wall_h" \
        in status
    resumed = invoke("--registry", registry, "--results-dir", results, "run", settings, "--resume", run_dir,
                     "--budget-wall-h", "1")
    assert resumed.exit_code == 0, resumed.output
    assert sorted(row["trial"] for row in rows(run_dir)) == [f"{i:03d}_fake_tiny" for i in range(1, 7)]
    assert "not run (budget" not in invoke("--registry", registry, "--results-dir", results, "status",
                                           run_dir).stdout


def test_an_energy_budget_judges_the_next_trial_by_the_mean_so_far(
        write_json: Write, fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry, results = fake_registry(fake=SLEEPER), tmp_path / "results"
    settings = campaign(write_json, energy={"cpu": "estimate", "cpu_tdp_w": 65, "gpu": "none"},
                        budget={"energy_kwh": 1e-9})
    result = invoke("--registry", registry, "--results-dir", results, "run", settings)
    assert result.exit_code == 0, result.output
    assert len(rows(only_run_dir(results))) == 1  # the first runs (nothing to judge it by); it spent too much
    assert "budget.energy_kwh 1e-09 kWh would be passed" in result.stdout and "(this campaign's mean)" in result.stdout
    planned = invoke("--registry", registry, "--results-dir", results, "plan", settings)
    assert "warning: the forecast passes budget.energy_kwh 1e-09 kWh" in planned.stdout


@pytest.mark.parametrize(("budget", "expected"), [
    ({}, "budget: {} should be non-empty"),
    ({"wall_h": 0}, "budget.wall_h:"),
    ({"co2e_kg": 1}, "budget.co2e_kg: a CO2e limit needs a carbon intensity"),
    ({"hours": 2}, "budget.hours: unknown key 'hours'"),
])
def test_bad_budgets_exit_2_at_their_path_before_anything_runs(
        write_json: Write, fake_registry: Callable[..., Path], tmp_path: Path, budget: dict[str, Any],
        expected: str) -> None:
    result = invoke("--registry", fake_registry(), "--results-dir", tmp_path / "results", "run",
                    campaign(write_json, budget=budget))
    assert result.exit_code == 2 and expected in result.stderr, result.stderr
    assert not (tmp_path / "results").exists()


def test_the_budget_counts_the_cooldown_before_it_and_is_said_even_under_q(
        write_json: Write, fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    # Seen by a new user: the cool-down was slept, then the limit found passed; and -q hid why it stopped.
    registry, results = fake_registry(fake=SLEEPER), tmp_path / "results"
    settings = campaign(write_json, cooldown_s=5, budget={"wall_h": 4 / 3600})
    result = invoke("--registry", registry, "--results-dir", results, "-q", "run", settings)
    assert result.exit_code == 0, result.output
    assert len(rows(only_run_dir(results))) == 1  # 5 s of cool-down would pass the 4 s: not slept, not run
    assert "budget.wall_h 0.00111 h would be passed" in result.stdout and "stopping with 5 trial(s) not run" \
        in result.stdout
    nan = invoke("--registry", registry, "--results-dir", tmp_path / "other", "run", settings, "--budget-wall-h", "nan")
    assert nan.exit_code == 2 and not (tmp_path / "other").exists()
