"""MIGRATION.md: what converted cleanly, what needs attention, the commands to run next, then the detail.

The summary comes first because the detail is long (78 files of the older project): a user reads
the short list of files that need them, and the per-file detail of the others stays folded.
"""

from __future__ import annotations

import json
import re
import shlex
from collections import Counter
from pathlib import Path

from energy_profiler.migrate.history import CPU_METHOD, GPU_METHOD, history_name
from energy_profiler.migrate.project import GLOBAL_TABLE, NOT_RUN, REGISTRY, FileReport, MigrationReport
from energy_profiler.migrate.registry import OLDER_FILE
from energy_profiler.migrate.settings import LEFT_OUT

PLAIN_PATH = re.compile(r"[\w./-]+")
"""A path shown as it is; any other (a newline, a quote, `$(`) is shown as a JSON string."""


def summary_lines(report: MigrationReport) -> list[str]:
    """The settings outcome in a few lines: what migrate prints, and MIGRATION.md's summary."""
    valid, refused, aside = report.valid, report.refused, report.aside
    same = [file for file in valid if file.planned_trials == file.older_trials]
    lines = [f"{len(report.files)} settings files converted: {len(valid)} in settings/ validate and plan here "
             f"({len(same)} exactly the trainings the older runner would start, {len(valid) - len(same)} fewer: "
             f"the history leaves fewer unique draws)"
             + (f", {len(refused)} refused" if refused else "")
             + (f"; {len(aside)} ran nothing in the older tool and are kept in {NOT_RUN}/" if aside else "")]
    lines += [f"not converted: {reason}" for reason in report.not_converted]
    return lines


def migration_text(older: Path, report: MigrationReport, tool: list[str]) -> str:
    """The whole MIGRATION.md; `tool` is the command that starts this tool (`python3 /x/mutation.py`)."""
    target, command = report.target, shlex.join(tool)
    lines = [f"# Migration of {older}", "",
             f"Converted by `mutation.py migrate` into `{target}`, a project folder of this tool: `{REGISTRY}` (the "
             "registry), `settings/`, `history/` (the older result tables); campaigns run from it write "
             f"`results/`. The older project was only read.", "", "## Summary", ""]
    lines += [f"- registry: `{REGISTRY}`, from `{OLDER_FILE}` ({len(report.registry_notes)} note(s) below)"]
    lines += [f"- history: {note}" for note in report.history_notes if "rows converted" in note]
    lines += [f"- {line}" for line in summary_lines(report)]
    attention = [file for file in report.files if file.needs_attention]
    lines += ["", "## Needs attention", ""]
    lines += [f"- `{_name(file)}`: {_short(file)}" for file in attention] or ["- nothing"]
    # The example is a file one can type: plain name, current (not archived) where there is one.
    plain = [file.relative for file in report.valid if PLAIN_PATH.fullmatch(file.relative)]
    current = [relative for relative in plain if not relative.startswith("archived/")]
    first = next(iter(current or plain), "FILE.json")
    lines += ["", f"## Next, from `{target}`", "",
              f"    cd {shlex.quote(str(target))}",
              f"    find settings -name '*.json' -print0 | xargs -0 {command} validate",
              f"    {command} plan {shlex.quote('settings/' + first)}",
              f"    sudo {command} -ec {shlex.quote('settings/' + first)}",
              f"    {command} report history/{history_name('data/raw_data.csv')}"
              + f"    # add {GLOBAL_TABLE.parent}/ once campaigns have run", "",
              "Commands find `repos/models.json` and write `results/` in the folder they are run from.", ""]
    governed = sum(1 for file in report.files if file.governor and not file.aside)
    if governed:
        lines += [f"{governed} converted file(s) keep the older `\"governor\"` (e.g. `performance`): `run` sets it "
                  "for the campaign and restores it after, as root, and refuses to start where the CPU has no "
                  "cpufreq governors (most virtual machines): there, remove the key from the file to run with "
                  "the governor as it is.", ""]
    lines += ["## Registry", "", f"`{OLDER_FILE}` -> `{REGISTRY}`.", ""]
    lines += [f"- {note}" for note in report.registry_notes] or ["- nothing to note"]
    lines += ["", "## History", "", "The older result tables with their measurements, under this tool's column names "
              "(docs/migrating.md maps them), in `history/`.", "",
              f"- CPU energy: `{CPU_METHOD}`, scope system: `perf stat -e power/energy-pkg/,power/energy-ram/` around "
              "the training, every process of the machine counted.",
              f"- GPU energy: `{GPU_METHOD}`: the sum of `nvidia-smi` power samples taken about once a second, each "
              "counted as exactly 1 s; where the sampling ran slower (a busy machine) the figure is too low by "
              "that ratio, and the older table does not say by how much.",
              "- `report` never pools these with this tool's measurements (their method labels differ).", ""]
    lines += [f"- {note}" for note in report.history_notes] or ["- no result table in data/ or results/"]
    lines += ["", "## Settings", ""]
    for file in report.files:
        lines += _file_section(file)
    return "\n".join(lines) + "\n"


def _name(file: FileReport) -> str:
    """`settings/<relative>` (or not_run/), JSON-quoted where it holds a newline, a quote or another odd character."""
    name = f"{NOT_RUN if file.aside else 'settings'}/{file.relative}"
    return name if PLAIN_PATH.fullmatch(name) else json.dumps(name, ensure_ascii=False)


def _short(file: FileReport) -> str:
    """Why a file needs attention, in a few words: `refused by validate; 3 x experiment(s) ... left out`."""
    counts = Counter(file.attention)
    if file.aside:  # its experiments left out are all it has: one phrase says it
        return f"in {NOT_RUN}/: the older runner ran none of its {counts[LEFT_OUT]} experiment(s)"
    words = [f"{what}: {count}" if what.startswith("experiments") else what for what, count in counts.items()]
    if file.refused:
        words.insert(0, f"refused by validate ({len(file.refused)} problem(s), see below)")
    return "; ".join(words)


def _file_section(file: FileReport) -> list[str]:
    ours = (str(file.planned_trials) if file.planned_trials is not None
            else "none: nothing is left to run" if file.aside
            else f"none: this tool refuses the file ({len(file.refused)} problem(s) below)")
    body = [f"- trainings the older runner would start: {file.older_trials}; trials this tool plans: {ours}"]
    body += [f"- {note}" for note in file.notes]
    body += [f"- refused here: {problem}" for problem in file.refused]
    if file.experiments:
        body += ["", "| experiment (older index) | the older runner | this tool |", "| --- | --: | --: |"]
        body += [f"| {what.replace('|', '/')} | {runs} | {'-' if planned is None else planned} |"
                 for what, runs, planned in file.experiments]
    if file.needs_attention:
        return [f"### {_name(file)}", "", *body, ""]
    # Nothing to act on: folded, one line to see, the detail a click away.
    return ["<details>", f"<summary>{_name(file)}: {file.planned_trials} trial(s), as the older runner"
            "</summary>", "", *body, "", "</details>", ""]
