"""A campaign's run folder: created or resumed, locked, its plan written, its summary.csv opened, announced.

Every executor starts a campaign here (the local loop in session.py, the Slurm submitter in
slurm.py) and learns from here what earlier sessions left: the trials already recorded and the
attempts each trial has had.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from energy_profiler import __version__
from energy_profiler.config.registry import Registry
from energy_profiler.config.settings import Settings
from energy_profiler.energy.recorder import EnergyPlan
from energy_profiler.errors import ExitCode, signalled
from energy_profiler.execution.runtime import Output
from energy_profiler.fs import atomic_write_bytes, atomic_write_json
from energy_profiler.model.knob_fields import APPLIED_COLUMNS
from energy_profiler.model.record import Attempt, Record, summary_columns
from energy_profiler.model.status import TrialStatus
from energy_profiler.planning.plan import Plan
from energy_profiler.results.global_table import GLOBAL_TABLE, append_rows, experiment_ids
from energy_profiler.results.rundir import SessionLog, create_run_dir, run_dir_lock
from energy_profiler.results.summary import SummaryTable


@dataclass
class SessionResult:
    run_dir: Path
    records: list[Record]
    planned: int
    stopped_by: int | None
    wall_s: float = 0.0
    """How long the session took, start to end."""
    energy: EnergyPlan | None = None
    """The methods the campaign used (for the closing summary's reasons)."""
    budget_stop: str | None = None
    """Why the campaign stopped scheduling at its budget (said again by the closing lines, even under -q)."""
    stopped_on_request: str | None = None
    """Who stopped the campaign with `stop RUN_DIR` (after the trial in progress), and what was not run."""
    start_failures: str | None = None
    """Why the campaign stopped after trainings that failed to start, in a row."""

    @property
    def exit_code(self) -> int:
        """0 all succeeded, 1 some did not, 128+N when signal N stopped the campaign."""
        if self.stopped_by is not None:
            return signalled(self.stopped_by)
        succeeded = all(record.status == TrialStatus.SUCCESS for record in self.records)
        return ExitCode.SUCCESS if succeeded else ExitCode.FAILED



@dataclass(frozen=True)
class OpenedRun:
    """A campaign's run folder, locked and announced: what either executor's loop works with."""

    run_dir: Path
    finished: dict[str, Record]
    """The trials already recorded (a resume keeps them as they are)."""
    summary: SummaryTable
    """Its summary.csv, the header fixed."""
    say: Callable[[str], None]
    """A line to the console and to session.log."""
    result: SessionResult
    """The session's result, to fill as trials end."""


def open_run(cleanup: ExitStack, settings: Settings, registry: Registry, plan: Plan, *, results_root: Path,
             output: Output, settings_bytes: bytes | None, resume_dir: Path | None,
             options: Mapping[str, object] | None = None, notes: Sequence[str] = ()) -> OpenedRun:
    """A new run folder (or `resume_dir`) locked, its plan written, summary.csv open, the campaign announced.

    Every executor starts a campaign this way: the local loop and the Slurm submitter.
    """
    resumed = resume_dir is not None
    run_dir = resume_dir or create_run_dir(results_root, settings.experiment_name)
    cleanup.enter_context(run_dir_lock(run_dir))
    if not resumed:
        write_plan(run_dir, settings, plan, settings_bytes, options)
    elif options is not None:
        _record_options(run_dir, options)
    finished, summary = open_summary(run_dir, plan, registry, resumed=resumed)
    say = console_and_log(cleanup, run_dir, output)
    announce(say, settings, plan, run_dir, len(finished) if resumed else None, global_table=results_root / GLOBAL_TABLE)
    for note in notes:
        say(note)
    if resumed:
        _catch_up_global_table(results_root / GLOBAL_TABLE, finished.values(), say)
    result = SessionResult(run_dir=run_dir, records=list(finished.values()), planned=len(plan.trials),
                           stopped_by=None)
    return OpenedRun(run_dir, finished, summary, say, result)


def _catch_up_global_table(path: Path, finished: Iterable[Record], say: Callable[[str], None]) -> None:
    """Append the final records the global table lacks: those a Slurm job wrote while no submitter
    followed it (`--detach`, a SIGKILLed submitter), or one whose campaign was killed between its
    experiment.json and its row."""
    present = experiment_ids(path)
    missing = [record for record in finished if record.experiment_id not in present]
    # Superseding: the trial's interrupted row of an earlier session, if there is one, is replaced.
    append_rows(path, [record.to_row() for record in missing], supersede=True)
    if missing:
        say(f"{GLOBAL_TABLE}: added the rows of {len(missing)} trial(s) recorded while no campaign was writing rows")


def open_summary(run_dir: Path, plan: Plan, registry: Registry, *,
                  resumed: bool) -> tuple[dict[str, Record], SummaryTable]:
    """The run's summary.csv with its header fixed; on resume, rebuilt from the final records."""
    hyperparameter_names = _unique(name for trial in plan.trials for name, _ in trial.hyperparameters)
    metric_names = _unique(name for trial in plan.trials
                           for name in registry.repositories[trial.repo].models[trial.model].metrics)
    parallel = any(trial.background for trial in plan.trials)
    columns = summary_columns(hyperparameter_names, metric_names, background=parallel,
                              not_passed=any(trial.not_passed for trial in plan.trials),
                              knobs=any(name in APPLIED_COLUMNS for name in hyperparameter_names))
    finished = finished_records(run_dir, plan) if resumed else {}
    rows = [(record.trial_index, record.to_row()) for record in finished.values()] if resumed else None
    return finished, SummaryTable(run_dir / "summary.csv", columns, rows)


def console_and_log(cleanup: ExitStack, run_dir: Path, output: Output) -> Callable[[str], None]:
    """`say`: a line to the console and to the run's session.log."""
    log = SessionLog(run_dir / "session.log")
    cleanup.callback(log.close)

    def say(message: str) -> None:
        log.write(message)
        output.say(message)

    return say


def announce(say: Callable[[str], None], settings: Settings, plan: Plan, run_dir: Path,
              already_recorded: int | None, *, global_table: Path) -> None:
    seed_note = " (drawn; put it in the settings to repeat this plan)" if plan.seed_was_drawn else ""
    say(f"campaign '{settings.experiment_name}': {len(plan.trials)} trials, seed {plan.seed}{seed_note}")
    say(f"results: {run_dir}")
    say(f"rows: its summary.csv and {global_table}")  # which table, whatever folder the user stands in
    if already_recorded is not None:
        say(f"resuming: {already_recorded} of {len(plan.trials)} trials already recorded")
    for line in plan.lines():
        say(line)


def write_plan(run_dir: Path, settings: Settings, plan: Plan, settings_bytes: bytes | None,
               options: Mapping[str, object] | None = None) -> None:
    atomic_write_bytes(run_dir / "settings.json", settings_bytes or _document_bytes(settings))
    atomic_write_json(run_dir / "plan.json", {
        "schema_version": 1,
        "settings_file": str(settings.file.resolve()) if settings.file.exists() else str(settings.file),
        "experiment_name": settings.experiment_name,
        "created_utc": datetime.now(UTC).isoformat(),
        "tool_version": __version__,
        **({"options": dict(options)} if options is not None else {}),
        **plan.to_json(),
    })


def _record_options(run_dir: Path, options: Mapping[str, object]) -> None:
    """A resume that changed the options (`--override-options`): plan.json says which are in force
    now, and keeps the earlier ones with the time they were replaced."""
    document = json.loads((run_dir / "plan.json").read_text())
    if document.get("options") == dict(options):
        return
    replaced = {"until_utc": datetime.now(UTC).isoformat(), "options": document.get("options")}
    document["options_replaced"] = [*document.get("options_replaced", []), replaced]
    document["options"] = dict(options)
    atomic_write_json(run_dir / "plan.json", document)


def finished_records(run_dir: Path, plan: Plan) -> dict[str, Record]:
    """The trials of `plan` whose final record is in the run folder (an interrupted one is not final)."""
    finished = {}
    for trial in plan.trials:
        document = run_dir / trial.name / "experiment.json"
        if document.exists():
            record = Record.from_json(json.loads(document.read_text()))
            if record.status != TrialStatus.INTERRUPTED:
                finished[trial.name] = record
    return finished


def earlier_attempts(trial_dir: Path) -> tuple[Attempt, ...]:
    """Every attempt earlier sessions made of this trial, so that a resumed record lists them all.

    Those its interrupted record lists, and those whose folder exists but that no record mentions:
    the campaign was SIGKILLed, crashed or lost power during them. Of those only the number, the
    log and when the log was last written are known; the rest stays empty.
    """
    document = trial_dir / "experiment.json"
    recorded = Record.from_json(json.loads(document.read_text())).attempts if document.exists() else ()
    known = {attempt.attempt for attempt in recorded}
    lost = [_unrecorded_attempt(trial_dir, number) for number in attempt_numbers(trial_dir) if number not in known]
    return tuple(sorted((*recorded, *lost), key=lambda attempt: attempt.attempt))


def _unrecorded_attempt(trial_dir: Path, number: int) -> Attempt:
    log = trial_dir / f"attempt_{number}" / "training.log"
    reason = "the campaign ended during this attempt without recording it (SIGKILL, a crash or a power loss)"
    if log.exists():
        last_write = datetime.fromtimestamp(log.stat().st_mtime, UTC).isoformat(timespec="seconds")
        reason += f"; its log was last written at {last_write}"
    return Attempt(number, TrialStatus.INTERRUPTED, reason, exit_code=None, start_utc=None, end_utc=None,
                   duration_s=None, log=str(log.relative_to(trial_dir.parent)))


def attempt_numbers(trial_dir: Path) -> list[int]:
    """The numbers of the trial's attempt folders, in order."""
    return sorted(int(path.name.removeprefix("attempt_")) for path in trial_dir.glob("attempt_*")
                  if path.name.removeprefix("attempt_").isdigit())


def next_attempt(trial_dir: Path) -> int:
    """The number of the next attempt folder: earlier attempts' files are never overwritten."""
    return max(attempt_numbers(trial_dir), default=0) + 1


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _document_bytes(settings: Settings) -> bytes:
    return (json.dumps(settings.document, indent=2) + "\n").encode()
