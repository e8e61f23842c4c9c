"""The one Record type: the single source of a trial's experiment.json and its summary.csv row."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from energy_profiler.model.energy_fields import EnergyFields
from energy_profiler.model.knob_fields import KNOB_COLUMNS, KnobsApplied
from energy_profiler.model.status import TrialStatus
from energy_profiler.model.values import canonical_to_json, json_to_canonical

SCHEMA_VERSION = 1

START_FAILURE_S = 10.0
"""A trial that failed within this many seconds of starting did not get to train: it measured nothing
of its configuration (a command that cannot run), and a campaign stops after a few in a row."""


@dataclass(frozen=True)
class BackgroundResult:
    """Everything recorded about one background workload of a parallel trial."""

    index: int
    repo: str
    model: str
    hyperparameters: dict[str, int | float | bool | str]
    argv: list[str]
    script: str
    """Path of the generated script, relative to the run folder."""
    iterations_started: int
    iterations_completed: int
    iterations_failed: int
    oom_iterations: int
    signal: str | None
    """The last signal the teardown sent (SIGTERM, SIGKILL), or None if the loop was already gone."""
    teardown_s: float
    survivors: int
    gpu_mem_peak_mib: float | None = None
    """Peak GPU memory of the loop's processes during the foreground's window (NVML only)."""
    session: int | None = None
    """The loop's session id (its script's pid): what GPU memory is attributed by."""
    state: str = "exited"
    """How its teardown ended: exited, killed (SIGKILL was needed) or unknown (survivors)."""
    iterations_failed_quickly: int = 0
    """Failed runs that ended within a few seconds of starting (the command, not the training, failed)."""
    gave_up: str | None = None
    """Why the loop stopped by itself (its runs kept failing at once), or None."""
    logs_dropped: int = 0
    """Run logs removed to keep the first and last few (iterations.csv lists every run)."""


@dataclass(frozen=True)
class Attempt:
    """One try at a trial; a trial has more than one only when max_retries allows it."""

    attempt: int
    status: TrialStatus
    status_reason: str | None
    exit_code: int | None
    start_utc: str | None
    end_utc: str | None
    duration_s: float | None
    """None for an attempt the campaign died during (SIGKILL, power loss): found on resume, never recorded."""
    log: str
    """Path of this attempt's training.log, relative to the run folder."""
    wall_s: float | None = None
    """The whole attempt's wall time: monitors started and stopped, backgrounds, baselines, teardown."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", _status(self.status))  # from JSON it is the word


@dataclass(frozen=True)
class Record:
    """Everything known about one trial. Values not measured are None, with a reason beside them."""

    experiment_id: str
    run_id: str
    trial: str
    trial_index: int
    experiment_index: int
    run: int
    mode: str
    repo: str
    model: str
    status: TrialStatus
    status_reason: str | None
    exit_code: int | None
    start_utc: str
    end_utc: str
    duration_s: float
    argv: tuple[str, ...]
    hyperparameters: tuple[tuple[str, str], ...]
    """(name, canonical value string) as passed on the command line."""
    mutated: tuple[str, ...]
    metrics: tuple[tuple[str, float | None], ...]
    required_metrics: tuple[str, ...]
    """Names of the metrics the registry marks required (the ones success depends on)."""
    energy: EnergyFields
    energy_details: dict[str, Any]
    """Per-socket and per-GPU breakdown and the method facts of each measurement."""
    host: dict[str, Any]
    repo_git: dict[str, Any]
    attempts: tuple[Attempt, ...] = field(default=())
    background: tuple[BackgroundResult, ...] = field(default=())
    """Parallel mode: what each background loop did (empty otherwise)."""
    not_passed: tuple[str, ...] = ()
    """Hyperparameters a `pass: "given"` repository left to the script's own default: value unknown."""
    knobs: KnobsApplied | None = None
    """The system knobs the trial set, as read back on the machine; None when it set none."""
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", _status(self.status))  # from JSON it is the word

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Record:
        """The Record an experiment.json was written from (its inverse: to_json(from_json(d)) == d)."""
        energy = document["energy"]
        known = {f.name for f in fields(EnergyFields)}

        return cls(
            **{name: document[name] for name in (
                "experiment_id", "run_id", "trial", "trial_index", "experiment_index", "run", "mode", "repo",
                "model", "status", "status_reason", "exit_code", "start_utc", "end_utc", "duration_s", "host",
                "repo_git", "schema_version")},
            argv=tuple(document["argv"]),
            hyperparameters=tuple((name, json_to_canonical(value))
                                  for name, value in document["hyperparameters"].items()),
            mutated=tuple(document["mutated"]),
            metrics=tuple(document["metrics"].items()),
            required_metrics=tuple(document.get("required_metrics", ())),
            energy=EnergyFields(**{name: value for name, value in energy.items() if name in known}),
            energy_details=energy.get("details", {}),
            attempts=tuple(Attempt(**attempt) for attempt in document["attempts"]),
            background=tuple(BackgroundResult(**result) for result in document.get("background", ())),
            not_passed=tuple(document.get("not_passed", ())),
            knobs=KnobsApplied.from_json(document["knobs"]) if document.get("knobs") else None,
        )

    def _scalars(self) -> dict[str, Any]:
        """The fields that experiment.json and the CSV row both hold as they are, in column order."""
        return {
            "experiment_id": self.experiment_id, "run_id": self.run_id, "trial": self.trial,
            "trial_index": self.trial_index, "experiment_index": self.experiment_index, "run": self.run,
            "mode": self.mode, "repo": self.repo, "model": self.model, "status": self.status,
            "status_reason": self.status_reason, "exit_code": self.exit_code,
        }

    def _times(self) -> dict[str, Any]:
        return {"start_utc": self.start_utc, "end_utc": self.end_utc, "duration_s": self.duration_s}

    def to_json(self) -> dict[str, Any]:
        """The experiment.json document."""
        return {
            "schema_version": self.schema_version,
            **self._scalars(),
            "attempt_count": len(self.attempts),
            **self._times(),
            "argv": list(self.argv),
            "hyperparameters": {name: canonical_to_json(value) for name, value in self.hyperparameters},
            "mutated": list(self.mutated),
            **({"not_passed": list(self.not_passed)} if self.not_passed else {}),
            "metrics": dict(self.metrics),
            "required_metrics": list(self.required_metrics),
            "energy": {**asdict(self.energy), "details": self.energy_details},
            "host": self.host,
            "repo_git": self.repo_git,
            "attempts": [asdict(attempt) for attempt in self.attempts],
            "background": [asdict(result) for result in self.background],
            **({"knobs": self.knobs.to_json()} if self.knobs else {}),
        }

    def to_row(self) -> dict[str, str]:
        """The summary.csv row: flat text cells; None becomes an empty cell, never 0."""
        row: dict[str, object] = {**self._scalars(), "attempts": len(self.attempts), **self._times(),
                                  "mutated": ";".join(self.mutated)}
        if self.not_passed:
            row["not_passed"] = ";".join(self.not_passed)
        row.update({f"hp_{name}": value for name, value in self.hyperparameters})
        row.update({f"perf_{name}": value for name, value in self.metrics})
        row.update(asdict(self.energy))
        if self.knobs:
            row.update(self.knobs.cells())
        if self.background:
            row.update(self._background_cells())
        row.update({
            "cpu_governor": self.host.get("cpu_governor"),
            "hostname": self.host.get("hostname"),
            "tool_version": self.host.get("tool_version"),
            "tool_commit": self.host.get("tool_commit"),
            "repo_commit": self.repo_git.get("commit"),
        })
        return {key: _cell(value) for key, value in row.items()}

    def _background_cells(self) -> dict[str, object]:
        """The bg_* cells: one value per background, joined with `;` when there are several."""
        return {column: ";".join("" if (value := cell(result)) is None else str(value) for result in self.background)
                for column, cell in BACKGROUND_CELLS.items()}


BACKGROUND_CELLS: dict[str, Callable[[BackgroundResult], object]] = {
    "bg_repo": lambda r: r.repo,
    "bg_model": lambda r: r.model,
    "bg_hyperparameters": lambda r: json.dumps(r.hyperparameters),
    "bg_iterations_started": lambda r: r.iterations_started,
    "bg_iterations_completed": lambda r: r.iterations_completed,
    "bg_iterations_failed": lambda r: r.iterations_failed,
    "bg_oom_iterations": lambda r: r.oom_iterations,
    "bg_teardown_s": lambda r: r.teardown_s,
    "bg_signal": lambda r: r.signal,
    "bg_survivors": lambda r: r.survivors,
    "bg_gpu_mem_peak_mib": lambda r: r.gpu_mem_peak_mib,
}
"""Each bg_* column of a parallel trial's row, and how one background's value is read."""
BACKGROUND_COLUMNS = tuple(BACKGROUND_CELLS)
ENERGY_COLUMNS = tuple(f.name for f in fields(EnergyFields))
LEADING_COLUMNS = (
    "experiment_id", "run_id", "trial", "trial_index", "experiment_index", "run", "mode", "repo", "model",
    "status", "status_reason", "exit_code", "attempts", "start_utc", "end_utc", "duration_s", "mutated",
)
TRAILING_COLUMNS = ("cpu_governor", "hostname", "tool_version", "tool_commit", "repo_commit")


def summary_columns(hyperparameters: Sequence[str], metrics: Sequence[str], background: bool = False,
                    not_passed: bool = False, knobs: bool = False) -> list[str]:
    """The summary.csv header for a plan whose models have these hyperparameter and metric names.

    The bg_* columns are there when the plan has parallel trials; `not_passed` when a repository of
    the plan passes only the values given (its hp_* cells of values left to the script are empty); the
    knobs' applied columns when a trial of the plan sets a system knob.
    """
    return [*LEADING_COLUMNS, *(("not_passed",) if not_passed else ()), *(f"hp_{name}" for name in hyperparameters),
            *(f"perf_{name}" for name in metrics), *ENERGY_COLUMNS, *(KNOB_COLUMNS if knobs else ()),
            *(BACKGROUND_COLUMNS if background else ()), *TRAILING_COLUMNS]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _status(word: str) -> TrialStatus:
    """The TrialStatus a record's word names; ValueError naming every status for any other word."""
    try:
        return TrialStatus(word)
    except ValueError:
        raise ValueError(f"unknown status {word!r}; statuses are {', '.join(TrialStatus)}") from None
