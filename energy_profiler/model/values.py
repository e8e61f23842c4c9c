"""The canonical string of a hyperparameter value, and the number it stands for.

Every hyperparameter value that reaches a training, a record, a CSV cell or a dedup key goes
through `format_value`: comparing canonical strings (never floats, never the raw settings text) is
what makes `12`, `12.0` and `"12"` the same value, and `6.36e-05` stay `6.36e-05`.
"""

from __future__ import annotations

import math
from typing import Literal

ValueType = Literal["int", "float"]

NOT_PASSED = ""
"""The value of a hyperparameter that a `pass: "given"` repository leaves to the script. Part of a
configuration's key (so that rows which did not pass it compare equal), never on a command line."""


def format_value(value: float | int | str, value_type: ValueType) -> str:
    """The canonical command-line string of a value.

    ints: decimal digits (`12.0` and `"12"` become `12`). floats: Python's shortest string that
    reads back as the same double (`6.36e-05`, `0.001`, `3.0`). Raises ValueError for a value
    that is not of the type (`12.5` as an int) or not finite.
    """
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


def parse_value(text: str, value_type: ValueType) -> int | float:
    """The number a canonical string stands for (the inverse of `format_value`)."""
    canonical = format_value(text, value_type)
    return int(canonical) if value_type == "int" else float(canonical)


def canonical_to_number(text: str) -> int | float:
    """The JSON number of a canonical value string (ints are digits only; floats have '.' or 'e')."""
    return int(text) if text.lstrip("-").isdigit() else float(text)
