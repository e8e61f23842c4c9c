"""Nothing mutation.py starts may outlive it, not even when mutation.py itself is SIGKILLed.

Three layers:

1. Every child is started in its own session with the parent-death signal set (Linux
   `prctl(PR_SET_PDEATHSIG, SIGTERM)`): it receives SIGTERM the moment mutation.py dies.
2. A ledger file in the results folder lists every process group a campaign has running
   (pgid, the leader's start time, role, trial). Grandchildren are in those groups too.
3. A watchdog process (its own session, so no terminal signal reaches it) waits on a pipe from
   mutation.py. The kernel closes the pipe when mutation.py dies, however it dies; the watchdog then
   ends every group in the ledger. At a clean end the ledger is empty and the watchdog just exits.

A ledger whose owner is dead (the machine rebooted mid-campaign, or the watchdog itself was
killed) is found at the start of every campaign and by `mutation.py cleanup`, and its groups ended.
The leader's start time guards against PID reuse.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from energy_profiler.process.groups import end_groups, group_members
from energy_profiler.results.files import atomic_write_json, make_dirs
from energy_profiler.system import governor

PR_SET_PDEATHSIG = 1
LEDGER_FOLDER = ".running"
START_TIME_TOLERANCE_S = 0.05


def _prctl() -> Callable[..., int] | None:
    """libc's prctl, resolved in the parent: the child after fork must only call it."""
    if not sys.platform.startswith("linux"):
        return None
    function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    return function


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
"""The signals mutation.py handles in Python; a child must not inherit those handlers before exec."""


def child_setup() -> Callable[[], None]:
    """A preexec_fn: default stop signals, death with this process, and no signal lost on the way.

    Between fork and exec the child runs with this process's Python signal handlers, which only
    set a flag that nothing in the child reads: a SIGTERM then (the parent-death signal, or a
    teardown) was swallowed and the training exec'd as an orphan. So spawn() blocks the stop
    signals around the fork; here the child restores their default action, sets the
    parent-death signal, and unblocks them, so that one sent in the window is delivered now and
    ends the child before exec. It calls only thin wrappers of C functions (prctl resolved
    beforehand), so it takes no Python-level lock another thread could hold. Children must be started from the main
    thread: the parent-death signal fires when the *thread* that forked them ends.
    """
    prctl = _prctl()
    parent = os.getpid()

    def preexec() -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


@dataclass(frozen=True)
class TrackedGroup:
    pgid: int
    leader_start_time: float | None
    role: str
    trial: str | None


class Ledger:
    """The state file of one campaign: its owner and the groups it has running."""

    def __init__(self, path: Path):
        self.path = path
        self.owner_pid = os.getpid()
        self.owner_start_time = start_time(self.owner_pid)
        self.groups: dict[int, TrackedGroup] = {}
        self.governor: dict[str, Any] | None = None
        """{"root": cpufreq root, "previous": {cpu: governor}} while a changed governor awaits restoring."""
        self._lock = threading.Lock()
        """Backgrounds are ended in parallel threads: each change and its write is one step."""

    def set_governor(self, root: Path | None, previous: dict[str, str] | None) -> None:
        with self._lock:
            self.governor = {"root": str(root), "previous": previous} if root is not None and previous else None
            self._write()

    def add(self, pgid: int, role: str, trial: str | None) -> None:
        with self._lock:
            self.groups[pgid] = TrackedGroup(pgid, start_time(pgid), role, trial)
            self._write()

    def remove(self, pgid: int) -> None:
        with self._lock:
            if self.groups.pop(pgid, None) is not None:
                self._write()

    def _write(self) -> None:
        make_dirs(self.path.parent)
        atomic_write_json(self.path, {"owner": {"pid": self.owner_pid, "start_time": self.owner_start_time},
                                      "groups": [asdict(group) for group in self.groups.values()],
                                      "governor": self.governor})


class _Campaign:
    """The running campaign's ledger: like signal handlers, this is state of the whole process."""

    ledger: Ledger | None = None


def spawn(argv: Sequence[str], *, role: str, trial: str | None = None, **popen: Any) -> subprocess.Popen[Any]:
    """Popen in a new session, dying with mutation.py, and recorded in the campaign's ledger."""
    # preexec_fn is unsafe when it takes locks another thread may hold at fork; this one calls
    # C-level functions only (see child_setup). The stop signals stay blocked across the fork so
    # that none reaches the child while it still has this process's handlers.
    setup = child_setup()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        process: subprocess.Popen[Any] = subprocess.Popen(
            list(argv), start_new_session=True, preexec_fn=setup, **popen)  # noqa: PLW1509
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    if _Campaign.ledger is not None:
        try:
            _Campaign.ledger.add(process.pid, role, trial)
        except BaseException:  # unrecorded (a full disk): the child must not outlive this call
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    return process


def forget(pgid: int) -> None:
    """The group has been ended (or ended by itself): drop it from the ledger."""
    if _Campaign.ledger is not None:
        _Campaign.ledger.remove(pgid)


@contextmanager
def tracking(results_root: Path, grace_s: float, log: Path | None = None) -> Iterator[Ledger]:
    """While inside: children are recorded, and a watchdog ends them should this process die."""
    ledger = Ledger(results_root / LEDGER_FOLDER / f"campaign-{os.getpid()}.json")
    ledger._write()
    command = [sys.executable, "-m", "energy_profiler.process.watchdog", str(ledger.path), str(grace_s)]
    watchdog = subprocess.Popen([*command, *([str(log)] if log else [])], stdin=subprocess.PIPE,
                                start_new_session=True, env={**os.environ, "PYTHONPATH": _package_root()})
    _Campaign.ledger = ledger
    try:
        yield ledger
    finally:
        _Campaign.ledger = None
        assert watchdog.stdin is not None
        watchdog.stdin.close()  # EOF: the watchdog ends whatever is still listed, then exits
        watchdog.wait()
        remove_ledger(ledger.path)


def _package_root() -> str:
    root = str(Path(__file__).resolve().parents[2])
    existing = os.environ.get("PYTHONPATH")
    return f"{root}{os.pathsep}{existing}" if existing else root


def groups_still_ours(groups: Sequence[TrackedGroup]) -> tuple[list[int], list[str]]:
    """The pgids that are still the groups recorded (not reused), and notes on the others."""
    ours, notes = [], []
    for group in groups:
        if not group_members(group.pgid):
            continue
        leader = start_time(group.pgid)
        recorded = group.leader_start_time
        if leader is not None and recorded is not None and abs(leader - recorded) > START_TIME_TOLERANCE_S:
            notes.append(f"group {group.pgid} ({group.role}) now belongs to another process: left alone")
            continue
        # A pgid with members is never given to a new process, so a group whose leader is gone
        # but whose members live is still the one recorded.
        ours.append(group.pgid)
    return ours, notes


def end_recorded_groups(groups: Sequence[TrackedGroup], grace_s: float) -> tuple[list[TrackedGroup], list[str]]:
    """End the recorded groups that are still ours; return those ended and notes."""
    pgids, notes = groups_still_ours(groups)
    if pgids:
        teardown = end_groups(pgids, grace_s)
        if teardown.survivors:
            notes.append(f"{teardown.survivors} process(es) survived SIGKILL")
    return [group for group in groups if group.pgid in pgids], notes


def owner_alive(owner: dict[str, Any]) -> bool:
    started = start_time(int(owner["pid"]))
    recorded = owner.get("start_time")
    return started is not None and (recorded is None or abs(started - float(recorded)) <= START_TIME_TOLERANCE_S)


def clean_stale(results_root: Path, grace_s: float) -> list[str]:
    """End the groups of campaigns that died without cleaning up; one line per thing done."""
    folder = results_root / LEDGER_FOLDER
    report: list[str] = []
    for path in sorted(folder.glob("campaign-*.json")) if folder.is_dir() else []:
        try:
            document = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if owner_alive(document["owner"]):
            continue  # a campaign that is running now
        groups = [TrackedGroup(**group) for group in document["groups"]]
        ended, notes = end_recorded_groups(groups, grace_s)
        for group in ended:
            report.append(f"ended {group.role} group {group.pgid} of trial {group.trial} "
                          f"left by dead campaign {document['owner']['pid']}")
        report.extend(notes)
        report.extend(restore_governor(document.get("governor")))
        remove_ledger(path)
    return report


def remove_ledger(path: Path) -> None:
    """Delete a ledger, and its folder once no other campaign's ledger is in it."""
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()


def restore_governor(record: dict[str, Any] | None) -> list[str]:
    """Write back the governors a ledger says were changed; one line saying what was done."""
    if not record:
        return []
    previous = record["previous"]
    try:
        governor.apply(Path(record["root"]), previous)
    except governor.GovernorError as error:
        return [f"could not restore the CPU governor: {error}"]
    return [f"restored the CPU governor ({', '.join(sorted(set(previous.values())))}) of {len(previous)} CPUs"]
