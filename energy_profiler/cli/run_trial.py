"""`run-trial RUN_DIR TRIAL`: run one planned trial of a run folder here (what a Slurm job runs).

Hidden from the help: the submitting process writes it into each job's batch script. It exits 0
when the trial's record was written (whatever its status), so Slurm's own state says only whether
the job ran; the record says how the training went.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import click

from energy_profiler.cli.context import AppContext, energy_options, global_options
from energy_profiler.cli.display import timestamped
from energy_profiler.cli.run import energy_plan
from energy_profiler.cli.signals import stop_on_signals
from energy_profiler.config.settings import settings_from_document
from energy_profiler.errors import ToolExit, ended, signalled
from energy_profiler.execution.node_trial import run_planned_trial
from energy_profiler.execution.runtime import Output, StopRequest


@click.command("run-trial", hidden=True)
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("trial")
@global_options
@energy_options
def run_trial_command(run_dir: Path, trial: str) -> None:
    """Run TRIAL of RUN_DIR's plan on this machine and write its experiment.json.

    The energy options and `-g` are the submitter's command line, passed on in the batch script.
    """
    app = click.get_current_context().ensure_object(AppContext)
    if not (run_dir / "plan.json").is_file():
        raise ToolExit(f"{run_dir} has no plan.json: not a run folder")
    registry = app.registry()
    copy = run_dir / "settings.json"
    settings = settings_from_document(json.loads(copy.read_text()), copy, registry)
    if app.governor is not None:
        settings = replace(settings, governor=app.governor)
    settings = replace(settings, energy=replace(settings.energy, **app.energy_overrides))
    energy = energy_plan(settings.energy, copy, app.energy_overrides)
    say = timestamped(click.echo)
    stop = StopRequest()
    with stop_on_signals(stop):  # scancel sends SIGTERM: the trial is ended and recorded as interrupted
        run_planned_trial(run_dir, trial, registry, settings, output=Output(say=say, detail=say, training=None),
                          stop=stop, energy=energy)
    if stop.first_signal is not None:
        raise ended(signalled(stop.first_signal))
