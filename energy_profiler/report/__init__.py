"""`mutation.py report`: tables and plots from campaign results, and a report.md that holds them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from energy_profiler.report import plots
from energy_profiler.report.tables import (
    CORRELATION_HEADERS,
    GROUP_HEADERS,
    load,
    main_metric,
    summarize,
)

DEFAULT_TRACES = 3


@dataclass(frozen=True)
class Report:
    metric: str | None
    groups: list[list[object]]
    correlations: list[list[object]]
    plots: list[Path]
    markdown: Path
    rows: int


def build(inputs: Sequence[Path], folder: Path, metric: str | None = None,
          traces: Sequence[str] = ()) -> Report:
    """Read the tables, write the plots and report.md into `folder`."""
    table = load(inputs)
    chosen_metric = main_metric(table, metric)  # a bad --metric is refused before anything is written
    folder.mkdir(parents=True, exist_ok=True)
    groups, correlations = summarize(table, chosen_metric)
    made: list[Path] = []
    if chosen_metric:
        made += plots.energy_vs_metric(table, chosen_metric, folder)
    made += plots.energy_vs_hyperparameters(table, folder)
    made += plots.parallel_vs_alone(table, folder)
    for trial_dir in _trace_trials(table, traces):
        path = plots.power_over_time(Path(trial_dir), folder)
        if path is not None:
            made.append(path)
    markdown = folder / "report.md"
    markdown.write_text(_markdown(inputs, table, chosen_metric, groups=groups, correlations=correlations,
                                  made=made, folder=folder))
    return Report(chosen_metric, groups, correlations, made, markdown, len(table))


def _trace_trials(table: pd.DataFrame, wanted: Sequence[str]) -> list[str]:
    """The trial folders to draw power for: those named, else the longest successful trials."""
    if "_trial_dir" not in table.columns:
        return []
    if wanted:
        return [str(d) for d, trial in zip(table["_trial_dir"], table["trial"], strict=True) if trial in wanted]
    ok = table[table["status"] == "success"].sort_values("duration_s", ascending=False)
    return [str(d) for d in ok["_trial_dir"].head(DEFAULT_TRACES)]


def _markdown(inputs: Sequence[Path], table: pd.DataFrame, metric: str | None, *, groups: list[list[object]],
              correlations: list[list[object]], made: list[Path], folder: Path) -> str:
    metric_name = metric.removeprefix("perf_") if metric else "metric"
    statuses = ", ".join(f"{count} {status}" for status, count in table["status"].value_counts().items())
    lines = ["# Campaign report", "",
             f"Sources: {', '.join(str(path) for path in inputs)}. {len(table)} trials: {statuses}.", "",
             "Means ± standard deviations over successful trials; failed trials are counted, never averaged; "
             "`missing` means not measured. Energy in plots is the sum of the devices that were measured.", "",
             "## Per repository, model and mode", "",
             _markdown_table([*GROUP_HEADERS, metric_name], groups), ""]
    if correlations:
        lines += ["## Mutated hyperparameters: rank correlation (Spearman)", "",
                  _markdown_table([*CORRELATION_HEADERS[:-1], f"rho({metric_name})"], correlations), ""]
    if made:
        lines += ["## Plots", ""]
        lines += [f"![{path.stem}]({path.relative_to(folder)})" for path in made]
    return "\n".join(lines) + "\n"


def _markdown_table(headers: Sequence[str], rows: list[list[object]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(out)
