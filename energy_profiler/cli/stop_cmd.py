"""`stop RUN_DIR [--now] [--wait]`: end a running campaign from another shell.

Graceful by default: the trial in progress finishes and is recorded, no other starts, the campaign
ends with its closing table. `--now` is Ctrl-C: the trial in progress is ended and recorded as
interrupted, and the campaign exits 130. The request is a file in the run folder (see
execution/stop_request.py); this command returns once the campaign has taken it, or with `--wait`
once the campaign has ended.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import psutil

from energy_profiler.cli.context import AppContext, global_options
from energy_profiler.cli.status_cmd import campaign_and_headline, plan_of, resume_command
from energy_profiler.errors import ExitCode, ToolExit
from energy_profiler.execution.stop_request import STOP_REQUEST, ask_to_stop, user_name
from energy_profiler.results.campaign_state import FINISHED, RUNNING
from energy_profiler.results.rundir import is_running, named_run_dir

TAKEN_WITHIN_S = 5.0
"""The campaign looks for a request every 0.2 s; one not taken within this is said so."""
POLL_S = 0.2


@click.command("stop")
@click.argument("run_dir")
@click.option("--now", is_flag=True, help="End the trial in progress too (recorded as interrupted), as Ctrl-C does.")
@click.option("--wait", is_flag=True, help="Return once the campaign has ended, say how, and exit with its exit code.")
@global_options
def stop_command(run_dir: str, now: bool, wait: bool) -> None:
    """Stop the campaign running in RUN_DIR: after the trial in progress (its row written), or --now.

    RUN_DIR is a run folder, or its name in the results folder. `run SETTINGS --resume RUN_DIR`
    later runs what is left, each trial once.
    """
    app = click.get_current_context().ensure_object(AppContext)
    folder = named_run_dir(app.results_dir, run_dir)
    if folder is None:
        raise ToolExit(f"{run_dir}: no such run folder (looked for it as a path and in {app.results_dir})")
    planned = plan_of(folder)
    state, lines = campaign_and_headline(folder, planned)
    if state.state != RUNNING:
        resume = _resume_line(folder, planned[0], state.state)
        raise ToolExit(f"{folder}: no campaign is running there, nothing to stop", details=[*lines, *resume],
                       exit_code=ExitCode.FAILED)
    document = state.document
    if state.why:  # another host's campaign: its pid cannot be checked here, nor its stop request seen soon
        raise ToolExit(f"{folder}: {state.why}; run `stop` on that host")
    if document.get("executor") == "slurm":
        raise ToolExit(f"{folder}: a Slurm campaign's trials are Slurm jobs: end its submitter with Ctrl-C (it "
                       "cancels them), or `scancel` the jobs `status` lists")
    owner = document.get("uid")
    if os.geteuid() not in {0, owner, document.get("euid")} or not os.access(folder, os.W_OK):
        who = "root (who started the campaign)" if owner == 0 else \
            f"{user_name(owner) if isinstance(owner, int) else 'its owner'} (who started the campaign) or root"
        raise ToolExit(f"{folder}: only {who} may stop it")
    try:
        ask_to_stop(folder, now=now)
    except PermissionError:
        raise ToolExit(f"{folder}: only the user who started the campaign or root may stop it") from None
    what = "at once (the trial in progress is recorded as interrupted)" if now else \
        "after the trial in progress (its row is written as usual; no other trial starts)"
    if not _taken(folder):
        click.echo(f"asked the campaign (pid {document.get('pid')}) to stop {what}, but it has not taken the "
                   f"request within {TAKEN_WITHIN_S:g} s (it looks every {POLL_S:g} s): `status {folder}` shows "
                   "where it stands")
        raise ToolExit(exit_code=ExitCode.FAILED)
    click.echo(f"the campaign (pid {document.get('pid')}) will stop {what}")
    if not wait:
        return
    while is_running(folder) or _alive(document.get("pid"), document.get("started_utc")):
        time.sleep(POLL_S)  # the lock is free a moment before the process exits
    ended, lines = campaign_and_headline(folder, planned)
    for line in lines:
        click.echo(line)
    for line in _resume_line(folder, planned[0], ended.state):
        click.echo(line)
    code = ended.document.get("exit_code")
    if isinstance(code, int) and code != ExitCode.SUCCESS:
        raise ToolExit(exit_code=code)  # the campaign's own: 130 after --now, 1 if a trial failed


def _alive(pid: object, started_utc: object) -> bool:
    """Whether the campaign's process still runs: an exited one its parent has not reaped yet does not,
    nor a process that took its pid after it (started after the campaign)."""
    try:
        process = psutil.Process(pid) if isinstance(pid, int) else None
        started_s = datetime.fromisoformat(str(started_utc)).timestamp()
        return process is not None and process.status() != psutil.STATUS_ZOMBIE and \
            process.create_time() <= started_s + 1.0
    except (psutil.Error, ValueError):
        return False


def _taken(folder: Path) -> bool:
    """Whether the campaign took the request (it removes the file) before it ended or the time ran out."""
    deadline = time.monotonic() + TAKEN_WITHIN_S
    while time.monotonic() < deadline:
        if not (folder / STOP_REQUEST).exists():
            return True
        if not is_running(folder):
            return False
        time.sleep(POLL_S / 2)
    return False


def _resume_line(folder: Path, plan_document: dict[str, Any], state: str) -> list[str]:
    """How to run what is left of the plan, when something is."""
    return [] if state == FINISHED else ["to run what is left:", resume_command(folder, plan_document)]
