"""Where trials run: on this machine (`local`), or each as an exclusive Slurm job (`slurm`).

The settings' `executor` is `"local"` (the default) or `{"slurm": {...}}` with the sbatch options a
user needs. Every option becomes separate sbatch arguments (never a shell string), so a value
holding `;`, quotes or `$( )` reaches Slurm literally.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LOCAL = "local"


@dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str | None = None
    """Per trial, Slurm's time format (`30`, `2:00:00`, `1-00:00:00`); default: from the trial's timeout."""
    gpus_per_trial: int | None = None
    gres: str | None = None
    cpus_per_trial: int | None = None
    constraint: str | None = None
    extra_args: tuple[str, ...] = ()
    max_parallel: int = 1
    """How many trials may run at once (each on a node of its own)."""
    shared_check_s: float = 120.0
    """How long to wait for the check job that proves a node sees the run folder's file system (0: none)."""

    def check_options(self) -> list[str]:
        """The options of that check job: where the trials go, but a minute on a core, not a whole node."""
        return ["--nodes=1", "--ntasks=1", "--time=1", *self._placement()]

    def _placement(self) -> list[str]:
        """Where the jobs go: partition, account, QoS, constraint."""
        return [f"{flag}={value}" for flag, value in (("--partition", self.partition), ("--account", self.account),
                                                        ("--qos", self.qos), ("--constraint", self.constraint))
                if value is not None]

    def sbatch_options(self, timeout_s: float | None) -> list[str]:
        """The sbatch arguments every trial's job is submitted with (before the script)."""
        arguments = ["--exclusive", "--nodes=1", "--ntasks=1", *self._placement()]  # energy is node-wide
        if self.gres is not None:
            arguments.append(f"--gres={self.gres}")
        if self.gpus_per_trial is not None:
            arguments.append(f"--gpus={self.gpus_per_trial}")
        if self.cpus_per_trial is not None:
            arguments.append(f"--cpus-per-task={self.cpus_per_trial}")
        limit = self.time if self.time is not None else _minutes(timeout_s)
        if limit is not None:
            arguments.append(f"--time={limit}")
        return [*arguments, *self.extra_args]


Executor = str | SlurmOptions
"""`"local"` or the Slurm options."""

SLURM_MARGIN_S = 300.0
"""Added to a trial's timeout for its job's time limit: monitors, baselines, backgrounds and teardown."""


def _minutes(timeout_s: float | None) -> str | None:
    if timeout_s is None:
        return None
    return str(int((timeout_s + SLURM_MARGIN_S + 59) // 60))


def executor_from_document(value: Any) -> Executor:
    """The schema-valid `executor` value."""
    if value is None or value == LOCAL:
        return LOCAL
    slurm = dict(value["slurm"])
    if "extra_args" in slurm:
        slurm["extra_args"] = tuple(slurm["extra_args"])
    return SlurmOptions(**slurm)
