"""`cleanup`: end the processes of campaigns that died without cleaning up after themselves."""

from __future__ import annotations

import click

from energy_profiler.cli.context import AppContext, global_options
from energy_profiler.config.settings import DEFAULT_GRACE_S
from energy_profiler.process.ledger import clean_stale


@click.command("cleanup")
@click.option("--grace-s", type=click.FloatRange(min=0), default=DEFAULT_GRACE_S, show_default=True,
              help="Seconds between SIGTERM and SIGKILL.")
@global_options
def cleanup_command(grace_s: float) -> None:
    """End training, perf and nvidia-smi groups left by dead campaigns in the results folder.

    Every campaign does this at its start too. Groups of campaigns still running are left alone,
    and a recorded process ID now used by another program (PID reuse) is never signalled.
    """
    app = click.get_current_context().ensure_object(AppContext)
    lines = clean_stale(app.results_dir, grace_s)
    for line in lines:
        click.echo(line)
    if not lines:
        click.echo(f"nothing to clean up in {app.results_dir}")
