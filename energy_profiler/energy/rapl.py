"""CPU energy from RAPL counters in the powercap sysfs tree (`/sys/class/powercap/intel-rapl:*`).

Zones: `package-N` (one per socket), `dram` (under a package), `psys` (the whole platform, which
already contains the packages: never added to them), `core`/`uncore` (parts of a package: recorded,
not added). `intel-rapl-mmio:*` zones repeat MSR zones of the same name and are dropped.
The counters are system-wide: they include every process on the machine, not only the training.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from energy_profiler.energy.base import Availability, Kind, Measurement, Sample, Ticker, Window, not_measured

POWERCAP_ROOT_ENV = "MUTATION_POWERCAP_ROOT"
DEFAULT_POWERCAP_ROOT = Path("/sys/class/powercap")
WRAP_CHECK_POWER_W = 500.0
"""A package power no current CPU sustains; the wrap time at this power bounds the interval."""
WRAP_SAFETY_FACTOR = 4
"""The sampling interval must be this many times shorter than the fastest wrap."""

Role = Literal["package", "dram", "psys", "core", "uncore", "other"]

ROOT_ONLY_FIX = ("run mutation.py with sudo, or let your user read the counters until the next boot: "
                 "sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj "
                 "(or a udev rule doing the same at every boot)")


def powercap_root() -> Path:
    return Path(os.environ.get(POWERCAP_ROOT_ENV, DEFAULT_POWERCAP_ROOT))


@dataclass(frozen=True)
class Zone:
    """One RAPL counter."""

    zone_id: str
    """Its powercap folder name, e.g. `intel-rapl:0:1`."""
    name: str
    """The zone's own `name` file: `package-0`, `dram`, `psys`, `core`, `uncore`."""
    role: Role
    socket: int | None
    max_range_uj: int
    path: Path

    @property
    def label(self) -> str:
        """A unique, readable name: `package-0`, `dram-0`, `psys`."""
        if self.role == "package" or self.socket is None:
            return self.name
        return f"{self.name}-{self.socket}"

    def read_uj(self) -> int:
        # Raw system calls: pathlib's read_text builds a whole I/O stack, several times the cost.
        descriptor = os.open(self.counter_file, os.O_RDONLY)
        try:
            return int(os.read(descriptor, 32))
        finally:
            os.close(descriptor)

    @property
    def counter_file(self) -> str:
        return f"{self.path}/energy_uj"


def _role(name: str) -> Role:
    roles: tuple[Role, ...] = ("package", "dram", "psys", "core", "uncore")
    for role in roles:
        if name.startswith(role):
            return role
    return "other"


def discover_zones(root: Path) -> list[Zone]:
    """Every RAPL zone under `root`, MMIO duplicates removed, in a stable order."""
    found: dict[str, tuple[str, Path]] = {}
    for entry in sorted(root.glob("intel-rapl*")):
        if (entry / "name").is_file() and (entry / "energy_uj").exists():
            found[entry.name] = ((entry / "name").read_text().strip(), entry)

    def socket_of(zone_id: str, name: str) -> int | None:
        if name.startswith("package-"):
            return int(name.split("-", 1)[1])
        parts = zone_id.split(":")
        if len(parts) == 3:  # a subzone: its socket is its parent package's
            parent = found.get(":".join(parts[:2]))
            if parent and parent[0].startswith("package-"):
                return int(parent[0].split("-", 1)[1])
        return None

    zones = []
    for zone_id, (name, path) in found.items():
        max_range_path = path / "max_energy_range_uj"
        max_range = int(max_range_path.read_text()) if max_range_path.is_file() else 0
        zones.append(Zone(zone_id, name, _role(name), socket_of(zone_id, name), max_range, path))
    msr_names = {(zone.name, zone.socket) for zone in zones if not zone.zone_id.startswith("intel-rapl-mmio")}
    return [zone for zone in zones
            if not (zone.zone_id.startswith("intel-rapl-mmio") and (zone.name, zone.socket) in msr_names)]


def probe(root: Path, interval_s: float) -> Availability:
    """Can RAPL be read here at this interval? If not: why, and the fix."""
    if not root.is_dir():
        return Availability(False, f"no powercap interface at {root}",
                            "load the driver: sudo modprobe intel_rapl_msr (virtual machines rarely expose RAPL)")
    zones = discover_zones(root)
    if not zones:
        return Availability(False, f"no RAPL zones under {root}",
                            "load the driver: sudo modprobe intel_rapl_msr (virtual machines rarely expose RAPL)")
    try:
        for zone in zones:
            zone.read_uj()
    except PermissionError:
        return Availability(False, f"{zones[0].path}/energy_uj is readable by root only "
                                   "(Linux 5.10+, since CVE-2020-8694)", ROOT_ONLY_FIX)
    except (OSError, ValueError) as error:
        return Availability(False, f"cannot read RAPL counters: {error}")
    packages = [zone for zone in zones if zone.role == "package"]
    if not packages:
        return Availability(False, f"no package zone under {root} (found: {', '.join(z.label for z in zones)})")
    fastest_wrap_s = min(wrap_time_s(zone) for zone in packages)
    if interval_s > fastest_wrap_s / WRAP_SAFETY_FACTOR:
        return Availability(False, f"interval_s {interval_s:g} is too long: a package counter can wrap every "
                                   f"{fastest_wrap_s:.0f} s at {WRAP_CHECK_POWER_W:.0f} W",
                            f"use interval_s <= {fastest_wrap_s / WRAP_SAFETY_FACTOR:.0f}")
    return Availability(True, "zones: " + ", ".join(zone.label for zone in zones))


def wrap_time_s(zone: Zone) -> float:
    """Seconds until the counter wraps at WRAP_CHECK_POWER_W."""
    return zone.max_range_uj / 1e6 / WRAP_CHECK_POWER_W if zone.max_range_uj else float("inf")


class RaplMonitor:
    """Reads every zone at start, every `interval_s` (to see each wrap), and at stop."""

    kind: Kind = "cpu"
    method = "rapl"

    def __init__(self, root: Path, interval_s: float):
        self.root = root
        self.interval_s = interval_s
        self._ticker = Ticker(interval_s)
        self._thread: threading.Thread | None = None
        self._zones: list[Zone] = []
        self._last_uj: dict[str, int] = {}
        self._total_uj: dict[str, int] = {}
        self._wraps: dict[str, int] = {}
        self._samples: list[Sample] = []
        self._error: str | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._power_w: float | None = None
        self._last_read_s = 0.0
        self._started = 0.0
        self._elapsed_s = 0.0

    def start(self) -> None:
        self._zones = discover_zones(self.root)
        self._started = time.monotonic()
        for zone in self._zones:
            self._total_uj[zone.zone_id] = 0
            self._wraps[zone.zone_id] = 0
        self._read_all(first=True)
        self._thread = threading.Thread(target=self._run, name="rapl-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self._ticker.wait() and self._error is None:
            with self._lock:
                if self._stopped:
                    return  # the final reading is taken: none may come after the window
                self._read_all()

    def power_w(self) -> float | None:
        """Packages + DRAM power between the last two readings, for a live display."""
        return self._power_w

    def _read_all(self, first: bool = False) -> None:
        now_unix, now_mono = time.time(), time.monotonic()
        counted_uj = 0
        for zone in self._zones:
            try:
                value = zone.read_uj()
            except (OSError, ValueError) as error:
                self._error = f"reading {zone.path}/energy_uj failed: {error}"
                return
            if not first:
                delta = value - self._last_uj[zone.zone_id]
                if delta < 0:  # the counter wrapped past max_energy_range_uj
                    delta += zone.max_range_uj
                    self._wraps[zone.zone_id] += 1
                self._total_uj[zone.zone_id] += delta
                if zone.role in ("package", "dram"):
                    counted_uj += delta
            self._last_uj[zone.zone_id] = value
            self._samples.append(Sample(now_unix, now_mono, zone.label, "energy_uj", value, "uJ"))
        if not first and now_mono > self._last_read_s:
            self._power_w = counted_uj / 1e6 / (now_mono - self._last_read_s)
        self._last_read_s = now_mono

    def stop(self) -> None:
        # The final reading first, at once: joining the sampler can take a while on a busy machine,
        # and the window must end when the training did.
        with self._lock:
            if self._error is None:
                self._read_all()
            self._elapsed_s = time.monotonic() - self._started
            self._stopped = True
        self._ticker.stop()
        if self._thread is not None:
            self._thread.join()
        self._ticker.close()

    def result(self, window: Window) -> Measurement:
        if self._error is not None:
            return not_measured("cpu", self._error)
        return self._measurement(self._elapsed_s)

    def _measurement(self, elapsed_s: float) -> Measurement:
        energy_j = {zone.zone_id: self._total_uj[zone.zone_id] / 1e6 for zone in self._zones}
        packages = [zone for zone in self._zones if zone.role == "package"]
        drams = [zone for zone in self._zones if zone.role == "dram"]
        pkg_j = sum(energy_j[zone.zone_id] for zone in packages)
        dram_j = sum(energy_j[zone.zone_id] for zone in drams) if drams else None
        per_socket: dict[str, dict[str, float]] = {}
        for zone in self._zones:
            if zone.socket is not None and zone.role in ("package", "dram"):
                per_socket.setdefault(str(zone.socket), {})[f"{zone.role}_j"] = energy_j[zone.zone_id]
        psys = [energy_j[zone.zone_id] for zone in self._zones if zone.role == "psys"]
        reading_times = sorted({sample.monotonic_s for sample in self._samples})
        return Measurement(
            kind="cpu", method="rapl", energy_j=pkg_j + (dram_j or 0.0),
            reason=None if drams else "no DRAM zone: cpu_energy_j is the packages only",
            fields={"cpu_energy_pkg_j": pkg_j, "cpu_energy_dram_j": dram_j, "cpu_energy_scope": "system"},
            details={
                "zones": {zone.label: {"zone": zone.zone_id, "energy_j": energy_j[zone.zone_id],
                                       "wraps": self._wraps[zone.zone_id], "max_energy_range_uj": zone.max_range_uj}
                          for zone in self._zones},
                "per_socket": per_socket,
                "psys_j": sum(psys) if psys else None,
                "interval_s": self.interval_s,
                "readings": len(reading_times),
                "window_s": elapsed_s,
                "added": "package + dram; psys, core and uncore are recorded, never added",
            },
            samples=list(self._samples),
            window_s=elapsed_s,
        )
