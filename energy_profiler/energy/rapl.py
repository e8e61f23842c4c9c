"""CPU energy from RAPL counters in the powercap sysfs tree (`/sys/class/powercap/intel-rapl:*`).

Zones: `package-N` (one per socket), `dram` (under a package), `psys` (the whole platform, which
already contains the packages: never added to them), `core`/`uncore` (parts of a package: recorded,
not added). `intel-rapl-mmio:*` zones repeat MSR zones of the same name and are dropped.
The counters are system-wide: they include every process on the machine, not only the training.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from energy_profiler.energy.base import Availability, Kind, Measurement
from energy_profiler.energy.sampled import SampledMonitor
from energy_profiler.energy.samples import SampleSink

POWERCAP_ROOT_ENV = "MUTATION_POWERCAP_ROOT"
DEFAULT_POWERCAP_ROOT = Path("/sys/class/powercap")
WRAP_CHECK_POWER_W = 500.0
"""A package power no current CPU sustains; the wrap time at this power bounds the interval."""
WRAP_SAFETY_FACTOR = 4
"""The sampling interval must be this many times shorter than the fastest wrap."""

Role = Literal["package", "dram", "psys", "core", "uncore", "other"]

ADVANCE_CHECK_S = 0.2
"""How long a probe waits for every package counter to move (a real one moves every millisecond)."""

ROOT_ONLY_FIX = ("run mutation.py with sudo, or let a dedicated group read the counters with a udev rule "
                 "(docs/energy.md, 'RAPL without sudo'); not chmod o+r, which reopens CVE-2020-8694's power "
                 "side channel to every local user")
NO_RAPL_FIX = "load the driver: sudo modprobe intel_rapl_msr (virtual machines rarely expose RAPL)"


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
        try:
            max_range = int((path / "max_energy_range_uj").read_text())
        except (OSError, ValueError):
            max_range = 0  # no readable range: a backwards step can then only be taken as a reset
        zones.append(Zone(zone_id, name, _role(name), socket_of(zone_id, name), max_range, path))
    msr_names = {(zone.name, zone.socket) for zone in zones if not zone.zone_id.startswith("intel-rapl-mmio")}
    return [zone for zone in zones
            if not (zone.zone_id.startswith("intel-rapl-mmio") and (zone.name, zone.socket) in msr_names)]


def probe(root: Path, interval_s: float, advance_check_s: float = ADVANCE_CHECK_S) -> Availability:
    """Can RAPL be read here at this interval, and do its package counters move? If not: why, and the fix."""
    try:
        zones = discover_zones(root) if root.is_dir() else None
    except OSError as error:
        return Availability(False, f"The powercap interface at {root} cannot be read: {error.strerror}.",
                            ROOT_ONLY_FIX, brief="RAPL unreadable")
    if zones is None:
        return Availability(False, f"There is no powercap interface at {root}.", NO_RAPL_FIX, brief="no RAPL")
    if not zones:
        return Availability(False, f"There are no RAPL zones under {root}.", NO_RAPL_FIX, brief="no RAPL")
    try:
        first_uj = {zone.zone_id: zone.read_uj() for zone in zones}
    except PermissionError:
        return Availability(False, f"{zones[0].counter_file} is readable by root only (Linux 5.10+, since "
                                   "CVE-2020-8694).", ROOT_ONLY_FIX, brief="RAPL readable by root only")
    except (OSError, ValueError) as error:
        return Availability(False, f"The RAPL counters cannot be read: {error}.", brief="RAPL unreadable")
    packages = [zone for zone in zones if zone.role == "package"]
    if not packages:
        return Availability(False, f"There is no package zone under {root} (found: "
                                   f"{', '.join(z.label for z in zones)}).", brief="no RAPL package zone")
    fastest_wrap_s = min(wrap_time_s(zone) for zone in packages)
    if interval_s > fastest_wrap_s / WRAP_SAFETY_FACTOR:
        return Availability(False, f"interval_s {interval_s:g} is too long: a package counter can wrap every "
                                   f"{fastest_wrap_s:.0f} s at {WRAP_CHECK_POWER_W:.0f} W.",
                            f"use interval_s <= {fastest_wrap_s / WRAP_SAFETY_FACTOR:.0f}", brief="interval too long")
    still = _packages_that_do_not_advance(packages, first_uj, advance_check_s)
    if still:
        return Availability(False, f"The RAPL counter of {', '.join(still)} does not advance (no change in "
                                   f"{advance_check_s:g} s).",
                            "virtual machines often show RAPL zones that never count: measure on the host or a "
                            "bare-metal machine, or use the estimate", brief="RAPL counters do not advance")
    return Availability(True, "zones: " + ", ".join(zone.label for zone in zones))


def _packages_that_do_not_advance(packages: list[Zone], first_uj: dict[str, int], within_s: float) -> list[str]:
    """The labels of package zones whose counter did not change within `within_s` (checked every 10 ms)."""
    waiting = list(packages)
    deadline = time.monotonic() + within_s
    while waiting and time.monotonic() < deadline:
        time.sleep(0.01)
        waiting = [zone for zone in waiting if zone.read_uj() == first_uj[zone.zone_id]]
    return [zone.label for zone in waiting]


def wrap_time_s(zone: Zone) -> float:
    """Seconds until the counter wraps at WRAP_CHECK_POWER_W."""
    return zone.max_range_uj / 1e6 / WRAP_CHECK_POWER_W if zone.max_range_uj else float("inf")


def package_power_limits_w(root: Path) -> list[float]:
    """The long-term power limit (PL1) of each package zone, in watts, where it is readable and set.

    Unlike `energy_uj`, the constraint files stay world-readable, and PL1 is the TDP unless the
    firmware or the owner changed it.
    """
    limits = []
    try:
        zones = discover_zones(root) if root.is_dir() else []
    except OSError:
        return []
    for zone in zones:
        if zone.role != "package":
            continue
        for constraint in sorted(zone.path.glob("constraint_*_name")):
            try:
                if constraint.read_text().strip() != "long_term":
                    continue
                prefix = constraint.name.removesuffix("_name")
                microwatts = int((zone.path / f"{prefix}_power_limit_uw").read_text())
            except (OSError, ValueError):
                continue
            if microwatts > 0:
                limits.append(microwatts / 1e6)
    return limits


class RaplMonitor(SampledMonitor):
    """Reads every zone at start, every `interval_s` (to see each wrap), and at stop."""

    kind: Kind = "cpu"
    method = "rapl"
    thread_name = "rapl-sampler"

    def __init__(self, root: Path, interval_s: float, sink: SampleSink):
        super().__init__(interval_s, sink)
        self.root = root
        self._zones: list[Zone] = []
        self._last_uj: dict[str, int] = {}
        self._total_uj: dict[str, int] = {}
        self._wraps: dict[str, int] = {}
        self._resets: dict[str, int] = {}
        self._readings = 0
        self._power_w: float | None = None
        self._last_read_s = 0.0

    def _open(self) -> None:
        self._zones = discover_zones(self.root)
        if not self._zones:
            raise RuntimeError(f"no RAPL zones under {self.root}")
        for zone in self._zones:
            self._total_uj[zone.zone_id] = self._wraps[zone.zone_id] = self._resets[zone.zone_id] = 0

    def _release(self) -> None:
        """Nothing to give back: each reading opens and closes its counter file."""

    def _describe_failure(self, error: Exception) -> str:
        return f"RAPL could not be opened: {error}"

    def power_w(self) -> float | None:
        """Packages + DRAM power between the last two readings, for a live display."""
        return self._power_w

    def _read(self, time_unix_s: float, monotonic_s: float, *, first: bool, final: bool) -> None:
        values = {zone.zone_id: zone.read_uj() for zone in self._zones}  # all zones, then the bookkeeping
        counted_uj = 0
        for zone in self._zones:
            value = values[zone.zone_id]
            if not first:
                delta = value - self._last_uj[zone.zone_id]
                if delta < 0 and zone.max_range_uj > 0:  # the counter wrapped past max_energy_range_uj
                    delta += zone.max_range_uj
                    self._wraps[zone.zone_id] += 1
                elif delta < 0:
                    # No readable range to unwrap with: a backwards step is a reset (counted from zero
                    # again), never a negative energy. What was counted between the last reading and
                    # the reset is lost, and the measurement says so.
                    delta = value
                    self._resets[zone.zone_id] += 1
                self._total_uj[zone.zone_id] += delta
                if zone.role in ("package", "dram"):
                    counted_uj += delta
            self._last_uj[zone.zone_id] = value
            self.sink.write(time_unix_s, monotonic_s, zone.label, "energy_uj", value=value, unit="uJ")
        self._readings += 1
        if not first and monotonic_s > self._last_read_s:
            self._power_w = counted_uj / 1e6 / (monotonic_s - self._last_read_s)
        self._last_read_s = monotonic_s

    def _measurement(self) -> Measurement:
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
        caveats = [] if drams else ["There is no DRAM zone: cpu_energy_j is the packages only."]
        reset = [zone.label for zone in self._zones if self._resets[zone.zone_id]]
        if reset:
            caveats.append(f"The counter of {', '.join(reset)} went backwards without a readable range: taken as "
                           "a reset, so up to one sampling interval of energy before each reset is missing.")
        window_s = self.window_s
        total_j = pkg_j + (dram_j or 0.0)
        return Measurement(
            kind="cpu", method="rapl", energy_j=total_j, reason=" ".join(caveats) or None,
            fields={"cpu_energy_pkg_j": pkg_j, "cpu_energy_dram_j": dram_j, "cpu_energy_scope": "system"},
            details={
                "zones": {zone.label: {"zone": zone.zone_id, "energy_j": energy_j[zone.zone_id],
                                       "wraps": self._wraps[zone.zone_id], "resets": self._resets[zone.zone_id],
                                       "max_energy_range_uj": zone.max_range_uj}
                          for zone in self._zones},
                "per_socket": per_socket,
                "psys_j": sum(psys) if psys else None,
                "interval_s": self.interval_s,
                "readings": self._readings,
                "window_s": window_s,
                "added": "package + dram; psys, core and uncore are recorded, never added",
            },
            window_s=window_s,
            devices={"cpu": total_j},
        )
