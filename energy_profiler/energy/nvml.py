"""GPU energy through NVML (the nvidia-ml-py package, imported as pynvml).

Energy per GPU is the difference of `nvmlDeviceGetTotalEnergyConsumption` (millijoules since the
driver loaded; Volta and newer) between start and stop. Where that counter is not supported, it is
the trapezoid integral of the sampled power. A sampler thread reads power (mW), utilisation, memory,
temperature and SM clock every `interval_s`; where both exist, counter and integral are compared.
The pynvml module is loaded in start(), never at import, and is injectable for tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from energy_profiler.energy.base import Availability, Kind, Measurement, not_measured
from energy_profiler.energy.gpu_traces import GpuSeries, RoundTotals, summary_fields
from energy_profiler.energy.integrate import WindowIntegral
from energy_profiler.energy.sampled import SampledMonitor
from energy_profiler.energy.samples import SampleSink
from energy_profiler.system.nvml_module import NvmlLoader

UTILISATION_PERIOD_S = 0.5
"""How often per-process utilisation is read while the window runs. The driver keeps its samples
between calls, so the window's last periods are read once more after it ends (not in the final
reading, which must be quick); the foreground's session is known by then from its earlier samples."""
NVML_ERROR_NOT_FOUND = 6
"""nvmlDeviceGetProcessUtilization's answer when no process had a sample since the time asked about."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def probe(loader: NvmlLoader) -> Availability:
    try:
        nvml = loader()
    except ImportError:
        return Availability(False, "nvidia-ml-py is not installed.", "pip install nvidia-ml-py",
                            brief="no nvidia-ml-py")
    try:
        nvml.nvmlInit()
    except Exception as error:  # NVMLError subclasses: library not found, driver not loaded, ...
        return Availability(False, f"NVML did not start: {error}.",
                            "install or load the NVIDIA driver (nvidia-smi must work)", brief="no NVIDIA driver")
    try:
        count = nvml.nvmlDeviceGetCount()
        names = [_text(nvml.nvmlDeviceGetName(nvml.nvmlDeviceGetHandleByIndex(i))) for i in range(count)]
    except Exception as error:
        return Availability(False, f"NVML could not list the GPUs: {error}.", brief="NVML fails")
    finally:
        nvml.nvmlShutdown()
    if not count:
        return Availability(False, "NVML sees no GPU.", brief="no GPU")
    return Availability(True, f"{count} GPU(s): {', '.join(names)}")


def gpu_facts(loader: NvmlLoader) -> dict[str, Any]:
    """Driver, and name, UUID and power limit of every GPU, for the host facts."""
    nvml = loader()
    nvml.nvmlInit()
    try:
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            try:
                limit_w: float | None = nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000
            except nvml.NVMLError:
                limit_w = None
            gpus.append({"index": index, "name": _text(nvml.nvmlDeviceGetName(handle)),
                         "uuid": _text(nvml.nvmlDeviceGetUUID(handle)), "power_limit_w": limit_w})
        return {"gpu_driver": _text(nvml.nvmlSystemGetDriverVersion()), "gpus": gpus}
    finally:
        nvml.nvmlShutdown()


class NvmlMonitor(SampledMonitor):
    kind: Kind = "gpu"
    method = "nvml"
    thread_name = "nvml-sampler"

    def __init__(self, loader: NvmlLoader, interval_s: float, gpus: Sequence[str] | None, sink: SampleSink):
        super().__init__(interval_s, sink)
        self.loader = loader
        self.gpus = gpus
        self._nvml: Any = None
        self._initialised = False
        self._gpus: list[tuple[GpuSeries, Any]] = []
        self._rounds = RoundTotals()
        self._counter_start_mj: dict[str, int | None] = {}
        self._counter_end_mj: dict[str, int | None] = {}
        self._session_peak_mib: dict[int, float] = {}
        self._session_sm: dict[int, float] = {}
        """Per session: the sum of its processes' SM utilisation samples (nvmlDeviceGetProcessUtilization)."""
        self._sm_total = 0.0
        self._utilisation_seen_us: dict[str, int] = {}
        self._utilisation_due_s = 0.0
        self._utilisation_note: str | None = None
        self._final_unix_s: float | None = None
        self._sessions: dict[int, int | None] = {}

    def _open(self) -> None:
        self._nvml = self.loader()
        self._nvml.nvmlInit()
        self._initialised = True
        self._gpus = [self._open_gpu(selector) for selector in self._selectors()]

    def _release(self) -> None:
        if self._initialised:
            self._initialised = False
            self._nvml.nvmlShutdown()

    def _describe_failure(self, error: Exception) -> str:
        return f"NVML did not start: {error}"

    def _selectors(self) -> list[str]:
        if self.gpus:
            return list(self.gpus)
        return [str(index) for index in range(self._nvml.nvmlDeviceGetCount())]

    def _open_gpu(self, selector: str) -> tuple[GpuSeries, Any]:
        nvml = self._nvml
        if selector.isdigit():
            handle = nvml.nvmlDeviceGetHandleByIndex(int(selector))
            index = selector
        else:
            handle = nvml.nvmlDeviceGetHandleByUUID(selector)
            index = str(nvml.nvmlDeviceGetIndex(handle))
        series = GpuSeries(index=index, integral=WindowIntegral(0.0), uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                           name=_text(nvml.nvmlDeviceGetName(handle)))
        return series, handle

    def _counter_mj(self, handle: Any) -> int | None:
        try:
            return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
        except self._nvml.NVMLError:
            return None  # NotSupported before Volta; the power integral stands in

    def _value(self, function: Callable[..., Any], *args: Any) -> Any:
        """`function(*args)`, or None where the GPU does not support that reading."""
        try:
            return function(*args)
        except self._nvml.NVMLError:
            return None

    def _read(self, time_unix_s: float, monotonic_s: float, *, first: bool, final: bool) -> None:
        nvml = self._nvml
        if first:
            for series, handle in self._gpus:
                series.integral.start_s = self.started_s or monotonic_s
                self._counter_start_mj[series.index] = self._counter_mj(handle)
            self._utilisation_due_s = monotonic_s + UTILISATION_PERIOD_S
        powers, memories = [], []
        for series, handle in self._gpus:  # one round, one timestamp: rounds align across GPUs
            power_mw = self._value(nvml.nvmlDeviceGetPowerUsage, handle)
            utilization = self._value(nvml.nvmlDeviceGetUtilizationRates, handle)
            memory = self._value(nvml.nvmlDeviceGetMemoryInfo, handle)
            power_w = None if power_mw is None else power_mw / 1000
            mem_used_mib = None if memory is None else memory.used / 2**20
            series.add(self.sink, time_unix_s, monotonic_s, monotonic_s,
                       power_w=power_w, power_instant_w=self._instant_power_w(handle),
                       util_pct=None if utilization is None else utilization.gpu,
                       mem_util_pct=None if utilization is None else utilization.memory,
                       mem_used_mib=mem_used_mib,
                       temp_c=self._value(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU),
                       sm_clock_mhz=self._value(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM))
            powers.append(power_w)
            memories.append(mem_used_mib)
        self._rounds.add(powers, memories)
        self._sample_process_memory()
        if final:
            self._counter_end_mj = {series.index: self._counter_mj(handle) for series, handle in self._gpus}
            self._final_unix_s = time_unix_s
        if not final and monotonic_s >= self._utilisation_due_s:
            self._utilisation_due_s = monotonic_s + UTILISATION_PERIOD_S
            self._sample_process_utilisation()

    def _session_of(self, pid: int) -> int | None:
        if pid not in self._sessions:
            try:
                self._sessions[pid] = os.getsid(pid)
            except OSError:
                self._sessions[pid] = None  # gone, or another container's process
        return self._sessions[pid]

    def _sample_process_memory(self) -> None:
        """GPU memory per session (each workload is one): the peak per foreground and background."""
        by_session: dict[int, float] = {}
        for _, handle in self._gpus:
            for info in self._value(self._nvml.nvmlDeviceGetComputeRunningProcesses, handle) or []:
                used = getattr(info, "usedGpuMemory", None)
                session = self._session_of(info.pid)
                if used is None or session is None:
                    continue  # not visible (another container's process, or no permission)
                by_session[session] = by_session.get(session, 0.0) + used / 2**20
        for session, mib in by_session.items():
            self._session_peak_mib[session] = max(mib, self._session_peak_mib.get(session, 0.0))

    def _sample_process_utilisation(self, until_unix_s: float | None = None) -> None:
        """Add each process's SM utilisation samples since the last call to its session's busy sum.

        With `until_unix_s` (the last call, once the window has ended), samples after it are left out.

        The driver returns one sample per process that was busy in a sample period, stamped in
        microseconds of CPU time, and NVML_ERROR_NOT_FOUND when none came since `lastSeenTimeStamp`.
        """
        if self._utilisation_note is not None or self.started_unix_s is None:
            return
        start_us = int(self.started_unix_s * 1e6)
        for series, handle in self._gpus:
            seen_us = self._utilisation_seen_us.get(series.index, start_us)
            try:
                samples = self._nvml.nvmlDeviceGetProcessUtilization(handle, seen_us)
            except self._nvml.NVMLError as error:
                if getattr(error, "value", None) != NVML_ERROR_NOT_FOUND:
                    self._utilisation_note = f"nvmlDeviceGetProcessUtilization is not available here: {error}"
                continue
            except AttributeError:  # an nvidia-ml-py too old to have it
                self._utilisation_note = "nvmlDeviceGetProcessUtilization is not in this nvidia-ml-py"
                return
            for sample in samples:
                if sample.timeStamp <= seen_us or (until_unix_s is not None and sample.timeStamp > until_unix_s * 1e6):
                    continue
                self._utilisation_seen_us[series.index] = max(self._utilisation_seen_us.get(series.index, 0),
                                                              sample.timeStamp)
                self._sm_total += sample.smUtil
                session = self._session_of(sample.pid)
                if session is not None:
                    self._session_sm[session] = self._session_sm.get(session, 0.0) + sample.smUtil

    def power_w(self) -> float | None:
        """The measured GPUs' latest power reading, summed, for a live display."""
        latest = [series.latest_power_w for series, _ in self._gpus]
        return None if not latest or None in latest else sum(w for w in latest if w is not None)

    def _instant_power_w(self, handle: Any) -> float | None:
        """The instantaneous power field (newer drivers); GetPowerUsage is a 1 s average there."""
        field_id = getattr(self._nvml, "NVML_FI_DEV_POWER_INSTANT", None)
        if field_id is None:
            return None
        values = self._value(self._nvml.nvmlDeviceGetFieldValues, handle, [field_id])
        if not values or values[0].nvmlReturn != 0:
            return None
        return float(values[0].value.uiVal) / 1000

    def _measurement(self) -> Measurement:
        assert self.stopped_s is not None
        if self._final_unix_s is not None:
            # The window's last periods (up to UTILISATION_PERIOD_S) were not queried yet; the
            # driver keeps their samples, so they are read now, but none from after the window.
            self._sample_process_utilisation(until_unix_s=self._final_unix_s)
            self._final_unix_s = None
        per_gpu, caveats = [], []
        devices: dict[str, float] = {}
        counter_total_j = integrated_total_j = 0.0
        all_counters = all_integrated = True
        for series, _ in self._gpus:
            start, end = self._counter_start_mj.get(series.index), self._counter_end_mj.get(series.index)
            counter_j = (end - start) / 1000 if start is not None and end is not None else None
            if counter_j is not None and counter_j < 0:
                # The counter went backwards (the driver reloaded): a reset, never a negative energy.
                caveats.append(f"The energy counter of GPU {series.index} went backwards (a driver reset): its "
                               "integrated power is used instead.")
                counter_j = None
            integrated_j = series.integral.energy_j(self.stopped_s)
            energy_j = counter_j if counter_j is not None else integrated_j
            if energy_j is None:
                return not_measured("gpu", f"GPU {series.index} gave neither an energy counter nor power readings.")
            devices[series.index] = energy_j
            all_counters &= counter_j is not None
            if counter_j is not None and integrated_j is not None:
                counter_total_j += counter_j
                integrated_total_j += integrated_j
            else:
                all_integrated = False
            per_gpu.append({**series.summary(), "energy_j": energy_j, "counter_j": counter_j,
                            "integrated_j": integrated_j,
                            "method": "nvml_counter" if counter_j is not None else "nvml_power"})
        if not all_counters and not caveats:
            caveats.append("The energy counter is not supported on some GPU: its integrated power is used there.")
        crosscheck = None
        if all_integrated and counter_total_j > 0:
            crosscheck = (integrated_total_j - counter_total_j) / counter_total_j * 100
        fields: dict[str, float | str | None] = {**summary_fields([s for s, _ in self._gpus], self._rounds),
                                                 "gpu_energy_crosscheck_pct": crosscheck}
        window_s = self.window_s
        return Measurement(
            kind="gpu", method="nvml_counter" if all_counters else "nvml_power", energy_j=sum(devices.values()),
            reason=" ".join(caveats) or None, fields=fields,
            details={"per_gpu": per_gpu, "interval_s": self.interval_s, "window_s": window_s,
                     "session_peak_mib": {str(sid): mib for sid, mib in self._session_peak_mib.items()},
                     "session_sm_util_sum": {str(sid): total for sid, total in self._session_sm.items()},
                     "sm_util_sum": self._sm_total, "process_utilisation_note": self._utilisation_note,
                     "power_source": "nvmlDeviceGetPowerUsage (mW); a 1 s average on Ampere and newer"},
            window_s=window_s, devices=devices,
        )


def free_memory_mib(loader: NvmlLoader) -> dict[str, float]:
    """Free memory of every GPU in MiB, keyed by index and by UUID."""
    nvml = loader()
    nvml.nvmlInit()
    try:
        free: dict[str, float] = {}
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            mib = nvml.nvmlDeviceGetMemoryInfo(handle).free / 2**20
            free[str(index)] = free[_text(nvml.nvmlDeviceGetUUID(handle))] = mib
        return free
    finally:
        nvml.nvmlShutdown()
