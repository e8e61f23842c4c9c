"""`run FILE --resume [RUN_DIR]`: continue a run folder with the plan, settings and options it started with.

A run folder keeps, in its plan.json, the command-line options that change what is measured (the
energy options, `-g`, `--executor`, the registry). A resume takes them from there, so that one
summary.csv never mixes an estimate with nothing; an option given on the resume that differs is
refused (exit 2, naming each difference) unless `--override-options` says the change is wanted.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import click

from energy_profiler.cli.context import (
    ENERGY_FLAGS,
    REGISTRY_VARIABLE,
    AppContext,
    energy_arguments,
    invocation,
    option_text,
)
from energy_profiler.config.registry import Registry
from energy_profiler.config.settings import Settings, settings_from_document
from energy_profiler.errors import ToolExit
from energy_profiler.planning.plan import Plan
from energy_profiler.results.rundir import latest_run_of, named_run_dir

OPTIONS_KEY = "options"
"""plan.json's key for the options a campaign runs with."""


@dataclass(frozen=True)
class RunOptions:
    """The command-line options of a campaign that change what it measures or how."""

    energy: dict[str, Any] = field(default_factory=dict)
    """Energy overrides by their `energy` key (`cpu_tdp_w`: 100.0); `require` as a tuple."""
    governor: str | None = None
    executor: str | None = None
    registry: str | None = None
    """The registry file (absolute) the campaign read its repositories and metric patterns from."""

    @classmethod
    def of(cls, app: AppContext) -> RunOptions:
        """What `app` runs with: its overrides and its registry."""
        return cls(energy=dict(app.energy_overrides), governor=app.governor, executor=app.executor,
                   registry=str(app.registry_file.resolve()))

    def to_json(self) -> dict[str, Any]:
        return {"energy": {name: list(value) if isinstance(value, tuple) else value
                           for name, value in self.energy.items()},
                "governor": self.governor, "executor": self.executor, "registry": self.registry}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunOptions:
        energy = {name: tuple(value) if isinstance(value, list) else value
                  for name, value in data.get("energy", {}).items() if name in ENERGY_FLAGS}
        return cls(energy=energy, governor=data.get("governor"), executor=data.get("executor"),
                   registry=data.get("registry"))

    def arguments(self) -> tuple[list[str], list[str]]:
        """(options before the command, options after it) that give these options again."""
        before = ["-g", self.governor] if self.governor is not None else []
        after = (["--executor", self.executor] if self.executor is not None else []) + energy_arguments(self.energy)
        return before, after

    def shown(self) -> str:
        before, after = self.arguments()
        return shlex.join(before + after)


def _given(app: AppContext) -> RunOptions:
    """The options this command line names itself (the registry only when named)."""
    options = RunOptions.of(app)
    return options if app.registry_given or os.environ.get(REGISTRY_VARIABLE) else replace(options, registry=None)


def differences(recorded: RunOptions, given: RunOptions) -> list[str]:
    """One line per option this command gives with another value than the run folder recorded."""
    lines = []

    def differ(option: str, before: Any, now: Any) -> None:
        if now is not None and now != before:
            was = "not given" if before is None else shlex.join(_words(before))
            lines.append(f"{option}: the run folder started with {was}, this command gives {shlex.join(_words(now))}")

    for name, flag in ENERGY_FLAGS.items():
        differ(flag, recorded.energy.get(name), given.energy.get(name))
    differ("-g/--governor", recorded.governor, given.governor)
    differ("--executor", recorded.executor, given.executor)
    differ("--registry", recorded.registry, given.registry)
    return lines


def _words(value: Any) -> list[str]:
    return [option_text(item) for item in (value if isinstance(value, tuple) else (value,))]


def merged(recorded: RunOptions, given: RunOptions) -> RunOptions:
    """The recorded options with what this command gives over them."""
    return RunOptions(energy={**recorded.energy, **given.energy},
                      governor=given.governor if given.governor is not None else recorded.governor,
                      executor=given.executor if given.executor is not None else recorded.executor,
                      registry=given.registry or recorded.registry)


def apply(app: AppContext, options: RunOptions) -> None:
    app.energy_overrides = dict(options.energy)
    app.governor = options.governor
    app.executor = options.executor
    if options.registry is not None:
        app.registry_file = Path(options.registry)


def resume_hint(settings_file: Path, run_dir: Path, options: RunOptions) -> str:
    """The command that continues `run_dir`: the options it runs with are in it, so that it reads
    whole, and its settings file and run folder absolute, so that it works from any folder."""
    before, after = options.arguments()
    settings = settings_file.absolute() if settings_file.exists() else settings_file
    return shlex.join([*invocation(), *before, "run", str(settings), "--resume", str(run_dir.absolute()), *after])


class Execute(Protocol):
    """run.py's `execute`: runs a campaign (here, the resumed one) and exits with its code."""

    def __call__(self, app: AppContext, registry: Registry, settings: Settings, plan: Plan, *,
                 settings_bytes: bytes | None, resume_dir: Path | None = None, settings_file: Path | None = None,
                 options: RunOptions | None = None) -> None: ...


def resume_run(app: AppContext, settings_file: Path, run_dir_text: str | None, *, override: bool,
               execute: Execute) -> None:
    """Continue a run folder with the plan, settings and options it was started with; `execute`
    runs it (run.py's, passed in: this module is below run.py, which prints resume_hint)."""
    run_dir = _run_dir_to_resume(app, settings_file, run_dir_text)
    plan_document = json.loads((run_dir / "plan.json").read_text())
    _check_experiment_name(settings_file, run_dir, plan_document)
    options = _options_to_resume_with(app, run_dir, plan_document, override=override)
    copy = run_dir / "settings.json"
    registry = app.registry()
    settings = settings_from_document(json.loads(copy.read_text()), copy, registry)
    if settings_file.is_file() and settings_file.read_bytes() != copy.read_bytes():
        click.echo(f"warning: {settings_file} changed since {run_dir.name} began; its own copy is what resumes",
                   err=True)
    plan = Plan.from_json(plan_document)
    execute(app, registry, settings, plan, settings_bytes=None, resume_dir=run_dir, settings_file=settings_file,
            options=options)


def _run_dir_to_resume(app: AppContext, settings_file: Path, run_dir_text: str | None) -> Path:
    if run_dir_text:
        run_dir = named_run_dir(app.results_dir, run_dir_text)
        if run_dir is None:
            raise ToolExit(f"{run_dir_text}: no such run folder (looked for it as a path and in {app.results_dir})")
    else:
        found = latest_run_of(app.results_dir, settings_file)
        if found is None:
            raise ToolExit(f"nothing to resume: no run folder made from {settings_file} in {app.results_dir}")
        run_dir = found
    if any(run_dir.glob("run_*/plan.json")):
        latest = latest_run_of(run_dir, settings_file)
        example = f"; the latest made from {settings_file} is {latest}" if latest else ""
        raise ToolExit(f"{run_dir} is a results folder (it holds run folders), not a run folder: give one of its "
                       f"run_* folders to --resume{example}")
    if not (run_dir / "plan.json").is_file():
        raise ToolExit(f"{run_dir} has no plan.json: its campaign was stopped before the plan was written, so no "
                       f"trial ran in it. Remove that folder and run {settings_file} again.")
    return run_dir.absolute()


def _check_experiment_name(settings_file: Path, run_dir: Path, plan_document: dict[str, Any]) -> None:
    """A resume names the settings file the run folder was made from: another campaign's is a mistake."""
    if not settings_file.is_file():
        click.echo(f"note: {settings_file} is not there; {run_dir.name} resumes from its own copy of the settings",
                   err=True)
        return
    try:
        name = json.loads(settings_file.read_text(encoding="utf-8")).get("experiment_name")
    except (OSError, ValueError, AttributeError):
        return  # unreadable now: the run folder's own copy is what resumes, and it is valid
    started = plan_document.get("experiment_name")
    if isinstance(name, str) and started is not None and name != started:
        raise ToolExit(f"{settings_file}: experiment_name is {name!r}, but {run_dir} is a run of {started!r}: give "
                       f"the settings file it was made from (its copy is {run_dir / 'settings.json'})")


def _options_to_resume_with(app: AppContext, run_dir: Path, plan_document: dict[str, Any], *,
                            override: bool) -> RunOptions:
    """The run folder's options, with this command's over them when `override`; ToolExit (exit 2) on
    a difference without it. A folder from before options were recorded takes this command's."""
    given = _given(app)
    if OPTIONS_KEY not in plan_document:
        return RunOptions.of(app)
    recorded = RunOptions.from_json(plan_document[OPTIONS_KEY])
    changed = differences(recorded, given)
    if changed and not override:
        raise ToolExit(f"{run_dir} started with other options than this command gives; a resume keeps its "
                       "campaign's options, so that one summary.csv is measured one way:",
                       details=[*(f"  {line}" for line in changed),
                                "leave these options out to resume as it started, or add --override-options to "
                                "change them from the next trial on (each row names its method)"])
    options = merged(recorded, given)
    if options.registry is not None and not Path(options.registry).is_file():
        raise ToolExit(f"{run_dir} was started with the registry {options.registry}, which is not there now: name "
                       "the one to use with --registry FILE --override-options")
    apply(app, options)
    return options


def options_notes(options: RunOptions, resume_dir: Path | None) -> list[str]:
    """What the session log and console say of the options: those a resume runs with."""
    shown = options.shown()
    return [f"options this run folder runs with: {shown}"] if resume_dir is not None and shown else []
