"""`run FILE` with `executor: {"slurm": ...}` (or `--executor slurm`): the campaign as Slurm jobs."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

import energy_profiler
from energy_profiler.cli.closing import print_outcome
from energy_profiler.cli.context import AppContext, energy_arguments, invocation
from energy_profiler.cli.display import timestamped
from energy_profiler.cli.resume import RunOptions, options_notes, resume_hint
from energy_profiler.cli.signals import stop_on_signals
from energy_profiler.config.executor import SlurmOptions
from energy_profiler.config.registry import Registry
from energy_profiler.config.settings import Settings
from energy_profiler.errors import ended, signalled
from energy_profiler.execution.runtime import Output, StopRequest
from energy_profiler.execution.slurm import fits_one_array, run_slurm_session
from energy_profiler.execution.slurm_check import check_shared_files
from energy_profiler.execution.slurm_jobs import SlurmError, SlurmTools, check_options, max_array_size
from energy_profiler.planning.plan import Plan, Trial
from energy_profiler.results.global_table import GLOBAL_TABLE
from energy_profiler.system.host import TOOL_ROOT


def _checkout_script() -> Path | None:
    script = TOOL_ROOT / "mutation.py"
    return script if script.is_file() else None


def tool_command() -> list[str]:
    """How a compute node starts this tool: the checkout's mutation.py, else the installed package."""
    script = _checkout_script()
    return [sys.executable, str(script)] if script else [sys.executable, "-m", "energy_profiler"]


def tool_files() -> list[tuple[str, Path]]:
    """What a node needs of the tool itself: the Python that runs it (the venv's) and its code."""
    return [("the tool's Python", Path(sys.executable)),
            ("the tool", _checkout_script() or Path(energy_profiler.__file__))]


def slurm_accepts(options: SlurmOptions, plan: Plan) -> SlurmTools:
    """Slurm's tools, once `sbatch --test-only` took a trial's job for every timeout of the plan (a
    partition, account or option it rejects); SlurmError with its words. `run` and `doctor` both ask."""
    tools = SlurmTools.find()
    for timeout_s in sorted({trial.timeout_s for trial in plan.trials}, key=lambda t: t or 0):
        check_options(tools, options, timeout_s)
    return tools


def execute_on_slurm(app: AppContext, registry: Registry, settings: Settings, plan: Plan, options: SlurmOptions, *,
                     settings_bytes: bytes | None, settings_file: Path, run_options: RunOptions,
                     results_root: Path, resume_dir: Path | None = None, detach: bool = False) -> None:
    """Submit and follow the campaign's jobs, print the closing table, exit with the session's code;
    with `detach`, submit them as one job array and exit 0. `results_root` is where the rows go: a
    resumed run folder's own parent, whatever --results-dir says now."""
    try:
        tools = slurm_accepts(options, plan)  # before anything is written: a rejected option is an error now
        if detach and not fits_one_array(plan, limit := max_array_size(tools)):
            raise SlurmError(f"--detach submits the campaign as one job array, and its {len(plan.trials)} trials "
                             f"do not fit this cluster's MaxArraySize ({limit}): run it attached "
                             "(the submitter then keeps to max_parallel), or split the campaign")
    except SlurmError as error:
        raise SlurmError(f"{settings.file}: executor slurm: {error}") from None
    registry_file, results = app.registry_file.resolve(), results_root.resolve()

    # The submitter's command-line overrides reach each job as options of its run-trial line.
    governor = ["--governor", app.governor] if app.governor is not None else []

    def command_for(run_dir: Path, trial: Trial) -> list[str]:
        return [*tool_command(), "--registry", str(registry_file), "--results-dir", str(results), *governor,
                "run-trial", *energy_arguments(app.energy_overrides), str(run_dir.resolve()), trial.name]

    say = timestamped(click.echo)
    output = Output(say=say if not app.quiet else lambda _: None, detail=lambda _: None, training=None)
    stop = StopRequest()
    with stop_on_signals(stop):
        # Not on a resume: the campaign's start checked the same folder, and the check job would wait
        # for a node while the campaign's own exclusive jobs hold every one of them.
        if options.shared_check_s > 0 and resume_dir is None:
            _check_shared_files(tools, options, settings, results=results, stop=stop,
                                needed=[("the registry", registry_file), *tool_files()])
        result = run_slurm_session(settings, registry, plan, options=options, command_for=command_for,
                                   results_root=results, output=output, stop=stop, settings_bytes=settings_bytes,
                                   resume_dir=resume_dir, tools=tools, detach=detach,
                                   run_options=run_options.to_json(),
                                   notes=[*options_notes(run_options, resume_dir), *_budget_note(settings)])
    resume_line = resume_hint(settings_file, result.run_dir, run_options)
    if detach and result.stopped_by is None:
        click.echo(f"detached: the jobs run without this process. What they do:\n"
                   f"{shlex.join([*invocation(), 'status', str(result.run_dir)])}\n"
                   f"their rows (in summary.csv and {GLOBAL_TABLE}), once they have ended or to follow them:\n"
                   f"{resume_line}")
        return
    print_outcome(result, registry, resume_line)


def _check_shared_files(tools: SlurmTools, options: SlurmOptions, settings: Settings, *, results: Path,
                        needed: list[tuple[str, Path]], stop: StopRequest) -> None:
    """A node must see the results folder, the registry and the tool: exit 2 before anything is
    submitted when it does not; a warning when the check job could not run in time."""
    try:
        warning = check_shared_files(tools, options, results, needed, stop)
    except SlurmError as error:
        raise SlurmError(f"{settings.file}: executor slurm: {error}") from None
    if stop.first_signal is not None:
        click.echo("stopped before anything was submitted", err=True)
        raise ended(signalled(stop.first_signal))
    if warning:
        click.echo(f"warning: {warning}", err=True)


def _budget_note(settings: Settings) -> list[str]:
    """A budget is not kept on Slurm yet (the trials go out as one job array): said, not ignored silently."""
    if settings.budget is None:
        return []
    return [f"warning: budget {settings.budget.limits()} is not kept with the Slurm executor (its trials are "
            "submitted at once as a job array): scancel the jobs to stop earlier"]
