"""What each planned trial will take, predicted from the successful trials the history holds.

Comparable trials are those of the same repository, model, mode and backgrounds (the history's
space). The prediction is the median of the closest of them: the same configuration where the
history has it; else, for a model with an epochs-like integer hyperparameter whose value the trial
changes, the history's per-epoch figures times the trial's value, when the history shows that
relation (it holds several values, and per epoch its figures spread less than whole); else every
comparable trial, saying that the value differs. Each prediction names its basis: how many trials,
the median and the p10-p90 spread. No comparable trial: empty, with the reason, never 0.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from energy_profiler.config.registry import Registry
from energy_profiler.model.values import NOT_PASSED
from energy_profiler.planning.history import History, Sample, company_key
from energy_profiler.planning.plan import Trial

EPOCH_NAMES = ("epochs", "epoch", "max_epochs", "num_epochs", "n_epochs", "num_train_epochs", "iterations",
               "max_iter", "steps", "max_steps", "num_steps", "train_steps")
"""Integer hyperparameters a training's cost grows with, by name."""


@dataclass(frozen=True)
class Prediction:
    duration_s: float | None
    energy_j: float | None
    """The measured devices' energy together (the history's trials that measured any)."""
    cpu_energy_j: float | None
    gpu_energy_j: float | None
    n: int
    """How many comparable trials the prediction is the median of (0: none)."""
    reason: str
    """Its basis (`median of 5 runs of the same configuration, p10-p90 12.1-14.0 s`), or why it is empty."""
    basis: str = ""
    """In a word: `same` configuration, `scaled` by epochs, `other` values (not scaled); empty: none."""


def predict(trial: Trial, history: History | None, registry: Registry) -> Prediction:
    """The trial's predicted duration and energy from the history's successful comparable trials."""
    where = f"{trial.repo}/{trial.model} {trial.mode}"
    samples = _comparable(trial, history)
    if not samples:
        return Prediction(None, None, None, None, 0, f"no successful {where} run in the history")
    names = list(registry.repositories[trial.repo].models[trial.model].hyperparameters)
    key = _key(trial, names)
    same = [sample for sample in samples if sample.key == key]
    if same:
        return _median(same, "of the same configuration", "same")
    epochs = next((names.index(name) for name in EPOCH_NAMES if name in names), None)
    if epochs is not None and key[epochs] != NOT_PASSED:
        wanted = float(key[epochs])
        scaled = _per_epoch(samples, epochs, wanted)
        if scaled is not None:
            return _median(scaled, f"of {where}, scaled to {names[epochs]}={key[epochs]} (per {names[epochs]}: "
                                   "the history shows the cost grows with it)", "scaled")
        unscaled = f"of {where} with other values, {names[epochs]} not scaled: the history does not show the " \
                   f"cost growing with it"
        return _median(samples, unscaled, "other")
    return _median(samples, f"of {where} with other values", "other")


def _comparable(trial: Trial, history: History | None) -> list[Sample]:
    if history is None:
        return []
    company = company_key((run.repo, run.model, run.hyperparameters) for run in trial.background)
    return list(history.samples.get((trial.repo, trial.model, trial.mode, company), {}).values())


def _key(trial: Trial, names: Sequence[str]) -> tuple[str, ...]:
    values = dict(trial.hyperparameters)
    return tuple(NOT_PASSED if name in trial.not_passed else values.get(name, NOT_PASSED) for name in names)


def _per_epoch(samples: Sequence[Sample], position: int, wanted: float) -> list[Sample] | None:
    """The samples scaled to `wanted` epochs, when their epochs vary and explain the duration: per epoch,
    the durations spread less than whole. None when the history does not show that."""
    usable = [sample for sample in samples if sample.key[position] not in (NOT_PASSED, "") and
              float(sample.key[position]) > 0]
    if len({sample.key[position] for sample in usable}) < 2:
        return None
    per_epoch = [sample.duration_s / float(sample.key[position]) for sample in usable]
    if _spread(per_epoch) >= _spread([sample.duration_s for sample in usable]):
        return None

    def scaled(sample: Sample) -> Sample:
        factor = wanted / float(sample.key[position])
        return Sample(sample.key, sample.duration_s * factor,
                      sample.cpu_energy_j * factor if sample.cpu_energy_j is not None else None,
                      sample.gpu_energy_j * factor if sample.gpu_energy_j is not None else None)

    return [scaled(sample) for sample in usable]


def _spread(values: Sequence[float]) -> float:
    """Relative spread: the p10-p90 range over the median."""
    low, middle, high = _quantiles(values)
    return (high - low) / middle if middle > 0 else float("inf")


def _quantiles(values: Sequence[float]) -> tuple[float, float, float]:
    """p10, median, p90 (the values themselves when there are too few to interpolate)."""
    ordered = sorted(values)
    if len(ordered) < 2:
        return ordered[0], ordered[0], ordered[0]
    deciles = statistics.quantiles(ordered, n=10, method="inclusive")
    return deciles[0], statistics.median(ordered), deciles[-1]


def _median(samples: Sequence[Sample], basis: str, word: str) -> Prediction:
    durations = [sample.duration_s for sample in samples]
    totals = [sum(j for j in (sample.cpu_energy_j, sample.gpu_energy_j) if j is not None) for sample in samples
              if sample.cpu_energy_j is not None or sample.gpu_energy_j is not None]
    cpu = [sample.cpu_energy_j for sample in samples if sample.cpu_energy_j is not None]
    gpu = [sample.gpu_energy_j for sample in samples if sample.gpu_energy_j is not None]
    low_s, duration_s, high_s = _quantiles(durations)
    notes = [f"p10-p90 {low_s:.3g}-{high_s:.3g} s"] if len(samples) > 1 else []
    if totals and len(totals) > 1:
        low_j, _, high_j = _quantiles(totals)
        notes.append(f"{low_j:.3g}-{high_j:.3g} J")
    if not totals:
        notes.append("no energy measured in them" if len(samples) > 1 else "no energy measured in it")
    counted = f"median of {len(samples)} runs" if len(samples) > 1 else "1 run"
    return Prediction(duration_s, statistics.median(totals) if totals else None,
                      statistics.median(cpu) if cpu else None, statistics.median(gpu) if gpu else None,
                      len(samples), f"{counted} {basis}" + (f"; {', '.join(notes)}" if notes else ""), word)


def between_trials_s(history: History | None, cooldown_of: Callable[[str], float | None]) -> tuple[float, int] | None:
    """What a trial costs besides its training (monitors, baselines, records, the next start), measured
    in the history: the median gap between a campaign's consecutive trainings less that campaign's
    cool-down, over the campaigns whose cool-down is known (`cooldown_of(run_id)`); with how many gaps.
    None when the history has none."""
    if history is None:
        return None
    gaps = []
    for run_id, spans in history.spans.items():
        cooldown_s = cooldown_of(run_id)
        if cooldown_s is None:
            continue
        ordered = sorted(spans.values())
        gaps += [max(0.0, later[0] - earlier[1] - cooldown_s) for earlier, later in pairwise(ordered)]
    return (statistics.median(gaps), len(gaps)) if gaps else None
