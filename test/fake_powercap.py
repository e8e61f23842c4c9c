"""A powercap sysfs tree in a temp folder whose counters a thread drives at known wattages."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import TracebackType

DEFAULT_RANGE_UJ = 262143328850  # a real package's max_energy_range_uj


class FakePowercap:
    """`intel-rapl*` zone folders with name, energy_uj and max_energy_range_uj, like the kernel's."""

    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._watts: dict[str, float] = {}
        self._energy_uj: dict[str, float] = {}
        self._range_uj: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def zone(self, zone_id: str, name: str, watts: float = 0.0, start_uj: int = 0,
             range_uj: int = DEFAULT_RANGE_UJ) -> FakePowercap:
        folder = self.root / zone_id
        folder.mkdir()
        (folder / "name").write_text(name + "\n")
        (folder / "max_energy_range_uj").write_text(f"{range_uj}\n")
        self._watts[zone_id], self._energy_uj[zone_id], self._range_uj[zone_id] = watts, float(start_uj), range_uj
        self._write(zone_id)
        return self

    def _write(self, zone_id: str) -> None:
        # Atomic, like a sysfs read: a reader never sees a half-written number.
        path = self.root / zone_id / "energy_uj"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(f"{int(self._energy_uj[zone_id]) % self._range_uj[zone_id]}\n")
        temporary.replace(path)

    def __enter__(self) -> FakePowercap:
        self._thread = threading.Thread(target=self._drive, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object | type[BaseException] | TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _drive(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(0.002):
            now = time.monotonic()
            with self._lock:
                for zone_id, watts in self._watts.items():
                    self._energy_uj[zone_id] += watts * (now - last) * 1e6
                    self._write(zone_id)
            last = now
