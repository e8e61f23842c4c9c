"""doctor and the campaign choose alike on the same fake machines, and a newcomer without root gets an estimate.

Each machine is a fake of the hardware boundary as unkind as the real one: a VM whose only perf
event (energy-psys) reads 0.00 J, RAPL zones whose counters never move, RAPL readable by root
only (Linux 5.10+), no GPU at all.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from test.conftest import FAKE_TRAIN, fake_repo, invoke, only_run_dir
from test.fake_powercap import FakePowercap, world_readable_root
from test.privileges import in_child, nobody_can_run_this_interpreter

FIXTURES = Path(__file__).parent / "fixtures"


def psys_only_perf_reading_zero(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = root / "power-events"
    events.mkdir()
    (events / "energy-psys").write_text("event=0x05\n")
    monkeypatch.setenv("MUTATION_PERF", str(FIXTURES / "fake_perf.py"))
    monkeypatch.setenv("MUTATION_PERF_EVENTS", str(events))
    monkeypatch.setenv("FAKE_PERF_W", "energy-psys=0")


def rapl_that_does_not_advance(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    FakePowercap(root / "powercap").zone("intel-rapl:0", "package-0", watts=0.0, limit_w=45.0)
    monkeypatch.setenv("MUTATION_POWERCAP_ROOT", str(root / "powercap"))


def known_cpu(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (root / "cpuinfo").write_text("processor\t: 0\nmodel name\t: Intel(R) Core(TM) i7-8550U CPU @ 1.80GHz\n")
    monkeypatch.setenv("MUTATION_CPUINFO", str(root / "cpuinfo"))


MACHINES: dict[str, list[Callable[[Path, pytest.MonkeyPatch], None]]] = {
    "psys-only perf reading zero, no GPU": [psys_only_perf_reading_zero],
    "RAPL that does not advance, with a power limit": [rapl_that_does_not_advance],
    "psys-only perf and a CPU model in the table": [psys_only_perf_reading_zero, known_cpu],
}


PSYS, RAPL, PSYS_CPU = MACHINES
NOT_ADVANCING = "perf is not available: The energy-psys counter does not advance (perf read 0.00 J over 0.1 s)"
EXPECTED = {
    (PSYS, "{}"): "a campaign would use: cpu=none, gpu=none",  # a counter that reads 0 is no measurement
    (RAPL, "{}"): "a campaign would use: cpu=estimate, gpu=none",  # TDP from the power limit
    (PSYS_CPU, "{}"): "a campaign would use: cpu=estimate, gpu=none",  # TDP from the CPU model table
    (PSYS, '{"require": ["cpu"]}'): "energy.require: cpu energy would be not measured",
    (RAPL, '{"require": ["cpu"]}'): "energy.require: cpu energy would be only estimated",
    (PSYS_CPU, '{"require": ["cpu"]}'): "energy.require: cpu energy would be only estimated",
    **{(machine, '{"require": ["gpu"]}'): "energy.require: gpu energy would be not measured" for machine in MACHINES},
    (PSYS, '{"cpu": "perf"}'): f"energy.cpu: {NOT_ADVANCING}",
    (RAPL, '{"cpu": "perf"}'): "energy.cpu: perf is not available: The kernel offers no energy-pkg or energy-psys "
                               "power event",
    (PSYS_CPU, '{"cpu": "perf"}'): f"energy.cpu: {NOT_ADVANCING}",
}
"""What doctor and the campaign must both conclude on each machine: the line doctor ends with, or
the campaign's refusal."""


def choice_lines(output: str) -> list[str]:
    """The `cpu energy:` / `gpu energy:` lines, without the campaign's timestamps."""
    found = []
    for line in output.splitlines():
        for kind in ("cpu energy: ", "gpu energy: "):
            if kind in line:
                found.append(line[line.index(kind):])
    return found


@pytest.mark.parametrize("machine", MACHINES)
@pytest.mark.parametrize("energy", [{}, {"require": ["cpu"]}, {"require": ["gpu"]}, {"cpu": "perf"}],
                         ids=["auto", "require-cpu", "require-gpu", "perf"])
def test_doctor_and_the_campaign_agree(
        machine: str, energy: dict[str, Any], *, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path]) -> None:
    for install in MACHINES[machine]:
        install(tmp_path, monkeypatch)
    registry = fake_registry(fake=fake_repo("ok"))
    settings = write_json("s.json", {"experiment_name": "agree", "energy": energy,
                                     "experiments": [{"mode": "default", "repo": "fake", "model": "tiny"}]})
    doctor = invoke("--registry", registry, "doctor", settings)
    campaign = invoke("--registry", registry, "--results-dir", tmp_path / "results", "run", settings)
    expected = EXPECTED[(machine, json.dumps(energy))]
    # Each outcome pinned: both failing (or both choosing) the same wrong way fails here.
    assert expected in (doctor.stdout.splitlines()[-1] if doctor.exit_code == 0 else campaign.stderr), \
        (expected, doctor.stdout, campaign.stderr)
    if doctor.exit_code == 0:
        assert campaign.exit_code == 0, campaign.output
        assert choice_lines(doctor.stdout) == choice_lines(campaign.stdout)
        used = doctor.stdout.splitlines()[-1].removeprefix("a campaign would use: ")
        with open(only_run_dir(tmp_path / "results") / "summary.csv", newline="") as table:
            row = next(csv.DictReader(table))
        assert used == f"cpu={row['cpu_energy_method']}, gpu={row['gpu_energy_method']}"
    else:
        assert (doctor.exit_code, campaign.exit_code) == (2, 2)
        problems = doctor.stdout.split("a campaign with these settings would not start:\n")[1].splitlines()
        # Worded alike, each naming where the value came from (the file, or the option given).
        assert [f"error: {problem.strip()}" for problem in problems] == campaign.stderr.splitlines()
        assert not (tmp_path / "results").exists()


def cpu_line(lines: list[str]) -> str:
    """doctor's `cpu energy: ...` line (the Slurm lines follow it)."""
    return next(line for line in lines if line.startswith("cpu energy:"))


def test_the_choices_on_these_machines_are_the_honest_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the agreement above agrees on: no backend is claimed that measures nothing."""
    psys_only_perf_reading_zero(tmp_path, monkeypatch)
    lines = invoke("doctor").stdout.splitlines()
    assert lines[-1] == "a campaign would use: cpu=none, gpu=none"
    assert "perf: The energy-psys counter does not advance (perf read 0.00 J over 0.1 s)" in cpu_line(lines)
    rapl_that_does_not_advance(tmp_path, monkeypatch)
    lines = invoke("doctor").stdout.splitlines()
    assert lines[-1] == "a campaign would use: cpu=estimate, gpu=none"
    assert cpu_line(lines).startswith(f"cpu energy: estimate (TDP 45 W from the package power limit, over "
                                f"{os.cpu_count()} logical cores) (not used: rapl: The RAPL counter of package-0 "
                                "does not advance")


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder `nobody` can enter (pytest's own are 0700)."""
    root = world_readable_root("newcomer-")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to drop to nobody and to own a root-only tree")
def test_a_newcomer_without_root_gets_a_labelled_estimate_and_doctor_says_why(
        shared_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Linux 5.10+: energy_uj root-only, the power limit world-readable. A laptop's 15 W part.
    as_nobody = nobody_can_run_this_interpreter()
    FakePowercap(shared_folder / "powercap").zone("intel-rapl:0", "package-0", watts=9.0, limit_w=15.0,
                                                  root_only=True, owner_uid=None if as_nobody else 1)
    monkeypatch.setenv("MUTATION_POWERCAP_ROOT", str(shared_folder / "powercap"))
    monkeypatch.setenv("MUTATION_PERF_EVENTS", str(shared_folder / "power-events"))  # none; pytest's are 0700
    repos = shared_folder / "repos"
    repos.mkdir()
    shutil.copy(FAKE_TRAIN, repos / FAKE_TRAIN.name)
    # The system interpreter: nobody may not be able to enter the folder where the venv lives.
    repo = fake_repo("busy", path=str(repos), command=[shutil.which("python3") or sys.executable, FAKE_TRAIN.name],
                     required_args=["--behaviour", "busy", "--seconds", "0.5"])
    registry = shared_folder / "models.json"
    registry.write_text(json.dumps({"repositories": {"fake": repo}}))
    settings = shared_folder / "quickstart.json"
    settings.write_text(json.dumps({"experiment_name": "newcomer",
                                    "experiments": [{"mode": "default", "repo": "fake", "model": "tiny"}]}))
    results = shared_folder / "results"
    results.mkdir()
    results.chmod(0o777)

    def newcomer() -> list[Any]:
        doctor = invoke("--registry", registry, "doctor", settings)
        campaign = invoke("--registry", registry, "--results-dir", results, "run", settings)
        return [doctor.exit_code, doctor.stdout, campaign.exit_code, campaign.stdout]

    doctor_code, doctor_out, campaign_code, campaign_out = in_child(newcomer, as_nobody=as_nobody)
    assert (doctor_code, campaign_code) == (0, 0), campaign_out
    assert doctor_out.splitlines()[-1] == "a campaign would use: cpu=estimate, gpu=none"
    assert choice_lines(doctor_out) == choice_lines(campaign_out)
    assert "rapl: " in choice_lines(doctor_out)[0] and "readable by root only" in choice_lines(doctor_out)[0]
    assert any("udev" in line for line in doctor_out.splitlines() if "fix:" in line)
    with open(only_run_dir(results) / "summary.csv", newline="") as table:
        row = next(csv.DictReader(table))
    assert (row["cpu_energy_method"], row["cpu_energy_scope"]) == ("estimate", "process_tree")
    assert float(row["cpu_energy_j"]) > 0
    assert row["cpu_energy_reason"] == ("Estimate, not a measurement: CPU time x TDP per core (TDP 15 W from the "
                                        "package power limit).")
