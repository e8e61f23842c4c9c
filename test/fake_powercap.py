"""A powercap sysfs tree in a temp folder whose counters a thread drives at known wattages.

What it copies of the kernel's tree (/sys/class/powercap, intel_rapl_msr):
- zones and subzones are listed flat (`intel-rapl:0`, `intel-rapl:0:0`, ...), each with `name`,
  `energy_uj` (wrapping at `max_energy_range_uj`), and for packages `constraint_N_name` /
  `constraint_N_power_limit_uw` (long_term = PL1);
- since Linux 5.10 (CVE-2020-8694) `energy_uj` is mode 0400 (root only) while the constraint files
  stay world-readable: `root_only=True`;
- a zone whose counter never moves (watts 0), as some hypervisors expose;
- `energy_uj` is replaced atomically, like a sysfs read that never sees half a number.
Beyond the kernel, for tests: a zone without `max_energy_range_uj`, a counter reset, zones that
vanish when a marker file appears (the driver unloaded mid-campaign), and power that follows the
number of running processes whose command line holds a marker (a training's own load).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

import psutil

DEFAULT_RANGE_UJ = 262143328850  # a real package's max_energy_range_uj
LOAD_SCAN_S = 0.02


class FakePowercap:
    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._watts: dict[str, float] = {}
        self._per_process_w: dict[str, tuple[float, str]] = {}
        self._energy_uj: dict[str, float] = {}
        self._range_uj: dict[str, int] = {}
        self._mode: dict[str, int] = {}
        self._owner: dict[str, int | None] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._counter: threading.Thread | None = None
        self._lock = threading.Lock()
        self._vanish_marker: Path | None = None
        self._processes: dict[str, int] = {}

    def zone(self, zone_id: str, name: str, watts: float = 0.0, start_uj: int = 0, *,
             range_uj: int | None = DEFAULT_RANGE_UJ, limit_w: float | None = None, root_only: bool = False,
             per_process_w: float = 0.0, marker: str = "", owner_uid: int | None = None) -> FakePowercap:
        """A zone; `per_process_w` adds that much for each running process whose command line holds `marker`.

        `owner_uid` gives energy_uj to another user, for tests whose root-only reader is root without
        the capability to override file modes (the kernel's file belongs to root, who reads it anyway).
        """
        folder = self.root / zone_id
        folder.mkdir()
        (folder / "name").write_text(name + "\n")
        if range_uj is not None:
            (folder / "max_energy_range_uj").write_text(f"{range_uj}\n")
        if limit_w is not None:
            constraints = (("long_term", limit_w), ("short_term", limit_w * 1.25))
            for number, (constraint, watts_limit) in enumerate(constraints):
                (folder / f"constraint_{number}_name").write_text(f"{constraint}\n")
                (folder / f"constraint_{number}_power_limit_uw").write_text(f"{int(watts_limit * 1e6)}\n")
        self._watts[zone_id], self._energy_uj[zone_id] = watts, float(start_uj)
        self._range_uj[zone_id] = range_uj or 2**63
        self._mode[zone_id] = 0o400 if root_only else 0o444
        self._owner[zone_id] = owner_uid
        if per_process_w:
            self._per_process_w[zone_id] = (per_process_w, marker)
        self._write(zone_id)
        return self

    def reset(self, zone_id: str) -> None:
        """The counter starts again from zero (a driver reload)."""
        with self._lock:
            self._energy_uj[zone_id] = 0.0
            self._write(zone_id)

    def vanish_when(self, marker: Path) -> FakePowercap:
        """Remove every zone folder once `marker` exists (as unloading intel_rapl_msr does)."""
        self._vanish_marker = marker
        return self

    def _write(self, zone_id: str) -> None:
        path = self.root / zone_id / "energy_uj"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(f"{int(self._energy_uj[zone_id]) % self._range_uj[zone_id]}\n")
        temporary.chmod(self._mode[zone_id])
        owner = self._owner.get(zone_id)
        if owner is not None:
            os.chown(temporary, owner, -1)
        temporary.replace(path)

    def __enter__(self) -> FakePowercap:
        if self._per_process_w:
            self._count_processes()
            # Counting processes takes milliseconds; in its own thread, so the counters never wait for it.
            self._counter = threading.Thread(target=self._count_loop, daemon=True)
            self._counter.start()
        self._thread = threading.Thread(target=self._drive, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object | type[BaseException] | TracebackType | None) -> None:
        self._stop.set()
        for thread in (self._thread, self._counter):
            if thread is not None:
                thread.join()

    def _count_loop(self) -> None:
        while not self._stop.wait(LOAD_SCAN_S):
            self._count_processes()

    def _count_processes(self) -> None:
        markers = {marker for _, marker in self._per_process_w.values()}
        counts = dict.fromkeys(markers, 0)
        for process in psutil.process_iter(["cmdline"]):
            line = " ".join(process.info["cmdline"] or [])
            for marker in markers:
                counts[marker] += marker in line
        self._processes = counts

    def _drive(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(0.002):
            now = time.monotonic()
            if self._vanish_marker is not None and self._vanish_marker.exists():
                for zone_id in self._watts:
                    shutil.rmtree(self.root / zone_id, ignore_errors=True)
                return
            with self._lock:
                for zone_id, watts in self._watts.items():
                    extra_w, marker = self._per_process_w.get(zone_id, (0.0, ""))
                    total_w = watts + extra_w * self._processes.get(marker, 0)
                    self._energy_uj[zone_id] += total_w * (now - last) * 1e6
                    self._write(zone_id)
            last = now


def world_readable_root(prefix: str = "powercap-") -> Path:
    """A temp folder another user can enter (pytest's own are 0700): for tests that drop to `nobody`."""
    root = Path(os.path.realpath(tempfile.mkdtemp(prefix=prefix)))
    root.chmod(0o755)
    return root
