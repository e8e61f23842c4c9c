"""Running one trial: its attempts, the background loops of a parallel trial, and the record.

An attempt of a parallel trial: check free GPU memory (when NVML is there and workloads declare
what they need), start every background loop, wait until each has begun its first run and the
warm-up has passed (measuring the machine's power with only the backgrounds running over the last
`energy.background_baseline_s` of that wait), run and measure the foreground, then end every
background group. Whatever ends the foreground (success, failure, timeout, a signal), the
backgrounds are ended and the monitors closed.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from energy_profiler.config.carbon import CarbonSettings
from energy_profiler.config.registry import ModelSpec, Registry
from energy_profiler.config.settings import Settings
from energy_profiler.energy.base import Window
from energy_profiler.energy.baselines import PowerBaseline
from energy_profiler.energy.nvml import free_memory_mib
from energy_profiler.energy.recorder import EnergyPlan, TrialEnergy, measure_power
from energy_profiler.energy.selection import NONE
from energy_profiler.execution.runtime import Output, StopRequest, signal_name, sleep_unless_stopped
from energy_profiler.metrics import LogFindings, log_contains, quoted_line, scan_log
from energy_profiler.model.energy_fields import EnergyFields, with_carbon
from energy_profiler.model.record import Attempt, BackgroundResult, Record
from energy_profiler.model.status import NOT_RETRIED, TrialStatus
from energy_profiler.planning.placeholders import WorkloadDirs
from energy_profiler.planning.plan import Trial
from energy_profiler.process.background import OOM_MARKER, Backgrounds
from energy_profiler.process.training import ProcessOutcome, run_training
from energy_profiler.system.host import git_state
from energy_profiler.system.nvml_module import load_pynvml
from energy_profiler.system.sudo import InvokingUser


@dataclass
class _AttemptResult:
    attempt: Attempt
    metrics: dict[str, float | None] = field(default_factory=dict)
    energy: EnergyFields = field(default_factory=EnergyFields)
    energy_details: dict[str, Any] = field(default_factory=dict)
    background: list[BackgroundResult] = field(default_factory=list)


def run_trial(
    trial: Trial,
    *,
    settings: Settings,
    registry: Registry,
    run_dir: Path,
    host: dict[str, object],
    output: Output,
    stop: StopRequest,
    energy: EnergyPlan | None,
    first_attempt: int = 1,
    run_as: InvokingUser | None = None,
    earlier_attempts: tuple[Attempt, ...] = (),
) -> Record:
    """Every attempt of `trial` (up to 1 + max_retries); the record describes the last one.

    Attempts are numbered from `first_attempt` (a resumed trial keeps its earlier attempt folders),
    and the record lists `earlier_attempts` (those of an earlier session) before this session's.
    """
    repo = registry.repositories[trial.repo]
    model = repo.models[trial.model]
    values = " ".join(f"{name}={value}" for name, value in trial.hyperparameters)
    company = "".join(f" + background {run.repo}/{run.model}" for run in trial.background)
    output.say(f"[{trial.index}] {trial.mode} {trial.repo}/{trial.model} {values}{company}")
    output.detail("argv: " + " ".join(trial.argv))
    results: list[_AttemptResult] = []
    last = first_attempt + settings.max_retries
    for number in range(first_attempt, last + 1):
        output.events.attempt_started(trial.name, number)
        result = _attempt(trial, number, settings=settings, model=model, run_dir=run_dir,
                          output=output, stop=stop, energy=energy, run_as=run_as)
        results.append(result)
        status, reason = result.attempt.status, result.attempt.status_reason
        output.events.attempt_ended(trial.name, number, status=str(status), reason=reason,
                                    duration_s=result.attempt.duration_s, exit_code=result.attempt.exit_code,
                                    cpu_energy_j=result.energy.cpu_energy_j, gpu_energy_j=result.energy.gpu_energy_j)
        if status in NOT_RETRIED or stop.requested:
            break
        if number < last:
            output.say(f"[{trial.index}] attempt {number} {status} ({reason}); retrying")
    final = results[-1]
    start_utc, end_utc, duration_s = final.attempt.start_utc, final.attempt.end_utc, final.attempt.duration_s
    # Only an attempt found unrecorded on resume lacks its times; one run here always has them.
    assert start_utc is not None and end_utc is not None and duration_s is not None
    return Record(
        experiment_id=str(uuid.uuid4()), run_id=run_dir.name, trial=trial.name, trial_index=trial.index,
        experiment_index=trial.experiment_index, run=trial.run, mode=trial.mode, repo=trial.repo,
        model=trial.model, status=final.attempt.status, status_reason=final.attempt.status_reason,
        exit_code=final.attempt.exit_code, start_utc=start_utc, end_utc=end_utc,
        duration_s=duration_s, argv=trial.argv, hyperparameters=trial.hyperparameters,
        mutated=trial.mutated, metrics=tuple((name, final.metrics.get(name)) for name in model.metrics),
        required_metrics=tuple(name for name, spec in model.metrics.items() if spec.required),
        energy=_with_carbon(final.energy, settings), energy_details=final.energy_details, host=dict(host),
        repo_git=git_state(repo.path),
        attempts=(*earlier_attempts, *(result.attempt for result in results)), background=tuple(final.background),
        not_passed=trial.not_passed,
    )


def _attempt(trial: Trial, number: int, *, settings: Settings, model: ModelSpec, run_dir: Path,
             output: Output, stop: StopRequest, energy: EnergyPlan | None,
             run_as: InvokingUser | None) -> _AttemptResult:
    started_s = time.monotonic()
    attempt_dir = run_dir / trial.name / f"attempt_{number}"
    log_path = attempt_dir / "training.log"
    shortfall = memory_shortfall(trial, energy)
    if shortfall is not None:
        now = datetime.now(UTC).isoformat()
        why = f"not enough free GPU memory: {shortfall}"
        output.say(f"[{trial.index}] skipped: {why}")
        return _AttemptResult(
            Attempt(number, TrialStatus.SKIPPED_MEMORY, why, None, now, now, 0.0, "", wall_s=0.0),
            energy=EnergyFields(cpu_energy_reason="The trial was skipped.", gpu_energy_reason="The trial was skipped."))

    dirs = WorkloadDirs(run_dir=run_dir, trial_dir=run_dir / trial.name, attempt_dir=attempt_dir)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **dirs.env(dict(trial.env))}
    energy_dir = attempt_dir / "energy"
    monitors = TrialEnergy(energy, env, energy_dir) if energy is not None else None
    values = " ".join(f"{name}={value}" for name, value in trial.hyperparameters if name in trial.mutated)
    output.progress.attempt_started(f"{trial.index} {trial.mode} {trial.repo}/{trial.model} {values}".rstrip(),
                                    log_path, monitors.live_power if monitors else dict)
    backgrounds = Backgrounds(trial.background, dirs, trial.name, run_as) if trial.background else None
    background: list[BackgroundResult] = []
    background_power: PowerBaseline | None = None
    try:
        try:
            if backgrounds is not None:
                warnings = backgrounds.start(lambda: stop.requested)
                for run, pid in zip(trial.background, backgrounds.pids, strict=False):
                    output.events.background_started(trial.name, run.index, run.repo, run.model, pid)
                for warning in warnings:
                    output.say(f"[{trial.index}] warning: {warning}")
                output.progress.backgrounds_running(backgrounds.described)
                background_power = _settle(trial, energy, env, stop, folder=energy_dir / "background",
                                           say=output.say)
            outcome = run_training(
                dirs.argv(trial.argv), Path(trial.cwd), env, log_path, timeout_s=trial.timeout_s,
                grace_s=settings.grace_s,
                echo=output.training, should_stop=lambda: stop.requested, hurry=lambda: stop.hurry,
                on_start=monitors.start if monitors else lambda: None,
                # The next window's perf starts beside this training (disabled, it counts nothing), so
                # its start-up is over before the next trial whatever the cool-down, also for a retry.
                once_running=energy.prepare_next if energy else lambda: None,
                on_exit=monitors.stop if monitors else lambda: None, label=trial.name, run_as=run_as,
            )
        finally:
            if backgrounds is not None:
                background = backgrounds.stop(settings.grace_s, lambda: stop.hurry, run_dir)
                _report_backgrounds(trial, background, output.say)
                for ended in background:
                    output.events.background_ended(trial.name, ended)
        energy_fields, energy_details = EnergyFields(), dict[str, Any]()
        if monitors is not None:
            window = Window(duration_s=outcome.window_s, cpu_time_s=outcome.cpu_time_s)
            energy_fields, energy_details = monitors.finish(window, energy_dir, background=background_power,
                                                            parallel=bool(trial.background),
                                                            foreground_session=outcome.pid)
            peaks = energy_details.get("gpu", {}).get("details", {}).get("session_peak_mib", {})
            energy_details["foreground_gpu_mem_peak_mib"] = peaks.get(str(outcome.pid))
            background = [replace(result, gpu_mem_peak_mib=peaks.get(str(result.session))) for result in background]
    finally:
        if monitors is not None:
            monitors.close()  # also when something above raised: no descriptor, thread or NVML handle left
    if outcome.teardown is not None and outcome.teardown.survivors:
        output.say(f"warning: {outcome.teardown.survivors} process(es) of the training survived SIGKILL")
    findings = (scan_log(log_path, model.metrics, model.success_marker, model.failure_patterns)
                if outcome.ended_by != "not_started" else LogFindings(dict.fromkeys(model.metrics), False))
    found = findings.metrics
    status, reason = classify(outcome, findings, model, log_path, stop.first_cause)
    if status == TrialStatus.SUCCESS and (failure := background_failure(background)) is not None:
        status, reason = TrialStatus.BACKGROUND_FAILED, failure
    if status == TrialStatus.SUCCESS and energy is not None:
        status, reason = _required_energy(energy, energy_fields)
    attempt = Attempt(
        attempt=number, status=status, status_reason=reason, exit_code=outcome.exit_code,
        start_utc=outcome.start_utc.isoformat(), end_utc=outcome.end_utc.isoformat(),
        duration_s=round(outcome.duration_s, 3), log=str(log_path.relative_to(run_dir)),
        wall_s=round(time.monotonic() - started_s, 3),
    )
    return _AttemptResult(attempt, found, energy_fields, energy_details, background)


def _settle(trial: Trial, energy: EnergyPlan | None, env: Mapping[str, str], stop: StopRequest, *, folder: Path,
            say: Callable[[str], None]) -> PowerBaseline | None:
    """Wait out the warm-up; measure the power of the machine with only the backgrounds running.

    The measurement covers the last `background_baseline_s` before the foreground starts (the
    wait is extended to that length when the warm-up is shorter), so the backgrounds' own start-up
    stays out of it when the warm-up is longer.
    """
    baseline_s = energy.settings.background_baseline_s if energy is not None else 0.0
    measurable = energy is not None and (energy.choice.cpu in ("rapl", "perf") or energy.choice.gpu != NONE)
    if not measurable:
        baseline_s = 0.0
    sleep_unless_stopped(max(trial.warmup_s, baseline_s) - baseline_s, stop)
    if baseline_s <= 0 or stop.requested or energy is None:
        return None
    power = measure_power("background", energy, env, baseline_s, should_stop=lambda: stop.requested, folder=folder)
    shown = ", ".join(part for part in (f"cpu {power.cpu_w:.1f} W" if power.cpu_w is not None else "",
                                        f"gpu {power.gpu_total_w:.1f} W" if power.gpu_total_w is not None else "")
                      if part)
    say(f"[{trial.index}] backgrounds alone over {power.duration_s:.1f} s: {shown or 'nothing measured'}")
    return power


def _required_energy(energy: EnergyPlan, fields: EnergyFields) -> tuple[TrialStatus, str | None]:
    """`energy_missing` when a device the settings require came back unmeasured, else success."""
    for kind in energy.settings.require:
        if getattr(fields, f"{kind}_energy_j") is None:
            why = getattr(fields, f"{kind}_energy_reason") or "no reason was given"
            return TrialStatus.ENERGY_MISSING, f"energy.require: {kind} energy was not measured: {why}"
    return TrialStatus.SUCCESS, None


def background_failure(results: list[BackgroundResult]) -> str | None:
    """Why the foreground was not measured beside working backgrounds, or None.

    A background whose command fails at once (a typo, a missing file) is no company at all: the
    loop gave up, or every run of it that ended failed within seconds of starting. A background
    that fails after training a while (an OOM beside the foreground) is a finding, and its bg_*
    columns say so.
    """
    reasons = []
    for result in results:
        name = f"background {result.index} ({result.repo}/{result.model})"
        if result.gave_up:
            reasons.append(f"{name} {result.gave_up}")
        elif result.iterations_failed and not result.iterations_completed \
                and result.iterations_failed_quickly == result.iterations_failed:
            reasons.append(f"{name} failed each of its {result.iterations_failed} run(s) within seconds of "
                           "starting")
    if not reasons:
        return None
    return "; ".join(reasons) + "; see its background_logs"


def _report_backgrounds(trial: Trial, results: list[BackgroundResult], say: Callable[[str], None]) -> None:
    for result in results:
        survivors = f", {result.survivors} SURVIVED" if result.survivors else ""
        say(f"[{trial.index}] background {result.index} {result.repo}/{result.model}: "
            f"{result.iterations_started} runs started, {result.iterations_completed} completed, "
            f"{result.iterations_failed} failed; ended by {result.signal or 'itself'} in {result.teardown_s:.2f} s"
            f"{survivors}" + (f"; it stopped itself: {result.gave_up}" if result.gave_up else "")
            + (f"; {result.logs_dropped} middle run logs removed (iterations.csv lists every run)"
               if result.logs_dropped else ""))


def memory_shortfall(trial: Trial, energy: EnergyPlan | None) -> str | None:
    """Why the workloads' declared GPU memory does not fit now, or None (fits, or cannot be checked).

    Each workload is taken to use the first GPU it sees (CUDA_VISIBLE_DEVICES, else GPU 0).
    Without NVML nothing is checked.
    """
    needs: dict[str, float] = {}
    workloads = [(dict(trial.env), trial.gpu_memory_mib)] + [(dict(run.env), run.gpu_memory_mib)
                                                            for run in trial.background]
    for env, mib in workloads:
        if mib is not None:
            visible = env.get("CUDA_VISIBLE_DEVICES") or os.environ.get("CUDA_VISIBLE_DEVICES") or "0"
            gpu = visible.split(",")[0].strip() or "0"
            needs[gpu] = needs.get(gpu, 0.0) + mib
    if not needs:
        return None
    try:
        free = free_memory_mib(energy.hardware.nvml_loader if energy else load_pynvml)
    except Exception:  # no NVML here: the check cannot be made, and the trial runs
        return None
    for gpu, need in needs.items():
        if gpu in free and free[gpu] < need:
            return f"the workloads need {need:.0f} MiB on GPU {gpu}, {free[gpu]:.0f} MiB are free"
    return None


def classify(
    outcome: ProcessOutcome,
    findings: LogFindings,
    model: ModelSpec,
    log_path: Path,
    stopped_by: str | None,
) -> tuple[TrialStatus, str | None]:
    """(status, reason): success needs exit code 0, no failure line, the success marker (when the
    registry names one) and every required metric; else a named status."""
    if outcome.ended_by == "not_started":
        return TrialStatus.FAILED, outcome.error
    if outcome.ended_by == "interrupted":
        return TrialStatus.INTERRUPTED, f"interrupted by {stopped_by or 'a stop request'}"
    if outcome.ended_by == "timeout":
        return TrialStatus.TIMEOUT, f"no exit within the timeout of {outcome.window_s:.0f} s"
    if outcome.exit_code is None:
        return TrialStatus.FAILED, "the training did not end even after SIGKILL (stuck in the kernel?); see the warning"
    if outcome.exit_code != 0:
        if log_contains(log_path, OOM_MARKER):
            return TrialStatus.OOM, f"'{OOM_MARKER}' in the log (exit code {outcome.exit_code})"
        code = outcome.exit_code or 0
        how = f"killed by {signal_name(-code)}" if code < 0 else f"exit code {code}"
        last = _last_line(log_path)
        return TrialStatus.FAILED, f"{how}: {last}" if last else how
    if findings.failure is not None:
        pattern, line = findings.failure
        status = TrialStatus.OOM if OOM_MARKER in line else TrialStatus.FAILED
        return status, f"exit code 0, but a log line matched the failure pattern {pattern!r}: {line}"
    if not findings.success_marker_seen and model.success_marker is not None:
        marker = model.success_marker.pattern
        return TrialStatus.FAILED, f"exit code 0, but the success marker {marker!r} never appeared in the log"
    missing = [name for name, spec in model.metrics.items() if spec.required and findings.metrics.get(name) is None]
    if missing:
        return TrialStatus.METRICS_MISSING, "required metric not found in the log: " + ", ".join(missing)
    return TrialStatus.SUCCESS, None


def _last_line(log_path: Path) -> str:
    """The last non-empty line of a log (read from its end), shortened for a CSV cell."""
    with open(log_path, "rb") as log:
        log.seek(0, os.SEEK_END)
        log.seek(max(0, log.tell() - 4096))
        lines = [line.strip() for line in log.read().decode("utf-8", "replace").splitlines()]
    return next((quoted for line in reversed(lines) if (quoted := quoted_line(line))), "")


def _with_carbon(fields: EnergyFields, settings: Settings) -> EnergyFields:
    """The record's energy with its CO2e and cost, at the settings' carbon intensity and price."""
    carbon = settings.carbon or CarbonSettings()
    return with_carbon(fields, carbon.g_per_kwh, carbon.source, carbon.price_per_kwh, carbon.currency)
