"""What to do on this machine to measure energy: the one fix that can work here, first.

`doctor` lists every backend with its reason and fix; most of those fixes need other hardware on
a given machine (a virtual machine exposes no RAPL, and its power events never count). This picks,
per device, the first backend of the chain whose fix can work here, and adds what a newcomer must
know: that nothing at all would be measured, or that a datasheet TDP on a virtual machine belongs
to the whole host CPU.
"""

from __future__ import annotations

import os
from pathlib import Path

from energy_profiler.energy.base import Availability, Kind
from energy_profiler.energy.cpu_tdp import is_virtual_machine
from energy_profiler.energy.selection import CPU_CHAIN, GPU_CHAIN, NONE, Choice, Hardware

MEASURING = ("rapl", "perf", "nvml", "nvidia_smi")
NVIDIA_DEVICE = Path("/dev/nvidiactl")
EXAMPLE_HOST = (205.0, 80)
"""A datasheet TDP (W) and a host CPU's logical cores for the scaling example (a 40-core Xeon)."""


def fix_works_here(name: str, availability: Availability, virtual: bool) -> bool:
    """Whether `name`'s fix can make it work on this machine, rather than on other hardware."""
    if name == "estimate":
        return True  # a TDP on the command line always works
    if virtual and name in ("rapl", "perf"):
        return False  # a hypervisor passes no energy counters through, or ones that never count
    return "does not advance" not in availability.reason


def advice(choice: Choice, hardware: Hardware, *, gpu_device: Path = NVIDIA_DEVICE) -> list[str]:
    """The lines `doctor` prints first: per device not measured, the fix that works here."""
    virtual = is_virtual_machine(hardware.cpuinfo)
    lines = []
    devices: tuple[tuple[Kind, tuple[str, ...]], ...] = (("cpu", CPU_CHAIN), ("gpu", GPU_CHAIN))
    for kind, chain in devices:
        chosen = choice.chosen(kind)
        if chosen in MEASURING:
            continue
        if kind == "gpu" and not gpu_device.exists() and chosen == NONE:
            lines.append("gpu: no NVIDIA GPU is visible here, so there is no GPU energy to measure")
            continue
        workable = [(name, choice.probed[name]) for name in chain
                    if name in choice.probed and not choice.probed[name].available and choice.probed[name].fix
                    and fix_works_here(name, choice.probed[name], virtual)]
        if chosen == "estimate" and not any(name != "estimate" for name, _ in workable):
            lines.append("cpu: a labelled estimate (CPU time x TDP) is the best this machine allows")
        elif workable:
            name, availability = workable[0]
            lines.append(f"{kind}: the fix that works here: {availability.fix} ({name})")
    if choice.cpu == NONE and choice.gpu == NONE:
        lines.append("a campaign would measure no energy at all, only durations and metrics "
                     "(--require cpu turns that into an error)")
    estimating = choice.cpu == "estimate" or (choice.cpu == NONE and "estimate" in choice.probed)
    if virtual and estimating:
        cores = os.cpu_count() or 1
        watts, host_cores = EXAMPLE_HOST
        lines.append(f"this is a virtual machine: a datasheet TDP is the whole host CPU's, while the estimate "
                     f"divides it over the {cores} logical cores visible here; give --cpu-tdp-w TDP x {cores} / "
                     f"(the host CPU's logical cores), e.g. {watts:g} W over {host_cores} logical cores: "
                     f"--cpu-tdp-w {watts * cores / host_cores:.3g}")
    return lines

