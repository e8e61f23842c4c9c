"""A GPU's settable knobs through NVML: the power limit and locked SM clocks.

NVML speaks milliwatts and MHz; this module speaks watts and MHz. Setting either needs root (NVML
answers NVML_ERROR_NO_PERMISSION otherwise). A power limit is restored to the value read before
the first change; locked clocks are reset (NVML has no call that reads them back), which is also
what a machine whose clocks nobody locked has.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from energy_profiler.errors import ToolExit
from energy_profiler.system.nvml_module import NvmlLoader

NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_DEVICE_ARCH_VOLTA = 5
"""Locked clocks (nvmlDeviceSetGpuLockedClocks) need Volta or newer; older boards refuse only when set."""
ARCHITECTURES = {2: "Kepler", 3: "Maxwell", 4: "Pascal"}


class KnobError(ToolExit):
    """A knob cannot be set here, or a value is not one the machine takes; the message says why (exit 2)."""


def nvml_why(error: Exception) -> str:
    """Why NVML refused, in words that say what to do."""
    value = getattr(error, "value", None)
    if value == NVML_ERROR_NO_PERMISSION:
        return "the driver refuses: not permitted (run mutation.py with sudo)"
    if value == NVML_ERROR_NOT_SUPPORTED:
        return "not supported by this GPU or driver"
    if value == NVML_ERROR_INVALID_ARGUMENT:
        return "the driver refuses the value (outside what the board takes)"
    return str(error) or type(error).__name__


@contextmanager
def nvml_session(loader: NvmlLoader) -> Iterator[ModuleType]:
    """NVML initialised for one series of calls; KnobError when it cannot be loaded or started."""
    try:
        nvml = loader()
        nvml.nvmlInit()
    except Exception as error:  # no library, no driver: the knob cannot be set here
        raise KnobError(f"no NVML here ({nvml_why(error)}): GPU knobs need an NVIDIA driver and nvidia-ml-py") \
            from None
    try:
        yield nvml
    finally:
        nvml.nvmlShutdown()


def handles(nvml: ModuleType, gpus: Sequence[str] | None) -> list[tuple[str, Any]]:
    """(id as the settings name it, handle) of each GPU: by index or UUID; every GPU when None."""
    if gpus is None:
        gpus = [str(index) for index in range(nvml.nvmlDeviceGetCount())]
    found = []
    for gpu in gpus:
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(int(gpu)) if gpu.isdigit() else \
                nvml.nvmlDeviceGetHandleByUUID(gpu)
        except Exception as error:
            raise KnobError(f"GPU {gpu}: {nvml_why(error)}") from None
        found.append((gpu, handle))
    return found


def bounds_each(nvml: ModuleType, gpus: Sequence[str] | None, knob: str) -> dict[str, tuple[float, float]]:
    """{gpu: [low, high]} each of `gpus` takes: W of the power limit, or MHz of the SM clock."""
    found = {}
    for gpu, handle in handles(nvml, gpus):
        try:
            if knob == "gpu_power_limit_w":
                low_mw, high_mw = nvml.nvmlDeviceGetPowerManagementLimitConstraints(handle)
                found[gpu] = (low_mw / 1000, high_mw / 1000)
            else:
                _lockable(nvml, handle, gpu)
                memory = max(nvml.nvmlDeviceGetSupportedMemoryClocks(handle))
                clocks = nvml.nvmlDeviceGetSupportedGraphicsClocks(handle, memory)
                found[gpu] = (float(min(clocks)), float(max(clocks)))
        except KnobError:
            raise
        except Exception as error:
            raise KnobError(f"{knob} on GPU {gpu}: {nvml_why(error)}") from None
    return found


def _lockable(nvml: ModuleType, handle: Any, gpu: str) -> None:
    """KnobError when the board is older than Volta (its driver would refuse to lock its clocks only
    when asked); a driver that cannot say the architecture is let through (the set then says)."""
    try:
        architecture = int(nvml.nvmlDeviceGetArchitecture(handle))
    except Exception:
        return
    if architecture < NVML_DEVICE_ARCH_VOLTA:
        name = ARCHITECTURES.get(architecture, f"architecture {architecture}")
        raise KnobError(f"gpu_sm_clock_mhz on GPU {gpu}: locked clocks need a Volta or newer GPU, this one is {name} "
                        "(leave the knob out, or measure a newer GPU)")


def may_set() -> str | None:
    """Why GPU knobs cannot be set by this process (not root), or None."""
    return None if os.geteuid() == 0 else "setting a GPU's power limit or clocks needs root: run mutation.py with sudo"


def originals(nvml: ModuleType, gpus: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """{gpu: {"power_limit_mw": now}}: what restoring writes back."""
    return {gpu: {"power_limit_mw": int(nvml.nvmlDeviceGetPowerManagementLimit(handle))}
            for gpu, handle in handles(nvml, gpus)}


def apply(nvml: ModuleType, gpus: Sequence[str] | None, power_limit_w: int | None,
          sm_clock_mhz: int | None) -> dict[str, dict[str, float]]:
    """Set the knobs given on each GPU; {gpu: {knob: value read back}} (the driver may round or cap)."""
    applied: dict[str, dict[str, float]] = {}
    for gpu, handle in handles(nvml, gpus):
        readings: dict[str, float] = {}
        knob = "gpu_power_limit_w"
        try:
            if power_limit_w is not None:
                nvml.nvmlDeviceSetPowerManagementLimit(handle, power_limit_w * 1000)
                # The limit in force: another (a board's own, an administrator's) can be lower.
                readings[knob] = plain(nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000)
            knob = "gpu_sm_clock_mhz"
            if sm_clock_mhz is not None:
                nvml.nvmlDeviceSetGpuLockedClocks(handle, sm_clock_mhz, sm_clock_mhz)
                readings[knob] = plain(nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM))
        except Exception as error:
            raise KnobError(f"could not set {knob} on GPU {gpu}: {nvml_why(error)}") from None
        applied[gpu] = readings
    return applied


def plain(value: float) -> float:
    """250.0 W read back as 250 (an int), as it was asked for; 247.5 stays."""
    return int(value) if float(value).is_integer() else float(value)


def restore(nvml: ModuleType, recorded: dict[str, dict[str, Any]]) -> list[str]:
    """Write back each GPU's power limit and reset its clocks; one line per problem (none: restored)."""
    problems = []
    for gpu, handle in handles(nvml, list(recorded)):
        previous = recorded[gpu]
        try:
            if "power_limit_mw" in previous:
                nvml.nvmlDeviceSetPowerManagementLimit(handle, int(previous["power_limit_mw"]))
            if previous.get("reset_locked_clocks"):
                nvml.nvmlDeviceResetGpuLockedClocks(handle)
        except Exception as error:
            problems.append(f"could not restore GPU {gpu}: {nvml_why(error)}")
    return problems
