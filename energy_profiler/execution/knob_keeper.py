"""A trial's system knobs: checked before the first trial, set before its window, restored after it.

Order for each trial that sets a knob: the machine's values are read and written to the
campaign's ledger (so that the watchdog, should mutation.py be killed, and `cleanup`, should the
machine stop, can write them back), the knobs are set and read back, `knob_settle_s` passes, the
trial runs, and the values are written back. The campaign's cleanup restores once more at the end,
which covers an exception or a signal in between.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from energy_profiler.config.energy_settings import EnergySettings
from energy_profiler.config.errors import ConfigError, ConfigIssue, format_path
from energy_profiler.config.settings import Settings
from energy_profiler.energy.selection import gpus_for
from energy_profiler.execution.journal import Events
from energy_profiler.execution.runtime import StopRequest, sleep_unless_stopped
from energy_profiler.model.knob_fields import APPLIED_COLUMNS, KnobsApplied
from energy_profiler.model.values import canonical_to_json
from energy_profiler.planning.plan import Plan, Trial
from energy_profiler.process.ledger import Ledger
from energy_profiler.system import knobs
from energy_profiler.system.governor import cpufreq_root
from energy_profiler.system.gpu_knobs import KnobError


def trial_knobs(trial: Trial) -> dict[str, str]:
    """The knobs a trial sets, {name: canonical value} (a knob left as the machine has it is not listed)."""
    return {name: value for name, value in trial.hyperparameters if name in APPLIED_COLUMNS}


def machine_for(trial: Trial, settings: Settings) -> knobs.Machine:
    """Where the trial's knobs go: the GPUs it measures (energy.gpus, else CUDA_VISIBLE_DEVICES, else
    every GPU) and every CPU."""
    return knobs.Machine(gpus_for(settings.energy, {**os.environ, **dict(trial.env)}), cpufreq_root())


def check_on_machine(plan: Plan, settings: Settings) -> None:
    """Before the first trial: every knob the plan sets can be set here, to each planned value.

    ConfigError at the value's JSON path (a fixed value, else the experiment's mutate entry) for
    values the machine does not take; KnobError for a knob this process cannot set (not root, no
    NVML, no cpufreq). Nothing is changed.
    """
    problems: list[str] = []
    limits: dict[tuple[str, Any], tuple[float, float] | tuple[str, ...]] = {}
    refused: dict[tuple[str | int, ...], tuple[str, knobs.Machine, Any, list[str]]] = {}
    for trial in plan.trials:
        machine = machine_for(trial, settings)
        for name, value in trial_knobs(trial).items():
            key = (name, machine.gpus if name in knobs.GPU_KNOBS else None)
            if key not in limits:
                if (why := knobs.why_not(name, machine)) is not None:
                    where = _where(trial, name, settings)
                    named = "" if where[-1] == name else f"{name} "  # a mutate entry's path does not name it
                    problems.append(f"{format_path(where)}: {named}cannot be set here: {why}")
                    limits[key] = ()
                    continue
                limits[key] = knobs.allowed(name, machine)
            if limits[key] and not knobs.takes(name, value, limits[key]):
                _, _, _, values = refused.setdefault(_where(trial, name, settings), (name, machine, limits[key], []))
                values.append(value)
    if problems:
        raise KnobError(*(f"{settings.file}: {problem}" for problem in dict.fromkeys(problems)))
    if refused:
        raise ConfigError([ConfigIssue(str(settings.file), where, _refusal(name, machine, limits, values, where))
                           for where, (name, machine, limits, values) in refused.items()])


def _refusal(name: str, machine: knobs.Machine, limits: tuple[float, float] | tuple[str, ...], values: list[str],
             where: tuple[str | int, ...]) -> str:
    """`gpu_power_limit_w: 150 is outside [200, 700], what ...`, with each GPU's limits and, for draws,
    the `ranges` that keeps them inside."""
    # A value of the registry's own making can hold anything (a newline, `$( )`): shown quoted, never raw.
    distinct = [value if value.isprintable() and value.strip() == value else json.dumps(value)
                for value in dict.fromkeys(values)]
    said = f"{distinct[0]} is" if len(distinct) == 1 else f"{len(distinct)} planned draws ({', '.join(distinct)}) are"
    named = "" if where[-1] == name else f"{name}: "  # a mutate entry's path does not name the knob
    text = f"{named}{said} {'not one of' if name == 'cpu_governor' else 'outside'} {knobs.limits_text(name, limits)}"
    if name in knobs.GPU_KNOBS:
        each = knobs.allowed_by_gpu(name, machine)
        text += " (" + ", ".join(f"GPU {gpu} [{knobs.shown(low)}, {knobs.shown(high)}]" for gpu, (low, high)
                                 in each.items()) + "; energy.gpus, else CUDA_VISIBLE_DEVICES, chooses the GPUs)"
    if "mutate" in where:
        inside = json.dumps(list(limits)) if name == "cpu_governor" else \
            f"[{knobs.shown(float(limits[0]))}, {knobs.shown(float(limits[1]))}]"
        text += f"; keep its draws inside with \"ranges\": {{\"{name}\": {inside}}}"
    return text


def _where(trial: Trial, name: str, settings: Settings) -> tuple[str | int, ...]:
    """The JSON path a trial's knob value comes from: its fixed value, or its mutate entry."""
    experiment = settings.experiments[trial.experiment_index]
    base: tuple[str | int, ...] = ("experiments", trial.experiment_index)
    if experiment.mode == "parallel":
        base = (*base, "foreground")
    if name in experiment.fixed:
        return (*base, "hyperparameters", name)
    listed = settings.document["experiments"][trial.experiment_index]
    listed = listed.get("foreground", listed) if experiment.mode == "parallel" else listed
    names = listed.get("mutate", [])
    return (*base, "mutate", names.index(name)) if name in names else (*base, "mutate")


class KnobKeeper:
    """Sets each trial's knobs and writes the machine's values back, keeping the ledger's record true."""

    def __init__(self, settings: Settings, ledger: Ledger, say: Callable[[str], None], stop: StopRequest,
                 events: Events):
        self.settings, self.ledger, self.say, self.stop, self.events = settings, ledger, say, stop, events
        self.recorded: dict[str, Any] = {}
        """The machine's own values of what is changed now: what restoring writes back."""

    @contextmanager
    def applied(self, trial: Trial) -> Iterator[KnobsApplied | None]:
        """The trial's knobs set (None when it sets none) while inside; written back on the way out."""
        values = trial_knobs(trial)
        if not values:
            yield None
            return
        machine = machine_for(trial, self.settings)
        before = knobs.originals(list(values), machine)
        self.recorded = knobs.merged(self.recorded, before)
        self.ledger.set_knobs(self.recorded)  # before the first change: a kill from here on still restores
        try:
            readings = knobs.apply(values, machine)
            shared = sharing(readings, trial)
            applies_to = describe(readings, shared)
            self.say(f"[{trial.index}] set {_set_text(values, readings)}"
                     + (f"; shared with background {', '.join(shared)}" if shared else "")
                     + f"; settling {self.settings.knob_settle_s:g} s")
            self.events.event("knobs_set", trial=trial.name, applied=readings, applies_to=applies_to, before=before,
                              requested={name: canonical_to_json(value) for name, value in values.items()})
            sleep_unless_stopped(self.settings.knob_settle_s, self.stop)
            yield KnobsApplied(readings, applies_to, self.settings.knob_settle_s, before=before)
        finally:
            self.restore(f"[{trial.index}] ", trial.name)

    def restore(self, prefix: str = "", trial: str | None = None) -> None:
        """Write back what was changed (nothing when nothing is), saying so; the ledger forgets it once done."""
        if not self.recorded:
            return
        lines = knobs.restore_recorded(self.recorded)
        if any(not line.startswith("restored") for line in lines):
            for line in lines:
                self.say(f"{prefix}warning: {line}; `mutation.py cleanup` tries again")
            return  # left in the ledger for cleanup
        self.say(prefix + lines[0])
        self.events.event("knobs_restored", trial=trial, restored=self.recorded)
        self.recorded = {}
        self.ledger.set_knobs(None)


def describe(readings: Mapping[str, Mapping[str, Any]], shared: Sequence[str]) -> str:
    """`GPU 0, 1; 4 CPUs`, and in parallel mode the backgrounds on those devices (`sharing`): `(shared with
    background bg/tiny)`."""
    gpus = list(dict.fromkeys(gpu for name in knobs.GPU_KNOBS for gpu in readings.get(name, {})))
    cpus = list(dict.fromkeys(cpu for name in knobs.CPU_KNOBS for cpu in readings.get(name, {})))
    parts = ([f"GPU {', '.join(gpus)}"] if gpus else []) + ([f"{len(cpus)} CPUs"] if cpus else [])
    return "; ".join(parts) + (f" (shared with background {', '.join(shared)})" if shared else "")


def sharing(readings: Mapping[str, Mapping[str, Any]], trial: Trial) -> list[str]:
    """The backgrounds (`repo/model`) on the devices the knobs were set on: every background shares the CPUs;
    a GPU, where its CUDA_VISIBLE_DEVICES (or none: every GPU) lets it see one."""
    gpus = [gpu for name in knobs.GPU_KNOBS for gpu in readings.get(name, {})]
    cpus = any(readings.get(name) for name in knobs.CPU_KNOBS)
    return [f"{run.repo}/{run.model}" for run in trial.background if cpus or _sees_any(run, gpus)]


def _set_text(values: Mapping[str, str], readings: Mapping[str, Mapping[str, Any]]) -> str:
    """`gpu_sm_clock_mhz=1000 (GPU 0: 1005 applied), cpu_max_freq_khz=2000000 (4 CPUs)`: each knob, its
    devices, and what the driver applied where that is not what was asked."""
    parts = []
    for name, value in values.items():
        by_device = readings.get(name, {})
        other = list(dict.fromkeys(str(reading) for reading in by_device.values() if str(reading) != value))
        devices = f"{len(by_device)} CPUs" if name in knobs.CPU_KNOBS else f"GPU {', '.join(by_device)}"
        parts.append(f"{name}={value} ({devices}" + (f": {', '.join(other)} applied" if other else "") + ")")
    return ", ".join(parts)


def _sees_any(run: Any, gpus: Sequence[str]) -> bool:
    seen = gpus_for(EnergySettings(), {**os.environ, **dict(run.env)})
    return seen is None or bool(set(seen) & set(gpus))  # None: it sees every GPU
