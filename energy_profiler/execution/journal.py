"""What a running campaign tells other processes: `events.jsonl` as things happen, `state.json` as it stands.

Both sit in the run folder. events.jsonl gets one JSON object per line, written and flushed the
moment it happens (`ts`, `event`, `trial`, `attempt`, `pid` and the event's figures): the
machine-readable twin of the console lines, never a source of rows (experiment.json and the
summary tables are). state.json is replaced atomically at each change and says where the campaign
stands: its pid and host, the plan's size, the trial in progress, what is done by status, energy
so far, the time left. `status` reads it (results/campaign_state.py) and tells a live campaign from
one that died: the state says running, yet the pid is gone and the run folder's lock is free.

`Events` is the silent base (a campaign without a run folder of its own: a Slurm node's trial).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from energy_profiler.fs import atomic_write_json, own
from energy_profiler.model.record import BackgroundResult, Record
from energy_profiler.results.campaign_state import STATE
from energy_profiler.system.sudo import invoking_user

EVENTS = "events.jsonl"
STATE_SCHEMA_VERSION = 1


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Events:
    """What a campaign tells as it goes; this one tells no one."""

    def event(self, name: str, *, trial: str | None = None, attempt: int | None = None, **figures: Any) -> None:
        """A line of events.jsonl."""

    def trial_started(self, trial: str, index: int) -> None:
        """A trial of the plan begins (its cool-down is over)."""

    def attempt_started(self, trial: str, attempt: int) -> None:
        """An attempt of the trial in progress begins."""

    def attempt_ended(self, trial: str, attempt: int, **figures: Any) -> None:
        """An attempt has its status (`figures`: status, duration_s, exit_code, reason, energy)."""

    def background_started(self, trial: str, index: int, repo: str, model: str, pid: int) -> None:
        """A background loop of a parallel trial is running in its own process group `pid`."""

    def background_ended(self, trial: str, result: BackgroundResult) -> None:
        """A background loop was ended."""

    def warning(self, message: str) -> None:
        """A warning the console showed."""


class Journal(Events):
    """events.jsonl and state.json of a local campaign (or a Slurm submitter), written as it goes.

    Thread-safe: a stop request is noticed by a watcher thread while the main thread writes.
    """

    def __init__(self, run_dir: Path, *, experiment_name: str, planned: int, recorded: Iterable[Record],
                 executor: str = "local") -> None:
        self.run_dir = run_dir
        self._lock = threading.Lock()
        self._records = {record.trial: record for record in recorded}
        self._events = os.open(run_dir / EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        own(run_dir / EVENTS)
        self.state: dict[str, Any] = {
            "schema_version": STATE_SCHEMA_VERSION, "state": "running", "executor": executor,
            "experiment_name": experiment_name,
            "pid": os.getpid(), "host": socket.gethostname(), "uid": _owner_uid(), "euid": os.geteuid(),
            "started_utc": now_utc(), "updated_utc": None, "planned": planned,
            "recorded_before": len(self._records), "done": {}, "energy_j": {}, "current": None,
            "eta_s": None, "expected_end_utc": None, "stop": None, "ended_utc": None, "exit_code": None, "reason": None,
        }
        self._tally()

    # -- events.jsonl -------------------------------------------------------------------------------

    def event(self, name: str, *, trial: str | None = None, attempt: int | None = None, **figures: Any) -> None:
        line = {"ts": datetime.now().astimezone().isoformat(timespec="milliseconds"), "event": name,
                "trial": trial, "attempt": attempt, "pid": os.getpid(), **figures}
        data = (json.dumps(line, default=str) + "\n").encode()
        # One write per line, O_APPEND: lines never interleave. A full disk is not this log's to report:
        # the records' writes say it, and the campaign stops on them.
        with self._lock, contextlib.suppress(OSError):
            os.write(self._events, data)

    # -- state.json ---------------------------------------------------------------------------------

    def update(self, **changes: Any) -> None:
        """Change the state and write state.json (atomically: a reader sees the old or the new)."""
        with self._lock:
            self.state.update(changes)
            self.state["updated_utc"] = now_utc()
            # Not fsync'd (a few a trial, each a disk flush): a power cut may leave an older state, and
            # `status` then judges by the records and the lock, as it does for any campaign that died.
            with contextlib.suppress(OSError):  # as above: the records are what counts
                atomic_write_json(self.run_dir / STATE, self.state, durable=False)

    def campaign_started(self, eta_s: float | None) -> None:
        self.event("campaign_started", planned=self.state["planned"], recorded_before=self.state["recorded_before"],
                   host=self.state["host"], experiment_name=self.state["experiment_name"])
        self.update(**_eta(eta_s))

    def trial_started(self, trial: str, index: int) -> None:
        self.event("trial_started", trial=trial, index=index)
        self.update(current={"trial": trial, "index": index, "attempt": None, "phase": "starting",
                             "started_utc": now_utc(), "attempt_started_utc": None})

    def attempt_started(self, trial: str, attempt: int) -> None:
        self.event("attempt_started", trial=trial, attempt=attempt)
        current = dict(self.state["current"] or {"trial": trial, "started_utc": now_utc()})
        self.update(current={**current, "attempt": attempt, "phase": "training", "attempt_started_utc": now_utc()})

    def attempt_ended(self, trial: str, attempt: int, **figures: Any) -> None:
        self.event("attempt_ended", trial=trial, attempt=attempt, **figures)

    def background_started(self, trial: str, index: int, repo: str, model: str, pid: int) -> None:
        self.event("background_started", trial=trial, background=index, repo=repo, model=model, group=pid)

    def background_ended(self, trial: str, result: BackgroundResult) -> None:
        self.event("background_ended", trial=trial, background=result.index, repo=result.repo, model=result.model,
                   runs_started=result.iterations_started, runs_completed=result.iterations_completed,
                   runs_failed=result.iterations_failed, ended_by=result.signal, survivors=result.survivors)

    def trial_ended(self, record: Record, eta_s: float | None) -> None:
        self.event("trial_ended", trial=record.trial, attempt=record.attempts[-1].attempt if record.attempts else None,
                   status=str(record.status), reason=record.status_reason, duration_s=record.duration_s,
                   exit_code=record.exit_code, cpu_energy_j=record.energy.cpu_energy_j,
                   cpu_energy_method=record.energy.cpu_energy_method, gpu_energy_j=record.energy.gpu_energy_j,
                   gpu_energy_method=record.energy.gpu_energy_method)
        with self._lock:
            self._records[record.trial] = record
        self._tally()
        self.update(current=None, **_eta(eta_s))

    def cooldown(self, seconds: float) -> None:
        self.event("cooldown", seconds=seconds)
        self.update(current={"trial": None, "phase": "cooldown", "started_utc": now_utc(), "seconds": seconds})

    def stop_requested(self, mode: str, by: str) -> None:
        """A stop from another shell (`graceful` or `now`), or a signal (`signal`)."""
        self.event("stop_requested", mode=mode, by=by)
        self.update(stop={"mode": mode, "by": by, "requested_utc": now_utc()})

    def warning(self, message: str) -> None:
        self.event("warning", message=message)

    def error(self, message: str) -> None:
        self.event("error", message=message)

    def campaign_ended(self, state: str, exit_code: int | None, reason: str | None) -> None:
        self.event("campaign_ended", state=state, exit_code=exit_code, reason=reason, done=self.state["done"])
        self.update(state=state, exit_code=exit_code, reason=reason, current=None, eta_s=None, expected_end_utc=None,
                    ended_utc=now_utc())

    def close(self) -> None:
        os.close(self._events)

    def _tally(self) -> None:
        """What is done by status, and the energy measured so far per device (every trial of the run folder)."""
        with self._lock:
            records = list(self._records.values())
        done = Counter(str(record.status) for record in records)
        energy: dict[str, Any] = {}
        for device in ("cpu", "gpu"):
            measured = [record.energy for record in records
                        if getattr(record.energy, f"{device}_energy_j") is not None]
            energy[device] = round(sum(getattr(fields, f"{device}_energy_j") for fields in measured), 3) \
                if measured else None
            energy[f"{device}_methods"] = sorted({getattr(fields, f"{device}_energy_method") for fields in measured})
        self.state.update(done=dict(done), energy_j=energy)


def watching_warnings(say: Callable[[str], None], events: Events) -> Callable[[str], None]:
    """`say`, which also puts each warning it shows into the event log."""
    def say_and_note(message: str) -> None:
        say(message)
        if message.startswith("warning:") or "] warning:" in message:
            events.warning(message)

    return say_and_note


def _owner_uid() -> int:
    """Who started the campaign: under sudo the invoking user (they may stop it), else this process's user."""
    user = invoking_user()
    return user.uid if user is not None else os.geteuid()


def _eta(seconds: float | None) -> dict[str, Any]:
    """The time left as the campaign works it out now, and the end it foresees (None: not known yet)."""
    if seconds is None:
        return {"eta_s": None, "expected_end_utc": None}
    end = datetime.now(UTC) + timedelta(seconds=seconds)
    return {"eta_s": round(seconds, 1), "expected_end_utc": end.isoformat(timespec="milliseconds")}
