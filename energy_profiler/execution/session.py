"""A local campaign: each trial of the plan in turn, its record written the moment it ends.

The run folder is opened by run_folder.py and the machine readied by machine.py; this is the loop.

The session never installs signal handlers: the caller passes a `StopRequest` that its own
handlers set, and the session checks it between steps and while a training runs. Each step is
also told to the run folder's Journal (events.jsonl, state.json), and a StopWatcher turns a
`stop` from another shell into the same StopRequest.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from energy_profiler.config.registry import Registry
from energy_profiler.config.settings import Settings
from energy_profiler.energy.recorder import EnergyPlan, gpu_host_facts
from energy_profiler.errors import ExitCode, ToolExit
from energy_profiler.execution.budget import BUDGET_STOP, BudgetGuard, earlier_wall_s, stop_for_budget
from energy_profiler.execution.journal import Journal, watching_warnings
from energy_profiler.execution.machine import prepare_machine
from energy_profiler.execution.run_folder import OpenedRun, SessionResult, earlier_attempts, next_attempt, open_run
from energy_profiler.execution.runtime import (
    Output,
    StopRequest,
    WallClockEta,
    clock,
    sleep_unless_stopped,
)
from energy_profiler.execution.sinks import record_sinks
from energy_profiler.execution.start_failures import StartFailures
from energy_profiler.execution.stop_request import StopWatcher
from energy_profiler.execution.trial import run_trial
from energy_profiler.planning.plan import Plan
from energy_profiler.system import governor
from energy_profiler.system.host import host_facts


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
    forecast: Mapping[str, tuple[float | None, float | None]] | None = None,
) -> SessionResult:
    """Run every trial of `plan`, writing the run folder as it goes; returns what happened.

    With `resume_dir`, continue that run folder: trials with a final record are kept as they are,
    summary.csv is rebuilt from their experiment.json (so it holds each trial once), and the others
    run again in a fresh attempt folder. Raises RunDirBusy if another campaign holds the folder.
    `options` (the command line's, as JSON) go into plan.json; `notes` are said after the header;
    `forecast` (trial name -> forecast duration and energy) makes the time left count each trial's
    own, and the budget judge the next trial by it.
    """
    started = time.monotonic()
    resumed = resume_dir is not None
    with ExitStack() as cleanup:
        opened = open_run(cleanup, settings, registry, plan, results_root=results_root, output=output,
                          settings_bytes=settings_bytes, resume_dir=resume_dir, options=options, notes=notes)
        journal, say = _journal(cleanup, opened, settings, plan, stop)
        result = opened.result
        output = replace(output, say=say, events=journal)
        result.energy = energy
        (opened.run_dir / BUDGET_STOP).unlink(missing_ok=True)  # this session schedules anew
        try:
            _loop(cleanup, settings, registry, plan, opened=opened, journal=journal, output=output, stop=stop,
                  energy=energy, results_root=results_root, resumed=resumed, forecast=forecast or {}, started=started)
        except ToolExit as error:  # a refusal mid-campaign (a knob the driver will not take): the command exits 1
            what = error.said() or type(error).__name__
            say(f"the campaign stopped on an error: {what}")
            journal.error(what)
            journal.campaign_ended("stopped", ExitCode.FAILED, f"it stopped on an error: {what}")
            raise
        except BaseException as error:  # said in the event log and state.json, then raised on as it was
            what = str(error) or type(error).__name__
            journal.error(what)
            journal.campaign_ended("died", None, f"it ended on an error: {what}")
            raise
        result.stopped_by = stop.first_signal
        if result.stopped_by is not None:
            say(f"stopped by {stop.first_cause} after {len(result.records)} "
                f"of {len(plan.trials)} trials")
        elif stop.graceful is not None and len(result.records) < len(plan.trials):
            left = len(plan.trials) - len(result.records)
            result.stopped_on_request = f"stopped on request ({stop.graceful}): {left} trial(s) not run"
            say(result.stopped_on_request)
        journal.campaign_ended(*_final_state(result, stop))
    result.wall_s = time.monotonic() - started
    return result


def _loop(cleanup: ExitStack, settings: Settings, registry: Registry, plan: Plan, *, opened: OpenedRun,
          journal: Journal, output: Output, stop: StopRequest, energy: EnergyPlan | None, results_root: Path,
          resumed: bool, forecast: Mapping[str, tuple[float | None, float | None]], started: float) -> None:
    """Each trial not yet recorded, in turn, until the plan is done or something stops the campaign."""
    run_dir, finished, result, say = opened.run_dir, opened.finished, opened.result, output.say
    host = {**host_facts(), **(gpu_host_facts(energy) if energy else {})}
    output.progress.campaign_started(len(plan.trials), len(finished))
    energy, run_as, knobs = prepare_machine(cleanup, settings, results_root=results_root, run_dir=run_dir,
                                      energy=energy, say=say, stop=stop, events=journal)
    sinks = record_sinks(run_dir, results_root, opened.summary, resumed=resumed)
    remaining = [trial for trial in plan.trials if trial.name not in finished]
    eta = WallClockEta(len(remaining), time.monotonic(), settings.cooldown_s,
                       [forecast.get(trial.name, (None, None))[0] for trial in remaining] if forecast else ())
    journal.campaign_started(eta.remaining_s(time.monotonic()))
    start_failures = StartFailures(settings.stop_after_start_failures)
    guard = BudgetGuard(settings.budget, settings.carbon.g_per_kwh if settings.carbon else None,
                        earlier_wall_s(list(finished.values())), started) if settings.budget else None
    for position, trial in enumerate(remaining):
        if stop.winding_down or start_failures.reached:
            break
        cooldown_s = settings.cooldown_s if position else 0.0  # before each trial but the first
        if guard and (crossed := guard.crossed(result.records, forecast.get(trial.name, (None, None)),
                                               time.monotonic(), cooldown_s=cooldown_s)):
            result.budget_stop = stop_for_budget(run_dir, crossed, len(remaining) - position, say)
            break
        if cooldown_s > 0:
            say(f"cooling down for {cooldown_s:g} s")
            output.progress.cooldown(cooldown_s)
            journal.cooldown(cooldown_s)
            sleep_unless_stopped(cooldown_s, stop, or_winding_down=True)
            if stop.winding_down:
                break
        journal.trial_started(trial.name, trial.index)
        with knobs.applied(trial) as applied:
            host["cpu_governor"] = governor.summary(governor.cpufreq_root())  # the one in force now
            record = run_trial(trial, settings=settings, registry=registry, run_dir=run_dir, host=host,
                               output=output, stop=stop, energy=energy,
                               first_attempt=next_attempt(run_dir / trial.name), run_as=run_as,
                               earlier_attempts=earlier_attempts(run_dir / trial.name) if resumed else ())
        record = replace(record, knobs=applied)
        for sink in sinks:
            if note := sink.write(record):
                say(note)
        result.records.append(record)
        if energy is not None:
            energy.prepare_next()  # while the records are read and the machine cools down
        eta.trial_ended(time.monotonic())
        output.progress.trial_finished(record.status, record.duration_s, eta)
        left_s = eta.remaining_s(time.monotonic())
        journal.trial_ended(record, left_s)
        say(f"[{trial.index}/{len(plan.trials)}] {trial.name}: {record.status}"
            + (f" ({record.status_reason})" if record.status_reason else "")
            + f" in {record.duration_s:.1f} s"
            + (f"; about {clock(left_s)} left" if left_s and position < len(remaining) - 1
               and not stop.winding_down else ""))
        if start_failures.count(record):
            result.start_failures = start_failures.explanation(len(result.records), len(plan.trials))
            say(result.start_failures)
            break


def _journal(cleanup: ExitStack, opened: OpenedRun, settings: Settings, plan: Plan,
             stop: StopRequest) -> tuple[Journal, Callable[[str], None]]:
    """events.jsonl and state.json, the watcher of `stop` requests from other shells, and the campaign's
    `say` that also puts each warning into the event log."""
    journal = Journal(opened.run_dir, experiment_name=settings.experiment_name, planned=len(plan.trials),
                      recorded=opened.finished.values())
    cleanup.callback(journal.close)
    say = watching_warnings(opened.say, journal)
    stop.listen(say, settings.grace_s, noted=lambda name: journal.stop_requested("signal", name))
    watcher = StopWatcher(opened.run_dir, stop, allowed_uids={0, os.geteuid(), journal.state["uid"]},
                          on_request=journal.stop_requested, say=say)
    cleanup.callback(watcher.close)
    return journal, say


def _final_state(result: SessionResult, stop: StopRequest) -> tuple[str, int, str | None]:
    """The campaign's last state, exit code and why it ended before its plan did."""
    if result.stopped_by is not None:
        return "interrupted", result.exit_code, f"stopped by {stop.first_cause}"
    why = result.stopped_on_request or result.budget_stop or result.start_failures
    if why is not None:
        return "stopped", result.exit_code, why
    return ("finished" if len(result.records) >= result.planned else "stopped"), result.exit_code, None
