"""System knobs on the machine: what they may be set to here, setting them, and restoring them.

GPU knobs go through NVML (system/gpu_knobs.py), CPU knobs through cpufreq (system/cpu_knobs.py
and governor.py). Before a knob is first changed, `originals` reads what the machine has; that
record (plain JSON, kept in the campaign's ledger) is all `restore_recorded` needs, so the
watchdog and `cleanup`, in other processes, restore as the campaign itself does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from energy_profiler.system import cpu_knobs, governor, gpu_knobs
from energy_profiler.system.gpu_knobs import KnobError, nvml_session, plain
from energy_profiler.system.nvml_module import NvmlLoader, load_pynvml

GPU_KNOBS = ("gpu_power_limit_w", "gpu_sm_clock_mhz")
CPU_KNOBS = ("cpu_max_freq_khz", "cpu_governor")


@dataclass(frozen=True)
class Machine:
    """Where a trial's knobs are set: the GPUs it measures (None: every GPU), the cpufreq root, NVML."""

    gpus: tuple[str, ...] | None
    cpufreq_root: Path
    nvml: NvmlLoader = load_pynvml


def why_not(name: str, machine: Machine) -> str | None:
    """Why `name` cannot be set by this process on this machine, or None. Nothing is changed."""
    try:
        if name in GPU_KNOBS:
            if machine.gpus == ():
                return "the trial sees no GPU (its CUDA_VISIBLE_DEVICES is empty): there is none to set it on"
            if (refusal := gpu_knobs.may_set()) is not None:
                return refusal
            allowed(name, machine)  # NVML there, and the board answers the knob's limits
            return None
        if name == "cpu_governor":
            governor.check(machine.cpufreq_root, next(iter(governor.available(machine.cpufreq_root)), "performance"))
            return None
        return cpu_knobs.may_set(machine.cpufreq_root)
    except (KnobError, governor.GovernorError) as error:
        return error.said()


def allowed(name: str, machine: Machine) -> tuple[float, float] | tuple[str, ...]:
    """What the machine takes for `name`: [low, high] for a number, the governors offered for cpu_governor."""
    if name in GPU_KNOBS:
        each = allowed_by_gpu(name, machine)
        return max(low for low, _ in each.values()), min(high for _, high in each.values())
    if name == "cpu_governor":
        offered = governor.available(machine.cpufreq_root)
        if not offered:
            raise KnobError(f"no cpufreq governors under {machine.cpufreq_root} "
                            "(no cpufreq driver, or a virtual machine)")
        return tuple(sorted(offered))
    return cpu_knobs.bounds(machine.cpufreq_root)


def allowed_by_gpu(name: str, machine: Machine) -> dict[str, tuple[float, float]]:
    """{gpu: [low, high]} of a GPU knob on each GPU the machine's trial measures."""
    with nvml_session(machine.nvml) as nvml:
        return gpu_knobs.bounds_each(nvml, machine.gpus, name)


def takes(name: str, canonical: str, limits: tuple[float, float] | tuple[str, ...]) -> bool:
    """Whether the machine takes a knob's value (a canonical string) within `allowed`'s limits."""
    if name == "cpu_governor":
        return canonical in limits
    return float(limits[0]) <= float(canonical) <= float(limits[1])


def limits_text(name: str, limits: tuple[float, float] | tuple[str, ...]) -> str:
    """`[200, 700], what the GPUs measured take here`, or the governors the CPUs offer."""
    if name == "cpu_governor":
        return f"the governors these CPUs offer ({', '.join(str(choice) for choice in limits)})"
    where = "the GPUs measured take" if name in GPU_KNOBS else "every CPU takes"
    return f"[{shown(float(limits[0]))}, {shown(float(limits[1]))}], what {where} here"


def shown(number: float) -> str:
    """200.0 -> `200`, 3500000 -> `3500000` (never 3.5e+06), 247.5 -> `247.5`."""
    return str(plain(number))


def originals(names: Sequence[str], machine: Machine) -> dict[str, Any]:
    """What the machine has now of the knobs `names`: the record restoring writes back."""
    record: dict[str, Any] = {}
    if any(name in GPU_KNOBS for name in names):
        with nvml_session(machine.nvml) as nvml:
            gpus = gpu_knobs.originals(nvml, machine.gpus)
        if "gpu_power_limit_w" not in names:
            gpus = {gpu: {} for gpu in gpus}
        if "gpu_sm_clock_mhz" in names:
            gpus = {gpu: {**values, "reset_locked_clocks": True} for gpu, values in gpus.items()}
        record["gpus"] = gpus
    if any(name in CPU_KNOBS for name in names):
        record["cpufreq_root"] = str(machine.cpufreq_root)
    if "cpu_max_freq_khz" in names:
        record["cpu_max_freq_khz"] = cpu_knobs.current(machine.cpufreq_root)
    if "cpu_governor" in names:
        record["cpu_governor"] = governor.current(machine.cpufreq_root)
    return record


def merged(earlier: Mapping[str, Any], later: Mapping[str, Any]) -> dict[str, Any]:
    """Two restore records as one; where both hold a value, the earlier (the machine's own) wins."""
    result: dict[str, Any] = {**later, **earlier}
    if "gpus" in earlier and "gpus" in later:
        gpus = {gpu: dict(values) for gpu, values in later["gpus"].items()}
        for gpu, values in earlier["gpus"].items():
            gpus[gpu] = {**gpus.get(gpu, {}), **values}
        result["gpus"] = gpus
    return result


def apply(values: Mapping[str, str], machine: Machine) -> dict[str, dict[str, Any]]:
    """Set each knob of `values` (canonical strings); {knob: {device: value read back}}."""
    applied: dict[str, dict[str, Any]] = {}
    power = values.get("gpu_power_limit_w")
    clock = values.get("gpu_sm_clock_mhz")
    if power is not None or clock is not None:
        with nvml_session(machine.nvml) as nvml:
            readings = gpu_knobs.apply(nvml, machine.gpus, int(power) if power is not None else None,
                                       int(clock) if clock is not None else None)
        for gpu, by_knob in readings.items():
            for name, value in by_knob.items():
                applied.setdefault(name, {})[gpu] = value
    root = machine.cpufreq_root
    if (cap := values.get("cpu_max_freq_khz")) is not None:
        applied["cpu_max_freq_khz"] = dict(cpu_knobs.apply(root, dict.fromkeys(cpu_knobs.cpus(root), int(cap))))
    if (chosen := values.get("cpu_governor")) is not None:
        try:
            governor.apply(root, dict.fromkeys(governor.current(root), chosen))
        except governor.GovernorError as error:
            raise KnobError(error.said()) from None
        applied["cpu_governor"] = dict(governor.current(root))
    return applied


def restore_recorded(record: Mapping[str, Any] | None, nvml: NvmlLoader = load_pynvml) -> list[str]:
    """Write back what a restore record holds; one line saying what was done, or each problem."""
    if not record:
        return []
    problems: list[str] = []
    done: list[str] = []
    if record.get("gpus"):
        try:
            with nvml_session(nvml) as session:
                problems += gpu_knobs.restore(session, record["gpus"])
        except KnobError as error:
            problems.append(f"could not restore the GPU knobs: {error.said()}")
        done.append(f"GPU {', '.join(record['gpus'])}")
    root = Path(record.get("cpufreq_root", governor.DEFAULT_CPUFREQ_ROOT))
    if record.get("cpu_max_freq_khz"):
        try:
            cpu_knobs.apply(root, record["cpu_max_freq_khz"])
        except KnobError as error:
            problems.append(error.said())
        done.append(f"the frequency cap of {len(record['cpu_max_freq_khz'])} CPUs")
    if record.get("cpu_governor"):
        try:
            governor.apply(root, record["cpu_governor"])
        except governor.GovernorError as error:
            problems.append(error.said())
        done.append(f"the governor of {len(record['cpu_governor'])} CPUs")
    return problems or [f"restored the system knobs: {'; '.join(done)}"]
