"""Executing a plan: the run folder, then each trial in turn, its record written the moment it ends.

The session never installs signal handlers: the caller passes a `StopRequest` that its own
handlers set, and the session checks it between steps and while a training runs.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from energy_profiler import __version__
from energy_profiler.config.registry import Registry
from energy_profiler.config.settings import Settings
from energy_profiler.energy.recorder import EnergyPlan, gpu_host_facts, measure_power
from energy_profiler.execution.runtime import (
    Output,
    StopRequest,
    WallClockEta,
    clock,
    signal_name,
    sleep_unless_stopped,
)
from energy_profiler.execution.sinks import record_sinks
from energy_profiler.execution.start_failures import StartFailures
from energy_profiler.execution.trial import run_trial
from energy_profiler.fs import atomic_write_bytes, atomic_write_json
from energy_profiler.model.record import Attempt, Record, summary_columns
from energy_profiler.planning.plan import Plan
from energy_profiler.process.ledger import Ledger, clean_stale
from energy_profiler.process.watchdog import tracking
from energy_profiler.results.global_table import GLOBAL_TABLE, append_rows, experiment_ids
from energy_profiler.results.rundir import SessionLog, create_run_dir, run_dir_lock
from energy_profiler.results.summary import SummaryTable
from energy_profiler.system import governor
from energy_profiler.system.host import host_facts
from energy_profiler.system.sudo import InvokingUser, invoking_user


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

    @property
    def exit_code(self) -> int:
        """0 all succeeded, 1 some did not, 128+N when signal N stopped the campaign."""
        if self.stopped_by is not None:
            return 128 + self.stopped_by
        return 0 if all(record.status == "success" for record in self.records) else 1


def run_session(
    settings: Settings,
    registry: Registry,
    plan: Plan,
    *,
    results_root: Path,
    output: Output,
    stop: StopRequest,
    settings_bytes: bytes | None = None,
    energy: EnergyPlan | None = None,
    resume_dir: Path | None = None,
    options: Mapping[str, object] | None = None,
    notes: Sequence[str] = (),
) -> SessionResult:
    """Run every trial of `plan`, writing the run folder as it goes; returns what happened.

    With `resume_dir`, continue that run folder: trials with a final record are kept as they are,
    summary.csv is rebuilt from their experiment.json (so it holds each trial once), and the others
    run again in a fresh attempt folder. Raises RunDirBusy if another campaign holds the folder.
    `options` (the command line's, as JSON) go into plan.json; `notes` are said after the header.
    """
    started = time.monotonic()
    resumed = resume_dir is not None
    with ExitStack() as cleanup:
        opened = open_run(cleanup, settings, registry, plan, results_root=results_root, output=output,
                          settings_bytes=settings_bytes, resume_dir=resume_dir, options=options, notes=notes)
        run_dir, finished, summary, say, result = opened
        result.energy = energy
        host = {**host_facts(), **(gpu_host_facts(energy) if energy else {})}
        stop.listen(say, settings.grace_s)
        output.progress.campaign_started(len(plan.trials), len(finished))
        energy, run_as = prepare_machine(cleanup, settings, results_root=results_root, run_dir=run_dir,
                                          energy=energy, say=say, stop=stop)
        sinks = record_sinks(run_dir, results_root, summary, resumed=resumed)
        remaining = [trial for trial in plan.trials if trial.name not in finished]
        eta = WallClockEta(len(remaining), time.monotonic(), settings.cooldown_s)
        start_failures = StartFailures(settings.stop_after_start_failures)
        for position, trial in enumerate(remaining):
            if stop.requested or start_failures.reached:
                break
            host["cpu_governor"] = governor.summary(governor.cpufreq_root())  # the one in force now
            record = run_trial(trial, settings=settings, registry=registry, run_dir=run_dir, host=host,
                               output=replace(output, say=say), stop=stop, energy=energy,
                               first_attempt=next_attempt(run_dir / trial.name), run_as=run_as,
                               earlier_attempts=earlier_attempts(run_dir / trial.name) if resumed else ())
            for sink in sinks:
                if note := sink.write(record):
                    say(note)
            result.records.append(record)
            if energy is not None:
                energy.prepare_next()  # while the records are read and the machine cools down
            eta.trial_ended(time.monotonic())
            output.progress.trial_finished(record.status, record.duration_s, eta)
            left_s = eta.remaining_s(time.monotonic())
            say(f"[{trial.index}/{len(plan.trials)}] {trial.name}: {record.status}"
                + (f" ({record.status_reason})" if record.status_reason else "")
                + f" in {record.duration_s:.1f} s"
                + (f"; about {clock(left_s)} left" if left_s and position < len(remaining) - 1 else ""))
            if start_failures.count(record):
                say(start_failures.explanation(len(result.records), len(plan.trials)))
                break
            if settings.cooldown_s > 0 and position < len(remaining) - 1 and not stop.requested:
                say(f"cooling down for {settings.cooldown_s:g} s")
                output.progress.cooldown(settings.cooldown_s)
                sleep_unless_stopped(settings.cooldown_s, stop)
        result.stopped_by = stop.first_signal
        if result.stopped_by is not None:
            done = len(result.records)
            say(f"stopped by {signal_name(result.stopped_by)} after {done} of {len(plan.trials)} trials")
    result.wall_s = time.monotonic() - started
    return result


OpenedRun = tuple[Path, dict[str, Record], SummaryTable, Callable[[str], None], SessionResult]
"""The run folder, the trials already recorded, its summary.csv, `say`, and the result to fill."""


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
    return run_dir, finished, summary, say, result


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
                              not_passed=any(trial.not_passed for trial in plan.trials))
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


def prepare_machine(cleanup: ExitStack, settings: Settings, *, results_root: Path, run_dir: Path,
                     energy: EnergyPlan | None, say: Callable[[str], None],
                     stop: StopRequest) -> tuple[EnergyPlan | None, InvokingUser | None]:
    """Before the first trial: stale groups ended, the watchdog, the governor, energy, the user.

    Each step that changes the machine registers its undoing on `cleanup`, so that whatever ends
    the session (an exception, a signal) restores the machine in reverse order.
    """
    for line in clean_stale(results_root, settings.grace_s):
        say(line)
    # While the trials run, a watchdog ends whatever we started should this process die.
    ledger = cleanup.enter_context(tracking(results_root, settings.grace_s, run_dir / "session.log"))
    if settings.governor is not None:
        cleanup.enter_context(_governor_set(settings.governor, ledger, say))
    if energy is not None:
        cleanup.callback(energy.close)  # before the watchdog's ledger closes: what it started is in it
        energy.prepare_next()  # as early as possible: perf starts while the header is printed
        for line in energy.choice.describe():
            say(line)
        if energy.settings.baseline_s > 0:
            energy = _measure_baseline(energy, run_dir, say, stop)
            energy.prepare_next()  # the baseline took the one started above
    run_as = None if settings.run_as_root else invoking_user()
    if run_as is not None:
        say(f"trainings run as {run_as.name} (uid {run_as.uid}), who also owns the results; "
            "monitors keep root (set run_as_root to change)")
    return energy, run_as


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
            if record.status != "interrupted":
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
    return Attempt(number, "interrupted", reason, exit_code=None, start_utc=None, end_utc=None, duration_s=None,
                   log=str(log.relative_to(trial_dir.parent)))


def attempt_numbers(trial_dir: Path) -> list[int]:
    """The numbers of the trial's attempt folders, in order."""
    return sorted(int(path.name.removeprefix("attempt_")) for path in trial_dir.glob("attempt_*")
                  if path.name.removeprefix("attempt_").isdigit())


def next_attempt(trial_dir: Path) -> int:
    """The number of the next attempt folder: earlier attempts' files are never overwritten."""
    return max(attempt_numbers(trial_dir), default=0) + 1


def _measure_baseline(energy: EnergyPlan, run_dir: Path, say: Callable[[str], None],
                      stop: StopRequest) -> EnergyPlan:
    """Idle power before the first trial; the plan returned carries it into every record."""
    say(f"measuring idle power for {energy.settings.baseline_s:g} s (start nothing else meanwhile)")
    idle = measure_power("idle", energy, dict(os.environ), energy.settings.baseline_s,
                         should_stop=lambda: stop.requested, folder=run_dir / "baseline")
    atomic_write_json(run_dir / "baseline.json", idle.to_json())
    shown = ", ".join(f"{kind} {watts:.1f} W" for kind, watts in (("cpu", idle.cpu_w), ("gpu", idle.gpu_total_w))
                      if watts is not None)
    say(f"idle power: {shown or 'nothing measured'}")
    return replace(energy, idle=idle)


@contextmanager
def _governor_set(name: str, ledger: Ledger, say: Callable[[str], None]) -> Iterator[None]:
    """Set the governor for the campaign; restore it on the way out, whatever the way out is.

    The previous values go into the ledger first, so that the watchdog (mutation.py killed) or a
    later `cleanup` (the machine stopped) can restore them too.
    """
    root = governor.cpufreq_root()
    governor.check(root, name)
    previous = governor.current(root)
    ledger.set_governor(root, previous)
    try:
        governor.apply(root, dict.fromkeys(previous, name))  # a CPU that fails: the others are restored below
        say(f"CPU governor set to {name} on {len(previous)} CPUs (was {', '.join(sorted(set(previous.values())))})")
        yield
    finally:
        governor.apply(root, previous)
        ledger.set_governor(None, None)
        say("CPU governor restored")


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _document_bytes(settings: Settings) -> bytes:
    return (json.dumps(settings.document, indent=2) + "\n").encode()
