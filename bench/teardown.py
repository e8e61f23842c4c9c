"""Teardown latency of background loops: from the first SIGTERM to "no process of the group left".

Each trial starts a real generated background loop (the code parallel mode uses) running a Python
training that either exits on SIGTERM (cooperative) or ignores it, waits for its first run, then
ends it and records the teardown time and survivors. Targets: p95 <= 0.2 s cooperative,
<= grace + 0.2 s for SIGTERM-ignoring loops, zero survivors.

Run: .venv/bin/python bench/teardown.py [--trials 50] [--grace-s 0.5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from energy_profiler.planning.placeholders import WorkloadDirs
from energy_profiler.planning.plan import BackgroundRun
from energy_profiler.process.background import Backgrounds

TRAININGS = {  # each says "ready" once it runs (and ignores SIGTERM, for the second)
    "cooperative": "import time; print('ready', flush=True); time.sleep(600)",
    "ignores SIGTERM": "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                       "print('ready', flush=True); time.sleep(600)",
}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(kind: str, trials: int, grace_s: float, folder: Path) -> tuple[list[float], int, list[str]]:
    run = BackgroundRun(index=1, repo="bench", model=kind, hyperparameters=(), restart_delay_s=0,
                        argv=(sys.executable, "-c", TRAININGS[kind]), cwd=str(folder), env=(), gpu_memory_mib=None)
    latencies, survivors, signals = [], 0, []
    for trial in range(trials):
        attempt = folder / f"{kind.split(maxsplit=1)[0]}_{trial:03d}"
        backgrounds = Backgrounds([run], WorkloadDirs(folder, attempt, attempt), f"bench_{trial}")
        warnings = backgrounds.start(lambda: False)
        if warnings:
            raise RuntimeError(warnings)
        first_run = backgrounds.logs / "bg1_run_1.log"
        while "ready" not in first_run.read_text():  # a real training is running, not just starting
            time.sleep(0.005)
        (result,) = backgrounds.stop(grace_s, lambda: False, folder)
        latencies.append(result.teardown_s)
        survivors += result.survivors
        signals.append(result.signal or "none")
    return latencies, survivors, signals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--grace-s", type=float, default=0.5)
    args = parser.parse_args()
    targets = {"cooperative": 0.2, "ignores SIGTERM": args.grace_s + 0.2}
    print(f"{args.trials} trials per kind, grace {args.grace_s:g} s")
    columns = ["background".ljust(16), "p50 s".rjust(6), "p95 s".rjust(6), "max s".rjust(6), "target".rjust(7),
               "signal".ljust(8), "survivors", "verdict"]
    print("  ".join(columns))
    with tempfile.TemporaryDirectory() as name:
        for kind, target in targets.items():
            latencies, survivors, signals = measure(kind, args.trials, args.grace_s, Path(name))
            p95 = percentile(latencies, 0.95)
            verdict = "ok" if p95 <= target and survivors == 0 else "FAIL"
            print(f"{kind:<16}  {statistics.median(latencies):>6.3f}  {p95:>6.3f}  {max(latencies):>6.3f}  "
                  f"{target:>6.2f}s  {statistics.mode(signals):<8}  {survivors:>9}  {verdict}")


if __name__ == "__main__":
    main()
