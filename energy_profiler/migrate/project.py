"""`migrate OLD_PROJECT --to DIR`: the older project as a project of this tool that runs from DIR.

DIR gets what a project of this tool holds, so that `cd DIR && mutation.py -ec settings/X.json`
works with no flag: `repos/models.json` (the registry; its repository paths point at the
repositories where they are), `settings/` mirroring the older `settings/`, `history/` (the older
result tables, measurements included) and MIGRATION.md; runs then write `DIR/results/`.

Every converted file is checked exactly as `validate` checks it from DIR, with the converted
history. An experiment that asks for more unique draws than the history leaves is lowered to what
can still be drawn (the older runner ran the draws it could make), and says so. The older project
is only read.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from energy_profiler.config.errors import ConfigIssue, file_error
from energy_profiler.config.json_file import read_json
from energy_profiler.config.registry import Registry, load_registry
from energy_profiler.fs import atomic_write_bytes, atomic_write_json, make_dirs
from energy_profiler.migrate.history import convert_table, history_name, table_notes
from energy_profiler.migrate.registry import OLDER_FILE, convert_registry, is_older_registry
from energy_profiler.migrate.settings import ConvertedSettings, convert_settings
from energy_profiler.planning.plan import Plan

REGISTRY = Path("repos") / "models.json"
"""Where DIR's registry is: where every command looks for it when run from DIR."""
NOT_RUN = Path("not_run")
"""Where converted files that hold no experiment the older runner ran are kept, out of settings/."""
GLOBAL_TABLE = Path("results") / "summary_all.csv"
"""DIR's own results table, which later campaigns append to (dedup counts it too)."""

Checker = Callable[[Path], tuple[Plan | None, list[ConfigIssue]]]
"""What `validate` finds in one settings file: its plan, or the problems `run` would refuse it for."""


@dataclass
class FileReport:
    relative: str
    older_trials: int | None
    planned_trials: int | None = None
    notes: list[str] = field(default_factory=list)
    attention: list[str] = field(default_factory=list)
    """What a user must act on or check (also in `notes`)."""
    refused: list[str] = field(default_factory=list)
    """Why this tool would not run the converted file (each a problem line), if it would not."""
    experiments: list[tuple[str, int, int | None]] = field(default_factory=list)
    """(what, trainings the older runner would start, trials planned here) per converted experiment."""
    aside: bool = False
    """The older runner ran none of its experiments: written to not_run/, not settings/."""
    governor: bool = False
    """It keeps the older file's `governor` (run refuses it where the CPU has no cpufreq)."""

    @property
    def needs_attention(self) -> bool:
        """Something to act on or check: a note of that kind, a refusal, or kept aside in not_run/."""
        return bool(self.attention or self.refused or self.aside)

    def warn(self, note: str, short: str) -> None:
        self.notes.append(note)
        self.attention.append(short)


@dataclass
class MigrationReport:
    target: Path
    registry_notes: list[str]
    files: list[FileReport]
    history_notes: list[str] = field(default_factory=list)
    tables: dict[str, Path] = field(default_factory=dict)
    """{older relative path: converted table} of every result table converted."""
    not_converted: list[str] = field(default_factory=list)
    """Settings files that could not be converted at all, each with why."""

    @property
    def valid(self) -> list[FileReport]:
        return [file for file in self.files if file.planned_trials is not None]

    @property
    def refused(self) -> list[FileReport]:
        return [file for file in self.files if file.planned_trials is None and not file.aside]

    @property
    def aside(self) -> list[FileReport]:
        return [file for file in self.files if file.aside]


def _convert_history(older: Path, target: Path, registry: Registry) -> tuple[dict[str, Path], list[str]]:
    """Every older result table into target/history/; {older relative path: converted file}, notes."""
    candidates = [*sorted((older / "data").glob("*.csv")), *sorted((older / "results").glob("*/summary.csv")),
                  older / "results" / "summary_all.csv"]
    converted: dict[str, Path] = {}
    notes: list[str] = []
    for path in (candidate for candidate in candidates if candidate.is_file()):
        relative = str(path.relative_to(older))
        try:
            table = convert_table(path, registry, relative)
        except ValueError as error:
            notes.append(f"{relative}: not converted: {error}")
            continue
        destination = target / "history" / history_name(relative)
        make_dirs(destination.parent)
        atomic_write_bytes(destination, table.text().encode())
        converted[relative] = destination
        notes += table_notes(relative, table, len(table.rows) + sum(table.skipped.values()))
    return converted, notes


def read_as_the_older_tool(path: Path) -> tuple[object, set[str]]:
    """The document as the older runner's `json.load` read it (the last of repeated keys wins), and the
    repeated keys; this tool's own reader refuses repeats, which is right for its files, not for these."""
    repeated: set[str] = set()

    def last_wins(pairs: list[tuple[str, object]]) -> dict[str, object]:
        seen: dict[str, object] = {}
        for key, value in pairs:
            if key in seen:
                repeated.add(key)
            seen[key] = value
        return seen

    text = path.read_bytes().decode("utf-8")
    return json.loads(text, object_pairs_hook=last_wins), repeated


def migrate_project(older: Path, target: Path, check: Checker) -> MigrationReport:
    """Convert `older` into `target` (an absolute path); ConfigError when the older registry cannot be read."""
    registry_file = older / OLDER_FILE
    older_registry = read_json(registry_file)
    if not is_older_registry(older_registry):
        raise file_error(str(registry_file), "is not the older tool's registry")
    registry = convert_registry(older_registry, older.resolve())
    make_dirs((target / REGISTRY).parent)
    atomic_write_json(target / REGISTRY, registry.document)
    new_registry = load_registry(target / REGISTRY)
    tables, history_notes = _convert_history(older, target, new_registry)
    report = MigrationReport(target, registry.notes, [], history_notes, tables)
    for path in sorted((older / "settings").rglob("*.json")):
        relative = str(path.relative_to(older / "settings"))
        try:
            document, duplicates = read_as_the_older_tool(path)
        except ValueError as error:
            report.not_converted.append(f"settings/{relative}: the older runner could not read it either ({error})")
            continue
        if not isinstance(document, dict | list):
            report.not_converted.append(f"settings/{relative}: not a settings object (the older runner could not "
                                        "run it)")
            continue
        settings = convert_settings(document, older_registry, path.name)
        file = FileReport(relative, settings.older_trials, notes=list(settings.notes),
                          attention=list(settings.attention), governor="governor" in settings.document)
        if duplicates:
            file.notes.insert(0, f"keys given twice in one object ({', '.join(sorted(duplicates))}): the older "
                                 "runner (Python's json) kept the last of each, and so does the converted file")
        if settings.document.get("_use_deduplication"):
            _add_dedup(settings.document, tables, target, file)
        report.files.append(file)
        if not settings.document["experiments"]:
            # Nothing the older runner ran: kept for reading, out of settings/ (which all validates).
            file.aside = True
            destination = target / NOT_RUN / relative
            make_dirs(destination.parent)
            atomic_write_json(destination, settings.document)
            file.experiments = [(what, runs, None) for what, runs in settings.older_runs]
            continue
        destination = target / "settings" / relative
        make_dirs(destination.parent)
        _check(settings, destination, check, file)
    return report


SUCCESSORS = {"results/summary_all.csv": "data/raw_data.csv"}
"""Older tables the older project itself replaced (its README, v4.7.3: "summary_all.csv -> raw_data.csv",
dedup moved to raw_data.csv), for files written before the move."""


def _add_dedup(document: dict[str, Any], tables: Mapping[str, Path], target: Path, file: FileReport) -> None:
    """`dedup.history`: the converted tables the older file named, and DIR's own results table."""
    wanted = [str(path) for path in document.get("_historical_csvs", [])]
    found: list[str] = []
    for path in wanted:
        successor = SUCCESSORS.get(path, path)
        if path not in tables and successor in tables:
            file.notes.append(f"history table {path} is gone from the older project, which moved dedup to "
                              f"{successor} (its README, v4.7.3): {successor} used")
            path = successor
        if path in tables:
            found.append(str(tables[path]))
        else:
            file.warn(f"history table {path} is not in the older project (or could not be converted): left out of "
                      "dedup", "a dedup table is missing")
    document["dedup"] = {"history": [*dict.fromkeys(found), str(target / GLOBAL_TABLE)]}
    file.notes.insert(0, f"use_deduplication with {', '.join(wanted) or 'no table'}: dedup.history is "
                         f"{', '.join(f'history/{Path(path).name}' for path in dict.fromkeys(found)) or 'none of them'}"
                         f" and this project's {GLOBAL_TABLE}")


def _check(settings: ConvertedSettings, destination: Path, check: Checker, file: FileReport) -> None:
    """Write the file and check it as `validate` will; lower an experiment the history has exhausted."""
    experiments: list[dict[str, Any]] = settings.document["experiments"]
    asked = [experiment["runs_per_config"] for experiment in experiments]
    older_runs = list(settings.older_runs)
    while True:
        atomic_write_json(destination, settings.document)
        plan, issues = check(destination)
        exhausted = sorted(issue.path[1] for issue in issues if _exhausted(issue))
        if plan is not None or not exhausted or len(exhausted) < len(issues):
            break
        index = int(exhausted[0])  # the first only: later experiments draw from what it leaves
        experiments[index]["runs_per_config"] -= 1
        if experiments[index]["runs_per_config"] == 0:
            what, runs = older_runs.pop(index)
            file.warn(f"{what}: ran {runs} training(s) in the older tool; the converted history leaves no unique "
                      "draw: left out (kept under _exhausted_by_the_history)",
                      "experiments the history exhausts, left out")
            settings.document.setdefault("_exhausted_by_the_history", []).append(experiments.pop(index))
            asked.pop(index)
    if plan is None:
        file.refused = [str(issue).removeprefix(f"{destination}: ") for issue in issues]
        file.experiments = [(what, runs, None) for what, runs in older_runs]
        return
    for index, experiment in enumerate(experiments):
        if experiment["runs_per_config"] < asked[index]:
            runs = experiment["runs_per_config"]
            file.warn(f"{older_runs[index][0]}: asked for {asked[index]} unique draws; the converted history leaves "
                      f"{runs} (the older runner ran the draws it could make): runs_per_config lowered to {runs}",
                      "runs_per_config lowered where the history leaves fewer unique draws")
    file.planned_trials = len(plan.trials)
    planned = Counter(trial.experiment_index for trial in plan.trials)
    file.experiments = [(what, runs, planned[index]) for index, (what, runs) in enumerate(older_runs)]


def _exhausted(issue: ConfigIssue) -> bool:
    """A runs_per_config the space (with the history) cannot fill with unique draws."""
    return (len(issue.path) == 3 and issue.path[0] == "experiments" and issue.path[2] == "runs_per_config"
            and "unique combinations" in issue.message)
