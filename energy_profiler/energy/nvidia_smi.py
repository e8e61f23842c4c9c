"""GPU energy from one long-lived `nvidia-smi --query-gpu ... -lms N` process.

Its lines are split by GPU index and each GPU's power is integrated with the trapezoid rule on the
timestamps nvidia-smi printed (never an assumed spacing), clipped to the window: a line printed
after the training ended (nvidia-smi keeps printing until it is stopped) only cuts the last
segment. `[N/A]`, `[Not Supported]` and similar fields are read as missing. Before the first line
the first reading is held back to the window's start, and the share of the window the readings
span is recorded as coverage. Lines are kept as running numbers, never as a list.
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

from energy_profiler.energy.base import Availability, Kind, Measurement, Window, not_measured, sentence
from energy_profiler.energy.gpu_traces import GpuSeries, RoundTotals, summary_fields
from energy_profiler.energy.integrate import WindowIntegral
from energy_profiler.energy.samples import SampleSink
from energy_profiler.process.spawn import forget, spawn

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
        return Availability(False, f"'{executable}' was not found.", "install the NVIDIA driver (it ships nvidia-smi)",
                            brief="no nvidia-smi")
    try:
        result = subprocess.run([executable, "--query-gpu=index,name", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return Availability(False, f"nvidia-smi did not answer: {error}.", brief="nvidia-smi does not answer")
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        return Availability(False, sentence(f"nvidia-smi failed: {message[0] if message else result.returncode}"),
                            "check the NVIDIA driver: nvidia-smi must work in a shell", brief="nvidia-smi fails")
    names = [line.split(",", 1)[-1].strip() for line in result.stdout.splitlines() if line.strip()]
    return Availability(True, f"{len(names)} GPU(s): {', '.join(names)}") if names else \
        Availability(False, "nvidia-smi lists no GPU.", brief="no GPU")


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

    def __init__(self, executable: str, interval_s: float, gpus: Sequence[str] | None, sink: SampleSink):
        self.executable = executable
        self.interval_s = interval_s
        self.gpus = gpus
        self.sink = sink
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()
        self._series: dict[str, GpuSeries] = {}
        self._rounds = RoundTotals()
        self._round: dict[str, tuple[float | None, float | None]] = {}
        self._lines = 0
        self._unparsed: list[str] = []
        self._error: str | None = None
        self._start_unix = self._start_mono = 0.0
        self._end_unix: float | None = None
        self._exited_early = False
        self._closed = False

    def start(self) -> None:
        self._start_unix, self._start_mono = time.time(), time.monotonic()
        try:
            # stderr joins stdout: one reader, and an error message lands among the unparsed lines.
            self._process = spawn(command(self.executable, self.interval_s, self.gpus), role="nvidia-smi",
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        except OSError as error:
            self._error = f"nvidia-smi could not be started: {error.strerror or error}."
            return
        self._reader = threading.Thread(target=self._read, name="nvidia-smi-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            row = parse_line(line)
            with self._lock:
                if row is None:
                    if line.strip() and len(self._unparsed) < MAX_UNPARSED_KEPT:
                        self._unparsed.append(line.strip())
                    continue
                self._lines += 1
                self._add(row, time.monotonic())

    def _add(self, row: SmiRow, received_mono: float) -> None:
        series = self._series.get(row.index)
        if series is None:
            series = self._series[row.index] = GpuSeries(index=row.index, uuid=row.uuid,
                                                         integral=WindowIntegral(self._start_unix))
            if self._end_unix is not None:
                series.integral.close(self._end_unix)
        in_window = self._start_unix <= row.time_unix_s <= (self._end_unix or float("inf"))
        series.add(self.sink, row.time_unix_s, received_mono, row.time_unix_s, in_window=in_window,
                   power_w=row.power_w, util_pct=row.util_pct, mem_util_pct=row.mem_util_pct,
                   mem_used_mib=row.mem_used_mib, temp_c=row.temp_c)
        if not in_window:
            return  # it may cut an edge of the integral, nothing else
        # nvidia-smi prints every GPU once per loop: a GPU seen again starts the next round.
        if row.index in self._round:
            self._close_round()
        self._round[row.index] = (row.power_w, row.mem_used_mib)

    def _close_round(self) -> None:
        if self._round and len(self._round) == len(self._series):
            self._rounds.add([power for power, _ in self._round.values()],
                             [memory for _, memory in self._round.values()])
        elif self._round:  # a GPU missing from the round: its sums are unknown
            self._rounds.add([None], [None])
        self._round = {}

    def power_w(self) -> float | None:
        """The latest power.draw of each GPU, summed, for a live display."""
        with self._lock:
            latest = [series.latest_power_w for series in self._series.values()]
        return None if not latest or None in latest else sum(w for w in latest if w is not None)

    def stop(self) -> None:
        with self._lock:
            if self._end_unix is not None:
                return
            self._end_unix = time.time()  # the window ends now; later lines only cut its last segment
            for series in self._series.values():
                series.integral.close(self._end_unix)
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
        with self._lock:
            self._close_round()

    def close(self) -> None:
        if self._closed:
            return
        self.stop()
        self._closed = True
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()

    def result(self, window: Window) -> Measurement:
        raw: dict[str, Any] = {"command": command(self.executable, self.interval_s, self.gpus),
                               "unparsed_lines": list(self._unparsed)}
        if self._process is None:
            return not_measured("gpu", self._error or "nvidia-smi was not started.", raw)
        if self._exited_early and not self._lines:
            message = self._unparsed or [f"exit code {self._process.returncode}"]
            return not_measured("gpu", sentence(f"nvidia-smi failed: {message[0]}"), raw)
        assert self._end_unix is not None
        return self._measurement(self._end_unix, raw)

    def _measurement(self, end_unix: float, raw: dict[str, Any]) -> Measurement:
        window_s = end_unix - self._start_unix
        ordered = [self._series[index] for index in sorted(self._series, key=lambda i: int(i) if i.isdigit() else 0)]
        inside = [series for series in ordered if series.spacing.count]
        if not inside:
            return not_measured("gpu", "nvidia-smi printed no reading during the training.", raw)
        per_gpu, devices = [], {}
        for series in inside:
            energy_j = series.integral.energy_j(end_unix)
            if energy_j is None:
                return not_measured("gpu", f"nvidia-smi gave no power.draw for GPU {series.index} ([N/A]).", raw)
            first, last = series.integral.first_s, series.integral.last_time_s(end_unix)
            coverage = (last - first) / window_s if first is not None and last is not None and window_s > 0 else 0.0
            devices[series.index] = energy_j
            per_gpu.append({**series.summary(), "energy_j": energy_j, "method": "nvidia_smi",
                            "coverage": min(1.0, max(0.0, coverage)), "dropped_lines": series.integral.dropped})
        return Measurement(
            kind="gpu", method="nvidia_smi", energy_j=sum(devices.values()),
            fields=summary_fields(inside, self._rounds),
            details={**raw, "per_gpu": per_gpu, "interval_s": self.interval_s, "window_s": window_s,
                     "lines": self._lines,
                     "integration": "trapezoid on nvidia-smi's own timestamps, clipped to the window; before the "
                                    "first line the first reading is held"},
            window_s=window_s, devices=devices,
        )
