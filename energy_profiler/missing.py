"""One line instead of a traceback when the interpreter lacks the tool's dependencies.

`sudo python3 mutation.py ...` runs the system Python, which has none of the packages `make`
installed into .venv (or only some: click may be there, psutil not). Imports nothing but the
standard library, so that it works exactly then.
"""

from __future__ import annotations

import sys
from pathlib import Path

DEPENDENCIES = frozenset({"click", "jsonschema", "pandas", "psutil", "pynvml", "numpy", "rich", "matplotlib",
                          "referencing", "rpds", "attrs", "attr", "jsonschema_specifications", "dateutil", "PIL",
                          "typing_extensions", "markdown_it", "pygments", "mdurl"})
"""The packages of requirements.txt and theirs, by import name."""


def is_missing_dependency(error: ModuleNotFoundError) -> bool:
    return (error.name or "").split(".")[0] in DEPENDENCIES


def missing_dependency_message(error: ModuleNotFoundError, project: Path | None) -> str:
    """How to run the tool with an interpreter that has its packages, for a checkout or an installation."""
    found = f"this Python ({sys.executable}) lacks its dependencies (no module {error.name!r})"
    if project is None:  # the installed `mutation` command
        return f"mutation: {found}: install the tool with pip into an environment (pip install .), and run that one"
    venv = project / ".venv" / "bin" / "python"
    how = f"run it with {venv}" if venv.exists() else \
        f"run `make demo` in {project} once (it installs them), then use {venv}"
    return f"mutation.py: {found}: {how}, also under sudo: sudo {venv} {project / 'mutation.py'} ..."
