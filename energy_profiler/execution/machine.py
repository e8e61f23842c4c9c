"""Readying the machine before a local campaign's first trial, and undoing it whatever ends the campaign.

Stale process groups of a dead campaign ended, the watchdog started, the CPU governor set (and
restored), the energy monitors prepared and the idle baseline measured, the user trainings run as.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

from energy_profiler.config.settings import Settings
from energy_profiler.energy.recorder import EnergyPlan, measure_power
from energy_profiler.execution.journal import Events
from energy_profiler.execution.knob_keeper import KnobKeeper
from energy_profiler.execution.runtime import StopRequest
from energy_profiler.fs import atomic_write_json
from energy_profiler.process.ledger import Ledger, clean_stale
from energy_profiler.process.watchdog import tracking
from energy_profiler.system import governor
from energy_profiler.system.sudo import InvokingUser, invoking_user


def prepare_machine(cleanup: ExitStack, settings: Settings, *, results_root: Path, run_dir: Path,
                     energy: EnergyPlan | None, say: Callable[[str], None], stop: StopRequest,
                     events: Events | None = None) -> tuple[EnergyPlan | None, InvokingUser | None, KnobKeeper]:
    """Before the first trial: stale groups ended, the watchdog, the governor, the knobs' keeper, energy,
    the user.

    Each step that changes the machine registers its undoing on `cleanup`, so that whatever ends
    the session (an exception, a signal) restores the machine in reverse order.
    """
    for line in clean_stale(results_root, settings.grace_s):
        say(line)
    # While the trials run, a watchdog ends whatever we started should this process die.
    ledger = cleanup.enter_context(tracking(results_root, settings.grace_s, run_dir / "session.log"))
    if settings.governor is not None:
        cleanup.enter_context(_governor_set(settings.governor, ledger, say))
    knobs = KnobKeeper(settings, ledger, say, stop, events or Events())
    cleanup.callback(knobs.restore)  # before the governor's restore: a trial's governor lies over the campaign's
    if energy is not None:
        cleanup.callback(energy.close)  # before the watchdog's ledger closes: what it started is in it
        energy.prepare_next()  # as early as possible: perf starts while the header is printed
        for line in energy.choice.describe():
            say(line)
        if energy.settings.baseline_s > 0:
            energy = _measure_baseline(energy, run_dir, say, stop)
            energy.prepare_next()  # the baseline took the one started above
    run_as = None if settings.run_as_root else invoking_user()
    if run_as is not None:
        say(f"trainings run as {run_as.name} (uid {run_as.uid}), who also owns the results; "
            "monitors keep root (set run_as_root to change)")
    return energy, run_as, knobs


def _measure_baseline(energy: EnergyPlan, run_dir: Path, say: Callable[[str], None],
                      stop: StopRequest) -> EnergyPlan:
    """Idle power before the first trial; the plan returned carries it into every record."""
    say(f"measuring idle power for {energy.settings.baseline_s:g} s (start nothing else meanwhile)")
    idle = measure_power("idle", energy, dict(os.environ), energy.settings.baseline_s,
                         should_stop=lambda: stop.requested, folder=run_dir / "baseline")
    atomic_write_json(run_dir / "baseline.json", idle.to_json())
    shown = ", ".join(f"{kind} {watts:.1f} W" for kind, watts in (("cpu", idle.cpu_w), ("gpu", idle.gpu_total_w))
                      if watts is not None)
    say(f"idle power: {shown or 'nothing measured'}")
    return replace(energy, idle=idle)


@contextmanager
def _governor_set(name: str, ledger: Ledger, say: Callable[[str], None]) -> Iterator[None]:
    """Set the governor for the campaign; restore it on the way out, whatever the way out is.

    The previous values go into the ledger first, so that the watchdog (mutation.py killed) or a
    later `cleanup` (the machine stopped) can restore them too.
    """
    root = governor.cpufreq_root()
    governor.check(root, name)
    previous = governor.current(root)
    ledger.set_governor(root, previous)
    try:
        governor.apply(root, dict.fromkeys(previous, name))  # a CPU that fails: the others are restored below
        say(f"CPU governor set to {name} on {len(previous)} CPUs (was {', '.join(sorted(set(previous.values())))})")
        yield
    finally:
        governor.apply(root, previous)
        ledger.set_governor(None, None)
        say(f"CPU governor restored ({', '.join(sorted(set(previous.values())))})")


