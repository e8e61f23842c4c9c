"""Measuring one training window with the campaign's chosen backends, and the idle baseline.

Every monitor call is guarded: a backend that raises gives an empty value with the error as its
reason, and never stops or fails the training it measures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from energy_profiler.energy import EnergyFields, nvidia_smi, nvml
from energy_profiler.energy.base import Kind, Measurement, Monitor, Window, not_measured
from energy_profiler.energy.selection import CPU_CHAIN, GPU_CHAIN, NONE, Choice, EnergySettings, Hardware, make_monitors
from energy_profiler.energy.traces import measurement_document, write_energy_folder


@dataclass(frozen=True)
class IdleBaseline:
    """Idle power measured before the campaign (None where that device is not measured)."""

    cpu_w: float | None
    gpu_w: float | None
    duration_s: float


@dataclass(frozen=True)
class EnergyPlan:
    """Everything a session needs to measure energy."""

    choice: Choice
    settings: EnergySettings
    hardware: Hardware
    idle: IdleBaseline | None = None

    def reason_not_measured(self, kind: Kind) -> str:
        chosen_setting = self.settings.cpu if kind == "cpu" else self.settings.gpu
        if chosen_setting == NONE:
            return f"energy.{kind} is 'none'"
        chain = CPU_CHAIN if kind == "cpu" else GPU_CHAIN
        reasons = [f"{name}: {self.choice.probed[name].reason}" for name in chain if name in self.choice.probed]
        return f"no {kind.upper()} energy backend available ({'; '.join(reasons)})"


class TrialEnergy:
    """The monitors of one window: start before the training, stop at its exit, finish once reaped."""

    def __init__(self, plan: EnergyPlan, environment: Mapping[str, str]):
        self.plan = plan
        self.monitors = make_monitors(plan.choice, plan.settings, plan.hardware, environment)
        self.errors: dict[str, str] = {}
        self.environment = environment

    def _guard(self, monitor: Monitor, action: Callable[[], object]) -> None:
        if monitor.kind in self.errors:
            return
        try:
            action()
        except Exception as error:  # a measurement must never break the training it measures
            self.errors[monitor.kind] = f"{monitor.method} failed: {type(error).__name__}: {error}"

    def start(self) -> None:
        # GPU first (NVML start-up can take a while), CPU last: the first RAPL reading lands as
        # close to the training's start as possible. stop() goes in the opposite order.
        for monitor in reversed(self.monitors):
            self._guard(monitor, monitor.start)

    def stop(self) -> None:
        for monitor in self.monitors:
            self._guard(monitor, monitor.stop)

    def live_power(self) -> dict[str, float | None]:
        """Watts by device now, from the monitors that sample (perf and the estimate do not)."""
        power: dict[str, float | None] = {"cpu": None, "gpu": None}
        for monitor in self.monitors:
            reader = getattr(monitor, "power_w", None)
            if reader is not None and monitor.kind not in self.errors:
                try:
                    power[monitor.kind] = reader()
                except Exception:  # a display must never disturb a measurement
                    power[monitor.kind] = None
        return power

    def measurements(self, window: Window) -> dict[Kind, Measurement]:
        found: dict[Kind, Measurement] = {}
        for monitor in self.monitors:
            measurement: Measurement | None = None

            def compute(m: Monitor = monitor) -> None:
                nonlocal measurement
                measurement = m.result(window)

            self._guard(monitor, compute)
            error = self.errors.get(monitor.kind)
            if measurement is None:
                measurement = not_measured(monitor.kind, error or f"{monitor.method} gave no result")
            found[monitor.kind] = measurement
        for kind in ("cpu", "gpu"):
            if kind not in found:
                reason = self.plan.reason_not_measured(kind)
                if kind == "gpu" and self.plan.choice.gpu != NONE:
                    reason = "CUDA_VISIBLE_DEVICES is empty: the training sees no GPU"
                found[kind] = not_measured(kind, reason)
        return found

    def finish(self, window: Window, folder: Path) -> tuple[EnergyFields, dict[str, Any]]:
        """The record's energy fields and details; the raw traces go to `folder`."""
        measured = self.measurements(window)
        fields = energy_fields(measured["cpu"], measured["gpu"], window.duration_s, self.plan.idle)
        summary = {**asdict(fields), "window_s": window.duration_s, "cpu_time_s": window.cpu_time_s}
        write_energy_folder(folder, measured["cpu"], measured["gpu"], summary)
        details: dict[str, Any] = {kind: measurement_document(m) for kind, m in measured.items()}
        return fields, details


def energy_fields(cpu: Measurement, gpu: Measurement, duration_s: float, idle: IdleBaseline | None) -> EnergyFields:
    values: dict[str, Any] = {**cpu.fields, **gpu.fields}
    values.update(cpu_energy_j=cpu.energy_j, cpu_energy_method=cpu.method, cpu_energy_reason=cpu.reason,
                  gpu_energy_j=gpu.energy_j, gpu_energy_method=gpu.method, gpu_energy_reason=gpu.reason)
    if idle is not None:
        for kind, measurement, idle_w in (("cpu", cpu, idle.cpu_w), ("gpu", gpu, idle.gpu_w)):
            values[f"{kind}_idle_w"] = idle_w
            if idle_w is not None and measurement.energy_j is not None:
                # Idle power over the window the energy covers (the monitor's, a hair longer than
                # the training's on a busy machine), so that the two subtract like for like.
                window_s = measurement.window_s or duration_s
                values[f"{kind}_energy_above_idle_j"] = measurement.energy_j - idle_w * window_s
    return EnergyFields(**values)


def measure_idle(plan: EnergyPlan, environment: Mapping[str, str], should_stop: Callable[[], bool]) -> IdleBaseline:
    """Idle power over `baseline_s` with nothing started by us (interruptible)."""
    trial = TrialEnergy(plan, environment)
    started = time.monotonic()
    trial.start()
    while time.monotonic() - started < plan.settings.baseline_s and not should_stop():
        time.sleep(0.05)
    trial.stop()
    duration_s = time.monotonic() - started
    measured = trial.measurements(Window(duration_s=duration_s))

    def watts(kind: Kind) -> float | None:
        energy_j, window_s = measured[kind].energy_j, measured[kind].window_s or duration_s
        return energy_j / window_s if energy_j is not None and window_s > 0 else None

    return IdleBaseline(cpu_w=watts("cpu"), gpu_w=watts("gpu"), duration_s=duration_s)


def gpu_host_facts(energy: EnergyPlan) -> dict[str, object]:
    """GPU names, UUIDs, driver and power limits, from the GPU backend in use (empty if none)."""
    try:
        if energy.choice.gpu == "nvml":
            return nvml.gpu_facts(energy.hardware.nvml_loader)
        if energy.choice.gpu == "nvidia_smi":
            return nvidia_smi.gpu_facts(energy.hardware.nvidia_smi)
    except Exception as error:  # facts are a courtesy: their failure must not stop a campaign
        return {"gpu_facts_error": str(error)}
    return {}
