"""The canonical string of a hyperparameter value, and the number it stands for.

Every hyperparameter value that reaches a training, a record, a CSV cell or a dedup key goes
through `format_value`: comparing canonical strings (never floats, never the raw settings text) is
what makes `12`, `12.0` and `"12"` the same value, and `6.36e-05` stay `6.36e-05`.
"""

from __future__ import annotations

import math
from typing import Literal

ValueType = Literal["int", "float", "choice", "switch"]
"""int and float: numbers drawn from a range; choice: one of listed values (strings or numbers);
switch: a flag present (`true`) or absent (`false`)."""

SWITCH_VALUES = ("false", "true")

NOT_PASSED = ""
"""The value of a hyperparameter that a `pass: "given"` repository leaves to the script. Part of a
configuration's key (so that rows which did not pass it compare equal), never on a command line."""


def format_value(value: float | int | str | bool, value_type: ValueType) -> str:
    """The canonical command-line string of a value.

    ints: decimal digits (`12.0` and `"12"` become `12`). floats: Python's shortest string that
    reads back as the same double (`6.36e-05`, `0.001`, `3.0`). choices: a string as it is, a
    number as its int or float form. switches: `true` or `false` (also from a CSV's `True`).
    Raises ValueError for a value that is not of the type (`12.5` as an int) or not finite.
    """
    if value_type == "switch":
        if isinstance(value, bool):
            return SWITCH_VALUES[value]
        if isinstance(value, str) and value.lower() in SWITCH_VALUES:
            return value.lower()
        raise ValueError(f"{value!r} is not true or false")
    if value_type == "choice":
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is a boolean: a flag that is present or not is a switch")
        if isinstance(value, str):
            return value
        return format_value(value, "int" if isinstance(value, int) else "float")
    number = float(value) if isinstance(value, str) else value
    if isinstance(number, bool):
        raise ValueError(f"{value!r} is a boolean, not a number")
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    if value_type == "int":
        if float(number) != int(number):
            raise ValueError(f"{value!r} is not an integer")
        return str(int(number))
    return repr(float(number))


def parse_value(text: str, value_type: Literal["int", "float"]) -> int | float:
    """The number a canonical string stands for (the inverse of `format_value`)."""
    canonical = format_value(text, value_type)
    return int(canonical) if value_type == "int" else float(canonical)


def canonical_to_json(text: str) -> int | float | bool | str:
    """The JSON value of a canonical string, for experiment.json: exactly inverted by json_to_canonical.

    Digits are an int and a float's shortest form a float only when they read back as the same
    text (so a choice `012` or `1e3` stays a string); `true`/`false` are a switch's booleans.
    """
    if text in SWITCH_VALUES:
        return text == "true"
    try:
        if str(int(text)) == text:
            return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) and repr(number) == text else text


def json_to_canonical(value: int | float | bool | str) -> str:
    """The canonical string of a value as experiment.json holds it (see canonical_to_json)."""
    if isinstance(value, bool):
        return SWITCH_VALUES[value]
    if isinstance(value, str):
        return value
    return format_value(value, "int" if isinstance(value, int) else "float")
