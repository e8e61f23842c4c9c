"""The older tool's result tables (`data/raw_data.csv`, `results/*/summary.csv`) as this tool's summary tables.

Every measurement is carried over under this tool's column names (the map is `COLUMN_MAP`, printed
in docs/migrating.md), labelled with what the older tool did: its CPU energy came from `perf stat
-e power/energy-pkg/,power/energy-ram/` around the training (`perf (older tool)`, system scope),
its GPU energy was the sum of `nvidia-smi` power samples taken about 1 s apart, taken as 1 s each
(`nvidia_smi (older tool)`). A value the older row does not hold stays empty, with a reason.

An older row names its repository (`repository`, or `fg_repository` for a parallel row), its model,
and every hyperparameter's value (`hyperparam_*`), also those its runner never passed, filled in
from the registry's defaults. Those values are kept as recorded; which were passed (`not_passed`
names the others, so that dedup compares what the script was given) is rebuilt from what the
older runner did, and only from facts that justify it:
- mode: `parallel` from the row; otherwise the experiment id or source (`default__...`,
  `mutation...`); otherwise the count of mutated hyperparameters (0: default); otherwise the
  values, since its generator never drew the defaults' combination (all defaults: default);
- a default-mode run passed only its settings' fixed values: a value that differs from the
  registry default was given, one equal to it is taken as not passed (the same training either way
  when the script's default is the registry's);
- a mutation run passed only what it mutated: `mutated_param` when the row names it, all of them
  when it mutated as many as the model has, else those whose value differs from the default
  (an inference, counted in the notes);
- a parallel row's background hyperparameters are not in the table: taken as none given (what the
  older settings almost always said), counted in the notes.
The older ids repeat (a rerun stage reused them): a converted row's `experiment_id` is unique in
its table (`<id>#<n>` where the id repeats) and `source_id` keeps the older one.
Rows of repositories or models the registry lacks, or without a value a passed hyperparameter
needs, are not converted, each reason counted.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from energy_profiler.config.registry import Registry
from energy_profiler.model.record import BACKGROUND_COLUMNS, ENERGY_COLUMNS, LEADING_COLUMNS, TRAILING_COLUMNS
from energy_profiler.model.status import TrialStatus
from energy_profiler.model.values import format_value

CPU_METHOD = "perf (older tool)"
GPU_METHOD = "nvidia_smi (older tool)"
NOT_RECORDED = "not recorded by the older tool"
OOM_TEXT = "out of memory"
"""The older runner's failure message for an OOM (`Error pattern found: CUDA out of memory`)."""

PROVENANCE_COLUMNS = ("source_id", "source_table", "end_local")
"""Columns only a converted table has: the older id, the table it came from, and the older
`timestamp` (the machine's local time when the result was saved, at the end; no time zone)."""

COLUMN_MAP: tuple[tuple[str, str, str], ...] = (
    ("experiment_id", "source_id", "the older id, which repeats; `experiment_id` is unique (`<id>#<n>`)"),
    ("timestamp", "end_local", "local time at the end, no time zone: start_utc and end_utc stay empty"),
    ("repository / fg_repository", "repo", ""),
    ("model / fg_model", "model", ""),
    ("mode, experiment_source, num_mutated_params", "mode", "default, mutation or parallel"),
    ("training_success, error_message", "status", "success, failed, or oom (`CUDA out of memory`)"),
    ("error_message", "status_reason", "kept for rows that did not succeed"),
    ("retries", "attempts", "retries + 1"),
    ("duration_seconds", "duration_s", ""),
    ("mutated_param", "mutated", "`;`-separated; rebuilt for rows that do not name it"),
    ("-", "not_passed", "the hyperparameters the older runner did not pass (their hp_ cell is the value it "
                        "recorded, the registry's default)"),
    ("hyperparam_<name>", "hp_<name>", "as recorded, also where it equals the default"),
    ("perf_<name>", "perf_<name>", ""),
    ("energy_cpu_total_joules", "cpu_energy_j", f"cpu_energy_method `{CPU_METHOD}`, scope system"),
    ("energy_cpu_pkg_joules", "cpu_energy_pkg_j", ""),
    ("energy_cpu_ram_joules", "cpu_energy_dram_j", ""),
    ("energy_gpu_total_joules", "gpu_energy_j", f"gpu_energy_method `{GPU_METHOD}`: power samples summed as "
                                                "1 s each"),
    ("energy_gpu_avg_watts / max / min", "gpu_power_avg_w / max / min", ""),
    ("energy_gpu_temp_avg_celsius / max", "gpu_temp_avg_c / max", ""),
    ("energy_gpu_util_avg_percent / max", "gpu_util_avg_pct / max", ""),
    ("bg_repository, bg_model", "bg_repo, bg_model", "bg_hyperparameters `{}`: the older table has none"),
)
"""(older column, this tool's column, how): the map docs/migrating.md prints. A parallel row's
`fg_<column>` is its foreground's `<column>`."""

_NUMBERS = {"duration_seconds": "duration_s", "energy_cpu_total_joules": "cpu_energy_j",
            "energy_cpu_pkg_joules": "cpu_energy_pkg_j", "energy_cpu_ram_joules": "cpu_energy_dram_j",
            "energy_gpu_total_joules": "gpu_energy_j", "energy_gpu_avg_watts": "gpu_power_avg_w",
            "energy_gpu_max_watts": "gpu_power_max_w", "energy_gpu_min_watts": "gpu_power_min_w",
            "energy_gpu_temp_avg_celsius": "gpu_temp_avg_c", "energy_gpu_temp_max_celsius": "gpu_temp_max_c",
            "energy_gpu_util_avg_percent": "gpu_util_avg_pct", "energy_gpu_util_max_percent": "gpu_util_max_pct"}


@dataclass
class ConvertedTable:
    source: str = ""
    """The table's path as MIGRATION.md names it (`data/raw_data.csv`)."""
    rows: list[dict[str, str]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    inferred: Counter[str] = field(default_factory=Counter)
    """Rows converted through an inference the notes must own up to, by kind."""
    repeated_ids: int = 0
    """Older ids that more than one row of the table had."""

    def text(self) -> str:
        hyperparameters = sorted({column for row in self.rows for column in row if column.startswith("hp_")})
        metrics = sorted({column for row in self.rows for column in row if column.startswith("perf_")})
        background = BACKGROUND_COLUMNS if any(row.get("bg_repo") for row in self.rows) else ()
        header = [*LEADING_COLUMNS, *PROVENANCE_COLUMNS, "not_passed", *hyperparameters, *metrics, *ENERGY_COLUMNS,
                  *background, *TRAILING_COLUMNS]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=header, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        return buffer.getvalue()

    def measured(self) -> tuple[int, int]:
        """(rows with CPU energy, rows with GPU energy)."""
        return (sum(1 for row in self.rows if row.get("cpu_energy_j")),
                sum(1 for row in self.rows if row.get("gpu_energy_j")))


def is_older_table(columns: list[str]) -> bool:
    return "repository" in columns and any(column.startswith("hyperparam_") for column in columns)


def convert_table(path: Path, registry: Registry, source: str | None = None) -> ConvertedTable:
    """The rows of one older table; ValueError when it is not in the older tool's format."""
    table = ConvertedTable(source or path.name)
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.DictReader(handle)
        if not is_older_table(list(reader.fieldnames or ())):
            raise ValueError("not the older tool's table format (no repository and hyperparam_* columns)")
        older_rows = list(reader)
    counts = Counter(row.get("experiment_id", "") for row in older_rows)
    table.repeated_ids = sum(1 for count in counts.values() if count > 1)
    seen: Counter[str] = Counter()
    for row in older_rows:
        source_id = row.get("experiment_id", "")
        seen[source_id] += 1
        converted = _row(row, registry, table)
        if isinstance(converted, str):
            table.skipped[converted] += 1
            continue
        converted["experiment_id"] = f"{source_id}#{seen[source_id]}" if counts[source_id] > 1 else source_id
        converted.update(source_id=source_id, source_table=table.source)
        table.rows.append(converted)
    return table


def _mode(row: Mapping[str, str]) -> str | None:
    if row.get("mode") == "parallel":
        return "parallel"
    for text in (row.get("experiment_id", ""), row.get("experiment_source", "")):
        if text.startswith("default"):
            return "default"
        if text.startswith("mutation"):
            return "mutation"
    count = row.get("num_mutated_params", "")
    if count.isdigit():
        return "default" if count == "0" else "mutation"
    return None


def _row(row: Mapping[str, str], registry: Registry, table: ConvertedTable) -> dict[str, str] | str:
    mode = _mode(row)
    # Later parallel rows keep the foreground in the plain columns and leave fg_* empty.
    prefix = "fg_" if mode == "parallel" and row.get("fg_repository") else ""
    repo = registry.repositories.get(row.get(f"{prefix}repository") or "")
    model = repo.models.get(row.get(f"{prefix}model") or "") if repo else None
    if repo is None or model is None:
        return "of a repository or model the converted registry lacks"
    values: dict[str, str] = {}
    for name, spec in model.hyperparameters.items():
        cell = row.get(f"{prefix}hyperparam_{name}") or ""
        if cell:
            try:
                values[name] = format_value(cell, spec.type)
            except ValueError:
                return f"an unreadable value of {name}"
    defaults = {name: spec.default_text for name, spec in model.hyperparameters.items()}
    if mode is None:
        # The older generator never drew the defaults' combination: all defaults means a default run.
        mode = "default" if all(values.get(name) == value for name, value in defaults.items()) else "mutation"
        table.inferred["mode taken from the values (all defaults: default, else mutation), the row names none"] += 1
    passed = _passed(row, mode, values, defaults, table)
    if passed is None:
        return "a passed hyperparameter without its value"
    fg_mutated = mode == "mutation" or (mode == "parallel" and row.get("num_mutated_params") not in ("0", ""))
    if mode == "parallel" and not row.get("num_mutated_params") and passed:
        # Later parallel rows name no count: values off the defaults were drawn (fixed values were rare).
        fg_mutated = True
        table.inferred["a parallel foreground taken as mutated: its values differ from the defaults, the row "
                       "names no count"] += 1
    out = {"repo": repo.name, "model": model.name, "mode": mode,
           **_outcome(row, prefix), "end_local": row.get("timestamp", ""),
           "mutated": ";".join(passed) if fg_mutated else "",
           "not_passed": ";".join(name for name in model.hyperparameters if name not in passed),
           **{f"hp_{name}": value for name, value in values.items()},
           **_measurements(row, prefix)}
    if mode == "parallel":
        out.update(bg_repo=row.get("bg_repository", ""), bg_model=row.get("bg_model", ""), bg_hyperparameters="{}")
        table.inferred["a parallel row's background taken to have run with no given values"] += 1
    return out


def _outcome(row: Mapping[str, str], prefix: str) -> dict[str, str]:
    success = (row.get(f"{prefix}training_success") or "").strip().lower() == "true"
    message = (row.get(f"{prefix}error_message") or "").strip()
    status = TrialStatus.SUCCESS if success else TrialStatus.OOM if OOM_TEXT in message.lower() else TrialStatus.FAILED
    retries = row.get(f"{prefix}retries") or ""
    return {"status": status, "status_reason": "" if success else message or "failed (the older tool gave no reason)",
            "attempts": str(int(retries) + 1) if retries.isdigit() else ""}


def _measurements(row: Mapping[str, str], prefix: str) -> dict[str, str]:
    """Duration, metrics and energy, each under this tool's name; unreadable cells stay empty."""
    out: dict[str, str] = {}
    for older, ours in _NUMBERS.items():
        if (number := _number(row.get(f"{prefix}{older}"))) is not None:
            out[ours] = number
    for column, cell in row.items():
        if column.startswith(f"{prefix}perf_") and (number := _number(cell)) is not None:
            out[column.removeprefix(prefix)] = number
    cpu, gpu = "cpu_energy_j" in out, "gpu_energy_j" in out
    out.update(cpu_energy_method=CPU_METHOD if cpu else "none", cpu_energy_scope="system" if cpu else "",
               cpu_energy_reason="" if cpu else NOT_RECORDED,
               gpu_energy_method=GPU_METHOD if gpu else "none", gpu_energy_reason="" if gpu else NOT_RECORDED)
    return out


def _number(cell: Any) -> str | None:
    try:
        value = float(cell)
    except (TypeError, ValueError):
        return None
    return repr(value) if math.isfinite(value) else None  # NaN, inf: not a measurement


def _passed(row: Mapping[str, str], mode: str, values: Mapping[str, str], defaults: Mapping[str, str],
            table: ConvertedTable) -> list[str] | None:
    """The hyperparameters the older runner passed for this row (None when one of them has no value)."""
    differing = [name for name, value in values.items() if value != defaults[name]]
    if mode == "default" or (mode == "parallel" and row.get("num_mutated_params") in ("0", "")):
        passed = differing
    elif named := [name.strip() for name in (row.get("mutated_param") or "").split(",") if name.strip()]:
        passed = named
    elif row.get("num_mutated_params") == str(len(defaults)):
        passed = list(defaults)
    else:
        passed = differing
        table.inferred["mutated hyperparameters taken to be those that differ from the default"] += 1
    if any(name not in values for name in passed):
        return None
    return passed


def table_notes(relative: str, table: ConvertedTable, rows_read: int) -> list[str]:
    cpu, gpu = table.measured()
    notes = [f"{relative}: {len(table.rows)} of {rows_read} rows converted; {cpu} with CPU energy, {gpu} with GPU "
             f"energy; {sum(1 for row in table.rows if row['status'] == 'oom')} out of memory"]
    if table.repeated_ids:
        notes.append(f"{relative}: {table.repeated_ids} older id(s) name more than one row: each row kept, its "
                     "experiment_id made unique as <id>#<n> (source_id keeps the older id)")
    notes += [f"{relative}: {count} row(s) not converted: {reason}" for reason, count in table.skipped.most_common()]
    notes += [f"{relative}: {count} row(s): {what}" for what, count in table.inferred.most_common()]
    return notes


def history_name(relative: str) -> str:
    """`data/raw_data.csv` -> `data__raw_data.csv`: one flat folder, no two tables on one name."""
    return relative.replace("/", "__")
