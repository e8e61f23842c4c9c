#!/usr/bin/env python3
"""mutation.py: measure the energy of training runs while mutating their hyperparameters.

Usage: python3 mutation.py -ec settings/<file>.json   (see `python3 mutation.py --help`)
"""

from energy_profiler.cli import main

if __name__ == "__main__":
    main()
