"""Measuring one window with the campaign's chosen backends: a trial's training, or a baseline.

Every monitor call is guarded: a backend that raises gives an empty value with the error as its
reason, and never stops or fails the training it measures. Monitors are always closed, also when
their start failed, so a long campaign leaks no descriptor, thread, helper process or NVML handle.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from energy_profiler.config.energy_settings import EnergySettings
from energy_profiler.energy import nvidia_smi, nvml
from energy_profiler.energy.base import Kind, Measurement, Monitor, Window, not_measured, sentence
from energy_profiler.energy.baselines import PowerBaseline, energy_above, watts_per_device
from energy_profiler.energy.perf import PerfSpare
from energy_profiler.energy.samples import SampleSink
from energy_profiler.energy.selection import CPU_CHAIN, GPU_CHAIN, NONE, Choice, Hardware, make_monitors
from energy_profiler.energy.traces import measurement_document, write_energy_json
from energy_profiler.model.energy_fields import EnergyFields
from energy_profiler.model.rounding import rounded

POLL_S = 0.05
KINDS: tuple[Kind, ...] = ("cpu", "gpu")


@dataclass(frozen=True)
class EnergyPlan:
    """Everything a session needs to measure energy."""

    choice: Choice
    settings: EnergySettings
    hardware: Hardware
    idle: PowerBaseline | None = None
    perf_spare: PerfSpare | None = None
    """With perf as the CPU method: the perf started ahead of the next window."""

    def prepare_next(self) -> None:
        """Between windows: start what the next window's monitors would otherwise wait for."""
        if self.perf_spare is not None:
            self.perf_spare.prepare()

    def close(self) -> None:
        """At the end of the campaign: stop what was started ahead."""
        if self.perf_spare is not None:
            self.perf_spare.close()

    def reason_not_measured(self, kind: Kind) -> str:
        chosen_setting = self.settings.cpu if kind == "cpu" else self.settings.gpu
        if chosen_setting == NONE:
            return f"energy.{kind} is 'none'."
        chain = CPU_CHAIN if kind == "cpu" else GPU_CHAIN
        reasons = [f"{name}: {self.choice.probed[name].reason.rstrip('.')}" for name in chain
                   if name in self.choice.probed]
        return f"No {kind.upper()} energy backend is available ({'; '.join(reasons)})."


class TrialEnergy:
    """The monitors of one window: start before the training, stop at its exit, finish once reaped."""

    def __init__(self, plan: EnergyPlan, environment: Mapping[str, str], folder: Path | None):
        self.plan = plan
        self.sinks = {kind: SampleSink(folder / f"{kind}_samples.csv" if folder else None) for kind in KINDS}
        self.monitors = make_monitors(plan.choice, plan.settings, plan.hardware, environment, self.sinks,
                                      perf_spare=plan.perf_spare)
        self.errors: dict[str, str] = {}
        self.environment = environment
        self._closed = False

    def _guard(self, monitor: Monitor, action: Callable[[], object]) -> None:
        if monitor.kind in self.errors:
            return
        try:
            action()
        except Exception as error:  # a measurement must never break the training it measures
            self.errors[monitor.kind] = sentence(f"{monitor.method} failed: {type(error).__name__}: {error}")

    def start(self) -> None:
        # GPU first (NVML start-up can take a while), CPU last: the first RAPL reading (or perf's
        # enable) lands as close to the training's start as possible. stop() goes the other way.
        for monitor in reversed(self.monitors):
            self._guard(monitor, monitor.start)

    def stop(self) -> None:
        for monitor in self.monitors:
            self._guard(monitor, monitor.stop)

    def close(self) -> None:
        """Release every monitor and trace file; idempotent, and safe whatever happened before."""
        if self._closed:
            return
        self._closed = True
        for monitor in self.monitors:
            try:
                monitor.close()
            except Exception as error:  # closing must go on to the next monitor
                self.errors.setdefault(monitor.kind, sentence(f"{monitor.method} did not close: {error}"))
        for sink in self.sinks.values():
            sink.close()

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
                measurement = not_measured(monitor.kind, error or f"{monitor.method} gave no result.")
            found[monitor.kind] = measurement
        for kind in KINDS:
            if kind not in found:
                reason = self.plan.reason_not_measured(kind)
                if kind == "gpu" and self.plan.choice.gpu != NONE:
                    reason = "CUDA_VISIBLE_DEVICES is empty: the training sees no GPU."
                found[kind] = not_measured(kind, reason)
        return found

    def finish(self, window: Window, folder: Path, *, background: PowerBaseline | None = None,
               parallel: bool = False, foreground_session: int | None = None) -> tuple[EnergyFields, dict[str, Any]]:
        """The record's energy fields and details; energy.json goes to `folder`. Closes the monitors."""
        try:
            measured = self.measurements(window)
        finally:
            self.close()
        fields = energy_fields(measured["cpu"], measured["gpu"], window.duration_s, self.plan, background=background,
                               parallel=parallel, foreground_session=foreground_session)
        summary = {**asdict(fields), "window_s": window.duration_s, "cpu_time_s": window.cpu_time_s,
                   "samples": {kind: self.sinks[kind].rows for kind in KINDS}}
        baselines = {"idle": self.plan.idle.to_json() if self.plan.idle else None,
                     "background": background.to_json() if background else None}
        write_energy_json(folder, measured["cpu"], measured["gpu"], summary, baselines)
        details: dict[str, Any] = {kind: measurement_document(m, self.sinks[kind].rows) for kind, m in measured.items()}
        details["baselines"] = baselines
        return fields, rounded(details)


def energy_fields(cpu: Measurement, gpu: Measurement, duration_s: float, plan: EnergyPlan, *,
                  background: PowerBaseline | None = None, parallel: bool = False,
                  foreground_session: int | None = None) -> EnergyFields:
    values: dict[str, Any] = {**cpu.fields, **gpu.fields}
    values.update(cpu_energy_j=cpu.energy_j, cpu_energy_method=cpu.method, cpu_energy_reason=cpu.reason,
                  gpu_energy_j=gpu.energy_j, gpu_energy_method=gpu.method, gpu_energy_reason=gpu.reason)
    no_idle = f"No idle baseline was measured (energy.baseline_s is {plan.settings.baseline_s:g})."
    if not parallel:
        no_background = "Not a parallel trial: there is no background power."
    else:
        no_background = (f"The backgrounds' power was not measured (energy.background_baseline_s is "
                         f"{plan.settings.background_baseline_s:g}).")
    for kind, measurement in (("cpu", cpu), ("gpu", gpu)):
        idle = energy_above(measurement, plan.idle, kind, duration_s, no_idle)
        shared = energy_above(measurement, background, kind, duration_s, no_background)
        values[f"{kind}_idle_w"], values[f"{kind}_energy_above_idle_j"] = idle.watts, idle.above_j
        values[f"{kind}_background_w"], values[f"{kind}_energy_above_background_j"] = shared.watts, shared.above_j
        reasons = [f"{label}: {above.reason}" for label, above in (("Idle", idle), ("Background", shared))
                   if above.reason]
        if kind == "gpu" and gpu.energy_j is not None:
            share, why = busy_share(gpu, foreground_session)
            values["gpu_fg_busy_share_pct"] = share
            reasons += [f"Busy share: {why}"] if why else []
        values[f"{kind}_baseline_reason"] = " ".join(reasons) or None
    return EnergyFields(**rounded(values))


def busy_share(gpu: Measurement, foreground_session: int | None) -> tuple[float | None, str | None]:
    """The foreground's share (%) of the SM utilisation samples of all processes on the measured GPUs."""
    if not gpu.method.startswith("nvml"):
        return None, f"needs NVML's per-process utilisation (the GPU method is {gpu.method})."
    note = gpu.details.get("process_utilisation_note")
    if note:
        return None, sentence(note)
    total = gpu.details.get("sm_util_sum") or 0.0
    if total <= 0:
        return None, "no process used the measured GPUs' SMs in the window."
    if foreground_session is None:
        return None, "the training did not start."
    mine = gpu.details.get("session_sm_util_sum", {}).get(str(foreground_session), 0.0)
    return mine / total * 100, None


def measure_power(label: str, plan: EnergyPlan, environment: Mapping[str, str], seconds: float, *,
                  should_stop: Callable[[], bool], folder: Path | None) -> PowerBaseline:
    """Mean power per device over `seconds` (interruptible), with the plan's monitors; traces to `folder`."""
    window = TrialEnergy(plan, environment, folder)
    try:
        started = time.monotonic()
        window.start()
        while time.monotonic() - started < seconds and not should_stop():
            time.sleep(min(POLL_S, max(0.0, seconds - (time.monotonic() - started))))
        window.stop()
        duration_s = time.monotonic() - started
        measured = window.measurements(Window(duration_s=duration_s))
    finally:
        window.close()
    cpu_w = watts_per_device(measured["cpu"], duration_s).get("cpu")
    cpu_reason = None
    if plan.choice.cpu == "estimate":
        cpu_reason = "The estimate counts the training's own CPU time only: no idle or background power applies."
    elif cpu_w is None:
        cpu_reason = measured["cpu"].reason
    gpu_w = watts_per_device(measured["gpu"], duration_s)
    return PowerBaseline(label=label, duration_s=duration_s, cpu_w=cpu_w, cpu_method=measured["cpu"].method,
                         cpu_reason=cpu_reason, gpu_w=gpu_w, gpu_method=measured["gpu"].method,
                         gpu_reason=None if gpu_w else measured["gpu"].reason)


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
