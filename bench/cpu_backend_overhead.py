"""Wall time each CPU energy backend adds to a trial, over a real campaign of very short trainings.

Method: for each CPU backend (none, rapl, perf, estimate) run `mutation.py run` as its own process
on a campaign of N trainings of the bundled fake training (`ok`: it prints and exits, ~50 ms), with
the hardware faked at its boundary: a powercap tree whose counters a thread drives, the fake perf
(which, like perf 6.1, prints nothing until it exits; a Python script, it takes ~10-30 ms to
start, like real perf) and a readable package power limit for the
estimate. Each attempt records `wall_s` (the whole attempt: monitors started and stopped, energy
files written, teardown) and `duration_s` (the training's own window); their difference is what
the tool adds per trial. Target: <= 50 ms per trial for every backend, above the run without energy.

Where the real perf is installed, the same control sequence the perf backend uses (start with
counters disabled, `enable` and its ack, `disable` and its ack, SIGINT, exit) is also timed on
the real perf with a software event (`cpu-clock`: this needs no power PMU), which is the figure
a real machine pays.

Run: .venv/bin/python bench/cpu_backend_overhead.py [--trials 20]
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
TARGET_MS = 50.0
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
        "energy": {"cpu": backend, "gpu": "none", "interval_s": 0.1},
        "experiments": [{"mode": "default", "repo": "fake", "model": "tiny"}]}))
    return registry, settings


def fake_hardware(folder: Path) -> dict[str, str]:
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
            "MUTATION_CPUFREQ_ROOT": str(folder / "no-cpufreq"), "FAKE_PERF_STARTUP_S": "0"}


def added_ms(folder: Path, backend: str, trials: int, environment: dict[str, str]) -> tuple[list[float], float]:
    """Per trial: attempt wall time minus training duration (ms); and the training's mean duration (ms)."""
    registry, settings = write_campaign(folder, trials, backend)
    results = folder / f"results-{backend}"
    completed = subprocess.run([sys.executable, str(PROJECT / "mutation.py"), "--registry", str(registry),
                                "--results-dir", str(results), "run", str(settings)],
                               env=environment, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        sys.exit(f"{backend}: the campaign failed ({completed.returncode}):\n{completed.stdout}{completed.stderr}")
    added, durations = [], []
    for record_file in sorted(results.glob("run_*/*/experiment.json")):
        attempt = json.loads(record_file.read_text())["attempts"][-1]
        added.append((attempt["wall_s"] - attempt["duration_s"]) * 1000)
        durations.append(attempt["duration_s"] * 1000)
    return added, statistics.mean(durations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="trainings per backend")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        fake = FakePowercap(folder / "powercap")
        fake.zone("intel-rapl:0", "package-0", 40.0, limit_w=65.0).zone("intel-rapl:0:0", "dram", 5.0)
        environment = {**os.environ, **fake_hardware(folder)}
        print(f"{args.trials} trainings per backend; per trial: attempt wall time - training duration")
        print(f"{'backend':<9} {'training ms':>11} {'added ms':>9} {'p90 ms':>7} {'max ms':>7} {'vs none':>8}  verdict")
        none_ms = None
        for backend in BACKENDS:
            # The thread that drives the counters runs only for RAPL, which reads them: on a small
            # machine it would otherwise slow the other backends' helpers down.
            with fake if backend == "rapl" else contextlib.nullcontext():
                added, training_ms = added_ms(folder, backend, args.trials, environment)
            mean_ms = statistics.mean(added)
            p90_ms = statistics.quantiles(added, n=10)[-1] if len(added) > 1 else mean_ms
            none_ms = mean_ms if backend == "none" else none_ms
            above = mean_ms - (none_ms or 0.0)
            verdict = "ok" if backend == "none" or above <= TARGET_MS else "OVER"
            print(f"{backend:<9} {training_ms:>11.1f} {mean_ms:>9.1f} {p90_ms:>7.1f} {max(added):>7.1f} "
                  f"{above:>+8.1f}  {verdict}")
    print(f"target: <= {TARGET_MS:g} ms per trial above the run without energy (none).")
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
