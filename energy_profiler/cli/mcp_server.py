"""The Model Context Protocol server (`mutation.py mcp`): the command line's work as tools an assistant calls.

Built on the official `mcp` SDK (MCPServer, stdio). Each tool runs this tool's own command line as
a child process, exactly as a user would type it: the same checks, the same one-line messages, the
same exit codes, and no state of one call left in the server for the next. A command that fails
becomes a tool error carrying its `error:` lines, never a traceback. `start_campaign` starts `run`
as a process of its own (a new session: it outlives the server and its client), its console
written to a log in the results folder, and returns once the campaign has its run folder.

Paths (settings files, run folders) are taken as the command line takes them: relative to the
server's working folder, run folders also by name in the results folder. Nothing is written
outside the results folder.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from energy_profiler import __version__
from energy_profiler.results.campaign_state import read_state
from energy_profiler.results.rundir import run_dirs

COMMAND_TIMEOUT_S = 300.0
"""A command other than a campaign (plan reads the history: seconds on a large one)."""
START_TIMEOUT_S = 120.0
"""How long start_campaign waits for the campaign's run folder (its checks come first)."""
STARTED_LOGS = "mcp_started"
"""Folder of the results folder that holds the console output of the campaigns the server started."""

INSTRUCTIONS = """Measure the energy of deep-learning trainings while mutating their hyperparameters.
Typical flow: list_registry (what can be trained), validate_settings and plan_campaign on a settings
file, start_campaign (a detached campaign: it returns its run folder), campaign_status to follow it,
stop_campaign to end it, report_summary for the table of a finished run."""


class Commands:
    """This tool's command line as the server runs it: its words, and the options the server was given."""

    def __init__(self, invocation: Sequence[str], global_options: Sequence[str], results_dir: Path) -> None:
        self.invocation = [word for word in invocation if word != "sudo"]
        self.global_options = list(global_options)
        self.results_dir = results_dir

    def words(self, *arguments: str) -> list[str]:
        return [*self.invocation, *self.global_options, *arguments]

    def run(self, *arguments: str, ok_codes: Sequence[int] = (0,)) -> str:
        """Run one command; its output, or a ToolError with its error lines."""
        try:
            done = subprocess.run(self.words(*arguments), capture_output=True, text=True, errors="replace",
                                  timeout=COMMAND_TIMEOUT_S, stdin=subprocess.DEVNULL, check=False,
                                  env={**os.environ, "NO_COLOR": "1"})
        except subprocess.TimeoutExpired:
            raise ToolError(f"`{arguments[0]}` did not answer within {COMMAND_TIMEOUT_S:g} s") from None
        if done.returncode not in ok_codes:
            raise ToolError(_error_text(done.stderr, done.stdout, done.returncode))
        return (done.stdout + (f"\n{done.stderr}" if done.stderr.strip() else "")).strip()

    def start(self, settings_file: str, resume_run_dir: str | None) -> str:
        """Start `run` detached; return once the campaign has a run folder (or say why it did not start)."""
        log_dir = self.results_dir / STARTED_LOGS
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{datetime.now():%Y%m%d_%H%M%S_%f}.log"
        resume = [f"--resume={resume_run_dir}"] if resume_run_dir is not None else []
        with open(log_path, "wb") as log:
            campaign = subprocess.Popen(self.words("run", *resume, "--", settings_file), stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        # Reaped by a thread: an ended campaign must not linger as a zombie whose pid still "exists".
        threading.Thread(target=campaign.wait, name=f"reap-{campaign.pid}", daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if (run_dir := _run_dir_of(self.results_dir, campaign.pid)) is not None:
                return (f"started: run folder {run_dir} (pid {campaign.pid}); its console output goes to {log_path}. "
                        "campaign_status with this run folder follows it; stop_campaign ends it.")
            if campaign.poll() is not None:
                output = log_path.read_text(errors="replace")
                if campaign.returncode == 0:  # nothing to run (runs_total met): it said so and made no folder
                    return output.strip()
                raise ToolError(_error_text(output, "", campaign.returncode))
            time.sleep(0.2)
        raise ToolError(f"the campaign (pid {campaign.pid}) made no run folder within {START_TIMEOUT_S:g} s; its "
                        f"output so far is in {log_path}")


def _run_dir_of(results_dir: Path, pid: int) -> Path | None:
    """The run folder whose campaign is process `pid` (its state.json names it)."""
    for folder in reversed(run_dirs(results_dir)):
        state = read_state(folder)
        if state is not None and state.get("pid") == pid:
            return folder
    return None


def _error_text(stderr: str, stdout: str, code: int) -> str:
    """What a failed command said: its `error:` lines and what follows them; a crash's last line only."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    if any(line.startswith("Traceback") for line in lines):
        return f"the command crashed (exit code {code}): {lines[-1]}"
    said = lines or [line for line in stdout.splitlines() if line.strip()][-5:]
    return "\n".join(said) or f"the command ended with exit code {code} and said nothing"


EMPTY = {
    "settings_file": "name a settings file",
    "run_dir": "name a run folder (where it may be left out: leave it out for the latest)",
    "resume_run_dir": "leave it out to start a new campaign, or name the run folder to continue",
}


def path_argument(name: str, value: str | None, *, required: bool) -> str | None:
    """A path an assistant gave, None where left out; an empty one is refused (it means no choice, and
    the command line would read it as the latest run folder, or the working folder)."""
    if value is None and not required:
        return None
    if not value:
        raise ToolError(f"{name} is empty: {EMPTY[name]}")
    if "\0" in value:
        raise ToolError(f"{name} contains a NUL character: no path does")
    # `./-x` is the same path as `-x`, and no parser can take it for an option (click reads a value such as
    # `--help` after an option with an optional value as the option it looks like).
    return f"./{value}" if value.startswith("-") else value


def build_server(commands: Commands) -> MCPServer:
    """The server and its tools (each with a JSON input schema from its signature)."""
    server: MCPServer = MCPServer("mutation", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING")

    def tool(function: Callable[..., str]) -> Callable[..., str]:
        """Register `function` as a tool, its docstring on one line as the tool's description."""
        server.add_tool(function, description=" ".join((function.__doc__ or "").split()))
        return function

    @tool
    def list_registry() -> str:
        """The repositories, models and hyperparameters (with their ranges) of the registry."""
        return commands.run("list")

    @tool
    def validate_settings(settings_file: str) -> str:
        """Check a settings file against the registry without running anything; each problem with its JSON path."""
        return commands.run("validate", "--", _required("settings_file", settings_file))

    @tool
    def plan_campaign(settings_file: str) -> str:
        """The trials a settings file would run, with each one's forecast duration and energy, and the totals."""
        return commands.run("plan", "--", _required("settings_file", settings_file))

    @tool
    def start_campaign(settings_file: str, resume_run_dir: str | None = None) -> str:
        """Start a campaign of the settings file as a process of its own (it outlives this server); returns its
        run folder. With resume_run_dir: continue that run folder, running what is left, each trial once."""
        return commands.start(_required("settings_file", settings_file),
                              path_argument("resume_run_dir", resume_run_dir, required=False))

    @tool
    def campaign_status(run_dir: str | None = None) -> str:
        """Where a campaign stands: running (the trial in progress, done/total, time left, energy so far),
        finished, stopped, interrupted or died; and each trial's record. Without run_dir: the latest run folder."""
        chosen = path_argument("run_dir", run_dir, required=False)
        return commands.run("status", *(["--", chosen] if chosen else []))

    @tool
    def stop_campaign(run_dir: str, now: bool = False) -> str:
        """Stop a running campaign: after the trial in progress (its row written), or with now=true at once
        (the trial in progress recorded as interrupted). A resume later runs what is left."""
        return commands.run("stop", *(["--now"] if now else []), "--", _required("run_dir", run_dir))

    @tool
    def report_summary(run_dir: str | None = None) -> str:
        """The headline table of a run: per trial its status, duration, energy and method, main metric, and
        the values that differ from the defaults; then the counts. Without run_dir: the latest run folder."""
        chosen = path_argument("run_dir", run_dir, required=False)
        return commands.run("status", "--summary", *(["--", chosen] if chosen else []))

    return server


def _required(name: str, value: str) -> str:
    checked = path_argument(name, value, required=True)
    assert checked is not None
    return checked
