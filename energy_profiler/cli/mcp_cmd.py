"""`mcp`: serve this tool's commands to an assistant over the Model Context Protocol (stdio)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from energy_profiler.cli.context import AppContext, global_options, invocation


@click.command("mcp")
@global_options
def mcp_command() -> None:
    """Serve the tools list_registry, validate_settings, plan_campaign, start_campaign, campaign_status,
    stop_campaign and report_summary over stdio (Model Context Protocol), for an assistant to call.

    Started by the assistant's client, not by hand: see docs/campaigns.md for a client configuration.
    """
    from energy_profiler.cli.mcp_server import Commands, build_server  # noqa: PLC0415 - the SDK loads only here

    app = click.get_current_context().ensure_object(AppContext)
    words = invocation()
    if Path(words[-1]).name != "mutation.py":  # `mutation` from a PATH the client may not have
        words = [sys.executable, "-m", "energy_profiler"]
    given = ["--registry", str(app.registry_file.absolute())] if app.registry_given else []
    results_dir = app.results_dir.absolute()
    commands = Commands(words, [*given, "--results-dir", str(results_dir)], results_dir)
    build_server(commands).run("stdio")
