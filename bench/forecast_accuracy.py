"""How close `plan`'s forecasts come: each successful trial of a history predicted from the others.

Leave-one-out: for every successful row of the history's tables, the forecast is made from every
other row (planning/forecast.py, as `plan` makes it), and its absolute percentage error against what
the row measured is taken, for the duration and for the energy (the devices measured together).
Printed per repository and model: how many rows, the median error of each, and how the forecasts
were made (same configuration, scaled by epochs, other values).

Without --table it first makes a history: campaigns on the bundled example repository (the
quickstart's models, mutating epochs, learning rate, batch size and dropout), energy by the
estimate method at a 65 W TDP, in a temporary results folder. With --table, the tables given
(e.g. a migrated older project's history/*.csv, with its --registry).

Run: .venv/bin/python bench/forecast_accuracy.py [--runs 4] [--registry R --table T [--table T ...]]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from energy_profiler.config.registry import Registry, load_registry
from energy_profiler.model.values import NOT_PASSED
from energy_profiler.planning.forecast import predict
from energy_profiler.planning.history import History, Sample, load_history
from energy_profiler.planning.plan import Trial

PROJECT = Path(__file__).resolve().parents[1]


def example_history(folder: Path, runs: int) -> Path:
    """Campaigns on the example repository; the results folder's global table."""
    settings = folder / "history.json"
    settings.write_text(json.dumps({
        "experiment_name": "forecast-bench", "seed": 11, "energy": {"cpu": "estimate", "cpu_tdp_w": 65, "gpu": "none"},
        "experiments": [
            {"mode": "default", "repo": "examples", "model": "softmax", "runs_per_config": runs},
            {"mode": "mutation", "repo": "examples", "model": "softmax", "mutate": ["epochs", "learning_rate"],
             "runs_per_config": 2 * runs},
            {"mode": "default", "repo": "examples", "model": "mlp", "hyperparameters": {"epochs": 3},
             "runs_per_config": runs},
            {"mode": "mutation", "repo": "examples", "model": "mlp", "mutate": ["epochs", "batch_size"],
             "runs_per_config": 2 * runs},
            {"mode": "mutation", "repo": "examples", "model": "deep_mlp", "mutate": ["epochs", "dropout"],
             "runs_per_config": 2 * runs}]}))
    results = folder / "results"
    subprocess.run([sys.executable, str(PROJECT / "mutation.py"), "--results-dir", str(results), "-q", "run",
                    str(settings)], check=True, stdout=subprocess.DEVNULL)
    return results / "summary_all.csv"


def trial_of(sample: Sample, space: tuple[str, str, str, str], registry: Registry) -> Trial:
    """The trial a history row was: its repository, model, mode and values (company not needed: alone)."""
    repo, model, mode, _company = space
    names = list(registry.repositories[repo].models[model].hyperparameters)
    values = tuple((name, value) for name, value in zip(names, sample.key, strict=True) if value != NOT_PASSED)
    return Trial(index=1, experiment_index=0, run=1, mode=mode, repo=repo, model=model, hyperparameters=values,
                 mutated=(), argv=(), cwd="/", env=(), timeout_s=None,
                 not_passed=tuple(name for name, value in zip(names, sample.key, strict=True) if value == NOT_PASSED))


def leave_one_out(history: History, registry: Registry) -> dict[tuple[str, str], dict[str, list[float] | Counter[str]]]:
    found: dict[tuple[str, str], dict[str, list[float] | Counter[str]]] = {}
    for space, samples in history.samples.items():
        if space[3]:
            continue  # parallel trials: their backgrounds are not rebuilt here
        for trial_id, sample in list(samples.items()):
            del samples[trial_id]
            predicted = predict(trial_of(sample, space, registry), history, registry)
            samples[trial_id] = sample
            entry = found.setdefault((space[0], space[1]), {"duration": [], "energy": [], "basis": Counter()})
            basis = entry["basis"]
            assert isinstance(basis, Counter)
            basis[predicted.basis or "none"] += 1
            duration, energy = entry["duration"], entry["energy"]
            assert isinstance(duration, list) and isinstance(energy, list)
            if predicted.duration_s is not None and sample.duration_s > 0:
                duration.append(abs(predicted.duration_s - sample.duration_s) / sample.duration_s * 100)
            measured = [j for j in (sample.cpu_energy_j, sample.gpu_energy_j) if j is not None]
            if predicted.energy_j is not None and measured and sum(measured) > 0:
                energy.append(abs(predicted.energy_j - sum(measured)) / sum(measured) * 100)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=4, help="example history: runs per default experiment")
    parser.add_argument("--registry", type=Path, default=PROJECT / "repos" / "models.json")
    parser.add_argument("--table", type=Path, action="append", default=[], help="a history table (repeatable)")
    args = parser.parse_args()
    registry = load_registry(args.registry)
    with tempfile.TemporaryDirectory() as name:
        tables = args.table or [example_history(Path(name), args.runs)]
        history = load_history(tables, registry, dedup=False)
        found = leave_one_out(history, registry)
    print(f"leave-one-out over {', '.join(str(table) for table in tables)}")
    print(f"{'repo/model':<42} {'rows':>5} {'duration MdAPE':>15} {'energy MdAPE':>13}  forecast from")
    for (repo, model), entry in sorted(found.items()):
        duration, energy, basis = entry["duration"], entry["energy"], entry["basis"]
        assert isinstance(duration, list) and isinstance(energy, list) and isinstance(basis, Counter)
        shown = ", ".join(f"{word} {count}" for word, count in basis.most_common())
        print(f"{repo + '/' + model:<42} {sum(basis.values()):>5} {_median(duration):>15} {_median(energy):>13}  "
              f"{shown}")


def _median(errors: list[float]) -> str:
    return f"{statistics.median(errors):.0f} %" if errors else "-"


if __name__ == "__main__":
    main()
