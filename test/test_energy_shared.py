"""What a trial costs beside what else draws power: the idle machine, and a parallel trial's backgrounds.

The fake powercap tree draws more for each running process whose command line holds a marker,
so the training's own load shows in the counters as a real one's would; the fake pynvml reports
per-process SM utilisation the way the driver does (busy processes only, per sample period).
"""

from __future__ import annotations

import csv
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from test.conftest import fake_repo, invoke, only_run_dir
from test.fake_powercap import FakePowercap

IDLE_W, PER_TRAINING_W = 10.0, 20.0


def busy(seconds: float) -> dict[str, Any]:
    return fake_repo("busy", required_args=["--behaviour", "busy", "--seconds", str(seconds)])


def loaded(seconds: float, tag: str) -> dict[str, Any]:
    """A training whose load only the fake hardware sees: it sleeps, so two of them leave the
    suite's two cores to the tool and the fakes, whose readings would otherwise lag under contention.
    The fakes find it by `tag` on its command line, as the real counters see every process on the
    machine: a tag no other test uses keeps a test running beside it (pytest-xdist) out of the sum."""
    return fake_repo("sleep", required_args=["--behaviour", "sleep", "--seconds", str(seconds), "--say", tag])


def run(write_json: Callable[[str, Any], Path], registry: Path, tmp_path: Path,
        document: dict[str, Any]) -> tuple[Any, dict[str, str], dict[str, Any]]:
    settings = write_json("s.json", {"experiment_name": "shared", "grace_s": 1, **document})
    result = invoke("--registry", registry, "--results-dir", tmp_path / "results", "run", settings)
    run_dir = only_run_dir(tmp_path / "results")
    with open(run_dir / "summary.csv", newline="") as table:
        row = next(csv.DictReader(table))
    return result, row, json.loads((run_dir / row["trial"] / "experiment.json").read_text())


def test_idle_power_is_subtracted_only_for_the_gpus_a_trial_measures(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUTATION_NVML_MODULE", "test.fixtures.fake_pynvml")  # GPU 0 at 250 W, GPU 1 at 75 W
    registry = fake_registry(fake=busy(0.5))
    result, row, record = run(write_json, registry, tmp_path, {
        "energy": {"gpu": "nvml", "gpus": ["0"], "gpu_interval_s": 0.05, "baseline_s": 0.3},
        "experiments": [{"mode": "default", "repo": "fake", "model": "tiny"}]})
    assert result.exit_code == 0, result.output
    assert record["energy"]["details"]["baselines"]["idle"]["gpu_w"] == {"0": pytest.approx(250, rel=0.02)}
    assert float(row["gpu_idle_w"]) == pytest.approx(250, rel=0.02)  # GPU 0's idle power, not both GPUs'
    # Constant power: nothing above idle (it was -78 J when both GPUs' idle was subtracted from one).
    assert abs(float(row["gpu_energy_above_idle_j"])) < 0.03 * float(row["gpu_energy_j"])


def test_a_parallel_trial_records_the_backgrounds_power_and_the_foregrounds_share(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    tag = f"shared-{uuid.uuid4().hex}"
    fake = FakePowercap(tmp_path / "powercap").zone("intel-rapl:0", "package-0", IDLE_W,
                                                     per_process_w=PER_TRAINING_W, marker=f"--say {tag}")
    monkeypatch.setenv("MUTATION_POWERCAP_ROOT", str(fake.root))
    monkeypatch.setenv("MUTATION_NVML_MODULE", "test.fixtures.fake_pynvml")
    # On GPU 0: the foreground keeps the SMs 60% busy, the background 30%.
    monkeypatch.setenv("FAKE_NVML_GPU_PROCESSES", f"--say {tag}-fg=2000:60,--say {tag}-bg=1000:30")
    registry = fake_registry(fg=loaded(1.5, f"{tag}-fg"), bg=loaded(60, f"{tag}-bg"))
    with fake:
        result, row, record = run(write_json, registry, tmp_path, {
            "energy": {"interval_s": 0.05, "gpu_interval_s": 0.05, "background_baseline_s": 1.0},
            "experiments": [{"mode": "parallel", "foreground": {"repo": "fg", "model": "tiny"},
                             "background": {"repo": "bg", "model": "tiny"}}]})
    assert result.exit_code == 0, result.output
    printed = re.search(r"backgrounds alone over 1\.[0-9] s: cpu ([0-9.]+) W, gpu ([0-9.]+) W", result.stdout)
    # The fake counters lag a little under load (their thread shares two cores with the suite):
    # 8% still tells the backgrounds' 30 W from idle alone (10 W) or with the foreground (50 W).
    assert printed is not None and float(printed.group(1)) == pytest.approx(IDLE_W + PER_TRAINING_W, rel=0.08)
    duration_s = float(row["duration_s"])
    # The machine with the background alone draws 10 + 20 W; with the foreground too, 10 + 2 x 20 W.
    assert float(row["cpu_background_w"]) == pytest.approx(IDLE_W + PER_TRAINING_W, rel=0.08)
    assert float(row["cpu_energy_j"]) == pytest.approx((IDLE_W + 2 * PER_TRAINING_W) * duration_s, rel=0.05)
    assert float(row["cpu_energy_above_background_j"]) == pytest.approx(PER_TRAINING_W * duration_s, rel=0.15)
    # GPU power does not follow load in the fake: nothing above the backgrounds.
    assert float(row["gpu_background_w"]) == pytest.approx(325, rel=0.02)
    assert abs(float(row["gpu_energy_above_background_j"])) < 0.03 * float(row["gpu_energy_j"])
    assert float(row["gpu_fg_busy_share_pct"]) == pytest.approx(100 * 60 / (60 + 30), abs=3)
    assert row["gpu_baseline_reason"].startswith("Idle: No idle baseline was measured")
    background = record["energy"]["details"]["baselines"]["background"]
    assert background["cpu_method"] == "rapl" and background["duration_s"] >= 1.0
    attempt = tmp_path / "results" / only_run_dir(tmp_path / "results").name / row["trial"] / "attempt_1"
    assert (attempt / "energy" / "background" / "cpu_samples.csv").exists()  # its readings are kept too


def test_a_default_trial_says_why_it_has_no_background_power(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry = fake_registry(fake=busy(0.2))
    result, row, _ = run(write_json, registry, tmp_path, {
        "energy": {"cpu": "estimate", "cpu_tdp_w": 50},
        "experiments": [{"mode": "default", "repo": "fake", "model": "tiny"}]})
    assert result.exit_code == 0, result.output
    assert (row["cpu_background_w"], row["cpu_energy_above_background_j"]) == ("", "")
    assert row["cpu_baseline_reason"] == ("Idle: The estimate counts the training's own CPU time only: no baseline "
                                          "applies. Background: The estimate counts the training's own CPU time "
                                          "only: no baseline applies.")
