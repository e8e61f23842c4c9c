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
from pathlib import Path

import click

from energy_profiler.cli.context import EXIT_CONFIG, global_options
from energy_profiler.cli.tables import emit, format_option
from energy_profiler.execution.slurm_jobs import JobState, SlurmError, SlurmTools, job_states, read_jobs
from energy_profiler.planning.plan import Plan

HEADERS = ["trial", "record", "in_summary", "job", "job_state", "node", "reason"]


@click.command("status")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@format_option("one row per planned trial")
@global_options
def status_command(run_dir: Path, output_format: str) -> None:
    """What each trial of RUN_DIR has come to: recorded (and its status), in summary.csv, its Slurm job."""
    try:
        plan_document = json.loads((run_dir / "plan.json").read_text())
        plan = Plan.from_json(plan_document)
    except (OSError, ValueError, KeyError) as error:
        click.echo(f"error: {run_dir}: not a run folder with a readable plan.json ({error})", err=True)
        sys.exit(EXIT_CONFIG)
    jobs = read_jobs(run_dir)
    states, unreachable = _states(jobs)
    in_summary = _summary_trials(run_dir / "summary.csv")
    rows = []
    for trial in plan.trials:
        job_id = jobs.get(trial.name)
        state = states.get(job_id) if job_id else None
        rows.append([trial.name, _record_status(run_dir / trial.name / "experiment.json"),
                     "yes" if trial.name in in_summary else "no", job_id, state.state if state else None,
                     state.node if state else None, state.shown_reason if state else None])
    emit(HEADERS, rows, output_format)
    if output_format != "table":
        return
    recorded = [row for row in rows if row[1] not in (None, "interrupted")]
    active = Counter(str(row[4]).lower() for row in rows if row[4] in ("PENDING", "RUNNING", "COMPLETING"))
    click.echo(f"{len(plan.trials)} trials: {len(recorded)} recorded, {len(in_summary)} in summary.csv"
               + "".join(f", {count} {state}" for state, count in sorted(active.items())))
    if unreachable:
        click.echo(f"Slurm: {unreachable}")
    if any(row[2] == "no" for row in recorded) or (jobs and len(recorded) < len(plan.trials) and not active):
        settings_file = plan_document.get("settings_file", str(run_dir / "settings.json"))
        click.echo(f"to write their rows (and run what is left): mutation.py run {shlex.quote(settings_file)} --resume "
                   f"{shlex.quote(str(run_dir))}")


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


def _record_status(document: Path) -> str | None:
    try:
        return str(json.loads(document.read_text())["status"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _summary_trials(path: Path) -> set[str]:
    try:
        with open(path, newline="", encoding="utf-8") as table:
            return {row.get("trial") or "" for row in csv.DictReader(table)}
    except OSError:
        return set()

