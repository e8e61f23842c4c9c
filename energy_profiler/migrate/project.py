"""`migrate OLD_PROJECT --to DIR`: the older project's registry and settings, converted together.

They are converted together because they depend on each other: a settings file's fixed value
below a hyperparameter's range (a 1-epoch quick run) needs the registry's `limits` widened. DIR
gets `models.json`, `settings/` mirroring the older `settings/`, and `MIGRATION.md`: per file, the
trainings the older runner would have started, the trials this tool plans, and every note. The
older project is only read.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from energy_profiler.config.errors import ConfigError, file_error
from energy_profiler.config.json_file import read_json
from energy_profiler.config.registry import Registry, load_registry
from energy_profiler.config.settings import settings_from_document
from energy_profiler.fs import atomic_write_bytes, atomic_write_json, make_dirs
from energy_profiler.migrate.history import convert_table, dedup_for, history_name, table_notes
from energy_profiler.migrate.registry import OLDER_FILE, convert_registry, is_older_registry, widen_limits
from energy_profiler.migrate.settings import ConvertedSettings, convert_settings
from energy_profiler.planning.plan import build_plan

PLAN_SEED = 0
"""The seed the trial counts in MIGRATION.md are planned with (counts do not depend on it)."""


@dataclass
class FileReport:
    relative: str
    older_trials: int | None
    planned_trials: int | None = None
    notes: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """Why this tool would not run the converted file (each a problem line), if it would not."""
    experiments: list[tuple[str, int, int | None]] = field(default_factory=list)
    """(what, trainings the older runner would start, trials planned here) per converted experiment."""


@dataclass
class MigrationReport:
    registry_notes: list[str]
    files: list[FileReport]
    history_notes: list[str] = field(default_factory=list)


def _convert_history(older: Path, target: Path, registry: Registry) -> tuple[dict[str, Path], list[str]]:
    """Every older result table into target/history/; {older relative path: converted file}, notes."""
    candidates = [*sorted((older / "data").glob("*.csv")), *sorted((older / "results").glob("*/summary.csv")),
                  older / "results" / "summary_all.csv"]
    converted: dict[str, Path] = {}
    notes: list[str] = []
    for path in (candidate for candidate in candidates if candidate.is_file()):
        relative = str(path.relative_to(older))
        try:
            table = convert_table(path, registry)
        except ValueError as error:
            notes.append(f"{relative}: not converted: {error}")
            continue
        destination = target / "history" / history_name(relative)
        make_dirs(destination.parent)
        atomic_write_bytes(destination, table.text().encode())
        converted[relative] = destination.resolve()
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


def migrate_project(older: Path, target: Path) -> MigrationReport:
    """Convert `older` into `target`; raise ConfigError when the older registry cannot be read."""
    registry_file = older / OLDER_FILE
    older_registry = read_json(registry_file)
    if not is_older_registry(older_registry):
        raise file_error(str(registry_file), "is not the older tool's registry")
    registry = convert_registry(older_registry, older.resolve())
    converted: dict[str, ConvertedSettings] = {}
    files: list[FileReport] = []
    for path in sorted((older / "settings").rglob("*.json")):
        relative = str(path.relative_to(older / "settings"))
        try:
            document, duplicates = read_as_the_older_tool(path)
        except ValueError as error:
            files.append(FileReport(relative, None, notes=[f"not converted: the older runner could not read it "
                                                           f"either ({error})"]))
            continue
        if not isinstance(document, dict):
            files.append(FileReport(relative, None, notes=["not converted: not a settings object (the older runner "
                                                           "could not run it)"]))
            continue
        converted[relative] = convert_settings(document, older_registry)
        widened = [f"{note}; models.json has them" for note in
                   widen_limits(registry.document, converted[relative].fixed_values, f"settings/{relative}")]
        repeated = [f"keys given twice in one object ({', '.join(sorted(duplicates))}): the older runner "
                    "(Python's json) kept the last of each, and so does the converted file"] if duplicates else []
        files.append(FileReport(relative, converted[relative].older_trials,
                                notes=[*repeated, *converted[relative].notes, *widened]))

    make_dirs(target / "settings")
    atomic_write_json(target / "models.json", registry.document)
    new_registry = load_registry(target / "models.json")
    tables, history_notes = _convert_history(older, target, new_registry)
    by_name = {report.relative: report for report in files}
    for relative, settings in converted.items():
        if settings.document.get("_use_deduplication"):
            dedup, notes = dedup_for(settings.document, tables)
            wanted = ", ".join(map(str, settings.document.get("_historical_csvs", [])))
            if dedup is not None:
                settings.document["dedup"] = dedup
                notes.insert(0, f"use_deduplication with {wanted}: dedup.history is the converted table(s)")
            else:
                notes.insert(0, f"use_deduplication with {wanted}, none of them converted: dedup is off rather "
                                "than comparing with nothing")
            by_name[relative].notes = [*notes, *by_name[relative].notes]
    for relative, settings in converted.items():
        destination = target / "settings" / relative
        make_dirs(destination.parent)
        atomic_write_json(destination, settings.document)
        _plan_count(by_name[relative], settings, destination, new_registry)
    migration = MigrationReport(registry.notes, files, history_notes)
    atomic_write_bytes(target / "MIGRATION.md", migration_text(older, target, migration).encode())
    return migration


def _plan_count(report: FileReport, settings: ConvertedSettings, destination: Path, registry: Registry) -> None:
    try:
        plan = build_plan(settings_from_document(settings.document, destination, registry), registry, PLAN_SEED)
    except ConfigError as error:
        report.refused = [str(issue).removeprefix(f"{destination}: ") for issue in error.issues]
        report.experiments = [(what, runs, None) for what, runs in settings.older_runs]
        return
    report.planned_trials = len(plan.trials)
    planned = Counter(trial.experiment_index for trial in plan.trials)
    report.experiments = [(what, runs, planned[index]) for index, (what, runs) in enumerate(settings.older_runs)]


def migration_text(older: Path, target: Path, report: MigrationReport) -> str:
    lines = [f"# Migration of {older}", "",
             f"Converted by `mutation.py migrate` into {target}. The older project was only read.", "",
             "Run a converted file with:", "",
             f"    mutation.py --registry {target / 'models.json'} run {target / 'settings'}/FILE.json", "",
             "## Registry", "", f"`{OLDER_FILE}` -> `models.json`.", ""]
    lines += [f"- {note}" for note in report.registry_notes] or ["- nothing to note"]
    agree = sum(1 for file in report.files if file.older_trials is not None
                and file.older_trials == file.planned_trials)
    lines += ["", "## History", "", "Tables this tool's dedup reads, in `history/`.", ""]
    lines += [f"- {note}" for note in report.history_notes] or ["- no result table in data/ or results/"]
    lines += ["", "## Settings", "",
              f"{len(report.files)} files; in {agree} the trials this tool plans equal the trainings the older runner "
              "would have started. Each other file says why.", ""]
    for file in report.files:
        lines += [f"### settings/{file.relative}", ""]
        if file.older_trials is not None:
            ours = (str(file.planned_trials) if file.planned_trials is not None
                    else f"none: this tool refuses the file ({len(file.refused)} problem(s) below)")
            lines.append(f"- trainings the older runner would start: {file.older_trials}; "
                         f"trials this tool plans: {ours}")
            if file.planned_trials is not None and file.planned_trials != file.older_trials:
                lines.append("- they differ: see the notes (an experiment left out, or a space that ran out)")
        lines += [f"- {note}" for note in file.notes]
        lines += [f"- refused here: {problem}" for problem in file.refused]
        if file.experiments:
            lines += ["", "| experiment (older index) | the older runner | this tool |", "| --- | --: | --: |"]
            lines += [f"| {what.replace('|', '/')} | {runs} | {'-' if ours is None else ours} |"
                      for what, runs, ours in file.experiments]
        lines.append("")
    return "\n".join(lines)
