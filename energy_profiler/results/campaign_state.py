"""Where a run folder's campaign stands, as another process sees it: its state.json, checked against the machine.

state.json (execution/journal.py) says what the campaign last wrote. A campaign counts as running
only while its pid lives on this host and the run folder's lock is held; a state that says running
when either is gone is a campaign that died (SIGKILL, a crash, a power loss) without ending.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from energy_profiler.results.rundir import is_running

STATE = "state.json"  # written by execution/journal.py
RUNNING, FINISHED, STOPPED, INTERRUPTED, DIED = "running", "finished", "stopped", "interrupted", "died"
ENDED = (FINISHED, STOPPED, INTERRUPTED, DIED)


@dataclass(frozen=True)
class CampaignState:
    state: str
    """running, finished, stopped, interrupted or died."""
    document: dict[str, Any]
    """What the campaign last wrote (empty when it wrote no state.json: an older version's run folder)."""
    why: str | None
    """Why the state differs from the written one (died), or where it could not be checked."""

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def current(self) -> dict[str, Any]:
        """The step in progress (a trial, or a cool-down); empty between steps and once ended."""
        current = self.document.get("current")
        return current if isinstance(current, dict) and self.running else {}

    @property
    def eta_s(self) -> float | None:
        """The time left now, to the end the campaign foresaw at its last step; None once a stop is asked
        (the trial in progress is all that is left) or while nothing is known."""
        end = self.document.get("expected_end_utc")
        if not self.running or not end or self.document.get("stop"):
            return None
        try:
            return max(0.0, (datetime.fromisoformat(str(end)) - datetime.now(UTC)).total_seconds())
        except ValueError:
            return None


def seconds_since(stamp: object, now: datetime | None = None) -> float | None:
    """Seconds from an ISO time stamp to now; None for no stamp."""
    try:
        then = datetime.fromisoformat(str(stamp))
    except ValueError:
        return None
    return max(0.0, ((now or datetime.now(UTC)) - then).total_seconds())


def read_state(run_dir: Path) -> dict[str, Any] | None:
    try:
        document = json.loads((run_dir / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def campaign_state(run_dir: Path, *, all_recorded: bool) -> CampaignState:
    """The campaign's state now. `all_recorded`: every planned trial has a final record (for a run
    folder without state.json: one made by an older version, or a Slurm job's)."""
    document = read_state(run_dir)
    held = is_running(run_dir)
    if document is None:
        if held:
            return CampaignState(RUNNING, {}, None)
        return CampaignState(FINISHED if all_recorded else STOPPED, {},
                             "this run folder has no state.json (made by an earlier version): judged from its records")
    written = str(document.get("state"))
    if written != RUNNING:
        return CampaignState(written, document, None)
    pid, host = document.get("pid"), document.get("host")
    if host != socket.gethostname():
        return CampaignState(RUNNING, document, f"its state says running on {host}: whether it still runs can only "
                                                "be checked there")
    if isinstance(pid, int) and psutil.pid_exists(pid) and held:
        return CampaignState(RUNNING, document, None)
    gone = "its pid is gone" if not (isinstance(pid, int) and psutil.pid_exists(pid)) else "the run folder's lock is free"
    return CampaignState(DIED, document, f"its state says running, but {gone}: the campaign ended without "
                                         "recording its end (SIGKILL, a crash or a power loss)")
