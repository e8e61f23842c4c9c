"""What running trials as Slurm jobs costs, against running the same trials here.

Method: start the test suite's real Slurm (test/slurm_cluster.py: munged, slurmctld and two slurmd
"nodes" on loopback; needs root and `make slurm`), then run one campaign of N trials of the bundled
example training (`repos/examples`, mlp, 1 epoch) three times as its own `mutation.py run` process:
locally, on Slurm one trial at a time (`max_parallel` 1) and on Slurm two at a time (two nodes).
Each run's wall time includes the interpreter start, the plan, every trial and the closing table;
the Slurm runs also include the check job (`shared_check_s`), the job array's submission, each job's
start on its node (a new interpreter that imports the tool and probes the hardware) and the
submitter's one-second polling. Per trial: (Slurm wall - local wall) / N at max_parallel 1.

Run (as root): .venv/bin/python bench/slurm_overhead.py [--trials 8]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]


def settings(folder: Path, trials: int, executor: Any) -> Path:
    path = folder / f"bench_{'local' if executor == 'local' else executor['slurm']['max_parallel']}.json"
    path.write_text(json.dumps({
        "experiment_name": "slurm_overhead", "seed": 1, "executor": executor,
        "experiments": [{"mode": "mutation", "repo": "examples", "model": "mlp", "mutate": ["learning_rate"],
                         "hyperparameters": {"epochs": 1}, "runs_per_config": trials}]}))
    return path


def campaign(settings_file: Path, results: Path, environment: dict[str, str]) -> float:
    """Wall seconds of one `mutation.py run`, which must record every trial."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(PROJECT / "mutation.py"), "--results-dir", str(results), "-q", "run",
                           str(settings_file)], env=environment, capture_output=True, text=True, check=False)
    wall_s = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{settings_file.name}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    return wall_s


def gaps_s(run_dir: Path) -> list[float]:
    """Seconds from each trial's end to the next trial's start (the trials' own timestamps)."""
    spans = sorted((datetime.fromisoformat(record["start_utc"]), datetime.fromisoformat(record["end_utc"]))
                   for record in (json.loads(path.read_text()) for path in run_dir.glob("*/experiment.json")))
    return [(later[0] - earlier[1]).total_seconds() for earlier, later in pairwise(spans)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    sys.path.insert(0, str(PROJECT))
    slurm_cluster = importlib.import_module("test.slurm_cluster")  # the test suite's cluster, not an installed one
    if missing := slurm_cluster.missing_programs():
        raise SystemExit(f"Slurm is not installed ({', '.join(missing)} missing): run `make slurm` as root")
    with tempfile.TemporaryDirectory(prefix="slurm-bench-") as temporary:
        root = Path(temporary)
        cluster = slurm_cluster.SlurmCluster(root / "cluster")
        cluster.start()
        try:
            # As an installed tool runs: with its bytecode cached (some sandboxes turn that off).
            environment = {k: v for k, v in cluster.environment.items() if k != "PYTHONDONTWRITEBYTECODE"}
            figures: dict[str, float] = {}
            between: dict[str, list[float]] = {}
            for label, executor in (("local", "local"), ("slurm, max_parallel 1", {"slurm": {"max_parallel": 1}}),
                                    ("slurm, max_parallel 2", {"slurm": {"max_parallel": 2}})):
                figures[label] = campaign(settings(root, args.trials, executor), root / "results", environment)
                between[label] = gaps_s(max((root / "results").glob("run_*")))
        finally:
            cluster.stop()
    local = figures["local"]
    print(f"{args.trials} trials of repos/examples mlp (1 epoch), {os.cpu_count()} cores, Slurm on loopback:")
    for label, wall_s in figures.items():
        gap = ("" if label.endswith("2") else  # two at a time, the trials overlap
               f"; from one trial's end to the next one's start: median {statistics.median(between[label]):.2f} s")
        print(f"  {label:<22} {wall_s:6.1f} s in all, {wall_s / args.trials:5.2f} s per trial{gap}")
    print(f"Slurm's cost per trial, one at a time: {(figures['slurm, max_parallel 1'] - local) / args.trials:+.2f} s "
          "(check job, submission, job start, a new interpreter per job, polling)")


if __name__ == "__main__":
    main()
