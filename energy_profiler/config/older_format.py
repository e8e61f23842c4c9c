"""Recognising a settings file of the older tool (Green-deep-learning), to point at `migrate`.

Its files fail this tool's schema in a dozen places at once (`use_deduplication`, `mutate_params`,
no `experiment_name`...); one line that names the format and the command that converts it says
more than the dozen errors. Only keys and values no file of this tool can hold count as markers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

OLDER_REGISTRY = Path("mutation") / "models_config.json"
"""The older tool's registry, in its project: a settings file below it belongs to that tool."""

TOP_LEVEL_MARKERS = ("use_deduplication", "historical_csvs")
EXPERIMENT_MARKERS = ("mutate_params", "num_mutations", "repository")


def older_settings_markers(document: Any, project: Path | None = None) -> list[str]:
    """What marks `document` as the older tool's settings (empty when nothing does); `project`: the
    older project its file lies in (older_project_above), which marks it whatever it holds."""
    if project is not None:
        return [f"in the older project {project}"]
    if isinstance(document, list):
        listed = bool(document) and all(isinstance(item, dict) and ("repo" in item or "foreground" in item)
                                        for item in document)
        return ["a JSON list of experiments"] if listed else []
    if not isinstance(document, dict):
        return []
    markers = [key for key in TOP_LEVEL_MARKERS if key in document]
    if "experiment_name" not in document:
        markers.append("no experiment_name")
    experiments = document.get("experiments")
    for experiment in experiments if isinstance(experiments, list) else ():
        if not isinstance(experiment, dict):
            continue
        markers += [key for key in EXPERIMENT_MARKERS if key in experiment and key not in markers]
        if experiment.get("mode") == "nonparallel" and "mode nonparallel" not in markers:
            markers.append("mode nonparallel")
        if experiment.get("mode") == "parallel" and "repo" in experiment and "repo beside foreground" not in markers:
            markers.append("repo beside foreground")
    # One marker alone may be a slip in a file of this tool: it keeps its own precise error.
    return markers if len(markers) > 1 else []


def older_project_above(file: Path) -> Path | None:
    """The older project a file lies in (a folder above it holds mutation/models_config.json)."""
    try:
        folders = file.resolve().parents
    except (OSError, RuntimeError):
        return None
    return next((folder for folder in folders if (folder / OLDER_REGISTRY).is_file()), None)
