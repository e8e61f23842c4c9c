"""Soak: campaigns killed at random moments, then resumed; and a sweep of hostile settings files.

Kill-then-resume: each of N campaigns (default and parallel trials of the bundled fake training)
runs as its own `mutation.py` process and gets a random signal (SIGKILL, SIGINT, SIGTERM or
SIGHUP) at a random moment of its expected length. It is then resumed with `run FILE --resume`
until it finishes (a run killed before its plan existed is started anew). Counted: campaigns whose
summary.csv and summary_all.csv hold every planned trial exactly once, processes of the campaign
still alive 3 s after each kill (survivors), and ledgers left in results/.running.

Hostile sweep: M settings files made by mutating the bundled quickstart (a value replaced by a
random JSON value, a key dropped, bytes inserted or cut), each read by `plan` in-process. Counted
by outcome: exit 0, exit 2, anything else (a crash). Target: every campaign exact, no survivor, no
leftover ledger, no crash.

Run: .venv/bin/python bench/soak.py [--campaigns 20] [--files 500] [--seed 1]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from energy_profiler.cli import cli

PROJECT = Path(__file__).resolve().parents[1]

FAKE_TRAIN = PROJECT / "test" / "fixtures" / "fake_train.py"
TRIALS = 4
TRAINING_S = 0.4
SIGNALS = (signal.SIGKILL, signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def write_campaign(folder: Path) -> tuple[Path, Path]:
    repo = {"path": str(FAKE_TRAIN.parent), "command": [sys.executable, FAKE_TRAIN.name],
            "required_args": ["--behaviour", "busy", "--seconds", str(TRAINING_S)], "model_flag": "--model",
            "models": {"tiny": {}},
            "hyperparameters": {"epochs": {"flag": "--epochs", "type": "int", "default": 1, "range": [1, 9]}},
            "metrics": {"accuracy": {"pattern": r"accuracy: ([0-9.]+)", "required": True}}}
    registry = folder / "models.json"
    registry.write_text(json.dumps({"repositories": {"fake": repo}}))
    settings = folder / "soak.json"
    settings.write_text(json.dumps({"experiment_name": "soak", "seed": 1, "grace_s": 1, "experiments": [
        {"mode": "mutation", "repo": "fake", "model": "tiny", "mutate": ["epochs"], "runs_per_config": TRIALS - 1},
        {"mode": "parallel", "foreground": {"repo": "fake", "model": "tiny"},
         "background": {"repo": "fake", "model": "tiny"}}]}))
    return registry, settings


def tool(registry: Path, results: Path, *args: str | Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(PROJECT / "mutation.py"), "--registry", str(registry),
                             "--results-dir", str(results), "-q", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def survivors(marker: str) -> int:
    count = 0
    for process in psutil.process_iter(["cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        if marker in line and "bench/soak.py" not in line:
            count += 1
    return count


def trials_once(table: Path, run_id: str | None = None) -> bool:
    with open(table, newline="") as file:
        rows = [row for row in csv.DictReader(file) if run_id is None or row["run_id"] == run_id]
    names = [row["trial"] for row in rows]
    return len(names) == TRIALS and len(set(names)) == TRIALS and all(row["status"] == "success" for row in rows)


def soak_one(rng: random.Random, folder: Path) -> dict[str, Any]:
    registry, settings = write_campaign(folder)
    results = folder / "results"
    process = tool(registry, results, "run", settings)
    time.sleep(rng.uniform(0, TRIALS * (TRAINING_S + 0.6)))
    signum = rng.choice(SIGNALS)
    if process.poll() is None:
        process.send_signal(signum)
    process.wait(timeout=60)
    deadline = time.monotonic() + 3
    while survivors(str(folder)) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = survivors(str(folder))
    for _ in range(3):  # resume until it finishes
        runs = [run for run in results.glob("run_*") if (run / "plan.json").is_file()]
        finished = runs and trials_once(max(runs) / "summary.csv")
        if finished:
            break
        args: tuple[str | Path, ...] = ("run", settings, "--resume") if runs else ("run", settings)
        tool(registry, results, *args).wait(timeout=120)
    runs = [run for run in results.glob("run_*") if (run / "plan.json").is_file()]
    exact = bool(runs) and trials_once(max(runs) / "summary.csv") and trials_once(
        results / "summary_all.csv", max(runs).name)
    ledgers = list((results / ".running").glob("*.json")) if (results / ".running").is_dir() else []
    return {"signal": signal.Signals(signum).name, "exact": exact, "survivors": left, "ledgers": len(ledgers)}


def hostile_sweep(rng: random.Random, files: int, folder: Path) -> dict[str, int]:
    base = json.loads((PROJECT / "settings" / "quickstart.json").read_text())
    values: list[Any] = [None, True, -1, 0, 2.5, 10**20, 1e300, "", "x\n;$(touch pwned)", [], {}, [1, "a"],
                         {"a": {"b": []}}, float("nan"), float("inf")]
    outcomes = {"exit 0": 0, "exit 2": 0, "crash": 0}
    for number in range(files):
        document = json.loads(json.dumps(base))
        paths = _paths(document)
        path = rng.choice(paths)
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        action = rng.choice(["replace", "drop", "add"])
        if action == "replace":
            parent[path[-1]] = rng.choice(values)
        elif action == "drop" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[rng.choice(["runs_per_confg", "x", "epochs", "mode"])] = rng.choice(values)
        data = bytearray(json.dumps(document).encode())
        if rng.random() < 0.3:
            at = rng.randrange(len(data))
            data[at:at + rng.randint(0, 4)] = bytes(rng.randrange(256) for _ in range(rng.randint(0, 4)))
        file = folder / f"hostile_{number}.json"
        file.write_bytes(bytes(data))
        try:
            result = CliRunner().invoke(cli, ["--results-dir", str(folder / "r"), "plan", str(file)],
                                        catch_exceptions=False)
            outcomes[f"exit {result.exit_code}" if result.exit_code in (0, 2) else "crash"] += 1
        except Exception:  # a traceback is what this sweep looks for
            outcomes["crash"] += 1
    return outcomes


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = []
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in children:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=20)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()
    rng = random.Random(options.seed)
    with tempfile.TemporaryDirectory(prefix="mutation-soak-") as temporary:
        root = Path(temporary)
        outcomes = []
        for number in range(options.campaigns):
            folder = root / f"campaign_{number}"
            folder.mkdir()
            outcomes.append(soak_one(rng, folder))
        exact = sum(outcome["exact"] for outcome in outcomes)
        by_signal: dict[str, int] = {}
        for outcome in outcomes:
            by_signal[outcome["signal"]] = by_signal.get(outcome["signal"], 0) + 1
        print(f"kill-then-resume: {options.campaigns} campaigns of {TRIALS} trials "
              f"({', '.join(f'{name} {count}' for name, count in sorted(by_signal.items()))})")
        print(f"  every trial exactly once (summary.csv and summary_all.csv): {exact}/{options.campaigns}")
        print(f"  processes alive 3 s after the kill: {sum(outcome['survivors'] for outcome in outcomes)}")
        print(f"  ledgers left in results/.running: {sum(outcome['ledgers'] for outcome in outcomes)}")
        sweep_folder = root / "hostile"
        sweep_folder.mkdir()
        sweep = hostile_sweep(rng, options.files, sweep_folder)
        print(f"hostile settings: {options.files} files: " + ", ".join(f"{k} {v}" for k, v in sweep.items()))
        ok = exact == options.campaigns and not sweep["crash"] and not any(
            outcome["survivors"] or outcome["ledgers"] for outcome in outcomes)
        print("verdict: " + ("ok" if ok else "FAILED"))
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
