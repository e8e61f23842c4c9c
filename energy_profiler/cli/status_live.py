"""`status`'s account of the campaign itself: running (what it does now, how long is left), or how it ended.

The lines come from the run folder's state.json, checked against the machine (results/campaign_state.py);
`--watch` redraws them until the campaign ends.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import click

from energy_profiler.execution.runtime import clock
from energy_profiler.model.status import TrialStatus
from energy_profiler.results.campaign_state import DIED, RUNNING, CampaignState, seconds_since

_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def plain(text: object) -> str:
    """A value from a file, safe on one terminal line: control characters shown, not obeyed."""
    return _CONTROLS.sub(lambda found: repr(found.group())[1:-1], str(text))


def headline(state: CampaignState, planned: int, statuses: Mapping[str, int]) -> list[str]:
    """A few lines: the campaign's state, what it does now, what is done, the time left, energy so far.

    `statuses`: how many of the run folder's records have each status (an interrupted trial runs again).
    """
    document = state.document
    who = f"pid {document.get('pid')} on {plain(document.get('host'))}" if document else ""
    name = f"campaign '{plain(document['experiment_name'])}'" if document.get("experiment_name") else "the campaign"
    lines: list[str] = []
    if state.running:
        running_for = seconds_since(document.get("started_utc"))
        lines.append(f"running: {name}" + (f", {who}" if who else "")
                     + (f", for {clock(running_for)}" if running_for is not None else ""))
        if now := _now_doing(state, planned):
            lines.append(f"now: {now}")
        if stop := document.get("stop"):
            lines.append(f"stopping: {plain(stop.get('by'))} asked at {_local(stop.get('requested_utc'))}"
                         + ("; the trial in progress finishes, no other starts" if stop.get("mode") == "graceful"
                            else ""))
    elif state.state == DIED:
        why = state.why or plain(document.get("reason")) or "it ended without saying why"
        lines.append(f"died: {name}" + (f" ({who})" if who else "") + f": {why}; its state was last "
                     f"written at {_local(document.get('updated_utc'))}")
    else:
        ended = _local(document.get("ended_utc")) if document.get("ended_utc") else None
        lines.append(f"{state.state}: {name}" + (f" ended at {ended}" if ended else "")
                     + (f" with exit code {document['exit_code']}" if document.get("exit_code") is not None else "")
                     + (f": {plain(document['reason'])}" if document.get("reason") else ""))
    if state.why and state.state != DIED:
        lines.append(f"note: {state.why}")
    final = {status: count for status, count in statuses.items() if status != TrialStatus.INTERRUPTED}
    tally = ", ".join(f"{count} {plain(status)}" for status, count in final.items())
    interrupted = statuses.get(TrialStatus.INTERRUPTED, 0)
    eta = state.eta_s
    lines.append(f"done: {sum(final.values())} of {planned} trials" + (f" ({tally})" if tally else "")
                 + (f"; {interrupted} interrupted (run again on resume)" if interrupted and not state.running else "")
                 + (f"; about {clock(eta)} left" if eta is not None else ""))
    if energy := energy_line(document.get("energy_j") or {}):
        lines.append(f"energy so far: {energy}")
    return lines


def energy_line(energy: dict[str, Any]) -> str:
    parts = []
    for device in ("cpu", "gpu"):
        joules = energy.get(device)
        methods = ", ".join(plain(method) for method in energy.get(f"{device}_methods") or [])
        parts.append(f"{device} {joules:.1f} J ({methods})" if isinstance(joules, int | float)
                     else f"{device} not measured")
    return "; ".join(parts) if any(isinstance(energy.get(device), int | float) for device in ("cpu", "gpu")) else ""


def _now_doing(state: CampaignState, planned: int) -> str | None:
    current = state.current
    if not current:
        return None
    if current.get("phase") == "cooldown":
        seconds = current.get("seconds") or 0
        left = max(0.0, seconds - (seconds_since(current.get("started_utc")) or 0.0))
        return f"cooling down before the next trial: {clock(left)} of {seconds:g} s left"
    trial = plain(current.get("trial"))
    since = seconds_since(current.get("attempt_started_utc") or current.get("started_utc"))
    attempt = f", attempt {current['attempt']}" if current.get("attempt") else ""
    doing = "training" if current.get("phase") == "training" else "starting"
    return (f"trial {current.get('index')} of {planned} ({trial}){attempt}, {doing}"
            + (f" for {clock(since)}" if since is not None else ""))


def _local(stamp: object) -> str:
    """An ISO time stamp in this machine's zone, to the second."""
    try:
        return datetime.fromisoformat(str(stamp)).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    except ValueError:
        return "an unknown time"


def as_json(state: CampaignState, planned: int, statuses: Mapping[str, int]) -> dict[str, Any]:
    """The campaign's fields of `status --format json`, beside its per-trial list."""
    document, current = state.document, state.current
    return {
        "state": state.state, "state_note": state.why, "experiment_name": document.get("experiment_name"),
        "pid": document.get("pid"), "host": document.get("host"), "executor": document.get("executor"),
        "started_utc": document.get("started_utc"), "updated_utc": document.get("updated_utc"),
        "ended_utc": document.get("ended_utc"), "exit_code": document.get("exit_code"),
        "reason": document.get("reason"), "planned": planned,
        "recorded": sum(statuses.values()), "done": dict(statuses),
        "still_to_run": planned - sum(count for status, count in statuses.items() if status != TrialStatus.INTERRUPTED),
        "current_trial": current.get("trial") if current else None,
        "current_index": current.get("index") if current else None,
        "current_attempt": current.get("attempt") if current else None,
        "current_phase": current.get("phase") if current else None,
        "current_for_s": _rounded(seconds_since(current.get("started_utc")) if current else None),
        "eta_s": _rounded(state.eta_s), "energy_j": document.get("energy_j"), "stop_requested": document.get("stop"),
    }


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def watch(draw: Callable[[], CampaignState], interval_s: float, terminal: bool) -> None:
    """Call `draw` every `interval_s` until the campaign no longer runs. In a terminal the drawings
    replace each other on the alternate screen (as `watch` and `top` do: none is left in the
    scrollback), and the last one is drawn again on the normal screen; elsewhere `draw` prints only
    what changed, as plain lines. Ctrl-C ends the watching, not the campaign (exit 0)."""
    ended = False
    try:
        if terminal:
            click.echo("\x1b[?1049h", nl=False)
        while True:
            if terminal:
                click.echo("\x1b[H\x1b[J", nl=False)
            if draw().state != RUNNING:
                ended = True
                break
            time.sleep(interval_s)
    except KeyboardInterrupt:
        pass
    finally:
        if terminal:
            click.echo("\x1b[?1049l", nl=False)
    if terminal and ended:
        draw()  # how it ended, where it stays on screen
