"""Executing a plan: for each trial, run the training (with retries) and record the result at once.

The session never installs signal handlers: the caller passes a `StopRequest` that its own
handlers set, and the session checks it between steps and while a training runs.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from energy_profiler import __version__
from energy_profiler.config.settings import Settings
from energy_profiler.energy import EnergyFields
from energy_profiler.energy.base import Window
from energy_profiler.energy.recorder import EnergyPlan, TrialEnergy, gpu_host_facts, measure_idle
from energy_profiler.metrics import scrape_metrics
from energy_profiler.plan import Plan, Trial
from energy_profiler.process.lifetime import clean_stale, tracking
from energy_profiler.process.training import ProcessOutcome, run_training
from energy_profiler.registry import MetricSpec, Registry
from energy_profiler.results.files import atomic_write_bytes, atomic_write_json
from energy_profiler.results.record import Attempt, Record, summary_columns
from energy_profiler.results.rundir import SessionLog, create_run_dir
from energy_profiler.results.summary import SummaryTable
from energy_profiler.system.host import git_state, host_facts

COOLDOWN_POLL_S = 0.1
REASON_LINE_CHARS = 200


@dataclass
class StopRequest:
    """Set by the caller's signal handlers; read by the session. A second request means hurry."""

    signals: list[int] = field(default_factory=list)

    def request(self, signum: int) -> None:
        self.signals.append(signum)

    @property
    def requested(self) -> bool:
        return bool(self.signals)

    @property
    def hurry(self) -> bool:
        return len(self.signals) >= 2

    @property
    def first_signal(self) -> int | None:
        return self.signals[0] if self.signals else None


@dataclass(frozen=True)
class Output:
    """Where the session speaks: tool messages, verbose details, and the trainings' own output."""

    say: Callable[[str], None]
    detail: Callable[[str], None]
    training: BinaryIO | None


@dataclass
class SessionResult:
    run_dir: Path
    records: list[Record]
    planned: int
    stopped_by: int | None

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
) -> SessionResult:
    """Run every trial of `plan`, writing the run folder as it goes; returns what happened."""
    run_dir = create_run_dir(results_root)
    atomic_write_bytes(run_dir / "settings.json", settings_bytes or _document_bytes(settings))
    atomic_write_json(run_dir / "plan.json", {
        "schema_version": 1,
        "settings_file": str(settings.file),
        "experiment_name": settings.experiment_name,
        "created_utc": datetime.now(UTC).isoformat(),
        "tool_version": __version__,
        **plan.to_json(),
    })
    hyperparameter_names = _unique(name for trial in plan.trials for name, _ in trial.hyperparameters)
    metric_names = _unique(name for trial in plan.trials for name in registry.repositories[trial.repo].metrics)
    summary = SummaryTable(run_dir / "summary.csv", summary_columns(hyperparameter_names, metric_names))
    log = SessionLog(run_dir / "session.log")

    def say(message: str) -> None:
        log.write(message)
        output.say(message)

    host = {**host_facts(), **(gpu_host_facts(energy) if energy else {})}
    seed_note = " (drawn; put it in the settings to repeat this plan)" if plan.seed_was_drawn else ""
    say(f"campaign '{settings.experiment_name}': {len(plan.trials)} trials, seed {plan.seed}{seed_note}")
    say(f"results: {run_dir}")
    result = SessionResult(run_dir=run_dir, records=[], planned=len(plan.trials), stopped_by=None)
    for line in clean_stale(results_root, settings.grace_s):
        say(line)
    with ExitStack() as cleanup:
        cleanup.callback(log.close)
        # While the trials run, a watchdog ends whatever we started should this process die.
        cleanup.enter_context(tracking(results_root, settings.grace_s, run_dir / "session.log"))
        if energy is not None:
            for line in energy.choice.describe():
                say(line)
            if energy.settings.baseline_s > 0:
                energy = _measure_baseline(energy, run_dir, say, stop)
        for position, trial in enumerate(plan.trials):
            if stop.requested:
                break
            record = _run_trial(trial, settings=settings, registry=registry, run_dir=run_dir, host=host,
                                output=output, say=say, stop=stop, energy=energy)
            atomic_write_json(run_dir / trial.name / "experiment.json", record.to_json())
            summary.append(record.to_row())
            result.records.append(record)
            say(f"[{trial.index}/{len(plan.trials)}] {trial.name}: {record.status}"
                + (f" ({record.status_reason})" if record.status_reason else "")
                + f" in {record.duration_s:.1f} s")
            is_last = position == len(plan.trials) - 1
            if settings.cooldown_s > 0 and not is_last and not stop.requested:
                say(f"cooling down for {settings.cooldown_s:g} s")
                _sleep_unless_stopped(settings.cooldown_s, stop)
        result.stopped_by = stop.first_signal
        if result.stopped_by is not None:
            done = len(result.records)
            say(f"stopped by {signal.Signals(result.stopped_by).name} after {done} of {len(plan.trials)} trials")
    return result


def _run_trial(
    trial: Trial,
    *,
    settings: Settings,
    registry: Registry,
    run_dir: Path,
    host: dict[str, object],
    output: Output,
    say: Callable[[str], None],
    stop: StopRequest,
    energy: EnergyPlan | None,
) -> Record:
    repo = registry.repositories[trial.repo]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **dict(trial.env)}
    values = " ".join(f"{name}={value}" for name, value in trial.hyperparameters)
    say(f"[{trial.index}] {trial.mode} {trial.repo}/{trial.model} {values}")
    output.detail("argv: " + " ".join(trial.argv))
    attempts: list[Attempt] = []
    metrics: dict[str, float | None] = {}
    energy_fields, energy_details = EnergyFields(), dict[str, Any]()
    for attempt_number in range(1, settings.max_retries + 2):
        attempt_dir = run_dir / trial.name / f"attempt_{attempt_number}"
        log_path = attempt_dir / "training.log"
        monitors = TrialEnergy(energy, env) if energy is not None else None
        outcome = run_training(
            trial.argv, Path(trial.cwd), env, log_path, timeout_s=trial.timeout_s, grace_s=settings.grace_s,
            echo=output.training, should_stop=lambda: stop.requested, hurry=lambda: stop.hurry,
            on_start=monitors.start if monitors else lambda: None,
            on_exit=monitors.stop if monitors else lambda: None, label=trial.name,
        )
        if monitors is not None:
            window = Window(duration_s=outcome.duration_s, cpu_time_s=outcome.cpu_time_s)
            energy_fields, energy_details = monitors.finish(window, attempt_dir / "energy")
        if outcome.teardown is not None and outcome.teardown.survivors:
            say(f"warning: {outcome.teardown.survivors} process(es) of the training survived SIGKILL")
        metrics = scrape_metrics(log_path, repo.metrics) if outcome.ended_by != "not_started" else {}
        status, reason = classify(outcome, metrics, repo.metrics, log_path, stop.first_signal)
        attempts.append(Attempt(
            attempt=attempt_number, status=status, status_reason=reason, exit_code=outcome.exit_code,
            start_utc=outcome.start_utc.isoformat(), end_utc=outcome.end_utc.isoformat(),
            duration_s=round(outcome.duration_s, 3), log=str(log_path.relative_to(run_dir)),
        ))
        if status in ("success", "interrupted") or stop.requested:
            break
        if attempt_number <= settings.max_retries:
            say(f"[{trial.index}] attempt {attempt_number} {status} ({reason}); retrying")
    final = attempts[-1]
    return Record(
        experiment_id=str(uuid.uuid4()),
        run_id=run_dir.name,
        trial=trial.name,
        trial_index=trial.index,
        experiment_index=trial.experiment_index,
        run=trial.run,
        mode=trial.mode,
        repo=trial.repo,
        model=trial.model,
        status=final.status,
        status_reason=final.status_reason,
        exit_code=final.exit_code,
        start_utc=final.start_utc,
        end_utc=final.end_utc,
        duration_s=final.duration_s,
        argv=trial.argv,
        hyperparameters=trial.hyperparameters,
        mutated=trial.mutated,
        metrics=tuple((name, metrics.get(name)) for name in repo.metrics),
        required_metrics=tuple(name for name, spec in repo.metrics.items() if spec.required),
        energy=energy_fields,
        energy_details=energy_details,
        host=dict(host),
        repo_git=git_state(repo.path),
        attempts=tuple(attempts),
    )


def _measure_baseline(energy: EnergyPlan, run_dir: Path, say: Callable[[str], None],
                      stop: StopRequest) -> EnergyPlan:
    """Idle power before the first trial; the plan returned carries it into every record."""
    say(f"measuring idle power for {energy.settings.baseline_s:g} s (start nothing else meanwhile)")
    idle = measure_idle(energy, dict(os.environ), lambda: stop.requested)
    atomic_write_json(run_dir / "baseline.json", {"cpu_idle_w": idle.cpu_w, "gpu_idle_w": idle.gpu_w,
                                                  "duration_s": idle.duration_s})
    shown = ", ".join(f"{kind} {watts:.1f} W" for kind, watts in (("cpu", idle.cpu_w), ("gpu", idle.gpu_w))
                      if watts is not None)
    say(f"idle power: {shown or 'nothing measured'}")
    return replace(energy, idle=idle)


def classify(
    outcome: ProcessOutcome,
    metrics: Mapping[str, float | None],
    specs: Mapping[str, MetricSpec],
    log_path: Path,
    stop_signal: int | None,
) -> tuple[str, str | None]:
    """(status, reason): success needs exit code 0 and every required metric; else a named status."""
    if outcome.ended_by == "not_started":
        return "failed", outcome.error
    if outcome.ended_by == "interrupted":
        name = signal.Signals(stop_signal).name if stop_signal else "a stop request"
        return "interrupted", f"interrupted by {name}"
    if outcome.ended_by == "timeout":
        return "timeout", f"no exit within the timeout of {outcome.duration_s:.0f} s"
    if outcome.exit_code != 0:
        code = outcome.exit_code or 0
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        last = _last_line(log_path)
        return "failed", f"{how}: {last}" if last else how
    missing = [name for name, spec in specs.items() if spec.required and metrics.get(name) is None]
    if missing:
        return "metrics_missing", "required metric not found in the log: " + ", ".join(missing)
    return "success", None


def _last_line(log_path: Path) -> str:
    """The last non-empty line of a log (read from its end), shortened for a CSV cell."""
    with open(log_path, "rb") as log:
        log.seek(0, os.SEEK_END)
        log.seek(max(0, log.tell() - 4096))
        lines = [line.strip() for line in log.read().decode("utf-8", "replace").splitlines()]
    last = next((line for line in reversed(lines) if line), "")
    return last[:REASON_LINE_CHARS]


def _sleep_unless_stopped(seconds: float, stop: StopRequest) -> None:
    deadline = time.monotonic() + seconds
    while not stop.requested and time.monotonic() < deadline:
        time.sleep(min(COOLDOWN_POLL_S, max(0.0, deadline - time.monotonic())))


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _document_bytes(settings: Settings) -> bytes:
    return (json.dumps(settings.document, indent=2) + "\n").encode()
