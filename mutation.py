#!/usr/bin/env python3
"""mutation.py: measure the energy of training runs while mutating their hyperparameters.

Usage: python3 mutation.py -ec settings/<file>.json   (see `python3 mutation.py --help`)
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
THIRD_PARTY = {"click", "jsonschema", "pandas", "psutil", "pynvml", "numpy", "rich", "matplotlib", "referencing",
               "rpds", "attrs", "jsonschema_specifications"}
"""The dependencies (and theirs) whose absence means an interpreter without the project's packages."""

MINIMUM_PYTHON = (3, 11)
if sys.version_info[:2] < MINIMUM_PYTHON:  # an older python3 runs this file too: a sentence, not a traceback
    needed = ".".join(str(part) for part in MINIMUM_PYTHON)
    print(f"mutation.py needs Python {needed} or newer; this is {sys.version.split()[0]} ({sys.executable})",
          file=sys.stderr)
    sys.exit(2)
try:
    from energy_profiler.cli import main
except ModuleNotFoundError as error:
    if error.name not in THIRD_PARTY:
        raise
    venv = HERE / ".venv" / "bin" / "python"
    how = f"run it with {venv}" if venv.exists() else \
        f"run `make demo` in {HERE} once (it installs them), then use {venv}"
    print(f"mutation.py: this Python ({sys.executable}) lacks its dependencies (no module {error.name!r}): {how}, "
          f"also under sudo: sudo {venv} mutation.py ...", file=sys.stderr)
    sys.exit(2)

if __name__ == "__main__":
    main(project=HERE)  # this checkout's repos/ and results/, from any folder
