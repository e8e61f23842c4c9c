#!/usr/bin/env python3
"""mutation.py: measure the energy of training runs while mutating their hyperparameters.

Usage: python3 mutation.py -ec settings/<file>.json   (see `python3 mutation.py --help`)
"""

from pathlib import Path

from energy_profiler.cli import main

if __name__ == "__main__":
    main(project=Path(__file__).resolve().parent)  # this checkout's repos/ and results/, from any folder
