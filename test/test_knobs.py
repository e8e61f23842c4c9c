"""System knobs: a GPU's power limit and clocks, each CPU's frequency cap and governor, per trial.

The hardware is faked at its boundary: NVML by test/fixtures/fake_pynvml.py (milliwatts, MHz, a
driver state that outlives the process, NVML_ERROR_NO_PERMISSION for a user), cpufreq by a tree of
the real file names under MUTATION_CPUFREQ_ROOT (root-owned 0644 files, as in /sys). The campaign,
its watchdog and `cleanup` are real processes.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import test.fixtures.fake_pynvml  # noqa: F401 - imported before a child drops root: nobody may not read it
from test.conftest import PROJECT_ROOT, fake_repo, invoke, only_run_dir, wait_for
from test.privileges import in_child

CPUS = ("cpu0", "cpu1", "cpu2", "cpu3")
CAP_BEFORE_KHZ = 3_000_000
GOVERNOR_BEFORE = "powersave"
SYSTEM = {
    "gpu_power_limit_w": {"type": "int", "range": [100, 300]},
    "gpu_sm_clock_mhz": {"type": "int", "range": [300, 2000]},
    "cpu_max_freq_khz": {"type": "int", "range": [500_000, 3_000_000]},
    "cpu_governor": {"type": "choice", "values": ["performance", "powersave", "ondemand"]},
}


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fake cpufreq tree (800 MHz to 3.5 GHz, capped at 3 GHz, powersave) and a fake NVML driver state,
    in a folder `nobody` can read (as /sys is), with files only root may write."""
    base = Path(tempfile.mkdtemp(prefix="knobs-test-"))
    base.chmod(0o755)
    root = base / "cpu"
    for cpu in CPUS:
        folder = root / cpu / "cpufreq"
        folder.mkdir(parents=True)
        for name, value in (("scaling_max_freq", CAP_BEFORE_KHZ), ("cpuinfo_min_freq", 800_000),
                            ("cpuinfo_max_freq", 3_500_000), ("scaling_governor", GOVERNOR_BEFORE),
                            ("scaling_available_governors", "performance powersave")):
            (folder / name).write_text(f"{value}\n")
            (folder / name).chmod(0o644)
    for folder in (base, *root.rglob("*")):
        if folder.is_dir():
            folder.chmod(0o755)
    monkeypatch.setenv("MUTATION_CPUFREQ_ROOT", str(root))
    monkeypatch.setenv("MUTATION_NVML_MODULE", "test.fixtures.fake_pynvml")
    monkeypatch.setenv("FAKE_NVML_STATE", str(base / "nvml_state.json"))
    try:
        yield base
    finally:
        shutil.rmtree(base)


def caps(base: Path) -> dict[str, int | None]:
    """Each CPU's cap; None for a file caught mid-write (a plain file is empty between truncation and
    write, where sysfs stores an attribute at once: only this test's polling can see it)."""
    texts = {cpu: (base / "cpu" / cpu / "cpufreq" / "scaling_max_freq").read_text().strip() for cpu in CPUS}
    return {cpu: int(text) if text else None for cpu, text in texts.items()}


def governors(base: Path) -> set[str]:
    return {(base / "cpu" / cpu / "cpufreq" / "scaling_governor").read_text().strip() for cpu in CPUS}


def driver(base: Path) -> dict[str, Any]:
    path = base / "nvml_state.json"
    return json.loads(path.read_text()) if path.exists() else {"power_limit_mw": {}, "locked_clocks": {}}


def untouched(base: Path) -> bool:
    """The machine as the fixture made it: caps, governors, GPU 0's limit (700 W) and no locked clocks."""
    state = driver(base)
    return (caps(base) == dict.fromkeys(CPUS, CAP_BEFORE_KHZ) and governors(base) == {GOVERNOR_BEFORE}
            and state["power_limit_mw"].get("0", 700_000) == 700_000 and not state["locked_clocks"])


def knob_repo(base: Path, behaviour: str = "sleep", seconds: float = 1.0, **extra: Any) -> dict[str, Any]:
    """A training on GPU 0 that prints the CPU cap and governor in force while it runs, as metrics."""
    cpufreq = base / "cpu" / "cpu0" / "cpufreq"
    return fake_repo(behaviour, env={"CUDA_VISIBLE_DEVICES": "0"}, required_args=[
        "--behaviour", behaviour, "--seconds", str(seconds), "--cat", str(cpufreq / "scaling_max_freq"),
        "--pid-file", str(base / "training.pid")], metrics={
        "accuracy": {"pattern": r"accuracy: ([0-9.]+)", "required": True},
        "cap_khz": {"pattern": r"CAT (\d+)"}}, **extra)


def registry(write_json: Callable[[str, Any], Path], repo: dict[str, Any],
             system: dict[str, Any] | None = None) -> Path:
    return write_json("models.json", {"repositories": {"fake": repo}, "system": system or SYSTEM})


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "summary.csv", newline="") as table:
        return list(csv.DictReader(table))


def test_a_campaign_mutating_gpu_and_cpu_knobs_records_them_requested_and_applied_and_restores_them(
        machine: Path, write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    settings = write_json("s.json", {"experiment_name": "knobs", "seed": 7, "knob_settle_s": 0.2,
                                     "energy": {"gpu_interval_s": 0.05}, "experiments": [
        {"mode": "mutation", "repo": "fake", "model": "tiny", "runs_per_config": 3,
         "mutate": ["gpu_power_limit_w", "cpu_max_freq_khz"],
         "ranges": {"gpu_power_limit_w": [200, 240], "cpu_max_freq_khz": [1_000_000, 2_000_000]}}]})
    result = invoke("--registry", registry(write_json, knob_repo(machine)), "--results-dir", tmp_path / "r",
                    "run", settings)
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(tmp_path / "r")
    table = rows(run_dir)
    assert len(table) == 3 and len({(row["hp_gpu_power_limit_w"], row["hp_cpu_max_freq_khz"]) for row in table}) == 3
    for row in table:
        limit_w, cap_khz = int(row["hp_gpu_power_limit_w"]), int(row["hp_cpu_max_freq_khz"])
        assert 200 <= limit_w <= 240 and 1_000_000 <= cap_khz <= 2_000_000
        # Read back from the driver and the kernel, and in force while the training ran.
        assert int(row["gpu_power_limit_applied_w"]) == limit_w and int(row["cpu_max_freq_applied_khz"]) == cap_khz
        assert float(row["perf_cap_khz"]) == cap_khz
        assert row["knobs_applied_to"] == "GPU 0; 4 CPUs" and row["mutated"] == "gpu_power_limit_w;cpu_max_freq_khz"
        # The GPU draws 250 W unloaded by a limit (FAKE_NVML_POWER_W): capped, its energy follows the limit.
        assert float(row["gpu_energy_j"]) == pytest.approx(limit_w * float(row["duration_s"]), rel=0.05)
        assert float(row["gpu_power_avg_w"]) == pytest.approx(limit_w, rel=0.02)
    record = json.loads((run_dir / table[0]["trial"] / "experiment.json").read_text())
    assert "--gpu_power_limit_w" not in " ".join(record["argv"]) and "gpu_power_limit_w" in record["hyperparameters"]
    assert record["knobs"]["applied"]["cpu_max_freq_khz"] == dict.fromkeys(CPUS, int(table[0]["hp_cpu_max_freq_khz"]))
    # What the machine had: the study's baseline, kept with the trial.
    assert record["knobs"]["before"]["gpus"] == {"0": {"power_limit_mw": 700_000}}
    assert record["knobs"]["before"]["cpu_max_freq_khz"] == dict.fromkeys(CPUS, CAP_BEFORE_KHZ)
    assert f"[1] set gpu_power_limit_w={table[0]['hp_gpu_power_limit_w']} (GPU 0), cpu_max_freq_khz=" in result.stdout
    assert "[1] restored the system knobs: GPU 0; the frequency cap of 4 CPUs" in result.stdout
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    steps = [(event["event"], event.get("trial")) for event in events if event["event"].startswith("knobs_")]
    assert steps == [(step, row["trial"]) for row in table for step in ("knobs_set", "knobs_restored")]
    first = next(event for event in events if event["event"] == "knobs_set")
    assert first["requested"] == {"gpu_power_limit_w": int(table[0]["hp_gpu_power_limit_w"]),
                                  "cpu_max_freq_khz": int(table[0]["hp_cpu_max_freq_khz"])}
    assert first["applied"]["gpu_power_limit_w"] == {"0": int(table[0]["hp_gpu_power_limit_w"])}
    assert untouched(machine) and "1" not in driver(machine)["power_limit_mw"]  # GPU 1 is not measured: left alone
    assert driver(machine)["power_limit_mw"]["0"] == 700_000  # written back, not merely left at a default
    assert not (tmp_path / "r" / ".running").exists()
    assert result.stdout.count("set gpu_power_limit_w=") == 3
    for row in table:  # the closing table names each trial's knobs as it names drawn hyperparameters
        assert f"gpu_power_limit_w={row['hp_gpu_power_limit_w']} cpu_max_freq_khz={row['hp_cpu_max_freq_khz']}" \
            in result.stdout.split("\n\n#")[-1]
    # The report's front: at equal durations the lowest limit costs least, so it is on it.
    report = invoke("--registry", registry(write_json, knob_repo(machine)), "report", run_dir, "--no-plots",
                    "-o", tmp_path / "report")
    assert report.exit_code == 0, report.output
    page = (tmp_path / "report" / "report.md").read_text()
    lowest = min(table, key=lambda row: int(row["hp_gpu_power_limit_w"]))
    assert "System knobs: the energy-duration Pareto front per model" in page
    assert (f"gpu_power_limit_w={lowest['hp_gpu_power_limit_w']}, cpu_max_freq_khz={lowest['hp_cpu_max_freq_khz']}"
            in page.split("Pareto front per model")[1].split("##")[0])


def test_fixed_clocks_and_governor_are_rounded_by_the_driver_and_the_row_says_both(
        machine: Path, write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    settings = write_json("s.json", {"experiment_name": "clocks", "knob_settle_s": 0, "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny",
         "hyperparameters": {"gpu_sm_clock_mhz": 1203, "cpu_governor": "performance"}}]})
    result = invoke("--registry", registry(write_json, knob_repo(machine, "ok")), "--results-dir", tmp_path / "r",
                    "run", settings)
    assert result.exit_code == 0, result.output
    [row] = rows(only_run_dir(tmp_path / "r"))
    # The driver takes the nearest supported clock (15 MHz steps from 345): asked 1203, applied 1200.
    assert (row["hp_gpu_sm_clock_mhz"], row["gpu_sm_clock_applied_mhz"]) == ("1203", "1200")
    assert "[1] set gpu_sm_clock_mhz=1203 (GPU 0: 1200 applied), cpu_governor=performance (4 CPUs); settling 0 s" \
        in result.stdout
    assert (row["hp_cpu_governor"], row["cpu_governor_applied"], row["cpu_governor"]) == \
        ("performance", "performance", "performance")
    assert untouched(machine)


def test_a_knob_value_the_machine_does_not_take_is_refused_before_anything_runs(
        machine: Path, write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    # Inside the registry's range, outside the board's: GPU 0 takes 200-700 W, its CPUs 800 MHz-3.5 GHz.
    settings = write_json("s.json", {"experiment_name": "low", "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny", "hyperparameters": {"gpu_power_limit_w": 150}},
        {"mode": "mutation", "repo": "fake", "model": "tiny", "mutate": ["learning_rate", "cpu_max_freq_khz"],
         "ranges": {"cpu_max_freq_khz": [500_000, 700_000]}}]})
    result = invoke("--registry", registry(write_json, knob_repo(machine)), "--results-dir", tmp_path / "r",
                    "run", settings)
    assert result.exit_code == 2, result.output
    assert (f"{settings}: experiments[0].hyperparameters.gpu_power_limit_w: 150 is outside [200, 700], what the GPUs "
            "measured take here") in result.stderr
    assert (f"{settings}: experiments[1].mutate[1]: cpu_max_freq_khz: ") in result.stderr
    assert ('is outside [800000, 3500000], what every CPU takes here; keep its draws inside with "ranges": '
            '{"cpu_max_freq_khz": [800000, 3500000]}') in result.stderr
    assert not (tmp_path / "r").exists() and untouched(machine)
    # A governor the CPUs do not offer, among the draws: the ranges that keeps them to those offered.
    governors_drawn = write_json("g.json", {"experiment_name": "g", "experiments": [
        {"mode": "mutation", "repo": "fake", "model": "tiny", "mutate": ["cpu_governor"], "runs_per_config": 3}]})
    said = invoke("--registry", registry(write_json, knob_repo(machine)), "--results-dir", tmp_path / "r", "run",
                  governors_drawn)
    assert said.exit_code == 2 and ("experiments[0].mutate[0]: cpu_governor: ondemand is not one of the governors "
                                    'these CPUs offer (performance, powersave); keep its draws inside with "ranges": '
                                    '{"cpu_governor": ["performance", "powersave"]}') in said.stderr, said.stderr
    # Outside the registry's own range: the settings check says so, as for any hyperparameter.
    beyond = write_json("b.json", {"experiment_name": "b", "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny", "hyperparameters": {"gpu_power_limit_w": 400}}]})
    said = invoke("--registry", registry(write_json, knob_repo(machine)), "validate", beyond)
    assert said.exit_code == 2
    assert "experiments[0].hyperparameters.gpu_power_limit_w: 400 is outside the range [100, 300]" in said.stderr
    # The same refusal from doctor, the pre-flight check.
    doctor = invoke("--registry", registry(write_json, knob_repo(machine)), "doctor", settings)
    assert doctor.exit_code == 2 and "gpu_power_limit_w: 150 is outside [200, 700]" in doctor.stdout
    # A GPU knob for a trial that sees no GPU has nothing to be set on.
    hidden = write_json("hidden.json", {"experiment_name": "h", "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny", "env": {"CUDA_VISIBLE_DEVICES": ""},
         "hyperparameters": {"gpu_power_limit_w": 250}}]})
    said = invoke("--registry", registry(write_json, knob_repo(machine)), "--results-dir", tmp_path / "r", "run",
                  hidden)
    assert said.exit_code == 2 and ("experiments[0].hyperparameters.gpu_power_limit_w: cannot be set here: the trial "
                                    "sees no GPU (its CUDA_VISIBLE_DEVICES is empty)") in said.stderr
    # plan shows the trials, and notes what `run` here would refuse.
    planned = invoke("--registry", registry(write_json, knob_repo(machine)), "plan", settings)
    assert planned.exit_code == 0 and "note: `run` on this machine would refuse these system knobs:" in planned.stderr
    assert "gpu_power_limit_w: 150 is outside [200, 700]" in planned.stderr


def test_a_user_without_root_is_told_by_doctor_and_run_which_knobs_need_it(
        machine: Path, write_json: Callable[[str, Any], Path]) -> None:
    files = machine / "files"
    files.mkdir(mode=0o755)
    models = files / "models.json"
    # The system interpreter: nobody cannot enter root's home, where the venv's one may live.
    repo = knob_repo(machine, command=["/usr/bin/python3", "fake_train.py"])
    models.write_text(json.dumps({"repositories": {"fake": repo}, "system": SYSTEM}))
    settings = files / "s.json"
    settings.write_text(json.dumps({"experiment_name": "user", "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny",
         "hyperparameters": {"gpu_power_limit_w": 250, "cpu_max_freq_khz": 2_000_000}}]}))
    for path in (models, settings):
        path.chmod(0o644)

    # Whatever the commands import late is imported now: `nobody` may not read this interpreter's library.
    invoke("--registry", models, "doctor", settings)
    invoke("--registry", models, "list")
    invoke("--registry", models, "--results-dir", machine / "results", "run", machine / "no such file.json")

    def as_user() -> list[Any]:
        doctor = invoke("--registry", models, "doctor", settings)
        run = invoke("--registry", models, "--results-dir", machine / "results", "run", settings)
        listed = invoke("--registry", models, "list")
        return [doctor.exit_code, doctor.stdout, run.exit_code, run.stderr, listed.stdout]

    doctor_code, doctor_out, run_code, run_err, listed = in_child(as_user, as_nobody=True)
    assert doctor_code == 2 and run_code == 2, (doctor_out, run_err)
    needs_root = "setting a GPU's power limit or clocks needs root: run mutation.py with sudo"
    assert needs_root in " ".join(doctor_out.split()) and needs_root in run_err
    assert (f"{settings}: experiments[0].hyperparameters.cpu_max_freq_khz: cannot be set here: "
            f"{machine / 'cpu' / 'cpu0' / 'cpufreq' / 'scaling_max_freq'} is not writable: run mutation.py with sudo"
            ) in run_err
    assert f"{settings}: experiments[0].hyperparameters.gpu_power_limit_w: cannot be set here: {needs_root}" in run_err
    assert not (machine / "results").exists() and untouched(machine)
    # list shows what the machine takes even so, and that this user cannot set it.
    assert ("gpu_power_limit_w  [100, 300], no default: left as the machine has it; here: GPU 0 [200, 700], "
            "GPU 1 [125, 250] (cannot be set by this process: setting a GPU's power limit or clocks needs root"
            ) in listed
    assert "cpu_max_freq_khz  [500000, 3000000], no default: left as the machine has it; here: [800000, 3500000] (" \
        in listed




@pytest.mark.parametrize("how", ["sigterm", "sigkill", "sigkill-with-its-watchdog"])
def test_knobs_are_restored_after_a_signal_by_the_campaign_its_watchdog_or_cleanup(
        how: str, machine: Path, write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    settings = write_json("s.json", {"experiment_name": "killed", "knob_settle_s": 0, "grace_s": 1, "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny", "hyperparameters": {
            "gpu_power_limit_w": 220, "gpu_sm_clock_mhz": 990, "cpu_max_freq_khz": 1_500_000,
            "cpu_governor": "performance"}}]})
    models = registry(write_json, knob_repo(machine, "hang"))
    results = tmp_path / "r"
    tool = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "mutation.py"), "--registry", str(models),
                             "--results-dir", str(results), "run", str(settings)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    try:
        assert wait_for((machine / "training.pid").exists, 30)
        assert caps(machine) == dict.fromkeys(CPUS, 1_500_000) and governors(machine) == {"performance"}
        assert driver(machine)["power_limit_mw"]["0"] == 220_000 and driver(machine)["locked_clocks"]["0"] == [990, 990]
        if how == "sigkill-with-its-watchdog":  # as a power cut leaves the machine: nothing of the campaign runs on
            for child in psutil.Process(tool.pid).children():
                if "energy_profiler.process.watchdog" in " ".join(child.cmdline()):
                    child.kill()
        tool.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
        tool.wait(timeout=20)
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.wait()
    log = only_run_dir(results) / "session.log"
    if how == "sigterm":  # the campaign restores them itself on its way out; its watchdog finds nothing to do
        assert tool.returncode == 143 and untouched(machine), (caps(machine), governors(machine), driver(machine))
        assert "[1] restored the system knobs: GPU 0" in log.read_text() and "watchdog:" not in log.read_text()
        return
    if how == "sigkill":
        assert wait_for(lambda: untouched(machine), 10), (caps(machine), governors(machine), driver(machine))
        assert "restored the system knobs: GPU 0" in log.read_text()
        return
    assert not untouched(machine)
    # status and doctor say what the dead campaign left changed, and the command that writes it back.
    left = (f"warning: campaign {tool.pid} died leaving the knobs of GPU 0, the CPUs' frequency cap, the CPUs' "
            f"governor changed; to write it back: ")
    status = subprocess.run([sys.executable, str(PROJECT_ROOT / "mutation.py"), "--results-dir", str(results),
                             "status", str(only_run_dir(results))], capture_output=True, text=True, check=False)
    assert left in status.stdout, status.stdout
    doctor = invoke("--results-dir", results, "doctor")
    assert left in doctor.stdout, doctor.stdout
    # The line status prints, pasted as it is, from another folder.
    printed = status.stdout.split("to write it back: ")[1].splitlines()[0]
    cleaned = subprocess.run(shlex.split(printed), capture_output=True, text=True, check=False, cwd=tmp_path)
    assert cleaned.returncode == 0, cleaned.stderr
    assert ("restored the system knobs: GPU 0; the frequency cap of 4 CPUs; the governor of 4 CPUs"
            in cleaned.stdout), cleaned.stdout
    assert untouched(machine)


def test_knobs_in_a_background_or_a_slurm_campaign_are_refused_at_their_path(
        machine: Path, write_json: Callable[[str, Any], Path]) -> None:
    models = registry(write_json, knob_repo(machine))
    settings = write_json("s.json", {"experiment_name": "where", "experiments": [
        {"mode": "parallel", "foreground": {"repo": "fake", "model": "tiny", "hyperparameters": {"cpu_governor":
                                                                                               "performance"}},
         "background": {"repo": "fake", "model": "tiny", "hyperparameters": {"gpu_power_limit_w": 200}}}]})
    said = invoke("--registry", models, "validate", settings)
    assert said.exit_code == 2
    assert "experiments[0].background.hyperparameters.gpu_power_limit_w: 'gpu_power_limit_w' is a system knob" \
        in said.stderr
    slurm = write_json("slurm.json", {"experiment_name": "s", "executor": {"slurm": {}}, "experiments": [
        {"mode": "mutation", "repo": "fake", "model": "tiny", "mutate": ["learning_rate", "gpu_power_limit_w"]}]})
    said = invoke("--registry", models, "validate", slurm)
    assert said.exit_code == 2 and "experiments[0].mutate[1]: 'gpu_power_limit_w' is a system knob, which a Slurm" \
        in said.stderr
    local = write_json("local.json", {"experiment_name": "l", "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny", "hyperparameters": {"cpu_governor": "performance"}}]})
    said = invoke("--registry", models, "--results-dir", machine / "results", "run", local, "--executor", "slurm")
    assert said.exit_code == 2 and said.stderr == (f"error: {local}: cpu_governor: system knobs, which a Slurm "
                                                   "campaign cannot set on its nodes; run it with --executor local\n")
    assert not (machine / "results").exists()


def test_mutate_all_leaves_knobs_out_and_a_parallel_row_says_the_background_shares_them(
        machine: Path, write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    models = registry(write_json, knob_repo(machine, "sleep", 0.5))
    everything = write_json("all.json", {"experiment_name": "all", "experiments": [
        {"mode": "mutation", "repo": "fake", "model": "tiny", "mutate": ["all"]}]})
    plan = invoke("--registry", models, "plan", everything, "--format", "json")
    assert plan.exit_code == 0, plan.output
    assert json.loads(plan.stdout)[0]["mutated"] == "learning_rate;epochs"
    plan = invoke("--registry", models, "plan", everything)
    assert ("experiments[0]: mutate all leaves the system knobs gpu_power_limit_w, gpu_sm_clock_mhz, cpu_max_freq_khz, "
            'cpu_governor as the machine has them; to draw one, name it beside all: ["all", "gpu_power_limit_w"]'
            in " ".join(plan.output.split()))
    plan = invoke("--registry", models, "plan", write_json("all_and.json", {"experiment_name": "a", "experiments": [
        {"mode": "mutation", "repo": "fake", "model": "tiny", "mutate": ["all", "gpu_power_limit_w"]}]}),
        "--format", "json")
    assert plan.exit_code == 0, plan.output
    assert json.loads(plan.stdout)[0]["mutated"] == "learning_rate;epochs;gpu_power_limit_w"
    settings = write_json("p.json", {"experiment_name": "par", "knob_settle_s": 0, "grace_s": 1, "experiments": [
        {"mode": "parallel", "foreground": {"repo": "fake", "model": "tiny",
                                            "hyperparameters": {"gpu_power_limit_w": 210}},
         # The first background shares GPU 0 with the foreground; the second runs on GPU 1, outside the knob.
         "background": [{"repo": "fake", "model": "tiny"}, {"repo": "fake", "model": "tiny", "gpus": [1]}]}]})
    result = invoke("--registry", models, "--results-dir", tmp_path / "r", "run", settings)
    assert result.exit_code == 0, result.output
    [row] = rows(only_run_dir(tmp_path / "r"))
    assert row["knobs_applied_to"] == "GPU 0 (shared with background fake/tiny)"
    assert "[1] set gpu_power_limit_w=210 (GPU 0); shared with background fake/tiny; settling 0 s" in result.stdout
    assert "gpu_power_limit_w" not in row["bg_hyperparameters"] and untouched(machine)


def test_rows_from_before_the_registry_had_knobs_stay_in_the_history_as_the_machine_s_own_settings(
        machine: Path, write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    plain = write_json("plain.json", {"repositories": {"fake": knob_repo(machine, "ok")}})
    settings = write_json("s.json", {"experiment_name": "h", "dedup": True, "experiments": [
        {"mode": "mutation", "repo": "fake", "model": "tiny", "mutate": ["epochs"], "runs_per_config": 3}]})
    first = invoke("--registry", plain, "--results-dir", tmp_path / "r", "run", settings)
    assert first.exit_code == 0, first.output
    # The registry gains knobs; the same campaign, planned again, knows the three epochs measured.
    planned = invoke("--registry", registry(write_json, knob_repo(machine, "ok")), "--results-dir", tmp_path / "r",
                     "plan", settings)
    assert planned.exit_code == 2, planned.output
    assert "only 1 exist besides the defaults, earlier trials and the history" in planned.stderr
    with_knob = write_json("k.json", {"experiment_name": "h", "dedup": True, "experiments": [
        {"mode": "mutation", "repo": "fake", "model": "tiny", "mutate": ["epochs"], "runs_per_config": 3,
         "hyperparameters": {"gpu_power_limit_w": 250}}]})
    planned = invoke("--registry", registry(write_json, knob_repo(machine, "ok")), "--results-dir", tmp_path / "r",
                     "plan", with_knob)
    assert planned.exit_code == 0, planned.output  # at another power limit, every epochs value is new again
    ran = invoke("--registry", registry(write_json, knob_repo(machine, "ok")), "--results-dir", tmp_path / "r",
                 "run", with_knob)
    assert ran.exit_code == 0, ran.output
    # The report keeps the two apart, the first as the machine's own setting rather than an empty value.
    report = invoke("--registry", registry(write_json, knob_repo(machine, "ok")), "report", tmp_path / "r",
                    "--no-plots", "-o", tmp_path / "report")
    assert report.exit_code == 0, report.output
    page = (tmp_path / "report" / "report.md").read_text()
    assert "| gpu_power_limit_w=machine's own |" in page and "| gpu_power_limit_w=250 |" in page


def test_locked_clocks_on_a_pre_volta_gpu_are_refused_before_the_run_or_stop_it_restored(
        machine: Path, write_json: Callable[[str, Any], Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Locked clocks need Volta or newer: GPU 1 (Pascal) reads its clocks but refuses to lock them.
    settings = write_json("s.json", {"experiment_name": "pascal", "knob_settle_s": 0, "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny", "gpus": [1],
         "hyperparameters": {"gpu_power_limit_w": 200, "gpu_sm_clock_mhz": 900}}]})
    models = registry(write_json, knob_repo(machine, "ok"))
    result = invoke("--registry", models, "--results-dir", tmp_path / "r", "run", settings)
    assert result.exit_code == 2 and not (tmp_path / "r").exists(), result.output
    assert ("experiments[0].hyperparameters.gpu_sm_clock_mhz: cannot be set here: gpu_sm_clock_mhz on GPU 1: locked "
            "clocks need a Volta or newer GPU, this one is Pascal") in result.stderr
    # A driver that cannot say the board's architecture: only setting the clocks shows it. The power
    # limit, set first, is written back, and the run folder says how the campaign ended.
    monkeypatch.setenv("FAKE_NVML_NO_ARCHITECTURE", "1")
    result = invoke("--registry", models, "--results-dir", tmp_path / "r", "run", settings)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: could not set gpu_sm_clock_mhz on GPU 1: not supported by this GPU or "
                                    "driver\n")
    assert "the knobs changed were written back" in result.stderr
    assert driver(machine)["power_limit_mw"]["1"] == 250_000 and untouched(machine)
    assert not (tmp_path / "r" / ".running").exists()
    run_dir = only_run_dir(tmp_path / "r")
    assert "the campaign stopped on an error: could not set gpu_sm_clock_mhz on GPU 1" in \
        (run_dir / "session.log").read_text()
    status = invoke("--results-dir", tmp_path / "r", "status", run_dir)
    assert ("stopped: campaign 'pascal'" in status.stdout and "with exit code 1: it stopped on an error: could not set "
            "gpu_sm_clock_mhz on GPU 1" in status.stdout), status.stdout


def test_a_hostile_governor_value_is_refused_before_it_reaches_a_cpufreq_file(
        machine: Path, write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    hostile = 'powersave\nperformance; $(touch "pwned")'
    system = {**SYSTEM, "cpu_governor": {"type": "choice", "values": ["performance", hostile]}}
    settings = write_json("s.json", {"experiment_name": "h", "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny", "hyperparameters": {"cpu_governor": hostile}}]})
    result = invoke("--registry", registry(write_json, knob_repo(machine), system), "--results-dir", tmp_path / "r",
                    "run", settings)
    assert result.exit_code == 2, result.output
    [line] = [line for line in result.stderr.splitlines() if "cpu_governor" in line]  # one line, the value quoted
    assert line.endswith(f"experiments[0].hyperparameters.cpu_governor: {json.dumps(hostile)} is not one of the "
                         "governors these CPUs offer (performance, powersave)")
    assert untouched(machine) and not (tmp_path / "r").exists() and not (tmp_path / "pwned").exists()


def test_the_reports_front_stands_each_knob_setting_by_its_medians_not_its_luckiest_trial(tmp_path: Path) -> None:
    run = tmp_path / "run_20260101_000000_pl"
    run.mkdir()
    columns = ["experiment_id", "run_id", "trial", "mode", "repo", "model", "status", "duration_s", "mutated",
               "hp_gpu_power_limit_w", "perf_accuracy", "cpu_energy_j", "cpu_energy_method", "gpu_energy_j",
               "gpu_energy_method"]
    trials = [  # 200 W twice (one lucky run at 10 s, 2000 J), 250 W once, the machine's own limit once
        ("e1", "200", 10.0, 2000), ("e2", "200", 14.0, 2800), ("e3", "250", 11.0, 2600), ("e4", "", 10.5, 3000)]
    with open(run / "summary.csv", "w", newline="") as table:
        writer = csv.writer(table)
        writer.writerow(columns)
        for index, (uid, limit, duration_s, joules) in enumerate(trials, start=1):
            writer.writerow([uid, run.name, f"00{index}_r_m", "default", "r", "m", "success", duration_s,
                             "", limit, 0.9, "", "none", joules, "nvml_counter"])
    result = invoke("report", run, "--no-plots", "-o", tmp_path / "report")
    assert result.exit_code == 0, result.output
    front = (tmp_path / "report" / "report.md").read_text().split("Pareto front per model")[1].split("##")[0]
    rows = [line for line in front.splitlines() if line.startswith("| r |")]
    # Medians: 200 W (2400 J, 12 s), 250 W (2600 J, 11 s), the machine's own (3000 J, 10.5 s): each is
    # faster than the cheaper ones, so all three are on it; 200 W's lucky trial alone would hide the others.
    assert [row.split(" | ")[3:7] for row in rows] == [["gpu_power_limit_w=200", "2", "12", "2400"],
                                                       ["gpu_power_limit_w=250", "1", "11", "2600"],
                                                       ["machine's own", "1", "10.5", "3000"]], front


def test_a_trials_governor_lies_over_the_campaigns_and_gives_way_to_it_after_the_trial(
        machine: Path, write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    settings = write_json("s.json", {"experiment_name": "gov", "governor": "performance", "knob_settle_s": 0,
                                     "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny", "hyperparameters": {"cpu_governor": "powersave"}},
        {"mode": "default", "repo": "fake", "model": "tiny"}]})
    result = invoke("--registry", registry(write_json, knob_repo(machine, "ok")), "--results-dir", tmp_path / "r",
                    "run", settings)
    assert result.exit_code == 0, result.output
    table = rows(only_run_dir(tmp_path / "r"))
    # The governor in force during each trial: the trial's own, then the campaign's again (not the machine's).
    assert [row["cpu_governor"] for row in table] == ["powersave", "performance"]
    assert (table[0]["cpu_governor_applied"], table[1]["cpu_governor_applied"]) == ("powersave", "")
    assert "[1] restored the system knobs: the governor of 4 CPUs" in result.stdout
    assert "CPU governor restored (powersave)" in result.stdout and untouched(machine)


def test_doctor_and_run_say_which_knobs_this_machine_cannot_set_and_why(
        write_json: Callable[[str, Any], Path], tmp_path: Path, machine: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # With the fakes, as root: GPU 1 is a Pascal board, so locked clocks are refused by what the driver says.
    doctor = invoke("doctor")
    knob_table = " ".join(doctor.stdout.split("system knob")[1].split())
    assert "gpu_power_limit_w yes" in knob_table and "cpu_max_freq_khz yes" in knob_table
    assert ("gpu_sm_clock_mhz no gpu_sm_clock_mhz on GPU 1: locked clocks need a Volta or newer GPU, this one is "
            "Pascal") in knob_table
    # A machine with neither NVML nor cpufreq (a VM): each knob says so, and a campaign setting them stops first.
    monkeypatch.setenv("MUTATION_NVML_MODULE", "mutation_tests_no_nvml")
    monkeypatch.setenv("MUTATION_CPUFREQ_ROOT", str(tmp_path / "no-cpufreq"))
    knob_table = " ".join(invoke("doctor").stdout.split("system knob")[1].split())
    assert "gpu_power_limit_w no no NVML here" in knob_table and "GPU knobs need an NVIDIA driver" in knob_table
    assert f"cpu_max_freq_khz no no cpufreq scaling_max_freq under {tmp_path / 'no-cpufreq'}" in knob_table
    assert "cpu_governor no no cpufreq governors under" in knob_table
    settings = write_json("s.json", {"experiment_name": "vm", "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny",
         "hyperparameters": {"gpu_power_limit_w": 250, "cpu_governor": "performance"}}]})
    said = invoke("--registry", registry(write_json, knob_repo(machine)), "--results-dir", tmp_path / "r", "run",
                  settings)
    assert said.exit_code == 2 and not (tmp_path / "r").exists()
    assert "experiments[0].hyperparameters.gpu_power_limit_w: cannot be set here: no NVML here" in said.stderr
    assert "experiments[0].hyperparameters.cpu_governor: cannot be set here: no cpufreq governors under" in said.stderr
