"""Forecasts: what each planned trial will take, from the history's successful comparable trials."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from energy_profiler.config.registry import load_registry
from energy_profiler.planning.forecast import between_trials_s, predict
from energy_profiler.planning.history import History, Sample
from energy_profiler.planning.plan import Trial
from test.conftest import invoke

SPACE = ("fake", "tiny", "mutation", "")


def trial(learning_rate: str = "0.1", epochs: str = "2") -> Trial:
    return Trial(index=1, experiment_index=0, run=1, mode="mutation", repo="fake", model="tiny",
                 hyperparameters=(("learning_rate", learning_rate), ("epochs", epochs)), mutated=("learning_rate",),
                 argv=("train",), cwd="/", env=(), timeout_s=None)


def history(*samples: Sample) -> History:
    return History(dedup=False, samples={SPACE: {f"id{n}": sample for n, sample in enumerate(samples)}})


@pytest.fixture
def registry(fake_registry: Callable[..., Path]) -> Any:
    return load_registry(fake_registry())


def test_the_same_configuration_is_predicted_by_its_median_and_spread(registry: Any) -> None:
    same = [Sample(("0.1", "2"), seconds, seconds * 10, None) for seconds in (10.0, 12.0, 11.0, 30.0)]
    other = Sample(("0.3", "2"), 100.0, 1000.0, None)
    predicted = predict(trial(), history(*same, other), registry)
    assert (predicted.duration_s, predicted.energy_j, predicted.cpu_energy_j, predicted.gpu_energy_j, predicted.n) \
        == (11.5, 115.0, 115.0, None, 4)
    assert predicted.reason.startswith("median of 4 runs of the same configuration; p10-p90 10.3-24.6 s, 103-246 J")


def test_epochs_scale_the_estimate_only_where_the_history_shows_the_relation(registry: Any) -> None:
    proportional = [Sample((lr, str(epochs)), 5.0 * epochs, 50.0 * epochs, 20.0 * epochs)
                    for lr, epochs in (("0.2", 1), ("0.3", 2), ("0.05", 4))]
    scaled = predict(trial(epochs="3"), history(*proportional), registry)
    assert scaled.duration_s == pytest.approx(15.0) and scaled.energy_j == pytest.approx(210.0) and scaled.n == 3
    assert "scaled to epochs=3" in scaled.reason
    unrelated = [Sample(("0.2", "1"), 30.0, None, None), Sample(("0.3", "4"), 10.0, None, None),
                 Sample(("0.05", "2"), 20.0, None, None)]  # more epochs, less time: no relation
    unscaled = predict(trial(epochs="3"), history(*unrelated), registry)
    assert unscaled.duration_s == 20.0 and unscaled.energy_j is None
    assert "epochs not scaled: the history does not show the cost growing with it" in unscaled.reason
    assert "no energy measured in them" in unscaled.reason


def test_no_comparable_history_is_empty_with_the_reason_never_zero(registry: Any) -> None:
    for empty in (None, History(dedup=False)):
        predicted = predict(trial(), empty, registry)
        assert (predicted.duration_s, predicted.energy_j, predicted.n) == (None, None, 0)
        assert predicted.reason == "no successful fake/tiny mutation run in the history"


def test_plan_prints_each_trials_forecast_and_the_total_from_a_real_campaigns_rows(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry, results = fake_registry(), tmp_path / "results"
    measured = write_json("m.json", {"experiment_name": "measured", "seed": 1, "cooldown_s": 0,
                                     "carbon": {"g_per_kwh": 400},
                                     "energy": {"cpu": "estimate", "cpu_tdp_w": 65, "gpu": "none"},
                                     "experiments": [{"mode": "default", "repo": "fake", "model": "tiny",
                                                      "runs_per_config": 3}]})
    assert invoke("--registry", registry, "--results-dir", results, "-q", "run", measured).exit_code == 0
    with open(results / "summary_all.csv", newline="") as table:
        rows = list(csv.DictReader(table))
    durations = sorted(float(row["duration_s"]) for row in rows)
    energies = sorted(float(row["cpu_energy_j"]) for row in rows)
    planned = invoke("--registry", registry, "--results-dir", results, "plan", measured, "--format", "json")
    assert planned.exit_code == 0, planned.output
    forecast = json.loads(planned.stdout)
    assert [entry["predicted_duration_s"] for entry in forecast] == [durations[1]] * 3  # the median of 3
    assert [entry["predicted_cpu_energy_j"] for entry in forecast] == [energies[1]] * 3
    assert [entry["prediction_n"] for entry in forecast] == [3] * 3
    assert forecast[0]["prediction_reason"].startswith("median of 3 runs of the same configuration; p10-p90")
    text = invoke("--registry", registry, "--results-dir", results, "plan", measured).stdout
    kwh = 3 * energies[1] / 3.6e6
    assert "forecast: about 0:0" in text and "= trainings 0:0" in text
    assert f"cpu {kwh:.3g} kWh; co2e {kwh * 400:.3g} g" in text
    fresh = invoke("--registry", registry, "--results-dir", tmp_path / "empty", "plan", measured)
    assert "forecast: none (no successful comparable run in the history" in fresh.stdout
    started = invoke("--registry", registry, "--results-dir", results, "run", measured)
    assert "forecast: about 0:0" in started.stdout  # the campaign's header says it too


def test_the_time_between_trials_is_measured_in_the_history_less_each_campaigns_cooldown() -> None:
    history = History(dedup=False, spans={
        "run_a": {"1": (0.0, 10.0), "2": (12.5, 20.0), "3": (22.5, 30.0)},  # 2.5 s gaps, cool-down 2 s
        "run_b": {"1": (0.0, 5.0), "2": (5.3, 9.0)},  # 0.3 s, no cool-down
        "run_c": {"1": (0.0, 1.0), "2": (100.0, 101.0)},  # its settings are gone: not counted
    })
    cooldowns = {"run_a": 2.0, "run_b": 0.0}
    measured = between_trials_s(history, cooldowns.get)
    assert measured is not None and measured[0] == pytest.approx(0.5) and measured[1] == 3
    assert between_trials_s(History(dedup=False), cooldowns.get) is None
    assert between_trials_s(None, cooldowns.get) is None


def test_plan_adds_the_measured_time_between_trials_to_its_total(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry, results = fake_registry(), tmp_path / "results"
    settings = write_json("c.json", {"experiment_name": "gaps", "seed": 1, "cooldown_s": 0.5,
                                     "experiments": [{"mode": "default", "repo": "fake", "model": "tiny",
                                                      "runs_per_config": 3}]})
    assert invoke("--registry", registry, "--results-dir", results, "-q", "run", settings).exit_code == 0
    text = invoke("--registry", registry, "--results-dir", results, "plan", settings).stdout
    total = next(line for line in text.splitlines() if line.startswith("forecast:"))
    seconds = float(total.split("between trials ")[1].split("(")[1].split(" s a trial")[0])
    assert "measured over 2 gap(s) in the history" in total
    assert 0 <= seconds < 0.5  # the 0.5 s cool-downs are not counted twice
