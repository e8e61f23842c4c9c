"""The report's statistics: rank correlations with n and a confidence interval, Pareto fronts.

A rank correlation from 3 trials can be −1.00 by chance, so every rho carries its n and, from 10
pairs, a 95 % interval: a percentile bootstrap (fixed seed, so a report is reproducible) up to BOOTSTRAP_MAX_N
pairs, above that the Fisher z interval with Fieller's variance 1.06 / (n − 3), which is accurate
for large n and costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

LOWER_IS_BETTER = ("loss", "error", "perplexity", "time")
MIN_PAIRS_FOR_INTERVAL = 10
"""Below this, resamples of so few points repeat the same ranks: a bootstrap of 3 perfectly ordered
points gives [-1, -1], a certainty the data cannot carry. The rho is shown with its n only."""
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_MAX_N = 400
BOOTSTRAP_SEED = 0
Z_95 = 1.959964


@dataclass(frozen=True)
class Correlation:
    rho: float
    n: int
    low: float | None
    high: float | None
    method: str
    """How the interval was obtained: `bootstrap`, `fisher-z`, or `none` below MIN_PAIRS_FOR_INTERVAL."""

    def text(self) -> str:
        if self.low is None or self.high is None:
            return f"{self.rho:+.2f}"  # the table's legend says once: no interval below 10 pairs
        return f"{self.rho:+.2f} [{self.low:+.2f}, {self.high:+.2f}]"


def higher_is_better(metric: str) -> bool:
    return not any(word in metric.lower() for word in LOWER_IS_BETTER)


def _floats(values: pd.Series | np.ndarray) -> np.ndarray:
    if isinstance(values, pd.Series):
        return values.to_numpy(dtype=float, na_value=np.nan)
    return np.asarray(values, dtype=float)


def _numeric_pairs(x: pd.Series | np.ndarray, y: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = _floats(x), _floats(y)
    both = ~np.isnan(xs) & ~np.isnan(ys)
    return xs[both], ys[both]


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson's r of each row of `a` with the same row of `b` (NaN where a row is constant)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((a * b).sum(axis=1) / denominator)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks as one row (ties share their mean rank, as Spearman's rho needs)."""
    return np.atleast_2d(pd.Series(values).rank().to_numpy())


def _resampled_ranks(values: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """Average ranks of values[picks] within each row of `picks`, without sorting each resample.

    A value's rank in a sample is (how many are smaller) + (how many are equal + 1) / 2; counting
    the resample's copies of each distinct value gives both for a whole row at once. Ranking 1000
    resamples row by row was most of a mid-sized report's time.
    """
    levels, level_of = np.unique(values, return_inverse=True)
    resamples, distinct = picks.shape[0], len(levels)
    picked = level_of[picks]
    flat = (picked + np.arange(resamples)[:, None] * distinct).ravel()
    counts = np.bincount(flat, minlength=resamples * distinct).reshape(resamples, distinct)
    smaller = np.cumsum(counts, axis=1) - counts
    return np.take_along_axis(smaller + (counts + 1) / 2, picked, axis=1)


def spearman(x: pd.Series | np.ndarray, y: pd.Series | np.ndarray) -> Correlation | None:
    """Spearman's rho over the rows where both are numbers (two numeric series or arrays of the same
    rows), with n and a 95 % interval from MIN_PAIRS_FOR_INTERVAL pairs; None below 2 pairs or where
    either side is constant. 2 and 3 pairs are shown alike (rho and n, no interval)."""
    xs, ys = _numeric_pairs(x, y)
    n = len(xs)
    if n < 2 or xs.min() == xs.max() or ys.min() == ys.max():
        return None
    rho = float(_pearson_rows(_ranks(xs), _ranks(ys))[0])
    if n < MIN_PAIRS_FOR_INTERVAL:
        return Correlation(rho, n, None, None, "none")
    if n <= BOOTSTRAP_MAX_N:
        generator = np.random.default_rng(BOOTSTRAP_SEED)
        picks = generator.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))
        resampled = _pearson_rows(_resampled_ranks(xs, picks), _resampled_ranks(ys, picks))
        resampled = resampled[~np.isnan(resampled)]  # a resample with one distinct value has no rho
        low, high = (np.percentile(resampled, [2.5, 97.5]) if resampled.size else (-1.0, 1.0))
        return Correlation(rho, n, float(low), float(high), "bootstrap")
    clipped = min(max(rho, -0.999999), 0.999999)
    z, spread = math.atanh(clipped), Z_95 * math.sqrt(1.06 / (n - 3))
    return Correlation(rho, n, math.tanh(z - spread), math.tanh(z + spread), "fisher-z")


def pareto_front(energy: Sequence[float] | np.ndarray, metric: Sequence[float] | np.ndarray,
                 higher_better: bool) -> list[int]:
    """Indices of the trials no other trial beats on both (less energy and a better metric), by energy.

    In energy order (ties: the better metric first) a trial is on the front when its metric beats
    every trial before it: one sort and a running best, no Python per trial.
    """
    joules = np.asarray(energy, dtype=float)
    better = np.asarray(metric, dtype=float) * (1.0 if higher_better else -1.0)  # larger is better now
    if not len(joules):
        return []
    order = np.lexsort((-better, joules))
    ranked = better[order]
    best_before = np.concatenate(([-np.inf], np.maximum.accumulate(ranked)[:-1]))
    return [int(index) for index in order[ranked > best_before]]


def staircase(energy: Sequence[float], metric: Sequence[float], upto: float) -> tuple[list[float], list[float]]:
    """The front as steps: the best metric reachable stays level until the next front trial's energy.

    A straight line between two front trials would claim trade-offs that no trial achieved.
    """
    xs: list[float] = []
    ys: list[float] = []
    for index, (joules, value) in enumerate(zip(energy, metric, strict=True)):
        if index:
            xs.append(joules)
            ys.append(ys[-1])
        xs.append(joules)
        ys.append(value)
    if xs and upto > xs[-1]:
        xs.append(upto)
        ys.append(ys[-1])
    return xs, ys


def spread(values: pd.Series) -> str:
    """`median (min–max)` of the numbers: a description of what a search tried, not a noise estimate."""
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    if numbers.empty:
        return "missing"
    if len(numbers) == 1 or numbers.min() == numbers.max():
        return f"{numbers.iloc[0]:.4g}"
    return f"{numbers.median():.4g} ({numbers.min():.4g}–{numbers.max():.4g})"
