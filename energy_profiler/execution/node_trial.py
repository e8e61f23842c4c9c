"""One planned trial of a run folder, run where this process runs: what a Slurm job does on its node.

It is the local code path for one trial (the machine prepared as a campaign prepares it: watchdog,
governor, energy; then `run_trial`), with three differences that keep a shared run folder sound:
the trial's own folder is locked (not the run folder, which the submitting process holds); the
watchdog's ledger is in a node-local folder (process ids mean nothing on another node, and a
ledger read there could end the wrong processes); and only experiment.json is written. The
submitting process is the one writer of summary.csv and summary_all.csv.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from energy_profiler.config.executor import SlurmOptions
from energy_profiler.config.registry import Registry
from energy_profiler.config.settings import Settings
from energy_profiler.energy.recorder import EnergyPlan, gpu_host_facts
from energy_profiler.errors import ToolExit
from energy_profiler.execution.machine import prepare_machine
from energy_profiler.execution.run_folder import earlier_attempts, next_attempt
from energy_profiler.execution.runtime import Output, StopRequest, signal_name
from energy_profiler.execution.sinks import ExperimentFile
from energy_profiler.execution.trial import run_trial
from energy_profiler.model.record import Record
from energy_profiler.model.status import TrialStatus
from energy_profiler.planning.plan import Plan
from energy_profiler.results.rundir import SessionLog, run_dir_lock
from energy_profiler.system import governor
from energy_profiler.system.host import host_facts


class UnknownTrial(ToolExit):
    """The run folder's plan has no trial of that name (exit 2)."""


def node_ledger_root() -> Path:
    """A folder on this node (not the shared file system) for the watchdog's ledger."""
    return Path(tempfile.gettempdir()) / f"mutation-node-{os.getuid()}"


def gpus_of_the_trial(settings: Settings, environ: Mapping[str, str]) -> str | None:
    """CUDA_VISIBLE_DEVICES narrowed to the executor's `gpus_per_trial`, or None to leave it as it is.

    An exclusive job's batch script sees every GPU of the node whatever --gpus asked for (measured on
    Slurm 22.05: `--exclusive --gpus=1` gave CUDA_VISIBLE_DEVICES=0,1), so the trial takes the
    first `gpus_per_trial` of them; the training and the GPU monitors then see only those.
    """
    wanted = settings.executor.gpus_per_trial if isinstance(settings.executor, SlurmOptions) else None
    visible = [gpu.strip() for gpu in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if gpu.strip()]
    if wanted is None or len(visible) <= wanted:
        return None
    return ",".join(visible[:wanted])


def slurm_job_id() -> str | None:
    """This job's id as the submitter knows it: `ARRAYID_TASK` for an array task, else SLURM_JOB_ID."""
    array_id, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array_id}_{task}" if array_id and task else os.environ.get("SLURM_JOB_ID")


def cancelled(record: Record, stop: StopRequest) -> Record:
    """The record as a cancelled job's: `interrupted` when this process was told to stop (scancel, the
    submitter's Ctrl-C, a time limit: Slurm sends SIGTERM to every process of the job at once).

    The training, signalled too, often ends first, and its own end reads "killed by SIGTERM": recorded
    as `failed`, a resume would keep it as an outcome instead of running the trial again. The
    submitter turns a time limit's `interrupted` into `timeout` (Slurm's state says which it was).
    """
    if stop.first_signal is None or record.status in (TrialStatus.SUCCESS, TrialStatus.INTERRUPTED):
        return record
    return replace(record, status=TrialStatus.INTERRUPTED,
                   status_reason=f"the job was stopped ({signal_name(stop.first_signal)} to this trial's process); "
                                 "the training: "
                                 f"{record.status_reason}")


def run_planned_trial(run_dir: Path, trial_name: str, registry: Registry, settings: Settings, *, output: Output,
                      stop: StopRequest, energy: EnergyPlan | None) -> Record:
    """Run `trial_name` of `run_dir`'s plan once more (a fresh attempt folder) and write its experiment.json.

    `settings` are the run folder's (its settings.json) with the submitter's command-line overrides.
    """
    plan = Plan.from_json(json.loads((run_dir / "plan.json").read_text()))
    trial = next((trial for trial in plan.trials if trial.name == trial_name), None)
    if trial is None:
        raise UnknownTrial(f"{run_dir}: the plan has no trial {trial_name!r}")
    trial_dir = run_dir / trial.name
    trial_dir.mkdir(exist_ok=True)
    with ExitStack() as cleanup:
        cleanup.enter_context(run_dir_lock(trial_dir))
        log = SessionLog(trial_dir / "node.log")
        cleanup.callback(log.close)

        def say(message: str) -> None:
            log.write(message)
            output.say(message)

        say(f"trial {trial.name} of {run_dir} on {host_facts().get('hostname')}")
        if (narrowed := gpus_of_the_trial(settings, os.environ)) is not None:
            say(f"gpus_per_trial: CUDA_VISIBLE_DEVICES={narrowed} of the job's "
                f"{os.environ['CUDA_VISIBLE_DEVICES']}")
            os.environ["CUDA_VISIBLE_DEVICES"] = narrowed  # this process runs this one trial only
        energy, run_as, _ = prepare_machine(cleanup, settings, results_root=node_ledger_root(), run_dir=trial_dir,
                                         energy=energy, say=say, stop=stop)
        host = {**host_facts(), **(gpu_host_facts(energy) if energy else {}),
                "cpu_governor": governor.summary(governor.cpufreq_root()),
                "slurm_job_id": slurm_job_id()}
        record = run_trial(trial, settings=settings, registry=registry, run_dir=run_dir, host=host,
                           output=replace(output, say=say), stop=stop, energy=energy,
                           first_attempt=next_attempt(trial_dir), run_as=run_as,
                           earlier_attempts=earlier_attempts(trial_dir))
        record = cancelled(record, stop)
        ExperimentFile(run_dir).write(record)
        say(f"{trial.name}: {record.status}" + (f" ({record.status_reason})" if record.status_reason else ""))
        return record
