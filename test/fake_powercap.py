"""A powercap sysfs tree in a temp folder whose counters a process of its own drives at known wattages.

The counters advance in a separate process, not a thread of the test's: a thread shares the GIL
with the tool under test, and a busy moment of the tool left the files stale by up to 150 ms (a
real counter moves every millisecond, in hardware), which showed as a wrong energy at a window's edge.

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

import contextlib
import multiprocessing
import os
import queue
import shutil
import tempfile
import threading
import time
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

DEFAULT_RANGE_UJ = 262143328850  # a real package's max_energy_range_uj
LOAD_SCAN_S = 0.02


class FakePowercap:
    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._driver = _Driver(root)
        self._process: BaseProcess | None = None
        self._stop: Any = None
        self._resets: Any = None

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
        driver = self._driver
        driver.watts[zone_id], driver.energy_uj[zone_id] = watts, float(start_uj)
        driver.range_uj[zone_id] = range_uj or 2**63
        driver.mode[zone_id] = 0o400 if root_only else 0o444
        driver.owner[zone_id] = owner_uid
        if per_process_w:
            driver.per_process_w[zone_id] = (per_process_w, marker)
        driver.write(zone_id)
        return self

    def reset(self, zone_id: str) -> None:
        """The counter starts again from zero (a driver reload)."""
        if self._process is not None:
            self._resets.put(zone_id)  # the driving process takes it within its next step (2 ms)
            time.sleep(0.01)
        else:
            self._driver.energy_uj[zone_id] = 0.0
            self._driver.write(zone_id)

    def vanish_when(self, marker: Path) -> FakePowercap:
        """Remove every zone folder once `marker` exists (as unloading intel_rapl_msr does)."""
        self._driver.vanish_marker = marker
        return self

    def __enter__(self) -> FakePowercap:
        # spawn, not fork: the test process has threads, and a forked copy could inherit a held lock.
        context = multiprocessing.get_context("spawn")
        self._stop, ready, self._resets = context.Event(), context.Event(), context.Queue()
        self._process = context.Process(target=self._driver.run, args=(self._stop, ready, self._resets),
                                        daemon=True)
        self._process.start()
        if not ready.wait(30):
            self._process.kill()
            raise RuntimeError("the fake powercap's driving process did not start")
        return self

    def __exit__(self, *exc: object | type[BaseException] | TracebackType | None) -> None:
        if self._process is None:
            return
        self._stop.set()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._process = None


class _Driver:
    """The zones' state and the loop that advances their counters (run in a process of its own)."""

    def __init__(self, root: Path):
        self.root = root
        self.watts: dict[str, float] = {}
        self.per_process_w: dict[str, tuple[float, str]] = {}
        self.energy_uj: dict[str, float] = {}
        self.range_uj: dict[str, int] = {}
        self.mode: dict[str, int] = {}
        self.owner: dict[str, int | None] = {}
        self.vanish_marker: Path | None = None
        self.processes: dict[str, int] = {}

    def write(self, zone_id: str) -> None:
        path = self.root / zone_id / "energy_uj"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(f"{int(self.energy_uj[zone_id]) % self.range_uj[zone_id]}\n")
        temporary.chmod(self.mode[zone_id])
        owner = self.owner.get(zone_id)
        if owner is not None:
            os.chown(temporary, owner, -1)
        temporary.replace(path)

    def count_processes(self) -> None:
        markers = {marker for _, marker in self.per_process_w.values()}
        counts = dict.fromkeys(markers, 0)
        for process in psutil.process_iter(["cmdline"]):
            line = " ".join(process.info["cmdline"] or [])
            for marker in markers:
                counts[marker] += marker in line
        self.processes = counts

    def run(self, stop: Any, ready: Any, resets: Any) -> None:
        # A hardware counter never waits for a CPU; on a loaded machine (four test workers on two cores)
        # this process did, up to 100 ms at a window's edge. A higher priority keeps it current
        # (root may raise it; elsewhere it stays as it is).
        with contextlib.suppress(OSError):
            os.nice(-10)
        if self.per_process_w:
            self.count_processes()

            def count() -> None:  # milliseconds per scan: in its own thread, the counters never wait for it
                while not stop.wait(LOAD_SCAN_S):
                    self.count_processes()

            threading.Thread(target=count, daemon=True).start()
        ready.set()
        last = time.monotonic()
        while not stop.wait(0.002):
            now = time.monotonic()
            if self.vanish_marker is not None and self.vanish_marker.exists():
                for zone_id in self.watts:
                    shutil.rmtree(self.root / zone_id, ignore_errors=True)
                return
            for zone_id in _drain(resets):
                self.energy_uj[zone_id] = 0.0
            for zone_id, watts in self.watts.items():
                extra_w, marker = self.per_process_w.get(zone_id, (0.0, ""))
                total_w = watts + extra_w * self.processes.get(marker, 0)
                self.energy_uj[zone_id] += total_w * (now - last) * 1e6
                self.write(zone_id)
            last = now


def _drain(requests: Any) -> list[str]:
    found = []
    while True:
        try:
            found.append(requests.get_nowait())
        except queue.Empty:
            return found


def world_readable_root(prefix: str = "powercap-") -> Path:
    """A temp folder another user can enter (pytest's own are 0700): for tests that drop to `nobody`."""
    root = Path(os.path.realpath(tempfile.mkdtemp(prefix=prefix)))
    root.chmod(0o755)
    return root
