#!/usr/bin/env python3
"""mutation.py: measure the energy of training runs while mutating their hyperparameters.

Usage: python3 mutation.py -ec settings/<file>.json   (see `python3 mutation.py --help`)
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MINIMUM_PYTHON = (3, 11)

if sys.version_info[:2] < MINIMUM_PYTHON:  # an older python3 runs this file too: a sentence, not a traceback
    needed = ".".join(str(part) for part in MINIMUM_PYTHON)
    print(f"mutation.py needs Python {needed} or newer; this is {sys.version.split()[0]} ({sys.executable})",
          file=sys.stderr)
    sys.exit(2)

try:
    from energy_profiler.cli import main
except ModuleNotFoundError as error:
    from energy_profiler.missing import is_missing_dependency, missing_dependency_message  # the standard library only

    if not is_missing_dependency(error):
        raise
    print(missing_dependency_message(error, HERE), file=sys.stderr)
    sys.exit(2)

if __name__ == "__main__":
    main(project=HERE)  # this checkout's repos/ and results/, from any folder
