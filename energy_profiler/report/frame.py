"""Summary tables in, one frame out: every trial once, with the chosen energy and the method that gave it.

Everything here is column-wise pandas (no Python per row): a 100,000-row table loads in well under
a second. Only the columns the report uses are read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from energy_profiler.errors import ToolExit

ENERGY_CHOICES = ("total", "above-idle", "above-background")
ENERGY_COLUMNS = {
    "total": ("cpu_energy_j", "gpu_energy_j"),
    "above-idle": ("cpu_energy_above_idle_j", "gpu_energy_above_idle_j"),
    "above-background": ("cpu_energy_above_background_j", "gpu_energy_above_background_j"),
}
TEXT_COLUMNS = ("experiment_id", "run_id", "trial", "mode", "repo", "model", "status", "status_reason", "mutated",
                "not_passed",
                "cpu_energy_method", "cpu_energy_scope", "cpu_energy_reason", "gpu_energy_method",
                "gpu_energy_reason", "cpu_baseline_reason", "gpu_baseline_reason", "source_table", "cost_currency")
NUMBER_COLUMNS = ("duration_s", *(column for pair in ENERGY_COLUMNS.values() for column in pair),
                  "cpu_idle_w", "gpu_idle_w", "cpu_background_w", "gpu_background_w", "co2e_g", "cost")
REQUIRED = ("repo", "model", "status")
CATEGORY_COLUMNS = ("mode", "repo", "model", "status", "mutated", "cpu_energy_method", "cpu_energy_scope",
                    "gpu_energy_method")
"""Text columns the report groups by, made categories (with the hp_* columns): grouping on codes, not
on 100,000 strings. The rest (ids, reasons) stay strings: a reason is read only when energy is missing."""
NO_ENERGY = "none"
OLDER_NO_ENERGY = "none (older tool)"
"""The method label of a converted older row that measured nothing: never pooled with this tool's."""


class ReportInputError(ToolExit):
    """An input the report cannot use; the message is one line that names the file (exit 2)."""


@dataclass(frozen=True)
class Source:
    table: Path
    trial_root: Path
    """Folder holding `<run_id>/<trial>/` for this table's rows (for the energy traces)."""


def locate(path: Path) -> Source:
    """A run folder (its summary.csv), a results folder (its summary_all.csv), or a CSV file."""
    if path.is_dir():
        if (path / "summary.csv").is_file():
            return Source(path / "summary.csv", path.parent)
        if (path / "summary_all.csv").is_file():
            return Source(path / "summary_all.csv", path)
        raise ReportInputError(f"{path}: has neither summary.csv (a run folder) nor summary_all.csv (a results "
                               "folder)")
    if not path.is_file():
        raise ReportInputError(f"{path}: does not exist")
    if path.name == "summary.csv" and (path.parent / "plan.json").is_file():  # a run folder's own table
        return Source(path, path.parent.parent)
    return Source(path, path.parent)


def _categorical(column: str) -> bool:
    return column in CATEGORY_COLUMNS or column.startswith("hp_")


def _wanted(column: str) -> bool:
    return column in TEXT_COLUMNS or column in NUMBER_COLUMNS or column.startswith(("hp_", "perf_"))


def read_table(source: Source) -> pd.DataFrame:
    """One table's rows, its columns checked; ReportInputError for what is not a summary table."""
    path = source.table
    try:
        header = list(pd.read_csv(path, nrows=0).columns)
    except pd.errors.EmptyDataError:
        raise ReportInputError(f"{path}: is empty (not even a header): no trial was recorded in it") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        raise ReportInputError(f"{path}: is not a readable CSV table ({str(error).splitlines()[0]})") from None
    except OSError as error:
        raise ReportInputError(f"{path}: cannot read: {error.strerror}") from None
    missing = [column for column in REQUIRED if column not in header]
    if missing:
        hint = (" — the older tool's table? `mutation.py migrate history` converts it"
                if any(column.startswith("hyperparam_") or column == "repository" for column in header) else "")
        raise ReportInputError(f"{path}: is not a summary table of this tool: no column {', '.join(missing)}{hint}")
    # Hyperparameter values stay the canonical strings (a choice is text, `true` is not True, and
    # `012` is not 12); read as text, then made categories (load): a column of 100,000 cells holds a
    # few hundred distinct values. (dtype="category" here would infer numbers and booleans.)
    text = {column: str for column in header if column in TEXT_COLUMNS or column.startswith("hp_")}
    try:
        frame = pd.read_csv(path, usecols=[c for c in header if _wanted(c)], dtype=text, keep_default_na=False,
                            na_values={c: [""] for c in header if _wanted(c) and c not in text})
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        raise ReportInputError(f"{path}: is not a readable CSV table ({str(error).splitlines()[0]})") from None
    frame["_trial_root"] = pd.Categorical([str(source.trial_root)] * len(frame))
    return frame


def trial_dir(row: pd.Series | Mapping[str, object]) -> Path | None:
    """`<trial_root>/<run_id>/<trial>/` of one row, None when its table does not say."""
    if not row.get("run_id") or not row.get("trial"):
        return None
    return Path(str(row["_trial_root"])) / str(row["run_id"]) / str(row["trial"])


def load(paths: Iterable[Path], energy: str = "total") -> pd.DataFrame:
    """All rows of all tables (union of columns), each `experiment_id` once, with `energy_j` and
    `energy_method` for the energy chosen (`total`, `above-idle`, `above-background`)."""
    sources = [locate(path) for path in paths]
    frames, notes = _once_per_trial([read_table(source) for source in sources], sources)
    table = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if table.empty:
        names = ", ".join(str(path) for path in paths)
        raise ReportInputError(f"{names}: no trial recorded yet (the table has only its header)")
    for column in (*TEXT_COLUMNS, *(c for c in table.columns if c.startswith("hp_"))):
        if column not in table.columns:
            table[column] = ""
        if _categorical(column):  # concat turns categories that differ between tables into plain text
            table[column] = table[column].astype("category")
            if "" not in table[column].cat.categories:
                table[column] = table[column].cat.add_categories("")
        table[column] = table[column].fillna("")
    for column in NUMBER_COLUMNS:
        table[column] = pd.to_numeric(table[column], errors="coerce") if column in table.columns else np.nan
    for column in table.columns:
        if column.startswith("perf_"):
            table[column] = pd.to_numeric(table[column], errors="coerce")
    table["_ok"] = table["status"] == "success"
    table["energy_method"] = method_labels(table)
    table["energy_j"] = chosen_energy(table, energy)
    table.attrs["notes"] = notes
    return table


def _once_per_trial(frames: list[pd.DataFrame], sources: list[Source]) -> tuple[list[pd.DataFrame], list[str]]:
    """The frames with each trial once, and a note for every row set aside or kept twice.

    A run folder and the results folder holding it both list its trials: a row whose experiment_id an
    earlier input has is the same trial, read twice, and is left out (counted in a note). Within one
    table ids are unique in this tool's tables; where they repeat (a table of other origin) every row
    is kept, and the note says how many rows share an id.
    """
    seen: set[str] = set()
    kept: list[pd.DataFrame] = []
    notes: list[str] = []
    for frame, source in zip(frames, sources, strict=True):
        if "experiment_id" not in frame.columns:
            kept.append(frame)
            continue
        ids = frame["experiment_id"].astype(str)
        earlier = ids.isin(seen) & (ids != "")
        if earlier.any():
            notes.append(f"{source.table}: {int(earlier.sum())} row(s) are trials an earlier input already has "
                         "(same experiment_id): each counted once")
        repeated = ids[~earlier & (ids != "")].duplicated(keep=False)
        if repeated.any():
            notes.append(f"{source.table}: {int(repeated.sum())} rows share {ids[~earlier][repeated].nunique()} "
                         "experiment_id(s): every row counted as a trial of its own (check the table: this tool's "
                         "ids are unique)")
        seen.update(ids)
        kept.append(frame[~earlier.to_numpy()].reset_index(drop=True))
    return kept, notes


def as_numbers(values: pd.Series) -> pd.Series:
    """A column's values as numbers (NaN where a value is not one), converting each distinct value once."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        numbers = pd.to_numeric(pd.Series(values.cat.categories), errors="coerce").to_numpy(dtype=float)
        codes = values.cat.codes.to_numpy()
        return pd.Series(np.where(codes >= 0, numbers[codes], np.nan), index=values.index)
    return pd.to_numeric(values, errors="coerce")


def method_labels(table: pd.DataFrame) -> pd.Series:
    """`cpu rapl (system) + gpu nvml` per row, `none` where nothing was measured.

    Trials with different labels are never pooled: a process-tree estimate and a system-wide RAPL
    reading measure different things.
    """
    cpu_measured = table["cpu_energy_j"].notna() & ~table["cpu_energy_method"].isin(["", NO_ENERGY])
    gpu_measured = table["gpu_energy_j"].notna() & ~table["gpu_energy_method"].isin(["", NO_ENERGY])
    # A converted table's rows (source_table: the older tool's) that measured nothing stay apart from
    # this tool's unmeasured rows too: their durations are other trainings, of another tool.
    older = table["source_table"].astype(str) != ""
    keys = pd.DataFrame({"cpu": table["cpu_energy_method"], "scope": table["cpu_energy_scope"],
                         "cpu_measured": cpu_measured, "gpu": table["gpu_energy_method"], "gpu_measured": gpu_measured,
                         "older": older})
    ids = keys.groupby(list(keys.columns), sort=False, observed=True).ngroup().to_numpy()
    firsts = keys[~pd.Series(ids).duplicated().to_numpy()]  # one row per combination, in the order of `ids`
    labels = np.array([_label(*combination[:5], older=bool(combination[5]))
                       for combination in firsts.itertuples(index=False)], dtype=object)
    return pd.Series(labels[ids], index=table.index).astype("category")


def _label(cpu_method: str, scope: str, cpu_measured: bool, gpu_method: str, gpu_measured: bool, *,
           older: bool = False) -> str:
    parts = []
    if cpu_measured:
        parts.append(f"cpu {cpu_method}" + (f" ({scope})" if scope else ""))
    if gpu_measured:
        parts.append(f"gpu {gpu_method}")
    return " + ".join(parts) or (OLDER_NO_ENERGY if older else NO_ENERGY)


def chosen_energy(table: pd.DataFrame, energy: str) -> pd.Series:
    """The sum over measured devices of the chosen figure; empty where a measured device lacks it.

    A device that was not measured adds nothing (never a 0 for it); a device that was measured but
    has no above-idle figure makes the whole value empty rather than a sum of one device's total.
    """
    cpu_column, gpu_column = ENERGY_COLUMNS[energy]
    cpu_measured, gpu_measured = table["cpu_energy_j"].notna(), table["gpu_energy_j"].notna()
    cpu, gpu = table[cpu_column], table[gpu_column]
    valid = (cpu_measured | gpu_measured) & (~cpu_measured | cpu.notna()) & (~gpu_measured | gpu.notna())
    return (cpu.fillna(0.0) + gpu.fillna(0.0)).where(valid)


def energy_missing_reason(table: pd.DataFrame, energy: str) -> str | None:
    """Why the successful trials have no energy of the chosen kind (None when some have it)."""
    ok = table[table["_ok"]]
    if ok.empty or ok["energy_j"].notna().any():
        return None
    if energy != "total" and (~ok["energy_method"].isin([NO_ENERGY, OLDER_NO_ENERGY])).any():
        reasons = _common(ok, ("cpu_baseline_reason", "gpu_baseline_reason"))
        return f"no trial has energy {energy}: {reasons or 'no baseline was measured'}"
    reasons = _common(ok, ("cpu_energy_reason", "gpu_energy_reason"))
    return f"energy was not measured (method none): {reasons or 'no reason recorded'}"


def _common(table: pd.DataFrame, columns: tuple[str, ...]) -> str:
    """The most frequent non-empty reason of each column, as one sentence."""
    parts = []
    for column in columns:
        reasons = table[column][table[column] != ""]
        if not reasons.empty:
            parts.append(str(reasons.value_counts().index[0]).rstrip("."))
    return "; ".join(parts)


def mutated_names(group: pd.DataFrame) -> list[str]:
    """The hyperparameters mutated in any trial of `group`, in first-seen order."""
    cells = group["mutated"].unique()
    return list(dict.fromkeys(name for cell in cells for name in str(cell).split(";") if name))


def mutated_together(group: pd.DataFrame) -> list[str]:
    """Hyperparameters that were mutated in the same trials (their effects cannot be told apart)."""
    together = [cell for cell in group["mutated"].unique() if ";" in str(cell)]
    return list(dict.fromkeys(name for cell in together for name in str(cell).split(";") if name))
