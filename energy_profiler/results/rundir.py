"""The run folder `results/run_YYYYMMDD_HHMMSS_<name>/` and its timestamped session.log."""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psutil

from energy_profiler.errors import ToolExit
from energy_profiler.fs import make_dirs, own


RUN_NAME_CHARS = 60
"""At most this much of the experiment name goes into a run folder's name."""


def create_run_dir(results_root: Path, experiment_name: str = "", now: datetime | None = None) -> Path:
    """Make `run_YYYYMMDD_HHMMSS_<experiment_name>`; a name already taken gets a suffix (`_2`, `_3`):
    never reused. The name keeps letters, digits, `_`, `-` and `.` (others become `_`)."""
    stamp = (now or datetime.now()).strftime("run_%Y%m%d_%H%M%S")
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", experiment_name)[:RUN_NAME_CHARS].strip(".")
    if name:
        stamp += f"_{name}"
    make_dirs(results_root)
    for suffix in ["", *(f"_{n}" for n in range(2, 1000))]:
        candidate = results_root / f"{stamp}{suffix}"
        try:
            candidate.mkdir()  # atomic: fails if another session made it first
        except FileExistsError:
            continue
        own(candidate)
        return candidate
    raise FileExistsError(f"no free run folder name for {stamp} in {results_root}")


class SessionLog:
    """Appends timestamped lines to session.log, flushed and fsync'd as they are written."""

    def __init__(self, path: Path):
        self.path = path
        self._file = open(path, "a", encoding="utf-8")
        own(path)

    def write(self, message: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        for line in message.splitlines() or [""]:
            self._file.write(f"{stamp} {line}\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


DEAD_HOLDER_WAIT_S = 10.0


def _alive(pid_text: str) -> bool:
    """Whether the process the lock names still runs (an unreadable pid counts as running)."""
    return not pid_text.isdigit() or psutil.pid_exists(int(pid_text))


class RunDirBusy(ToolExit):
    """Another campaign holds the run folder (exit 2)."""


@contextmanager
def run_dir_lock(run_dir: Path, dead_holder_wait_s: float = DEAD_HOLDER_WAIT_S) -> Iterator[None]:
    """Hold the run folder for this campaign; RunDirBusy naming the holder if another has it.

    When the campaign that wrote its pid into the lock is gone (SIGKILL) but the lock is still held,
    a process that shares its open file is still ending: waited for, briefly, before refusing.
    """
    with open(run_dir / ".lock", "a+", encoding="utf-8") as handle:
        own(run_dir / ".lock")
        deadline = time.monotonic() + dead_holder_wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                if _alive(holder) or time.monotonic() >= deadline:
                    raise RunDirBusy(f"{run_dir} is in use by another mutation.py (pid {holder})") from None
                time.sleep(0.1)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def latest_run_of(results_root: Path, settings_file: Path) -> Path | None:
    """The newest run folder whose plan was made from `settings_file`."""
    wanted = {str(settings_file), str(settings_file.resolve())}
    for run_dir in sorted(results_root.glob("run_*"), reverse=True):
        try:
            made_from = json.loads((run_dir / "plan.json").read_text())["settings_file"]
        except (OSError, ValueError, KeyError):
            continue
        if made_from in wanted or str(Path(made_from).resolve()) in wanted:
            return run_dir
    return None


def named_run_dir(results_root: Path, text: str) -> Path | None:
    """The run folder `text` names: a path, or a folder name alone in `results_root`; None if neither."""
    as_path = Path(text)
    if as_path.is_dir():
        return as_path
    inside = results_root / text
    if as_path.name == text and inside.is_dir():
        return inside
    return None


def run_dirs(results_root: Path) -> list[Path]:
    """The run folders of `results_root` (those with a plan.json), oldest first."""
    return sorted(path.parent for path in results_root.glob("run_*/plan.json"))


def is_running(folder: Path) -> bool:
    """Whether a campaign holds the run folder's lock now (tested without waiting, released at once)."""
    try:
        descriptor = os.open(folder / ".lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)  # closing releases a lock this test took
    return False
