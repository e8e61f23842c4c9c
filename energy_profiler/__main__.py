"""`python -m energy_profiler`: the same command line as the installed `mutation` command."""

from energy_profiler.cli import main

main()
