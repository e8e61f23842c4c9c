"""What each CPU energy backend costs a user, per trial and once per campaign, in whole campaigns.

Method: for each CPU backend (none, rapl, perf, estimate) run `mutation.py run` as its own process,
as a user does, on campaigns of N and 4N trainings of the bundled fake training (`ok`: it prints
and exits, ~50 ms) with no cool-down, and time the whole process. The per-trial cost is the slope
between the two (everything between trials included: records, the next trial's preparation), the
fixed cost what is left of the N-trial campaign (start-up, baseline-free energy setup, the closing
table). A bare loop starting the same training N and 4N times gives the trainings' own slope.
The hardware is faked at its boundary: a powercap tree whose counters a thread drives, the fake
perf (which, like perf 6.1, prints nothing until it exits) starting as slowly as a cold real one
on a loaded machine (FAKE_PERF_STARTUP_S, 0.15 s unless --perf-startup-s says otherwise; a cold
real perf takes 13-67 ms), and a
readable package power limit for the estimate.

Targets: every backend within 10 ms per trial of none, and its fixed cost within 0.5 s of none's.
The second table keeps the figure inside one attempt (attempt `wall_s` - training `duration_s`):
it leaves out everything between trials, so it is not what a user pays.

Where the real perf is installed, the same control sequence the perf backend uses (start with
counters disabled, `enable` and its ack, `disable` and its ack, SIGINT, exit) is also timed on
the real perf with a software event (`cpu-clock`: this needs no power PMU).

Run: .venv/bin/python bench/cpu_backend_overhead.py [--trials 5] [--perf-startup-s 0.15]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from test.fake_powercap import FakePowercap

PROJECT = Path(__file__).resolve().parents[1]
FAKE_TRAIN = PROJECT / "test" / "fixtures" / "fake_train.py"
FAKE_PERF = PROJECT / "test" / "fixtures" / "fake_perf.py"
TARGET_SLOPE_MS = 10.0
TARGET_FIXED_S = 0.5
PERF_STARTUP_S = 0.15
REPEATS = 3
BACKENDS = ("none", "rapl", "perf", "estimate")


def write_campaign(folder: Path, trials: int, backend: str) -> tuple[Path, Path]:
    registry = folder / "models.json"
    registry.write_text(json.dumps({"repositories": {"fake": {
        "path": str(FAKE_TRAIN.parent), "command": [sys.executable, FAKE_TRAIN.name],
        "required_args": ["--behaviour", "ok"], "model_flag": "--model", "models": {"tiny": {}},
        "hyperparameters": {"epochs": {"flag": "--epochs", "type": "int", "default": 1, "range": [1, 2]}},
        "metrics": {"accuracy": {"pattern": r"accuracy: ([0-9.]+)"}}}}}))
    settings = folder / f"{backend}.json"
    settings.write_text(json.dumps({
        "experiment_name": f"bench-{backend}", "runs_per_config": trials, "cooldown_s": 0,
        "energy": {"cpu": backend, "gpu": "none", "interval_s": 0.1, "baseline_s": 0},
        "experiments": [{"mode": "default", "repo": "fake", "model": "tiny"}]}))
    return registry, settings


def fake_hardware(folder: Path, perf_startup_s: float) -> dict[str, str]:
    events = folder / "power-events"
    events.mkdir()
    for name in ("energy-pkg", "energy-ram"):
        (events / name).write_text("event=0x02\n")
    # The fake perf, run by this very interpreter: through `env python3`, a pyenv shim alone costs
    # ~70 ms per start, which would be measured as the tool's.
    perf = folder / "perf"
    perf.write_text(f"#!{sys.executable} -S\n" + FAKE_PERF.read_text().split("\n", 1)[1])
    perf.chmod(0o755)
    return {"MUTATION_POWERCAP_ROOT": str(folder / "powercap"), "MUTATION_PERF": str(perf),
            "MUTATION_PERF_EVENTS": str(events), "MUTATION_PERF_PARANOID": str(folder / "no-paranoid"),
            "MUTATION_NVML_MODULE": "no_such_module", "MUTATION_NVIDIA_SMI": str(folder / "no-nvidia-smi"),
            "MUTATION_CPUFREQ_ROOT": str(folder / "no-cpufreq"), "FAKE_PERF_STARTUP_S": str(perf_startup_s)}


def campaign(folder: Path, backend: str, trials: int, environment: dict[str, str]) -> tuple[float, list[float]]:
    """The wall time of one whole `mutation.py run` of `trials` trainings (s), and per trial the
    time added inside its attempt (attempt wall time - training duration, ms)."""
    registry, settings = write_campaign(folder, trials, backend)
    results = Path(tempfile.mkdtemp(dir=folder, prefix=f"results-{backend}-"))
    started = time.monotonic()
    completed = subprocess.run([sys.executable, str(PROJECT / "mutation.py"), "-q", "--registry", str(registry),
                                "--results-dir", str(results), "run", str(settings)],
                               env=environment, capture_output=True, text=True, check=False)
    wall_s = time.monotonic() - started
    if completed.returncode != 0:
        sys.exit(f"{backend}: the campaign failed ({completed.returncode}):\n{completed.stdout}{completed.stderr}")
    added = []
    for record_file in sorted(results.glob("run_*/*/experiment.json")):
        attempt = json.loads(record_file.read_text())["attempts"][-1]
        added.append((attempt["wall_s"] - attempt["duration_s"]) * 1000)
    return wall_s, added


def bare_loop(trials: int, environment: dict[str, str]) -> float:
    """The same training started `trials` times in a row, nothing else (s)."""
    started = time.monotonic()
    for _ in range(trials):
        subprocess.run([sys.executable, FAKE_TRAIN.name, "--behaviour", "ok", "--model", "tiny", "--epochs", "1"],
                       cwd=FAKE_TRAIN.parent, env=environment, capture_output=True, check=True)
    return time.monotonic() - started


def slope_and_fixed(small: float, large: float, trials: int) -> tuple[float, float]:
    """(per trial s, fixed s) of a cost that is `small` for `trials` and `large` for 4 x `trials`."""
    per_trial = (large - small) / (3 * trials)
    return per_trial, small - trials * per_trial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5, help="N: campaigns of N and 4N trainings")
    parser.add_argument("--perf-startup-s", type=float, default=PERF_STARTUP_S,
                        help="how long the fake perf takes to start (a cold real one: 0.013-0.067 s here)")
    args = parser.parse_args()
    n = args.trials
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        fake = FakePowercap(folder / "powercap")
        fake.zone("intel-rapl:0", "package-0", 40.0, limit_w=65.0).zone("intel-rapl:0:0", "dram", 5.0)
        environment = {**os.environ, **fake_hardware(folder, args.perf_startup_s)}
        bare_per_trial, _ = slope_and_fixed(min(bare_loop(n, environment) for _ in range(REPEATS)),
                                                     min(bare_loop(4 * n, environment) for _ in range(REPEATS)), n)
        print(f"whole campaigns of {n} and {4 * n} trainings, best of {REPEATS}; fake perf starts in "
              f"{args.perf_startup_s:g} s; the bare loop of the same trainings: {bare_per_trial * 1000:.0f} ms "
              "per trial")
        print(f"{'backend':<9} {'per trial ms':>12} {'vs none':>8} {'vs bare':>8} {'fixed s':>8} {'vs none':>8}  "
              "verdict")
        none: tuple[float, float] | None = None
        inside: dict[str, list[float]] = {}
        for backend in BACKENDS:
            # The thread that drives the counters runs only for RAPL, which reads them: on a small
            # machine it would otherwise slow the other backends' helpers down.
            with fake if backend == "rapl" else contextlib.nullcontext():
                runs = [(campaign(folder, backend, n, environment), campaign(folder, backend, 4 * n, environment))
                        for _ in range(REPEATS)]
            small = min(wall for (wall, _), _large in runs)
            large = min(wall for _small, (wall, _) in runs)
            inside[backend] = [ms for (_, added), (_, more) in runs for ms in added + more]
            per_trial, fixed = slope_and_fixed(small, large, n)
            none = none or (per_trial, fixed)
            slope_above, fixed_above = (per_trial - none[0]) * 1000, fixed - none[1]
            verdict = "ok" if slope_above <= TARGET_SLOPE_MS and fixed_above <= TARGET_FIXED_S else "OVER"
            above_bare_ms = (per_trial - bare_per_trial) * 1000
            print(f"{backend:<9} {per_trial * 1000:>12.0f} {slope_above:>+8.0f} {above_bare_ms:>+8.0f} "
                  f"{fixed:>8.2f} {fixed_above:>+8.2f}  {verdict}")
        print(f"targets: <= {TARGET_SLOPE_MS:g} ms per trial and <= {TARGET_FIXED_S:g} s fixed, above none.")
        print("inside one attempt (wall_s - duration_s; leaves out what lies between trials):")
        for backend, added in inside.items():
            print(f"  {backend:<9} mean {statistics.mean(added):6.1f} ms, max {max(added):6.1f} ms")
    if shutil.which("perf"):
        real_perf_round_trips(10)


def real_perf_round_trips(count: int) -> None:
    """The perf backend's control sequence on the real perf, with a software event."""
    timings = []
    for _ in range(count):
        control_read, control_write = os.pipe()
        ack_read, ack_write = os.pipe()
        with tempfile.TemporaryFile() as output:
            started = time.monotonic()
            process = subprocess.Popen(
                ["perf", "stat", "-a", "-x,", "--log-fd", str(output.fileno()), "-D", "-1", "--control",
                 f"fd:{control_read},{ack_write}", "-e", "cpu-clock"],
                pass_fds=(control_read, ack_write, output.fileno()), stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            os.close(control_read)
            os.close(ack_write)
            enabled = _command(control_write, ack_read, b"enable")
            disabled_started = time.monotonic()
            disabled = _command(control_write, ack_read, b"disable")
            process.send_signal(signal.SIGINT)
            process.wait()
            ended = time.monotonic()
        os.close(control_write)
        os.close(ack_read)
        timings.append(((enabled - started) * 1000, (disabled - disabled_started) * 1000, (ended - disabled) * 1000))
    starts, disables, exits = zip(*timings, strict=True)
    print(f"real perf ({count} runs, cpu-clock): start to enable ack median {statistics.median(starts):.1f} ms "
          f"(max {max(starts):.1f}), disable ack {statistics.median(disables):.2f} ms, SIGINT to exit "
          f"{statistics.median(exits):.1f} ms: about {statistics.median(starts) + statistics.median(exits):.0f} ms "
          "per trial")


def _command(control: int, ack: int, command: bytes) -> float:
    """Write a control command, wait for perf's `ack\n\0`; the time it came."""
    os.write(control, command + b"\n")
    received = b""
    while b"\0" not in received:
        select.select([ack], [], [], 2.0)
        received += os.read(ack, 64)
    return time.monotonic()


if __name__ == "__main__":
    main()
