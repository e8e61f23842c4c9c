"""The MCP server through the official SDK's own stdio client: tools, their schemas, a campaign started,
followed and stopped, errors as one-line tool errors. The server is `mutation.py mcp`, a real process."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import psutil
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from test.conftest import PROJECT_ROOT, fake_repo, invoke, wait_for
from test.live_campaign import MUTATION, state

TOOLS = {"list_registry", "validate_settings", "plan_campaign", "start_campaign", "campaign_status", "stop_campaign",
         "report_summary"}


def with_server(registry: Path | None, results: Path, cwd: Path,
                session_work: Callable[[ClientSession], Awaitable[Any]]) -> Any:
    """Start `mutation.py mcp` as the client does, run `session_work` in an initialised session, close."""
    options = [*(["--registry", str(registry)] if registry else []), "--results-dir", str(results)]
    parameters = StdioServerParameters(command=sys.executable, args=[MUTATION, *options, "mcp"], cwd=str(cwd))
    answer: list[Any] = []

    async def main() -> None:
        async with stdio_client(parameters) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            answer.append(await session_work(session))

    anyio.run(main)
    return answer[0]


async def call(session: ClientSession, tool: str, **arguments: Any) -> tuple[bool, str]:
    """(is_error, text) of one tool call."""
    result = await session.call_tool(tool, arguments)
    return bool(result.is_error), "".join(getattr(part, "text", "") for part in result.content)


def test_the_tools_their_schemas_and_the_quickstart_planned_and_checked(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"experiment_name": "x", "experiments": [
        {"mode": "mutation", "repo": "examples", "model": "mlp", "mutate": ["learning_rat"]}]}))

    async def work(session: ClientSession) -> dict[str, Any]:
        listed = await session.list_tools()
        return {"tools": {tool.name: tool.input_schema for tool in listed.tools},
                "plan": await call(session, "plan_campaign", settings_file="settings/quickstart.json"),
                "valid": await call(session, "validate_settings", settings_file="settings/quickstart.json"),
                "bad": await call(session, "validate_settings", settings_file=str(bad)),
                "hostile": await call(session, "validate_settings", settings_file="--help"),
                "registry": await call(session, "list_registry"),
                "descriptions": [tool.description for tool in listed.tools],
                "option_as_folder": await call(session, "start_campaign", settings_file="settings/quickstart.json",
                                               resume_run_dir="--help"),
                "nul": await call(session, "plan_campaign", settings_file="a\0b"),
                "empty": await call(session, "stop_campaign", run_dir=""),
                "empty_resume": await call(session, "start_campaign", settings_file="settings/quickstart.json",
                                           resume_run_dir=""),
                "nothing": await call(session, "campaign_status")}

    # The checkout's own defaults (its registry), as a client configured with only `mutation.py mcp` gets.
    got = with_server(None, tmp_path / "results", PROJECT_ROOT, work)
    assert set(got["tools"]) == TOOLS
    assert all(schema["type"] == "object" for schema in got["tools"].values())
    assert got["tools"]["start_campaign"]["required"] == ["settings_file"]
    assert got["tools"]["stop_campaign"]["properties"]["now"]["type"] == "boolean"
    error, plan = got["plan"]
    assert not error and "7 trials, seed" in plan and "forecast" in plan
    assert got["valid"] == (False, "ok: settings/quickstart.json (7 trials)")
    error, said = got["bad"]
    assert error and "experiments[0].mutate[0]" in said and "learning_rate" in said and "Traceback" not in said
    error, said = got["hostile"]  # a path that looks like an option is a path
    assert error and "--help: file not found" in said
    assert got["registry"][0] is False and "examples" in got["registry"][1]
    assert all(description and "  " not in description for description in got["descriptions"])
    error, said = got["option_as_folder"]  # a value that looks like an option is a value (no usage text)
    assert error and "--help" in said and "Usage" not in said
    assert got["nul"] == (True, "Error executing tool plan_campaign: settings_file contains a NUL character: no "
                                "path does")
    assert got["empty"][0] and "run_dir is empty" in got["empty"][1]
    assert got["empty_resume"] == (True, "Error executing tool start_campaign: resume_run_dir is empty: leave it out "
                                         "to start a new campaign, or name the run folder to continue")
    error, said = got["nothing"]
    assert error and "no run folder in" in said
    # Nothing written by looking; the start that was refused left only its console's log.
    assert [path.relative_to(tmp_path).parts[:2] for path in tmp_path.rglob("*") if path.is_file()] == [("bad.json",),
        ("results", "mcp_started")]


def test_a_campaign_started_through_mcp_outlives_the_server_and_is_followed_stopped_and_summarised(
        fake_registry: Callable[..., Path], write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    registry = fake_registry(slow=fake_repo("sleep", required_args=["--behaviour", "sleep", "--seconds", "6"]))
    write_json("s.json", {"experiment_name": "assistant", "experiments": [
        {"mode": "default", "repo": "slow", "model": "tiny", "runs_per_config": 3}]})
    results = tmp_path / "results"

    async def start(session: ClientSession) -> tuple[bool, str]:
        return await call(session, "start_campaign", settings_file="s.json")  # relative to the server's folder

    error, started = with_server(registry, results, tmp_path, start)
    assert not error, started
    run_dir = Path(started.split("run folder ")[1].split(" (pid")[0])
    pid = state(results)["pid"]
    assert started.startswith(f"started: run folder {run_dir} (pid {pid})")
    assert psutil.pid_exists(pid) and state(results)["state"] == "running"  # the server has ended; it has not

    async def follow(session: ClientSession) -> dict[str, Any]:
        status = await call(session, "campaign_status", run_dir=str(run_dir))
        stopped = await call(session, "stop_campaign", run_dir=run_dir.name)
        await anyio.to_thread.run_sync(lambda: wait_for(lambda: state(results).get("state") != "running", 30))
        return {"status": status, "stop": stopped, "again": await call(session, "stop_campaign", run_dir=run_dir.name),
                "summary": await call(session, "report_summary", run_dir=str(run_dir))}

    got = with_server(registry, results, tmp_path, follow)
    assert got["status"][0] is False and got["status"][1].startswith(f"running: campaign 'assistant', pid {pid}")
    assert got["stop"] == (False, f"the campaign (pid {pid}) will stop after the trial in progress (its row is "
                                  "written as usual; no other trial starts)")
    error, said = got["again"]
    assert error and "no campaign is running there, nothing to stop" in said and "stopped: campaign 'assistant'" in said
    error, summary = got["summary"]
    recorded = len(list(run_dir.glob("*/experiment.json")))  # the stop came during the first or second trial
    assert not error and f"{recorded} of 3 trials recorded: {recorded} success" in summary and recorded < 3
    assert state(results)["state"] == "stopped"
    # The campaign's console went to a log in the results folder; nothing was written elsewhere.
    assert sorted(path.name for path in results.iterdir()) == [".summary_all.csv.lock", "mcp_started", run_dir.name,
                                                              "summary_all.csv"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["models.json", "results", "s.json"]
    assert wait_for(lambda: not psutil.pid_exists(pid), 30)  # its state is written a moment before it exits
    resumed = invoke("--registry", registry, "--results-dir", results, "run", tmp_path / "s.json", "--resume", run_dir)
    assert resumed.exit_code == 0, resumed.output


def test_a_campaign_that_cannot_start_is_a_tool_error_with_the_command_lines_message(
        fake_registry: Callable[..., Path], write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    registry = fake_registry(slow=fake_repo(command=["/nonexistent/python"]))
    write_json("s.json", {"experiment_name": "broken", "experiments": [
        {"mode": "default", "repo": "slow", "model": "tiny"}]})

    async def start(session: ClientSession) -> tuple[bool, str]:
        return await call(session, "start_campaign", settings_file="s.json")

    error, said = with_server(registry, tmp_path / "results", tmp_path, start)
    assert error and "/nonexistent/python" in said and "Traceback" not in said
    assert not list((tmp_path / "results").glob("run_*"))
