"""The ledger: a file in the results folder listing every process group a campaign has running.

Each entry is a pgid, its leader's start time (against PID reuse), role and trial; grandchildren
are in those groups too. The ledger also records the CPU governors and the system knobs a campaign
changed, before it changes them. A ledger whose owner is dead (the machine rebooted mid-campaign, or the watchdog was
killed) is found at the start of every campaign and by `mutation.py cleanup`: its groups are
ended and its governors restored.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from energy_profiler.fs import atomic_write_json, make_dirs
from energy_profiler.process.groups import end_groups, group_members
from energy_profiler.system.governor import restore_recorded
from energy_profiler.system.knobs import restore_recorded as restore_knobs

LEDGER_FOLDER = ".running"
START_TIME_TOLERANCE_S = 0.05


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
        self.knobs: dict[str, Any] | None = None
        """The system knobs' values before the campaign changed them (system/knobs.py), while any awaits restoring."""
        self._lock = threading.Lock()
        """Backgrounds are ended in parallel threads: each change and its write is one step."""

    def set_governor(self, root: Path | None, previous: dict[str, str] | None) -> None:
        with self._lock:
            self.governor = {"root": str(root), "previous": previous} if root is not None and previous else None
            self._write()

    def set_knobs(self, record: dict[str, Any] | None) -> None:
        with self._lock:
            self.knobs = record or None
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
                                      "governor": self.governor, "knobs": self.knobs})


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


def dead_ledgers(results_root: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(path, document) of each readable ledger in the results folder whose owner is dead; those of
    campaigns running now are skipped."""
    folder = results_root / LEDGER_FOLDER
    for path in sorted(folder.glob("campaign-*.json")) if folder.is_dir() else []:
        try:
            document = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if not owner_alive(document["owner"]):
            yield path, document


def clean_stale(results_root: Path, grace_s: float) -> list[str]:
    """End the groups of campaigns that died without cleaning up; one line per thing done."""
    report: list[str] = []
    for path, document in dead_ledgers(results_root):
        groups = [TrackedGroup(**group) for group in document["groups"]]
        ended, notes = end_recorded_groups(groups, grace_s)
        for group in ended:
            report.append(f"ended {group.role} group {group.pgid} of trial {group.trial} "
                          f"left by dead campaign {document['owner']['pid']}")
        report.extend(notes)
        report.extend(restore_machine(document))
        remove_ledger(path)
    return report


def restore_machine(document: dict[str, Any]) -> list[str]:
    """Restore what a ledger says was changed: a trial's knobs first (a per-trial governor lies over the
    campaign's), then the campaign's governor."""
    return [*restore_knobs(document.get("knobs")), *restore_recorded(document.get("governor"))]


def left_changed(results_root: Path) -> list[str]:
    """What dead campaigns of this results folder left changed on the machine (their ledgers still hold
    it: their watchdog died too), one line each; `cleanup` writes it back. Nothing is changed here."""
    lines = []
    for _, document in dead_ledgers(results_root):
        knobs = document.get("knobs") or {}
        changed = []
        if knobs.get("gpus"):
            changed.append(f"the knobs of GPU {', '.join(knobs['gpus'])}")
        if knobs.get("cpu_max_freq_khz"):
            changed.append("the CPUs' frequency cap")
        if knobs.get("cpu_governor") or document.get("governor"):
            changed.append("the CPUs' governor")
        if changed:
            lines.append(f"campaign {document['owner']['pid']} died leaving {', '.join(changed)} changed")
    return lines


def remove_ledger(path: Path) -> None:
    """Delete a ledger, and its folder once no other campaign's ledger is in it."""
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()


