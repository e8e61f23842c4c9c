"""GPU energy from one long-lived `nvidia-smi --query-gpu ... -lms N` process.

Its lines are split by GPU index and each GPU's power is integrated with the trapezoid rule on the
timestamps nvidia-smi printed (never an assumed spacing). `[N/A]`, `[Not Supported]` and similar
fields are read as missing. The window's edges before the first and after the last line hold the
nearest reading, and the share of the window the readings span is recorded as coverage.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from energy_profiler.energy.base import Availability, Kind, Measurement, Window, not_measured
from energy_profiler.energy.gpu_traces import GpuTrace, summary_fields
from energy_profiler.energy.integrate import mean_interval_s
from energy_profiler.process.lifetime import forget, spawn

NVIDIA_SMI_ENV = "MUTATION_NVIDIA_SMI"
QUERY = ("timestamp", "index", "uuid", "power.draw", "utilization.gpu", "utilization.memory",
         "memory.used", "temperature.gpu")
TIMESTAMP_FORMAT = "%Y/%m/%d %H:%M:%S.%f"
STOP_TIMEOUT_S = 5.0
MAX_UNPARSED_KEPT = 20


def nvidia_smi_executable() -> str:
    return os.environ.get(NVIDIA_SMI_ENV, "nvidia-smi")


def _number(field: str) -> float | None:
    """A numeric field, or None for `[N/A]`, `[Not Supported]`, `[Unknown Error]`, `N/A`, ``."""
    text = field.strip()
    try:
        return float(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class SmiRow:
    time_unix_s: float
    index: str
    uuid: str
    power_w: float | None
    util_pct: float | None
    mem_util_pct: float | None
    mem_used_mib: float | None
    temp_c: float | None


def parse_line(line: str) -> SmiRow | None:
    """One `--format=csv,noheader,nounits` line of QUERY, or None if it is not one."""
    fields = [field.strip() for field in line.split(",")]
    if len(fields) != len(QUERY):
        return None
    try:
        # nvidia-smi prints local time with milliseconds.
        stamp = datetime.strptime(fields[0], TIMESTAMP_FORMAT).timestamp()
    except ValueError:
        return None
    return SmiRow(stamp, fields[1], fields[2], *(_number(field) for field in fields[3:]))


def command(executable: str, interval_s: float, gpus: Sequence[str] | None) -> list[str]:
    argv = [executable, f"--query-gpu={','.join(QUERY)}", "--format=csv,noheader,nounits",
            "-lms", str(max(1, round(interval_s * 1000)))]
    if gpus:
        argv += ["-i", ",".join(gpus)]
    return argv


def probe(executable: str) -> Availability:
    if shutil.which(executable) is None:
        return Availability(False, f"'{executable}' not found", "install the NVIDIA driver (it ships nvidia-smi)")
    try:
        result = subprocess.run([executable, "--query-gpu=index,name", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return Availability(False, f"nvidia-smi did not answer: {error}")
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        return Availability(False, f"nvidia-smi failed: {message[0] if message else result.returncode}",
                            "check the NVIDIA driver: nvidia-smi must work in a shell")
    names = [line.split(",", 1)[-1].strip() for line in result.stdout.splitlines() if line.strip()]
    return Availability(True, f"{len(names)} GPU(s): {', '.join(names)}") if names else \
        Availability(False, "nvidia-smi lists no GPU")


def gpu_facts(executable: str) -> dict[str, Any]:
    """Driver, names, UUIDs and power limits from one nvidia-smi query."""
    result = subprocess.run([executable, "--query-gpu=index,name,uuid,driver_version,power.limit",
                             "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=15, check=True)
    gpus, driver = [], None
    for line in result.stdout.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) == 5:
            driver = fields[3]
            gpus.append({"index": int(fields[0]), "name": fields[1], "uuid": fields[2],
                         "power_limit_w": _number(fields[4])})
    return {"gpu_driver": driver, "gpus": gpus}


class NvidiaSmiMonitor:
    kind: Kind = "gpu"
    method = "nvidia_smi"

    def __init__(self, executable: str, interval_s: float, gpus: Sequence[str] | None):
        self.executable = executable
        self.interval_s = interval_s
        self.gpus = gpus
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._rows: list[tuple[SmiRow, float]] = []
        self._unparsed: list[str] = []
        self._error: str | None = None
        self._start_unix = self._start_mono = 0.0
        self._end_unix = self._end_mono = 0.0
        self._exited_early = False

    def start(self) -> None:
        self._start_unix, self._start_mono = time.time(), time.monotonic()
        try:
            # stderr joins stdout: one reader, and an error message lands among the unparsed lines.
            self._process = spawn(command(self.executable, self.interval_s, self.gpus), role="nvidia-smi",
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        except OSError as error:
            self._error = f"could not start nvidia-smi: {error}"
            return
        self._reader = threading.Thread(target=self._read, name="nvidia-smi-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            row = parse_line(line)
            if row is None:
                if line.strip() and len(self._unparsed) < MAX_UNPARSED_KEPT:
                    self._unparsed.append(line.strip())
                continue
            self._rows.append((row, time.monotonic()))

    def power_w(self) -> float | None:
        """The latest power.draw of each GPU, summed, for a live display."""
        latest: dict[str, float | None] = {}
        for row, _ in self._rows[-16:]:
            latest[row.index] = row.power_w
        return None if not latest or None in latest.values() else sum(w for w in latest.values() if w is not None)

    def stop(self) -> None:
        self._end_unix, self._end_mono = time.time(), time.monotonic()
        if self._process is None:
            return
        self._exited_early = self._process.poll() is not None
        self._process.terminate()
        try:
            self._process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        forget(self._process.pid)
        if self._reader is not None:
            self._reader.join(timeout=STOP_TIMEOUT_S)  # it ends at the end of nvidia-smi's output

    def result(self, window: Window) -> Measurement:
        if self._process is None:
            return not_measured("gpu", self._error or "nvidia-smi was not started")
        if self._exited_early and not self._rows:
            message = self._unparsed or [f"exit code {self._process.returncode}"]
            return not_measured("gpu", f"nvidia-smi failed: {message[0]}")
        return self._measurement(self._end_unix, self._end_mono)

    def _measurement(self, end_unix: float, end_mono: float) -> Measurement:
        traces: dict[str, GpuTrace] = {}
        for row, received_mono in self._rows:
            if not self._start_unix - 1 <= row.time_unix_s <= end_unix + 1:
                continue  # a stale line from before start, should one come
            trace = traces.setdefault(row.index, GpuTrace(index=row.index, uuid=row.uuid))
            trace.add(row.time_unix_s, received_mono, power_w=row.power_w, util_pct=row.util_pct,
                      mem_util_pct=row.mem_util_pct, mem_used_mib=row.mem_used_mib, temp_c=row.temp_c)
        if not traces:
            return not_measured("gpu", "nvidia-smi printed no reading during the training")
        per_gpu, total_j = [], 0.0
        for trace in traces.values():
            energy_j = trace.integrated_j(self._start_unix, end_unix, clock="unix")
            if energy_j is None:
                return not_measured("gpu", f"nvidia-smi gave no power.draw for GPU {trace.index} ([N/A])")
            times, _ = trace.power_points("unix")
            coverage = (times[-1] - times[0]) / (end_unix - self._start_unix) if end_unix > self._start_unix else 0
            total_j += energy_j
            per_gpu.append({**trace.summary(), "energy_j": energy_j, "method": "nvidia_smi",
                            "coverage": min(1.0, coverage),
                            "interval_achieved_s": mean_interval_s(times)})
        ordered = [traces[index] for index in sorted(traces, key=lambda i: int(i) if i.isdigit() else 0)]
        return Measurement(
            kind="gpu", method="nvidia_smi", energy_j=total_j, fields=summary_fields(ordered),
            details={"per_gpu": per_gpu, "interval_s": self.interval_s, "window_s": end_mono - self._start_mono,
                     "command": command(self.executable, self.interval_s, self.gpus),
                     "unparsed_lines": self._unparsed,
                     "integration": "trapezoid on nvidia-smi's own timestamps; edges hold the nearest reading"},
            samples=[sample for trace in ordered for sample in trace.samples()],
            window_s=end_unix - self._start_unix,
        )
