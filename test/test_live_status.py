"""A campaign watched from another process: state.json, `status` (running, ended, died), `--watch`, events.jsonl."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from energy_profiler.cli.status_live import headline
from energy_profiler.execution.journal import Journal, watching_warnings
from energy_profiler.results.campaign_state import CampaignState
from test.conftest import fake_repo, invoke, only_run_dir, wait_for
from test.live_campaign import MUTATION, campaign, state, status_json, wait_for_trial


def quick_then_hang(fake_registry: Callable[..., Path]) -> Path:
    return fake_registry(ok=fake_repo(), hang=fake_repo("hang"))


HANG_SECOND = {"experiment_name": "live", "grace_s": 2, "experiments": [
    {"mode": "default", "repo": "ok", "model": "tiny"},
    {"mode": "default", "repo": "hang", "model": "tiny"},
    {"mode": "default", "repo": "ok", "model": "tiny"}]}


def test_status_of_a_running_campaign_says_what_it_does_now_and_how_it_ended(
        fake_registry: Callable[..., Path], write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    registry, results = quick_then_hang(fake_registry), tmp_path / "results"
    with campaign(registry, write_json("s.json", HANG_SECOND), results) as tool:
        assert wait_for_trial(results, 2), state(results)
        shown = status_json(registry, results)  # no RUN_DIR: the latest run folder
        assert (shown["state"], shown["pid"], shown["planned"], shown["recorded"]) == ("running", tool.pid, 3, 1)
        assert (shown["current_trial"], shown["current_index"], shown["current_attempt"]) == ("002_hang_tiny", 2, 1)
        assert shown["done"] == {"success": 1} and shown["current_phase"] == "training"
        assert isinstance(shown["eta_s"], float) and shown["eta_s"] >= 0  # from the first trial's time
        assert [trial["record"] for trial in shown["trials"]] == ["success", None, None]
        table = invoke("--registry", registry, "--results-dir", results, "status").stdout
        assert table.startswith(f"running: campaign 'live', pid {tool.pid} on ")
        assert "now: trial 2 of 3 (002_hang_tiny), attempt 1, training for " in table
        assert "done: 1 of 3 trials (1 success); about " in table
        tool.send_signal(signal.SIGTERM)
        tool.communicate(timeout=30)
    ended = status_json(registry, results)
    assert (ended["state"], ended["exit_code"], ended["current_trial"], ended["eta_s"]) == ("interrupted", 143, None,
                                                                                          None)
    assert ended["reason"] == "stopped by SIGTERM" and ended["done"] == {"success": 1, "interrupted": 1}
    assert (ended["recorded"], ended["still_to_run"]) == (2, 2)  # as the table counts: the interrupted runs again
    table = invoke("--registry", registry, "--results-dir", results, "status").stdout
    assert "done: 1 of 3 trials (1 success); 1 interrupted (run again on resume)\n" in table
    assert "to run what is left:" in table
    listed = json.loads(invoke("--results-dir", results, "runs", "--format", "json").stdout)
    assert [(row["state"], row["to_run"]) for row in listed] == [("interrupted", 2)]


def test_a_campaign_killed_with_sigkill_is_shown_as_died_with_the_line_that_resumes_it(
        fake_registry: Callable[..., Path], write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    registry, results = quick_then_hang(fake_registry), tmp_path / "results"
    settings = write_json("s.json", HANG_SECOND)
    with campaign(registry, settings, results) as tool:
        assert wait_for_trial(results, 2)
        tool.kill()
        tool.communicate(timeout=30)
    run_dir = only_run_dir(results)
    assert state(results)["state"] == "running"  # what it last wrote: it had no chance to write more
    shown = status_json(registry, results, run_dir)
    assert shown["state"] == "died" and "its pid is gone" in shown["state_note"]
    table = invoke("--registry", registry, "--results-dir", results, "status", run_dir).stdout
    assert table.startswith("died: campaign 'live' (pid ")
    assert [row["state"] for row in json.loads(invoke("--results-dir", results, "runs", "--format", "json").stdout)] \
        == ["died"]
    assert table.rstrip().endswith(f"to run what is left:\nmutation.py run {settings} --resume {run_dir.absolute()}")


def test_status_watch_in_a_pipe_writes_a_line_as_the_campaign_moves_on_and_returns_when_it_ends(
        fake_registry: Callable[..., Path], write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    registry = fake_registry(slow=fake_repo("sleep", required_args=["--behaviour", "sleep", "--seconds", "2"]))
    results = tmp_path / "results"
    settings = write_json("s.json", {"experiment_name": "watched", "experiments": [
        {"mode": "default", "repo": "slow", "model": "tiny", "runs_per_config": 3}]})
    with campaign(registry, settings, results) as tool:
        assert wait_for(lambda: state(results).get("state") == "running", 20)
        watcher = subprocess.run([sys.executable, MUTATION, "--registry", str(registry), "--results-dir",
                                  str(results), "status", "--watch"], capture_output=True, text=True, timeout=60,
                                 check=False)
        assert tool.wait(timeout=30) == 0
    assert watcher.returncode == 0, watcher.stderr
    lines = watcher.stdout.splitlines()
    moved = [line for line in lines if line[:4].isdigit() and " running: " in line]
    # A line for each trial (and each step between), not one every 2 s: the trainings take 6 s.
    assert 2 <= len(moved) <= 8, lines
    assert any("now: trial 3 of 3" in line for line in moved), lines
    assert "finished: campaign 'watched' ended at " in watcher.stdout  # the last reading, whole
    assert "\x1b" not in watcher.stdout  # no terminal control in a pipe


def test_events_jsonl_tells_each_step_as_it_happens(
        fake_registry: Callable[..., Path], write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    registry = fake_registry(fake=fake_repo("fail-until-attempt", required_args=[
        "--behaviour", "fail-until-attempt", "--attempt-file", str(tmp_path / "attempts")]), bg=fake_repo())
    settings = write_json("s.json", {"experiment_name": "events", "max_retries": 1, "cooldown_s": 0.2,
                                     "experiments": [
        {"mode": "parallel", "foreground": {"repo": "fake", "model": "tiny"},
         "background": {"repo": "bg", "model": "tiny"}, "warmup_s": 0.2},
        {"mode": "default", "repo": "bg", "model": "tiny"}]})
    results = tmp_path / "results"
    # The estimate (CPU time x a given TDP) measures here without energy hardware: energy so far is a figure.
    with campaign(registry, settings, results, "--cpu-energy", "estimate", "--cpu-tdp-w", "20") as tool:
        tool.communicate(timeout=120)
    assert tool.returncode == 0
    run_dir = only_run_dir(results)
    with open(run_dir / "summary.csv", newline="") as table:
        cpu_j = sum(float(row["cpu_energy_j"]) for row in csv.DictReader(table))
    energy = json.loads((run_dir / "state.json").read_text())["energy_j"]
    assert energy["cpu_methods"] == ["estimate"] and energy["cpu"] == pytest.approx(cpu_j, abs=0.01) and cpu_j > 0
    assert f"energy so far: cpu {energy['cpu']:.1f} J (estimate); gpu not measured" in invoke(
        "--registry", registry, "--results-dir", results, "status").stdout
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert all(datetime.fromisoformat(event["ts"]).tzinfo is not None for event in events)
    assert {event["pid"] for event in events} == {tool.pid}
    first = next(event["trial"] for event in events if event["event"] == "trial_started")
    steps = [(event["event"], event["trial"], event["attempt"]) for event in events]
    assert steps[0] == ("campaign_started", None, None)
    assert steps[-1] == ("campaign_ended", None, None)
    assert [step for step in steps if step[1] == first] == [
        ("trial_started", first, None), ("attempt_started", first, 1), ("background_started", first, None),
        ("background_ended", first, None), ("attempt_ended", first, 1), ("attempt_started", first, 2),
        ("background_started", first, None), ("background_ended", first, None), ("attempt_ended", first, 2),
        ("trial_ended", first, 2)]
    assert steps.index(("cooldown", None, None)) == steps.index(("trial_ended", first, 2)) + 1
    by_event = {(event["event"], event["trial"], event["attempt"]): event for event in events}
    failed = by_event[("attempt_ended", first, 1)]
    assert failed["status"] == "failed" and failed["exit_code"] != 0 and failed["reason"]
    record = json.loads((run_dir / first / "experiment.json").read_text())
    ended = by_event[("trial_ended", first, 2)]
    assert (ended["status"], ended["duration_s"]) == (record["status"], record["duration_s"]) == ("success",
                                                                                                 ended["duration_s"])
    started = by_event[("background_started", first, None)]
    assert (started["repo"], started["model"], started["background"]) == ("bg", "tiny", 1)
    assert by_event[("campaign_ended", None, None)]["state"] == "finished"
    assert by_event[("campaign_ended", None, None)]["done"] == {"success": 2}


def test_warnings_reach_the_event_log_and_hostile_names_stay_data(tmp_path: Path) -> None:
    hostile = 'evil\n"quote"; $(touch pwned) \x1b[31m'
    journal = Journal(tmp_path, experiment_name=hostile, planned=1, recorded=())
    said: list[str] = []
    say = watching_warnings(said.append, journal)
    say("[1] warning: background 1 did not start a run within 30 s")
    say("cooling down for 1 s")
    journal.campaign_started(None)
    journal.close()
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [(event["event"], event.get("message")) for event in events] == [
        ("warning", "[1] warning: background 1 did not start a run within 30 s"), ("campaign_started", None)]
    assert events[1]["experiment_name"] == hostile and len(said) == 2
    document = json.loads((tmp_path / "state.json").read_text())
    assert document["experiment_name"] == hostile
    # On the terminal the name is shown, not obeyed: one line, its newline and escape written out.
    lines = headline(CampaignState("running", document, None), planned=1, statuses={})
    assert lines[0].startswith("running: campaign 'evil\\n\"quote\"; $(touch pwned) \\x1b[31m', pid ")
    assert not any("\x1b" in line or "\n" in line for line in lines)
