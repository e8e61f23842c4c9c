"""How many digits a measured float keeps in experiment.json, energy.json and summary.csv.

The rule, by the unit at the end of a field's name (a dict under such a name, like `events_j`,
passes its unit to its values):

- `_j` (energy) to 1 mJ: the NVML counter's unit; RAPL counts in ~15 µJ steps, but a reading's
  timing (a millisecond at tens of watts) already blurs it by more than a millijoule;
- `_w` (power) to 1 mW: NVML reports mW, nvidia-smi 10 mW;
- `_s` (durations, CPU times) to 1 µs, the resolution of the clocks and of getrusage;
- `_pct` and `_c` to 0.01, `_mib` to 0.001: means of integer readings;
- any other float to 12 significant digits, which removes binary noise (34.380433000000004 is
  written 34.380433) and changes no measured digit.

Canonical hyperparameter strings and metric values scraped from logs are never rounded here.
"""

from __future__ import annotations

import math
from typing import Any

DECIMALS_BY_UNIT = (("_j", 3), ("_w", 3), ("_s", 6), ("_pct", 2), ("_c", 2), ("_mib", 3))
SIGNIFICANT_DIGITS = 12


def _decimals(name: str) -> int | None:
    return next((decimals for unit, decimals in DECIMALS_BY_UNIT if name.endswith(unit)), None)


def round_float(value: float, decimals: int | None) -> float:
    if not math.isfinite(value):  # NaN and infinities stay what they are
        return value
    if decimals is not None:
        return round(value, decimals) + 0.0  # + 0.0: never a -0.0
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def rounded(value: Any, name: str = "", decimals: int | None = None) -> Any:
    """`value` with every float in it rounded by the rule above (`name`: the field it is under)."""
    own = _decimals(name)
    decimals = own if own is not None else decimals
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return round_float(value, decimals)
    if isinstance(value, dict):
        return {key: rounded(item, str(key), decimals) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(rounded(item, name, decimals) for item in value)
    return value
