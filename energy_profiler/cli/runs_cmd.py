"""`runs`: the run folders of the results folder, oldest first, with their state, trial counts and size.

Read-only, like `status`: a running campaign's folder is seen as running (its lock is held), and
nothing is written or locked for longer than the test of its lock takes.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import click

from energy_profiler.cli.context import AppContext, global_options
from energy_profiler.cli.tables import emit, format_option
from energy_profiler.model.status import TrialStatus
from energy_profiler.results.campaign_state import FINISHED, RUNNING, campaign_state
from energy_profiler.results.rundir import is_running, run_dirs

HEADERS = ["run", "state", "trials", "recorded", "success", "to_run", "experiment", "size_mib", "started_utc"]
TABLE_HEADERS = ["run", "state", "recorded", "success", "to_run", "experiment", "size_mib", "started_utc"]
"""`recorded` counts every record (an interrupted one too), `to_run` the trials without a final one:
the same counts as `status` and a campaign's closing line."""


@click.command("runs")
@format_option("one row per run folder")
@global_options
def runs_command(output_format: str) -> None:
    """List the run folders of the results folder: state (running, finished, stopped, interrupted, died; incomplete
    for a folder of an earlier version with trials left), trials, size."""
    app = click.get_current_context().ensure_object(AppContext)
    folders = run_dirs(app.results_dir)
    rows = [_row(folder) for folder in folders]
    if output_format != "table":
        emit(HEADERS, rows, output_format)
    elif rows:
        # The run's name is what one copies: whole, with the other columns going first in a narrow
        # terminal; `recorded` as `6 of 7` (csv and json have the numbers apart).
        shown = [[name, state, f"{recorded} of {trials}" if trials is not None else None, success, to_run, *rest]
                 for name, state, trials, recorded, success, to_run, *rest in rows]
        emit(TABLE_HEADERS, shown, optional=["success", "to_run", "experiment", "started_utc", "size_mib"])
        click.echo(f"{len(rows)} run folder(s) in {app.results_dir}; `mutation.py status RUN` shows one trial by trial")
    else:
        click.echo(f"no run folder in {app.results_dir}")


def _row(folder: Path) -> list[object]:
    try:
        plan = json.loads((folder / "plan.json").read_text())
        planned = [trial["name"] for trial in plan["trials"]]
    except (OSError, ValueError, KeyError, TypeError):
        return [folder.name, "unreadable", None, None, None, None, None, _size_mib(folder), None]
    statuses = Counter(status for name in planned if (status := _status(folder / name)) is not None)
    final = sum(count for status, count in statuses.items() if status != TrialStatus.INTERRUPTED)
    campaign = campaign_state(folder, all_recorded=final == len(planned))
    if is_running(folder):
        state = RUNNING
    elif campaign.document and campaign.state != FINISHED:  # as its state.json says (and status shows)
        state = campaign.state
    else:  # finished, or an earlier version's folder: by its records
        state = FINISHED if final == len(planned) else "incomplete"
    return [folder.name, state, len(planned), sum(statuses.values()), statuses.get(TrialStatus.SUCCESS, 0),
            len(planned) - final, plan.get("experiment_name"), _size_mib(folder),
            plan.get("created_utc", "")[:19] or None]


def _status(trial_dir: Path) -> str | None:
    """The status of the trial's record, None while it has none (an interrupted one runs again)."""
    try:
        return str(json.loads((trial_dir / "experiment.json").read_text())["status"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _size_mib(folder: Path) -> float:
    total = 0
    for directory, _, files in os.walk(folder):
        for name in files:
            try:
                total += Path(directory, name).lstat().st_size
            except OSError:
                continue
    return round(total / 2**20, 1)
