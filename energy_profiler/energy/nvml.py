"""GPU energy through NVML (the nvidia-ml-py package, imported as pynvml).

Energy per GPU is the difference of `nvmlDeviceGetTotalEnergyConsumption` (millijoules since the
driver loaded; Volta and newer) between start and stop. Where that counter is not supported, it is
the trapezoid integral of the sampled power. A sampler thread reads power (mW), utilisation, memory,
temperature and SM clock every `interval_s`; where both exist, counter and integral are compared.
The pynvml module is loaded in start(), never at import, and is injectable for tests.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from energy_profiler.energy.base import Availability, Kind, Measurement, Ticker, Window, not_measured
from energy_profiler.energy.gpu_traces import GpuTrace, summary_fields

NvmlLoader = Callable[[], ModuleType]
NVML_MODULE_ENV = "MUTATION_NVML_MODULE"
"""Name of the module to use instead of pynvml (a fake with the same functions, for tests)."""


def load_pynvml() -> ModuleType:
    return importlib.import_module(os.environ.get(NVML_MODULE_ENV, "pynvml"))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def probe(loader: NvmlLoader) -> Availability:
    try:
        nvml = loader()
    except ImportError:
        return Availability(False, "nvidia-ml-py is not installed", "pip install nvidia-ml-py")
    try:
        nvml.nvmlInit()
    except Exception as error:  # NVMLError subclasses: library not found, driver not loaded, ...
        return Availability(False, f"NVML did not start: {error}",
                            "install or load the NVIDIA driver (nvidia-smi must work)")
    try:
        count = nvml.nvmlDeviceGetCount()
        names = [_text(nvml.nvmlDeviceGetName(nvml.nvmlDeviceGetHandleByIndex(i))) for i in range(count)]
    finally:
        nvml.nvmlShutdown()
    if not count:
        return Availability(False, "NVML sees no GPU")
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


class NvmlMonitor:
    kind: Kind = "gpu"
    method = "nvml"

    def __init__(self, loader: NvmlLoader, interval_s: float, gpus: Sequence[str] | None):
        self.loader = loader
        self.interval_s = interval_s
        self.gpus = gpus
        self._nvml: Any = None
        self._handles: list[tuple[GpuTrace, Any]] = []
        self._counter_start_mj: dict[str, int | None] = {}
        self._ticker = Ticker(interval_s)
        self._thread: threading.Thread | None = None
        self._error: str | None = None
        self._started_s = 0.0
        self._stopped_s = 0.0
        self._counter_end_mj: dict[str, int | None] = {}
        self._session_peak_mib: dict[int, float] = {}
        self._lock = threading.Lock()
        self._stopped = False

    def start(self) -> None:
        try:
            self._nvml = self.loader()
            self._nvml.nvmlInit()
            self._handles = [self._open(selector) for selector in self._selectors()]
        except Exception as error:
            self._error = f"NVML did not start: {error}"
            return
        self._started_s = time.monotonic()
        for trace, handle in self._handles:
            self._counter_start_mj[trace.index] = self._counter_mj(handle)
        self._sample()
        self._thread = threading.Thread(target=self._run, name="nvml-sampler", daemon=True)
        self._thread.start()

    def _selectors(self) -> list[str]:
        if self.gpus:
            return list(self.gpus)
        return [str(index) for index in range(self._nvml.nvmlDeviceGetCount())]

    def _open(self, selector: str) -> tuple[GpuTrace, Any]:
        nvml = self._nvml
        if selector.isdigit():
            handle = nvml.nvmlDeviceGetHandleByIndex(int(selector))
            index = selector
        else:
            handle = nvml.nvmlDeviceGetHandleByUUID(selector)
            index = str(nvml.nvmlDeviceGetIndex(handle))
        trace = GpuTrace(index=index, uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                         name=_text(nvml.nvmlDeviceGetName(handle)))
        return trace, handle

    def _counter_mj(self, handle: Any) -> int | None:
        try:
            return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
        except self._nvml.NVMLError:
            return None  # NotSupported before Volta; the power integral stands in

    def _run(self) -> None:
        while self._ticker.wait():
            with self._lock:
                if self._stopped:
                    return
                self._sample()

    def _read(self, function: Callable[..., Any], *args: Any) -> Any:
        """`function(*args)`, or None where the GPU does not support that reading."""
        try:
            return function(*args)
        except self._nvml.NVMLError:
            return None

    def _sample(self) -> None:
        nvml = self._nvml
        now_unix, now_mono = time.time(), time.monotonic()  # one round, one timestamp: rounds align
        for trace, handle in self._handles:
            power_mw = self._read(nvml.nvmlDeviceGetPowerUsage, handle)
            utilization = self._read(nvml.nvmlDeviceGetUtilizationRates, handle)
            memory = self._read(nvml.nvmlDeviceGetMemoryInfo, handle)
            trace.add(
                now_unix, now_mono,
                power_w=None if power_mw is None else power_mw / 1000,
                power_instant_w=self._instant_power_w(handle),
                util_pct=None if utilization is None else utilization.gpu,
                mem_util_pct=None if utilization is None else utilization.memory,
                mem_used_mib=None if memory is None else memory.used / 2**20,
                temp_c=self._read(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU),
                sm_clock_mhz=self._read(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM),
            )
        self._sample_process_memory()

    def _sample_process_memory(self) -> None:
        """GPU memory per session (each workload is one): the peak per foreground and background."""
        by_session: dict[int, float] = {}
        for _, handle in self._handles:
            for info in self._read(self._nvml.nvmlDeviceGetComputeRunningProcesses, handle) or []:
                used = getattr(info, "usedGpuMemory", None)
                if used is None:
                    continue  # not visible (another container's process, or no permission)
                try:
                    session = os.getsid(info.pid)
                except OSError:
                    continue
                by_session[session] = by_session.get(session, 0.0) + used / 2**20
        for session, mib in by_session.items():
            self._session_peak_mib[session] = max(mib, self._session_peak_mib.get(session, 0.0))

    def power_w(self) -> float | None:
        """The measured GPUs' latest power reading, summed, for a live display."""
        latest = [trace.power_w[-1] for trace, _ in self._handles if trace.power_w]
        return None if not latest or None in latest else sum(w for w in latest if w is not None)

    def _instant_power_w(self, handle: Any) -> float | None:
        """The instantaneous power field (newer drivers); GetPowerUsage is a 1 s average there."""
        field_id = getattr(self._nvml, "NVML_FI_DEV_POWER_INSTANT", None)
        if field_id is None:
            return None
        values = self._read(self._nvml.nvmlDeviceGetFieldValues, handle, [field_id])
        if not values or values[0].nvmlReturn != 0:
            return None
        return float(values[0].value.uiVal) / 1000

    def stop(self) -> None:
        if self._error is not None:
            return
        try:
            # Final readings first, at once (the window ends with the training), then the thread.
            with self._lock:
                self._sample()
                self._stopped_s = time.monotonic()
                self._counter_end_mj = {trace.index: self._counter_mj(handle) for trace, handle in self._handles}
                self._stopped = True
            self._ticker.stop()
            if self._thread is not None:
                self._thread.join()
            self._ticker.close()
        finally:
            self._nvml.nvmlShutdown()

    def result(self, window: Window) -> Measurement:
        if self._error is not None:
            return not_measured("gpu", self._error)
        return self._measurement(self._counter_end_mj, self._stopped_s)

    def _measurement(self, counter_end: dict[str, int | None], stopped_s: float) -> Measurement:
        traces = [trace for trace, _ in self._handles]
        per_gpu = []
        total_j = 0.0
        counter_total_j = integrated_total_j = 0.0
        all_counters, all_integrated = True, True
        for trace in traces:
            start, end = self._counter_start_mj.get(trace.index), counter_end.get(trace.index)
            counter_j = (end - start) / 1000 if start is not None and end is not None else None
            integrated_j = trace.integrated_j(self._started_s, stopped_s)
            energy_j = counter_j if counter_j is not None else integrated_j
            if energy_j is None:
                return not_measured("gpu", f"GPU {trace.index} gave neither an energy counter nor power readings")
            total_j += energy_j
            all_counters &= counter_j is not None
            if counter_j is not None and integrated_j is not None:
                counter_total_j += counter_j
                integrated_total_j += integrated_j
            else:
                all_integrated = False
            per_gpu.append({**trace.summary(), "energy_j": energy_j, "counter_j": counter_j,
                            "integrated_j": integrated_j,
                            "method": "nvml_counter" if counter_j is not None else "nvml_power"})
        crosscheck = None
        if all_integrated and counter_total_j > 0:
            crosscheck = (integrated_total_j - counter_total_j) / counter_total_j * 100
        fields: dict[str, float | str | None] = {**summary_fields(traces), "gpu_energy_crosscheck_pct": crosscheck}
        return Measurement(
            kind="gpu", method="nvml_counter" if all_counters else "nvml_power", energy_j=total_j,
            reason=None if all_counters else "energy counter not supported on some GPU: integrated power there",
            fields=fields,
            details={"per_gpu": per_gpu, "interval_s": self.interval_s, "window_s": stopped_s - self._started_s,
                     "session_peak_mib": {str(sid): mib for sid, mib in self._session_peak_mib.items()},
                     "power_source": "nvmlDeviceGetPowerUsage (mW); a 1 s average on Ampere and newer"},
            samples=[sample for trace in traces for sample in trace.samples()],
            window_s=stopped_s - self._started_s,
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
