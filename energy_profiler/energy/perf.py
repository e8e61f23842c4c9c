"""CPU energy from `perf stat -a` on the kernel's power PMU events (energy-pkg, energy-ram, energy-psys).

perf writes nothing until it exits, so its start cannot be seen in its output. Instead perf is
started with its counters disabled (`-D -1`) and a control pipe (`--control fd:CTL,ACK`): the
window begins when perf acknowledges `enable` and ends when it acknowledges `disable`, so the
counts cover the training's window however long perf takes to start or to print. perf is then
stopped with SIGINT and writes its totals (`-x,` CSV) to an unnamed temporary file (`--log-fd`):
nothing is left on disk, whatever happens to this process.

Like RAPL through powercap (which it reads underneath), the counts are system-wide. Where the
kernel offers `energy-pkg`, packages (+ `energy-ram`) are counted, method `perf`, scope `system`.
Where it offers only `energy-psys` (the whole platform: some laptops), that is counted instead,
with its own method label `perf_psys` and scope `platform`, so the two are never pooled.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import IO, Any

from energy_profiler.energy.base import Availability, Kind, Measurement, Window, not_measured, sentence
from energy_profiler.process.spawn import forget, spawn

PERF_ENV = "MUTATION_PERF"
PERF_EVENTS_ENV = "MUTATION_PERF_EVENTS"
DEFAULT_EVENTS_DIR = Path("/sys/bus/event_source/devices/power/events")
PARANOID_FILE = Path("/proc/sys/kernel/perf_event_paranoid")
PARANOID_ENV = "MUTATION_PERF_PARANOID"
CONTROL_TIMEOUT_S = 2.0
"""How long an `enable`/`disable` may wait for perf's ack (the first one, after exec: 13-67 ms measured)."""
STOP_TIMEOUT_S = 5.0
PROBE_COUNT_S = 0.1
"""The probe's real count: long enough for a real counter to move (it updates every ~1 ms)."""

PACKAGE_EVENT = "energy-pkg"
DRAM_EVENT = "energy-ram"
PSYS_EVENT = "energy-psys"
INSTALL_FIX = "install perf: apt install linux-perf (Debian) or linux-tools-$(uname -r) (Ubuntu)"


def perf_executable() -> str:
    return os.environ.get(PERF_ENV, "perf")


def events_dir() -> Path:
    return Path(os.environ.get(PERF_EVENTS_ENV, DEFAULT_EVENTS_DIR))


def paranoid_file() -> Path:
    return Path(os.environ.get(PARANOID_ENV, PARANOID_FILE))


def energy_events(directory: Path) -> list[str]:
    """The `energy-*` events the kernel offers (files without a `.scale`/`.unit` suffix)."""
    try:
        return sorted(path.name for path in directory.iterdir()
                      if path.name.startswith("energy-") and "." not in path.name)
    except OSError:  # absent, or a folder this user may not read: nothing is offered to it
        return []


def counted_events(directory: Path) -> tuple[list[str], str] | None:
    """The events a measurement counts and its method label, or None if neither pkg nor psys is offered."""
    offered = energy_events(directory)
    if PACKAGE_EVENT in offered:
        return [PACKAGE_EVENT, *([DRAM_EVENT] if DRAM_EVENT in offered else [])], "perf"
    if PSYS_EVENT in offered:
        return [PSYS_EVENT], "perf_psys"
    return None


def event_arguments(events: list[str]) -> list[str]:
    return [arg for event in events for arg in ("-e", f"power/{event}/")]


def probe(executable: str, directory: Path, paranoid_file: Path = PARANOID_FILE,
          euid: int | None = None) -> Availability:
    """Can perf count energy here? Found by doing it: a real count of PROBE_COUNT_S must read more than 0 J."""
    if shutil.which(executable) is None:
        return Availability(False, f"'{executable}' was not found.", INSTALL_FIX, brief="no perf")
    selection = counted_events(directory)
    if selection is None:
        offered = energy_events(directory)
        found = f" (it offers {', '.join(offered)})" if offered else f" ({directory} is missing, empty or unreadable)"
        return Availability(False, f"The kernel offers no {PACKAGE_EVENT} or {PSYS_EVENT} power event{found}.",
                            "needs a CPU with RAPL and the kernel's power PMU (rarely in virtual machines)",
                            brief="no perf power events")
    events, method = selection
    if (os.geteuid() if euid is None else euid) != 0:
        try:
            paranoid: int | None = int(paranoid_file.read_text())
        except (OSError, ValueError):
            paranoid = None
        if paranoid is not None and paranoid > 0:
            return Availability(False, f"kernel.perf_event_paranoid is {paranoid}: system-wide events need <= 0 "
                                       "or root.", "sudo sysctl kernel.perf_event_paranoid=0, or run with sudo",
                                brief=f"perf_event_paranoid is {paranoid}")
    command = [executable, "stat", "-a", "-x,", *event_arguments(events), "--", "sleep", f"{PROBE_COUNT_S:g}"]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return Availability(False, f"perf could not be run: {error}.", brief="perf does not run")
    totals, notes = parse_perf_csv(completed.stderr)
    counted = events[0]
    if completed.returncode != 0 or totals.get(counted) is None:
        said = _first_error_line(completed.stderr) or (notes[0] if notes else f"exit code {completed.returncode}")
        return Availability(False, sentence(f"perf could not count {counted}: {said}"), brief=f"perf cannot count "
                                                                                              f"{counted}")
    if totals[counted] == 0:
        return Availability(False, f"The {counted} counter does not advance (perf read 0.00 J over "
                                   f"{PROBE_COUNT_S:g} s).",
                            "virtual machines often offer power events that never count: measure on the host or "
                            "a bare-metal machine, or use the estimate", brief=f"{counted} does not advance")
    scope = " (platform scope: the whole machine, recorded as perf_psys)" if method == "perf_psys" else ""
    return Availability(True, "events: " + ", ".join(events) + scope)


def _first_error_line(stderr: str) -> str:
    """perf's first line of complaint, skipping its CSV output and its `Events ...` notes."""
    for line in stderr.splitlines():
        text = line.strip()
        if text and "," not in text and not text.startswith("Events "):
            return text
    return ""


def parse_perf_csv(text: str) -> tuple[dict[str, float | None], list[str]]:
    """Totals per event from `perf stat -x,` output, and notes on events it could not count.

    Lines are `value,unit,event,run_time_ns,enabled_pct,...`; a value of `<not supported>` or
    `<not counted>` gives None. Comment lines (`# started on ...`), perf's `Events enabled` notes and
    blank lines are skipped. Repeated events (one line per socket) are added up.
    """
    totals: dict[str, float | None] = {}
    notes: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#") or "," not in line:
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

    def __init__(self, executable: str, directory: Path):
        self.executable = executable
        self.directory = directory
        self.events, self.method = counted_events(directory) or ([PACKAGE_EVENT], "perf")
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._control: int | None = None
        self._ack: int | None = None
        self._error: str | None = None
        self._enabled: tuple[float, float] | None = None
        """When `enable` was written and when perf acknowledged it (monotonic)."""
        self._disabled: tuple[float, float] | None = None
        self._raw = ""
        self._stderr_text = ""
        self._prepared = False
        self.spawned_at: float | None = None
        """When perf was started (monotonic)."""
        self._stopped = False
        self._closed = False

    def command(self, control_fd: int = 0, ack_fd: int = 0, log_fd: int = 0) -> list[str]:
        return [self.executable, "stat", "-a", "-x,", "--log-fd", str(log_fd), "-D", "-1",
                "--control", f"fd:{control_fd},{ack_fd}", *event_arguments(self.events)]

    def prepare(self) -> None:
        """Start perf with its counters disabled, without waiting for it (idempotent)."""
        if self._prepared:
            return
        self._prepared = True
        self.spawned_at = time.monotonic()
        self._output = tempfile.TemporaryFile(prefix="mutation-perf-")  # noqa: SIM115 - closed in close()
        self._stderr = tempfile.TemporaryFile(prefix="mutation-perf-")  # noqa: SIM115
        control_read, self._control = os.pipe()
        self._ack, ack_write = os.pipe()
        log_fd = self._output.fileno()
        try:
            self._process = spawn(self.command(control_read, ack_write, log_fd), role="perf",
                                  pass_fds=(control_read, ack_write, log_fd), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=self._stderr)
        except OSError as error:
            self._error = f"perf could not be started: {error.strerror or error}."
        finally:
            # perf holds its own copies; ours would keep the ack pipe open after perf dies.
            os.close(control_read)
            os.close(ack_write)

    def enable_ack_s(self) -> float | None:
        """How long perf took to acknowledge `enable` (None before the window began)."""
        return self._enabled[1] - self._enabled[0] if self._enabled else None

    def startup_s(self) -> float | None:
        """From perf's start to its ack of `enable`: how long it took to come up, when the window waited for it."""
        return self._enabled[1] - self.spawned_at if self._enabled and self.spawned_at is not None else None

    def ready(self) -> bool:
        """Prepared, still running, and not yet enabled: fit to measure a window."""
        return (self._process is not None and self._process.poll() is None and self._error is None
                and self._enabled is None and not self._stopped)

    def start(self) -> None:
        """The window begins when perf acknowledges `enable` (started here unless prepared ahead)."""
        self.prepare()
        if self._process is not None and self._error is None:
            self._enabled = self._send("enable")

    def _send(self, command: str) -> tuple[float, float] | None:
        """Write a control command and wait for perf's `ack\\n\\0`; (written, acknowledged) or None."""
        assert self._process is not None and self._control is not None and self._ack is not None
        written = time.monotonic()
        try:
            os.write(self._control, f"{command}\n".encode())
        except OSError as error:  # perf is gone (EPIPE)
            self._error = self._error or self._failure(f"perf did not take '{command}': {error.strerror}")
            return None
        received = b""
        deadline = written + CONTROL_TIMEOUT_S
        while b"\0" not in received:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._error = self._error or self._failure(f"perf did not acknowledge '{command}' within "
                                                           f"{CONTROL_TIMEOUT_S:g} s")
                return None
            ready, _, _ = select.select([self._ack], [], [], min(remaining, 0.05))
            if ready:
                chunk = os.read(self._ack, 64)
                if not chunk:  # perf closed the ack pipe: it exited
                    self._error = self._error or self._failure(f"perf exited instead of acknowledging '{command}'")
                    return None
                received += chunk
        return written, time.monotonic()

    def _failure(self, what: str) -> str:
        """`what`, with perf's exit status and first complaint once it has exited (a complete sentence)."""
        assert self._process is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=0.2)
        code = self._process.returncode
        said = _first_error_line(self._read(self._stderr))
        status = "" if code is None else f" (exit code {code})"
        return sentence(f"{what}{status}" + (f": {said}" if said else ""))

    def stop(self) -> None:
        if self._process is None or self._stopped:
            return
        self._stopped = True
        if self._enabled is not None and self._error is None:
            self._disabled = self._send("disable")
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)  # perf writes its totals on SIGINT
        try:
            self._process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            self._error = self._error or f"perf did not stop within {STOP_TIMEOUT_S:g} s of SIGINT."
        forget(self._process.pid)
        self._raw = self._read(self._output)
        self._stderr_text = self._read(self._stderr)

    @staticmethod
    def _read(file: IO[bytes] | None) -> str:
        if file is None:
            return ""
        file.seek(0)
        return file.read().decode(errors="replace")

    def window_s(self) -> float | None:
        """Counting time: from perf's ack of `enable` to its ack of `disable`.

        perf changes its counters and then writes the ack, so each edge is late by the same ack
        latency (a fraction of a millisecond), which cancels. The time `enable` was written is no
        use: perf reads it only once it has started (8-67 ms after exec, measured).
        """
        if self._enabled is None or self._disabled is None:
            return None
        return self._disabled[1] - self._enabled[1]

    def result(self, window: Window) -> Measurement:
        raw: dict[str, Any] = {"command": self.command(), "raw_output": self._raw, "stderr": self._stderr_text}
        if self._process is None:
            return not_measured("cpu", self._error or "perf was not started.", raw)
        if self._error is not None:
            return not_measured("cpu", self._error, raw)
        totals, notes = parse_perf_csv(self._raw)
        raw["notes"] = notes
        counted = self.events[0]
        if totals.get(counted) is None:
            said = "; ".join(notes) or _first_error_line(self._stderr_text) or "it printed no count"
            return not_measured("cpu", sentence(f"perf could not count {counted}: {said}"), raw)
        window_s = self.window_s()
        details = {**raw, "events_j": totals, "window_s": window_s,
                   "enable_ack_s": self.enable_ack_s(),
                   "disable_ack_s": self._disabled[1] - self._disabled[0] if self._disabled else None}
        if self.method == "perf_psys":
            psys_j = totals[counted]
            return Measurement(
                kind="cpu", method="perf_psys", energy_j=psys_j,
                reason="Only energy-psys is offered here: the whole platform's energy, not the CPU packages'.",
                fields={"cpu_energy_pkg_j": None, "cpu_energy_dram_j": None, "cpu_energy_scope": "platform"},
                details=details, window_s=window_s, devices={"cpu": psys_j or 0.0})
        package_j = totals[counted] or 0.0
        dram_j = totals.get(DRAM_EVENT)
        return Measurement(
            kind="cpu", method="perf", energy_j=package_j + (dram_j or 0.0),
            reason=None if dram_j is not None else "There is no energy-ram count: cpu_energy_j is the packages only.",
            fields={"cpu_energy_pkg_j": package_j, "cpu_energy_dram_j": dram_j, "cpu_energy_scope": "system"},
            details=details, window_s=window_s, devices={"cpu": package_j + (dram_j or 0.0)},
        )

    def close(self) -> None:
        if self._closed:
            return
        self.stop()
        self._closed = True
        for descriptor in (self._control, self._ack):
            if descriptor is not None:
                os.close(descriptor)
        self._control = self._ack = None
        for file in (self._output, self._stderr):
            if file is not None:
                file.close()
        self._output = self._stderr = None


class PerfSpare:
    """perf started ahead of the next windows, its counters disabled: as many as the trials need.

    perf takes 6-70 ms to start (measured with perf 6.1; a cold start on a loaded machine is the
    slow one), and a window may only begin once perf acknowledges `enable`. Started while the
    previous training runs (`prepare`, from run_training's once_running), that start-up costs the
    next trial nothing, unless the training is shorter than perf's start. Then the window that
    takes the spare waits for the rest of its start-up, its `enable` acknowledged late: the pool
    then keeps one more perf started ahead (up to MAX_DEPTH), so that each is started that many
    trials before its window (as many as perf's start-up spans trials, plus one). A disabled perf
    counts nothing, so a spare's age does not matter;
    one that has died is replaced by a fresh start.
    """

    MAX_DEPTH = 4
    SLOW_ACK_S = 0.01
    """An `enable` acknowledged later than this was waiting for perf's start (a running perf answers in
    well under a millisecond)."""

    def __init__(self, executable: str, directory: Path):
        self.executable = executable
        self.directory = directory
        self.depth = 2
        """How many perf are kept started ahead. Two from the start: the second window's perf is then up
        however short the first training (an idle perf costs a process, not energy); more when a window
        still waited (MAX_DEPTH at most)."""
        self._spares: deque[PerfMonitor] = deque()
        self._taken: PerfMonitor | None = None
        self._takes: list[float] = []
        """When the last two windows took their perf (monotonic)."""

    def prepare(self) -> None:
        """Start perf until `depth` of them are up or starting."""
        taken, self._taken = self._taken, None  # one window's wait grows the pool once
        waited = taken is not None and (taken.enable_ack_s() or 0.0) > self.SLOW_ACK_S
        if waited and taken is not None:
            self.depth = min(self.MAX_DEPTH, max(self.depth + 1, self._depth_for(taken.startup_s())))
        while len(self._spares) < self.depth:
            spare = PerfMonitor(self.executable, self.directory)
            spare.prepare()
            self._spares.append(spare)

    def _depth_for(self, startup_s: float | None) -> int:
        """Spares enough for perf to start within that many trials: its start-up over the time between
        the last two windows, plus one."""
        if startup_s is None or len(self._takes) < 2:
            return 0
        period_s = self._takes[-1] - self._takes[-2]
        return math.ceil(startup_s / period_s) + 1 if period_s > 0 else self.MAX_DEPTH

    def take(self) -> PerfMonitor:
        """The oldest spare if it is fit to measure, else a fresh monitor (which starts perf in its start())."""
        self._takes.append(time.monotonic())
        del self._takes[:-2]
        while self._spares:
            spare = self._spares.popleft()
            if spare.ready():
                self._taken = spare
                return spare
            spare.close()
        self._taken = None
        return PerfMonitor(self.executable, self.directory)

    def close(self) -> None:
        while self._spares:
            self._spares.popleft().close()
