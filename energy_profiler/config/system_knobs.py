"""The system knobs a registry may declare: machine settings mutated like hyperparameters.

A knob is not passed to the training: the tool sets it on the machine before a trial's window
opens and restores it afterwards (system/knobs.py does that). Each has a fixed value type and unit
(the registry schema holds the types).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KnobKind:
    name: str
    what: str
    """What the tool sets, for `list`."""


KNOB_KINDS: dict[str, KnobKind] = {kind.name: kind for kind in (
    KnobKind("gpu_power_limit_w",
             "the board power limit of each measured GPU, in watts (NVML, milliwatts underneath)"),
    KnobKind("gpu_sm_clock_mhz",
             "locked SM clocks of each measured GPU, in MHz (NVML locked clocks, reset afterwards)"),
    KnobKind("cpu_max_freq_khz", "each CPU's cpufreq scaling_max_freq, in kHz"),
    KnobKind("cpu_governor",
             "each CPU's cpufreq scaling_governor, for the trial (over the campaign's `governor`)"),
)}
KNOB_NAMES = tuple(KNOB_KINDS)
