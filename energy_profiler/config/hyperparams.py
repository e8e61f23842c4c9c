"""Hyperparameter values: the one canonical string form, and random draws.

Every hyperparameter value that reaches a training, a record, a CSV cell or a dedup key goes
through `format_value`. Comparing canonical strings (never floats, never the raw settings text)
is what makes `12`, `12.0` and `"12"` the same value, and `6.36e-05` stay `6.36e-05`.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from energy_profiler.model.values import NOT_PASSED, SWITCH_VALUES, ValueType, format_value

Distribution = Literal["uniform", "log_uniform"]

DEFAULT_FLOAT_PRECISION = 3
"""Significant digits kept when a float is drawn: 0.0123 rather than 0.012345678901234."""


@dataclass(frozen=True)
class HyperparameterSpec:
    """One tunable hyperparameter of a model, as the registry describes it."""

    name: str
    flag: str
    type: ValueType
    default: float | str | bool | None
    """A number for int and float, one of `values` for a choice, a boolean for a switch; None only for a
    system knob declared without one (the machine's own value, left as it is)."""
    low: float
    high: float
    """The range drawn from (int and float; 0 for a choice or a switch)."""
    distribution: Distribution = "uniform"
    zero_probability: float = 0.0
    precision: int = DEFAULT_FLOAT_PRECISION
    limits: tuple[float, float] | None = None
    """What a fixed value (and the default) may be; None: the range. Mutation draws from the range only."""
    values: tuple[str, ...] = ()
    """A choice's values, as canonical strings; a switch's are SWITCH_VALUES."""
    seed: bool = False
    """A random seed (`"seed": true`): `mutate: ["all"]` leaves it out; named in mutate, it is drawn."""
    knob: bool = False
    """A system knob (the registry's `system` block): the tool sets it on the machine, no flag is passed,
    and `mutate: ["all"]` leaves it out."""

    @property
    def default_text(self) -> str:
        """The default's canonical string, or NOT_PASSED for a knob without one (left as the machine has it)."""
        return NOT_PASSED if self.default is None else format_value(self.default, self.type)

    @property
    def discrete_values(self) -> tuple[str, ...] | None:
        """The values of a choice or a switch (None for numbers)."""
        if self.type == "switch":
            return SWITCH_VALUES
        return self.values if self.type == "choice" else None

    def drawable(self, canonical: str) -> bool:
        """Whether a draw can produce this value: one of the discrete values, in the range, or a drawable 0
        (unlike `accepts`, which allows the wider limits a fixed value may use)."""
        discrete = self.discrete_values
        if discrete is not None:
            return canonical in discrete
        number = float(canonical)
        return self.low <= number <= self.high or (number == 0 and self.zero_probability > 0)

    def accepts(self, canonical: str) -> bool:
        """Whether a fixed value (its canonical string) is one this hyperparameter may take."""
        discrete = self.discrete_values
        return canonical in discrete if discrete is not None else self.allows(float(canonical))

    @property
    def bounds(self) -> tuple[float, float]:
        """The limits a fixed value must keep: `limits`, else the range."""
        return self.limits if self.limits is not None else (self.low, self.high)

    def allows(self, value: float) -> bool:
        """Whether a fixed value is one this hyperparameter may take: inside its limits, or a drawable 0."""
        low, high = self.bounds
        if low <= value <= high:
            return True
        return value == 0 and self.zero_probability > 0

    def bounds_text(self) -> str:
        """`the range [1, 20]`, `the limits [1, 300] (range [100, 300])`, or `the values 'adam', 'sgd'`."""
        discrete = self.discrete_values
        if discrete is not None:
            return "the values " + ", ".join(repr(value) for value in discrete)
        low, high = self.bounds
        if self.limits is None:
            return f"the range [{low:g}, {high:g}]"
        return f"the limits [{low:g}, {high:g}] (mutation range [{self.low:g}, {self.high:g}])"


def narrowed(spec: HyperparameterSpec, bounds: Sequence[float | str | bool]) -> HyperparameterSpec | str:
    """`spec` drawing only from `bounds` (a settings file's `ranges`), or why that cannot be.

    Numbers: `[low, high]` inside the registry's range (a campaign may narrow it, never widen it);
    a choice: the values to draw from, each one of the registry's.
    """
    if spec.type == "switch":
        return "a switch has only false and true: to keep one, fix it in hyperparameters"
    if spec.type == "choice":
        chosen = []
        for value in bounds:
            try:
                text = format_value(value, "choice")
            except ValueError as error:
                return str(error)
            if text not in spec.values:
                return f"{text!r} is not one of {spec.bounds_text()}"
            chosen.append(text)
        return replace(spec, values=tuple(dict.fromkeys(chosen)))
    numbers = [value for value in bounds if isinstance(value, int | float) and not isinstance(value, bool)]
    if len(bounds) != 2 or len(numbers) != 2:
        return f"expected [low, high], two numbers, got {json.dumps(list(bounds))}"
    low, high = numbers
    if low > high:
        return f"low end {low:g} is above high end {high:g}"
    if spec.type == "int" and (low != int(low) or high != int(high)):
        return f"[{low:g}, {high:g}] are not integers"
    if not spec.low <= low <= high <= spec.high:
        return (f"[{low:g}, {high:g}] is not inside the range [{spec.low:g}, {spec.high:g}] of the registry "
                "(a campaign narrows a range, never widens it)")
    if spec.distribution == "log_uniform" and low <= 0:
        return "log_uniform needs a range above 0"
    if spec.type == "int":
        return replace(spec, low=int(low), high=int(high))
    return replace(spec, low=float(low), high=float(high))


def round_significant(value: float, digits: int) -> float:
    """`value` rounded to `digits` significant digits (0 stays 0)."""
    if value == 0:
        return 0.0
    return float(f"{value:.{digits - 1}e}")


def draw(spec: HyperparameterSpec, rng: random.Random) -> str:
    """One random value for `spec`, as its canonical string.

    With probability `zero_probability` the value is 0 (a regulariser switched off, say).
    Otherwise it is drawn from [low, high]: uniform, or uniform in log space. Integers drawn
    log-uniformly have P(k) proportional to log((k+1)/k), the discrete form of that density.
    """
    discrete = spec.discrete_values
    if discrete is not None:
        return rng.choice(discrete)  # uniform over a choice's values, or a switch's off and on
    if spec.zero_probability > 0 and rng.random() < spec.zero_probability:
        return format_value(0, spec.type)
    if spec.type == "int":
        low, high = int(spec.low), int(spec.high)
        if spec.distribution == "uniform":
            return format_value(rng.randint(low, high), "int")
        # floor(exp(U(log lo, log(hi + 1)))) lands on k with probability log((k+1)/k) / norm.
        drawn = math.floor(math.exp(rng.uniform(math.log(low), math.log(high + 1))))
        return format_value(min(max(drawn, low), high), "int")
    if spec.distribution == "uniform":
        value = rng.uniform(spec.low, spec.high)
    else:
        value = math.exp(rng.uniform(math.log(spec.low), math.log(spec.high)))
    # Rounding can step just outside the range (0.99951 -> 1.0 with high 0.9995): clamp.
    rounded = round_significant(value, spec.precision)
    return format_value(min(max(rounded, spec.low), spec.high), "float")


def value_count(spec: HyperparameterSpec) -> int | None:
    """How many distinct values a draw can produce, or None when effectively unbounded (floats)."""
    discrete = spec.discrete_values
    if discrete is not None:
        return len(discrete)
    if spec.type == "float":
        return None
    count = int(spec.high) - int(spec.low) + 1
    zero_outside_range = not spec.low <= 0 <= spec.high
    if spec.zero_probability > 0 and zero_outside_range:
        count += 1
    return count
