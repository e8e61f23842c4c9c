"""`status RUN_DIR`: where each trial of a run folder stands — its record, its row, its Slurm job.

Read-only: it writes nothing, so it can be run at any time beside a campaign (or a detached one,
whose rows `run FILE --resume RUN_DIR` writes). Job states come from squeue and scontrol, each call
with a deadline; without Slurm the records are still shown.
"""

from __future__ import annotations

import csv
import json
import shlex
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from energy_profiler.cli import status_live
from energy_profiler.cli.closing import defaults_of, no_defaults, summary_text
from energy_profiler.cli.context import AppContext, cleanup_command, global_options, invocation
from energy_profiler.cli.tables import emit, fitted, format_option, terminal_width
from energy_profiler.errors import ToolExit
from energy_profiler.execution.budget import BUDGET_STOP
from energy_profiler.execution.run_folder import SessionResult
from energy_profiler.execution.slurm_jobs import JobState, SlurmError, SlurmTools, job_states, read_jobs
from energy_profiler.model.record import Record
from energy_profiler.model.status import TrialStatus
from energy_profiler.planning.plan import Plan
from energy_profiler.process.ledger import left_changed
from energy_profiler.results.campaign_state import DIED, CampaignState, campaign_state, read_state, seconds_since
from energy_profiler.results.rundir import named_run_dir, run_dirs

LOCAL_HEADERS = ["trial", "record", "in_summary", "reason"]
SLURM_HEADERS = ["trial", "record", "in_summary", "job", "job_state", "node", "reason"]
WATCH_INTERVAL_S = 2.0


@click.command("status")
@click.argument("run_dir", required=False)
@format_option("one row per planned trial; json: the campaign's state and its trials")
@click.option("--watch", is_flag=True, help="Redraw every 2 s until the campaign ends (plain lines when not a "
                                             "terminal: one each time it moves on).")
@click.option("--summary", is_flag=True, help="The run's closing table instead (per trial: status, energy and "
                                               "method, main metric, the values that differ from the defaults).")
@global_options
def status_command(run_dir: str | None, output_format: str, watch: bool, summary: bool) -> None:
    """Where the campaign of RUN_DIR stands (running and what it does now, or how it ended), and what
    each trial has come to: recorded (and its status), in summary.csv, its Slurm job.

    RUN_DIR is a run folder, or its name in the results folder; without it, the latest run folder.
    """
    app = click.get_current_context().ensure_object(AppContext)
    folder = _run_dir(app, run_dir)
    if watch and output_format != "table":
        raise click.UsageError("--watch redraws the table; --format csv|json is one reading (ask again for another)")
    if summary:
        if output_format != "table":
            raise click.UsageError("--summary prints the closing table; --format csv|json is the trials' list "
                                   "(summary.csv holds every column)")
        click.echo(closing_table(app, folder).lstrip("\n"))
        return
    if not watch:
        show_status(folder, output_format)
        return
    terminal = sys.stdout.isatty()
    last: list[object] = []

    def draw() -> CampaignState:
        if terminal:
            return show_status(folder, output_format)
        state, lines = campaign_and_headline(folder, plan_of(folder))
        moved = [state.state, state.current.get("trial"), state.current.get("attempt"),
                 state.current.get("phase"), state.document.get("done"), state.document.get("stop")]
        if moved != last:  # a pipe or a file gets a line each time the campaign moves on, not a screen a second
            last[:] = moved
            click.echo(f"{datetime.now():%Y-%m-%d %H:%M:%S} " + " | ".join(lines))
        if not state.running:
            show_status(folder, output_format)
        return state

    status_live.watch(draw, WATCH_INTERVAL_S, terminal)


def show_status(folder: Path, output_format: str) -> CampaignState:
    """Print the campaign's state and its trials (as a table, CSV or JSON); return the state."""
    plan_document, plan = plan_of(folder)
    jobs = read_jobs(folder)
    states, unreachable = _states(jobs)
    in_summary = _summary_trials(folder / "summary.csv")
    budget_stop = _budget_stop(folder)
    rows = []
    for trial in plan.trials:
        status, reason = _record(folder / trial.name / "experiment.json")
        if status is None and budget_stop:
            reason = "not run (budget: see below)"
        shown = [trial.name, status, "yes" if trial.name in in_summary else "no"]
        if jobs:
            job_id = jobs.get(trial.name)
            state = states.get(job_id) if job_id else None
            shown += [job_id, state.state if state else None, state.node if state else None]
            reason = reason or (state.shown_reason if state else None)
        rows.append([*shown, reason])
    headers = SLURM_HEADERS if jobs else LOCAL_HEADERS
    statuses = Counter(str(row[1]) for row in rows if row[1] is not None)
    final = sum(count for status, count in statuses.items() if status != TrialStatus.INTERRUPTED)
    campaign = campaign_state(folder, all_recorded=final == len(plan.trials))
    if output_format == "json":
        document = {**status_live.as_json(campaign, len(plan.trials), statuses), "run_dir": str(folder.absolute()),
                    "trials": [dict(zip(headers, row, strict=True)) for row in rows]}
        click.echo(json.dumps(document, indent=1, default=str))
        return campaign
    if output_format == "table":
        for line in status_live.headline(campaign, len(plan.trials), statuses):
            click.echo(fitted(line, terminal_width()))
        if campaign.state == DIED:
            for line in left_changed(folder.parent):
                click.echo(fitted(f"warning: {line}; to write it back: {cleanup_command(folder.parent)}",
                                  terminal_width()))
        click.echo("")
    emit(headers, rows, output_format)
    if output_format != "table":
        return campaign
    active = Counter(str(row[4]).lower() for row in rows if jobs and row[4] in ("PENDING", "RUNNING", "COMPLETING"))
    tally = ", ".join(f"{count} {status}" for status, count in statuses.items())
    click.echo(fitted(f"{len(plan.trials)} trials: {sum(statuses.values())} recorded ({tally or 'none yet'}), "
                      f"{len(plan.trials) - final} still to run, {len(in_summary)} in summary.csv"
                      + "".join(f", {count} {state}" for state, count in sorted(active.items())), terminal_width()))
    if unreachable:
        click.echo(f"Slurm: {unreachable}")
    if budget_stop:
        click.echo(f"the campaign stopped scheduling: {budget_stop}")
    missing_rows = any(row[1] not in (None, TrialStatus.INTERRUPTED) and row[2] == "no" for row in rows)
    if campaign.running:  # a resume would be refused: the folder is in use
        if campaign.document.get("executor") == "slurm":
            click.echo(fitted("a campaign is running in this folder now: it writes the rows itself; Ctrl-C its "
                              "submitter to cancel its jobs", terminal_width()))
        else:
            click.echo(fitted("a campaign is running in this folder now: it writes the rows itself. To stop it after "
                              "the trial in progress (add --now: at once):", terminal_width()))
            click.echo(shlex.join([*invocation(), "stop", str(folder.absolute())]))
    elif missing_rows or (final < len(plan.trials) and not active):
        what = "to write their rows (and run what is left)" if missing_rows else "to run what is left"
        click.echo(f"{what}:\n{resume_command(folder, plan_document)}")
    return campaign


def resume_command(folder: Path, plan_document: dict[str, Any]) -> str:
    """The command that runs what is left of the run folder's plan, from any folder."""
    settings_file = str(plan_document.get("settings_file") or folder / "settings.json")
    return shlex.join([*invocation(), "run", settings_file, "--resume", str(folder.absolute())])


def closing_table(app: AppContext, folder: Path) -> str:
    """The table a campaign prints at its end, of every trial the run folder has a record of."""
    plan_document, plan = plan_of(folder)
    records = []
    for trial in plan.trials:
        try:
            records.append(Record.from_json(json.loads((folder / trial.name / "experiment.json").read_text())))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not recorded yet
    recorded = (plan_document.get("options") or {}).get("registry")
    if not app.registry_given and isinstance(recorded, str) and Path(recorded).is_file():
        app.registry_file = Path(recorded)  # the registry the run was made with, as a resume takes it
    try:
        defaults = defaults_of(app.registry())
    except ToolExit:  # the registry moved or changed: the mutated values are named instead
        defaults = no_defaults
    state = read_state(folder) or {}
    started, ended = state.get("started_utc"), state.get("ended_utc")
    wall_s = (seconds_since(started) or 0.0) - (seconds_since(ended) or 0.0) if started and ended else 0.0
    result = SessionResult(run_dir=folder, records=records, planned=len(plan.trials), stopped_by=None, wall_s=wall_s)
    return summary_text(result, terminal_width(), defaults)


def plan_of(folder: Path) -> tuple[dict[str, Any], Plan]:
    if not (folder / "plan.json").is_file():
        raise ToolExit(f"{folder}: not a run folder (it has no plan.json)")
    try:
        plan_document = json.loads((folder / "plan.json").read_text())
        return plan_document, Plan.from_json(plan_document)
    except (OSError, ValueError, KeyError) as error:
        raise ToolExit(f"{folder}: not a run folder with a readable plan.json ({error})") from None


def campaign_and_headline(folder: Path, planned: tuple[dict[str, Any], Plan]) -> tuple[CampaignState, list[str]]:
    """The campaign's state and headline, for --watch in a pipe."""
    plan = planned[1]
    statuses = Counter(status for trial in plan.trials
                       if (status := _record(folder / trial.name / "experiment.json")[0]) is not None)
    final = sum(count for status, count in statuses.items() if status != TrialStatus.INTERRUPTED)
    state = campaign_state(folder, all_recorded=final == len(plan.trials))
    return state, status_live.headline(state, len(plan.trials), statuses)


def _run_dir(app: AppContext, text: str | None) -> Path:
    """The run folder named (a path, or a name in the results folder), else the latest one."""
    if text is None:
        folders = run_dirs(app.results_dir)
        if not folders:
            raise ToolExit(f"no run folder in {app.results_dir} (name one, or the results folder with --results-dir)")
        return folders[-1]
    folder = named_run_dir(app.results_dir, text)
    if folder is None:
        raise ToolExit(f"{text}: no such run folder (looked for it as a path and in {app.results_dir})")
    return folder


def _states(jobs: dict[str, str]) -> tuple[dict[str, JobState], str | None]:
    """Each job's state, or why Slurm could not be asked."""
    if not jobs:
        return {}, None
    try:
        states = job_states(SlurmTools.find(), list(jobs.values()))
    except SlurmError as error:
        return {}, f"job states unknown: {error}"
    if all(state.state == "UNKNOWN" for state in states.values()):
        return states, ("knows none of these jobs: the controller did not answer (is SLURM_CONF set?), or they "
                        "ended longer ago than its MinJobAge")
    return states, None


def _record(document: Path) -> tuple[str | None, str | None]:
    """The record's status and reason, (None, None) while the trial has none."""
    try:
        record = json.loads(document.read_text())
        return str(record["status"]), record.get("status_reason")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, None


def _summary_trials(path: Path) -> set[str]:
    try:
        with open(path, newline="", encoding="utf-8") as table:
            return {row.get("trial") or "" for row in csv.DictReader(table)}
    except OSError:
        return set()


def _budget_stop(folder: Path) -> str | None:
    """Why the last session stopped scheduling at its budget, if it did."""
    try:
        return str(json.loads((folder / BUDGET_STOP).read_text())["reason"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
