"""`runs_total`: an experiment tops its history up to N successful runs, counted as the plan says."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from test.conftest import fake_repo, invoke

Write = Callable[[str, Any], Path]


def settings(write_json: Write, name: str, *experiments: dict[str, Any], **top: Any) -> Path:
    return write_json(name, {"experiment_name": "topup", "seed": 7, **top, "experiments": list(experiments)})


def mutation(**counts: Any) -> dict[str, Any]:
    return {"mode": "mutation", "repo": "fake", "model": "tiny", "mutate": ["learning_rate"], **counts}


def rows(table: Path) -> list[dict[str, str]]:
    with open(table, newline="") as handle:
        return list(csv.DictReader(handle))


def test_runs_total_runs_what_the_history_lacks_and_nothing_once_it_holds_enough(
        write_json: Write, fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry, results = fake_registry(), tmp_path / "results"
    first = invoke("--registry", registry, "--results-dir", results, "-q", "run",
                   settings(write_json, "first.json", mutation(runs_per_config=3)))
    assert first.exit_code == 0, first.output
    top_up = settings(write_json, "top_up.json", mutation(runs_total=5), {"mode": "default", "repo": "fake",
                                                                          "model": "tiny", "runs_total": 2})
    planned = invoke("--registry", registry, "--results-dir", results, "plan", top_up)
    assert planned.exit_code == 0, planned.output
    assert ("experiments[0] (fake/tiny mutation of learning_rate): history holds 3 of 5 successful runs "
            "(runs_total): 2 to run") in planned.stdout
    assert "experiments[1] (fake/tiny default): history holds 0 of 2 successful runs (runs_total): 2 to run" \
        in planned.stdout  # the mutation runs are not default runs
    ran = invoke("--registry", registry, "--results-dir", results, "-q", "run", top_up)
    assert ran.exit_code == 0, ran.output
    every = rows(results / "summary_all.csv")
    assert [row["mode"] for row in every] == ["mutation"] * 5 + ["default"] * 2
    again = invoke("--registry", registry, "--results-dir", results, "run", top_up)
    assert again.exit_code == 0, again.output
    assert "history holds 5 of 5 successful runs (runs_total): nothing to run" in again.stdout
    assert "nothing to run: " in again.stdout and len(list(results.glob("run_*"))) == 2  # no folder made


def test_failed_runs_other_mutated_sets_and_a_trial_two_tables_hold_count_as_they_should(
        write_json: Write, fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry, results = fake_registry(fake=fake_repo(), broken=fake_repo("fail")), tmp_path / "results"
    for name, experiment in (("ok.json", mutation(runs_per_config=2)),
                             ("epochs.json", {**mutation(runs_per_config=2), "mutate": ["epochs"]}),
                             ("broken.json", {**mutation(runs_per_config=2), "repo": "broken"})):
        invoke("--registry", registry, "--results-dir", results, "-q", "run", settings(write_json, name, experiment))
    run_dir = next(folder for folder in sorted(results.glob("run_*")) if "ok.json" in
                   json.loads((folder / "plan.json").read_text())["settings_file"])
    # The first campaign's summary.csv and the global table hold the same two trials: counted once.
    both = {"history": [str(run_dir / "summary.csv"), str(results / "summary_all.csv")]}
    planned = invoke("--registry", registry, "--results-dir", results, "plan",
                     settings(write_json, "top.json", mutation(runs_total=3),
                              {**mutation(runs_total=3), "repo": "broken"}, dedup=both))
    assert planned.exit_code == 0, planned.output
    assert "(fake/tiny mutation of learning_rate): history holds 2 of 3 successful runs" in planned.stdout
    assert "(broken/tiny mutation of learning_rate): history holds 0 of 3 successful runs" in planned.stdout


def test_bad_runs_total_exits_2_at_its_path_before_anything_runs(
        write_json: Write, fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry, results = fake_registry(), tmp_path / "results"
    for experiment, expected in ((mutation(runs_total=0), "experiments[0].runs_total: 0 is less than the minimum of 1"),
                                 (mutation(runs_total=3, runs_per_config=2),
                                  "experiments[0]: give runs_per_config or runs_total, not both"),
                                 (mutation(runs_total="3"), "experiments[0].runs_total:")):
        result = invoke("--registry", registry, "--results-dir", results, "run",
                        settings(write_json, "bad.json", experiment))
        assert result.exit_code == 2 and expected in result.stderr, result.stderr
        assert not results.exists()


def test_only_runs_of_the_same_study_count_and_a_top_up_never_draws_a_measured_value_again(
        write_json: Write, fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    # Seen by a new user: runs with other fixed values or outside the ranges counted toward the total,
    # and a top-up with the same seed ran the first campaign's draws again.
    registry, results = fake_registry(), tmp_path / "results"
    first = settings(write_json, "first.json", {**mutation(runs_per_config=3), "hyperparameters": {"epochs": 3}},
                     {"mode": "default", "repo": "fake", "model": "tiny", "hyperparameters": {"epochs": 3}})
    assert invoke("--registry", registry, "--results-dir", results, "-q", "run", first).exit_code == 0
    measured = {row["hp_learning_rate"] for row in rows(results / "summary_all.csv") if row["mode"] == "mutation"}
    other_fixed = {**mutation(runs_total=3), "hyperparameters": {"epochs": 4}}
    narrower = {**mutation(runs_total=3), "hyperparameters": {"epochs": 3},
                "ranges": {"learning_rate": [0.001, 0.0015]}}
    inside = sum(0.001 <= float(value) <= 0.0015 for value in measured)
    default = {"mode": "default", "repo": "fake", "model": "tiny", "hyperparameters": {"epochs": 5}, "runs_total": 1}
    same = {**mutation(runs_total=5), "hyperparameters": {"epochs": 3}}
    planned = invoke("--registry", registry, "--results-dir", results, "plan",
                     settings(write_json, "top.json", other_fixed, narrower, default, same))
    assert planned.exit_code == 0, planned.output
    held = [line.split("history holds ")[1].split(" successful")[0] for line in planned.stdout.splitlines()
            if "history holds" in line]
    assert held == ["0 of 3", f"{inside} of 3", "0 of 1", "3 of 5"] and inside < 3
    ran = invoke("--registry", registry, "--results-dir", results, "-q", "run",
                 settings(write_json, "top_same.json", same))
    assert ran.exit_code == 0, ran.output
    drawn = [row["hp_learning_rate"] for row in rows(results / "summary_all.csv")][-2:]
    assert len(drawn) == 2 and not set(drawn) & measured  # the same seed, yet no value drawn twice
