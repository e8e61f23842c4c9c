"""CPU energy from `perf stat -a` on the kernel's power PMU events (energy-pkg, energy-ram, ...).

perf runs as its own process for the training's window and is stopped with SIGINT, after which it
writes its totals as CSV. Like RAPL through powercap (which it reads underneath), the counts are
system-wide. A perf that fails leaves the energy empty with a reason; it never stops a training.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from energy_profiler.energy.base import Availability, Kind, Measurement, Window, not_measured
from energy_profiler.process.lifetime import forget, spawn

PERF_ENV = "MUTATION_PERF"
PERF_EVENTS_ENV = "MUTATION_PERF_EVENTS"
DEFAULT_EVENTS_DIR = Path("/sys/bus/event_source/devices/power/events")
PARANOID_FILE = Path("/proc/sys/kernel/perf_event_paranoid")
STOP_TIMEOUT_S = 5.0
READY_TIMEOUT_S = 2.0

# Which event feeds which column; the others (energy-cores, energy-gpu, energy-psys) are recorded only.
PACKAGE_EVENT = "energy-pkg"
DRAM_EVENT = "energy-ram"


def perf_executable() -> str:
    return os.environ.get(PERF_ENV, "perf")


def events_dir() -> Path:
    return Path(os.environ.get(PERF_EVENTS_ENV, DEFAULT_EVENTS_DIR))


def energy_events(directory: Path) -> list[str]:
    """The `energy-*` events the kernel offers (files without a `.scale`/`.unit` suffix)."""
    if not directory.is_dir():
        return []
    return sorted(path.name for path in directory.glob("energy-*") if "." not in path.name)


def probe(executable: str, directory: Path, paranoid_file: Path = PARANOID_FILE) -> Availability:
    if shutil.which(executable) is None:
        return Availability(False, f"'{executable}' not found",
                            "install perf: apt install linux-perf (Debian) or linux-tools-$(uname -r) (Ubuntu)")
    events = energy_events(directory)
    if not events:
        return Availability(False, f"the kernel offers no power events ({directory} is missing or empty)",
                            "needs a CPU with RAPL and the kernel's power PMU (rarely in virtual machines)")
    if os.geteuid() != 0:
        try:
            paranoid = int(paranoid_file.read_text())
        except (OSError, ValueError):
            paranoid = None
        if paranoid is not None and paranoid > 0:
            return Availability(False, f"kernel.perf_event_paranoid is {paranoid}: system-wide events need <= 0 "
                                       "or root", "sudo sysctl kernel.perf_event_paranoid=0, or run with sudo")
    return Availability(True, "events: " + ", ".join(events))


def parse_perf_csv(text: str) -> tuple[dict[str, float | None], list[str]]:
    """Totals per event from `perf stat -x,` output, and notes on events it could not count.

    Lines are `value,unit,event,run_time_ns,enabled_pct,...`; a value of `<not supported>` or
    `<not counted>` gives None. Comment lines (`# started on ...`) and blank lines are skipped.
    Repeated events (one line per socket) are added up.
    """
    totals: dict[str, float | None] = {}
    notes: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split(",")
        if len(fields) < 3:
            notes.append(f"unparsed line: {line}")
            continue
        value, unit, event = fields[0].strip(), fields[1].strip(), fields[2].strip()
        name = event.removeprefix("power/").rstrip("/")
        if value.startswith("<"):
            notes.append(f"{name}: {value}")
            totals.setdefault(name, None)
            continue
        try:
            number = float(value)
        except ValueError:
            notes.append(f"unparsed value for {name}: {value}")
            continue
        if unit and unit != "Joules":
            notes.append(f"{name}: unexpected unit {unit!r}")
        previous = totals.get(name)
        totals[name] = number + (previous or 0.0)
    return totals, notes


class PerfMonitor:
    kind: Kind = "cpu"
    method = "perf"

    def __init__(self, executable: str, directory: Path):
        self.executable = executable
        self.directory = directory
        self._process: subprocess.Popen[bytes] | None = None
        descriptor, name = tempfile.mkstemp(prefix="mutation-perf-", suffix=".csv")
        os.close(descriptor)  # perf writes the file by name (-o); we only read it back
        self._output = Path(name)
        self._start_error: str | None = None
        self._exited_early = False
        self._counting_since = 0.0
        self._window_s: float | None = None
        self._stderr = ""
        self._raw = ""

    def command(self) -> list[str]:
        events = [arg for event in energy_events(self.directory) for arg in ("-e", f"power/{event}/")]
        return [self.executable, "stat", "-a", "-x,", "-o", str(self._output), *events]

    def start(self) -> None:
        try:
            self._process = spawn(self.command(), role="perf", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        except OSError as error:
            self._start_error = f"could not start perf: {error}"
            return
        # perf counts only once it runs: wait for its "# started on" line (written just before it
        # opens the counters), or the training's first moments would be missed.
        deadline = time.monotonic() + READY_TIMEOUT_S
        while self._output.stat().st_size == 0 and self._process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        self._counting_since = time.monotonic()

    def stop(self) -> None:
        if self._process is None:
            self._output.unlink(missing_ok=True)
            return
        self._window_s = time.monotonic() - self._counting_since
        self._exited_early = self._process.poll() is not None
        if not self._exited_early:
            self._process.send_signal(signal.SIGINT)  # perf prints its totals on SIGINT
        try:
            _, stderr = self._process.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            _, stderr = self._process.communicate()
            self._start_error = "perf did not stop within 5 s of SIGINT"
        forget(self._process.pid)
        self._stderr = stderr.decode(errors="replace")
        self._raw = self._output.read_text() if self._output.exists() else ""
        self._output.unlink(missing_ok=True)

    def result(self, window: Window) -> Measurement:
        if self._process is None or self._start_error is not None:
            return not_measured("cpu", self._start_error or "perf was not started")
        totals, notes = parse_perf_csv(self._raw)
        if self._exited_early or not totals:
            message = self._stderr.strip().splitlines()
            first = message[0] if message else f"exit code {self._process.returncode}"
            return not_measured("cpu", f"perf failed: {first}")
        package_j = totals.get(PACKAGE_EVENT)
        dram_j = totals.get(DRAM_EVENT)
        if package_j is None:
            return not_measured("cpu", f"perf could not count {PACKAGE_EVENT}: " + "; ".join(notes))
        return Measurement(
            kind="cpu", method="perf", energy_j=package_j + (dram_j or 0.0),
            reason=None if dram_j is not None else "no energy-ram event: cpu_energy_j is the packages only",
            fields={"cpu_energy_pkg_j": package_j, "cpu_energy_dram_j": dram_j, "cpu_energy_scope": "system"},
            details={"events_j": totals, "notes": notes, "command": self.command(), "raw_output": self._raw},
            window_s=self._window_s,
        )
