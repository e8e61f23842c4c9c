"""`carbon`: each row's CO2e and cost from the measured energy, a country's intensity from the table
shipped with the tool, and every bad value refused at its JSON path before anything runs."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from energy_profiler.config.carbon import grid_table
from energy_profiler.model.energy_fields import NO_CARBON_REASON, EnergyFields, with_carbon
from test.conftest import invoke, only_run_dir

ESTIMATE = {"cpu": "estimate", "cpu_tdp_w": 65, "gpu": "none"}
"""Measured energy on any machine: the CPU time of the training at a given TDP (real processes)."""


def campaign(write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path,
             **top: Any) -> tuple[Any, list[dict[str, str]]]:
    settings = write_json("s.json", {"experiment_name": "carbon", "energy": ESTIMATE, **top,
                                     "experiments": [{"mode": "default", "repo": "fake", "model": "tiny",
                                                      "runs_per_config": 2}]})
    result = invoke("--registry", fake_registry(), "--results-dir", tmp_path / "results", "run", settings)
    run_dir = only_run_dir(tmp_path / "results") if (tmp_path / "results").exists() else None
    if run_dir is None:
        return result, []
    with open(run_dir / "summary.csv", newline="") as table:
        return result, list(csv.DictReader(table))


def test_a_region_gives_each_row_its_co2e_and_cost_from_the_measured_energy(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    result, rows = campaign(write_json, fake_registry, tmp_path,
                            carbon={"region": "fr", "price_per_kwh": 0.25, "currency": "EUR"})
    assert result.exit_code == 0, result.output
    france = grid_table()["FR"]
    assert (france.country, france.g_per_kwh, france.year) == ("France", 56.0, 2023)  # the shipped figure
    for row in rows:
        kwh = float(row["cpu_energy_j"]) / 3.6e6
        assert float(row["co2e_g"]) == pytest.approx(kwh * 56.0, rel=1e-5)  # six significant digits
        assert float(row["cost"]) == pytest.approx(kwh * 0.25, rel=1e-5) and row["cost_currency"] == "EUR"
        assert row["co2e_g_per_kwh"] == "56.0"
        assert row["co2e_source"] == "Our World in Data (Ember, Energy Institute): FR 2023"
        assert row["co2e_reason"] == ""
    grams = sum(float(row["co2e_g"]) for row in rows)
    assert f"co2e: {grams:.4g} g at 56 g/kWh (Our World in Data (Ember, Energy Institute): FR 2023)" in result.stdout
    record = json.loads(next((tmp_path / "results").glob("run_*/001_fake_tiny/experiment.json")).read_text())
    assert record["energy"]["co2e_g"] == pytest.approx(float(rows[0]["co2e_g"]))  # experiment.json has it too
    report = invoke("report", only_run_dir(tmp_path / "results"), "--no-plots", "--format", "csv")
    (group,) = csv.DictReader(report.stdout.splitlines())
    assert float(group["co2e_g"]) == pytest.approx(grams, rel=1e-3)  # the group's total
    page = (only_run_dir(tmp_path / "results") / "report" / "report.md").read_text()
    costs = page.split("## What each study emitted and cost")[1]
    cost = sum(float(row["cost"]) for row in rows)
    assert f"| fake | tiny | - | 2 | {grams:.4g} | {cost:.4g} EUR |" in costs  # the study's totals


def test_a_given_intensity_is_said_given_and_no_carbon_block_leaves_the_cells_empty_with_the_reason(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    given, rows = campaign(write_json, fake_registry, tmp_path / "given", carbon={"g_per_kwh": 500})
    assert given.exit_code == 0, given.output
    assert [(row["co2e_source"], row["co2e_g_per_kwh"], row["cost"]) for row in rows] == [("given", "500", "")] * 2
    assert all(float(row["co2e_g"]) == pytest.approx(float(row["cpu_energy_j"]) / 3.6e6 * 500, rel=1e-5)
               for row in rows)
    plain, rows = campaign(write_json, fake_registry, tmp_path / "plain")
    assert plain.exit_code == 0 and "co2e:" not in plain.stdout
    assert [(row["co2e_g"], row["co2e_reason"]) for row in rows] == [("", NO_CARBON_REASON)] * 2


def test_energy_not_measured_gives_no_co2e_and_one_device_missing_is_said() -> None:
    nothing = with_carbon(EnergyFields(), 400.0, "given", 0.3, "EUR")
    assert (nothing.co2e_g, nothing.cost, nothing.co2e_reason) == (None, None, "energy was not measured")
    half = with_carbon(EnergyFields(cpu_energy_j=3.6e6, cpu_energy_method="rapl", gpu_energy_method="nvml"),
                       400.0, "given", None, None)
    assert (half.co2e_g, half.cost) == (400.0, None)  # 1 kWh
    assert half.co2e_reason == "gpu energy not measured: not in the figure"
    both = with_carbon(EnergyFields(cpu_energy_j=1.8e6, cpu_energy_method="rapl", gpu_energy_j=1.8e6,
                                    gpu_energy_method="nvml"), 100.0, "given", 0.5, "USD")
    assert (both.co2e_g, both.cost, both.cost_currency, both.co2e_reason) == (100.0, 0.5, "USD", None)


@pytest.mark.parametrize(("carbon", "expected"), [
    ({"region": "UK"}, "carbon.region: 'UK' is not a country code of the carbon table (did you mean 'GB', "
                       "United Kingdom?)"),
    ({"region": "Germany"}, "carbon.region: 'Germany' is not a country code of the carbon table (did you mean "
                            "'DE', Germany?)"),
    ({"region": "DEU"}, "(did you mean 'DE', Germany?)"),
    ({"region": "XX;$(touch HACKED)\n"}, "carbon.region: 'XX;$(touch HACKED)\\n' is not a country code"),
    ({"g_per_kwh": -1}, "carbon.g_per_kwh: -1 is less than the minimum of 0"),
    ({"g_per_kwh": 300, "region": "DE"}, "carbon: give g_per_kwh or region, not both"),
    ({"currency": "EUR"}, "carbon.currency: names the currency of price_per_kwh, which is not given"),
    ({"price_per_kwh": 0.3, "currency": "euro"}, "carbon.currency:"),
    ({"region": "DE", "grams": 3}, "carbon.grams: unknown key 'grams'"),
])
def test_bad_carbon_values_exit_2_at_their_path_with_nothing_written(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path,
        carbon: dict[str, Any], expected: str) -> None:
    result, rows = campaign(write_json, fake_registry, tmp_path, carbon=carbon)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr, result.stderr
    assert not (tmp_path / "results").exists() and rows == []
    assert not (tmp_path / "HACKED").exists() and not Path("HACKED").exists()
