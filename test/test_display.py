"""What a person sees: a live panel in a terminal, clean timestamped lines in pipes and files."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from energy_profiler.cli.closing import summary_text
from energy_profiler.cli.display import LiveProgress, PlainStream, log_tail
from energy_profiler.execution.run_folder import SessionResult
from energy_profiler.execution.runtime import WallClockEta
from energy_profiler.model.energy_fields import EnergyFields
from test.conftest import PROJECT_ROOT, fake_repo, invoke
from test.test_results import a_record
from test.test_terminal_width import in_terminal

NOISY = ("import sys, time\n"
         "for i in range(3):\n"
         "    sys.stdout.write(f'\\x1b[32mstep {i}\\x1b[0m\\r'); sys.stdout.flush(); time.sleep(0.05)\n"
         "print('\\naccuracy: 0.9')\n")


def test_plain_stream_keeps_text_and_drops_control_characters() -> None:
    target = io.BytesIO()
    PlainStream(target).write(b"\x1b[2K\x1b[1mepoch 1\x1b[0m 50%\repoch 1 100%\r\ndone\x1b(B\n")
    assert target.getvalue() == b"epoch 1 50%\nepoch 1 100%\ndone\n"


def test_piped_output_is_timestamped_and_has_no_control_characters(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry = fake_registry(fake=fake_repo(command=[sys.executable, "-c", NOISY], required_args=[]))
    settings = write_json("s.json", {"experiment_name": "pipe", "cooldown_s": 0.2, "runs_per_config": 2,
                                     "experiments": [{"mode": "default", "repo": "fake", "model": "tiny"}]})
    result = subprocess.run([sys.executable, str(PROJECT_ROOT / "mutation.py"), "--registry", str(registry),
                             "--results-dir", str(tmp_path / "r"), "run", str(settings)],
                            capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "\x1b" not in out and "\r" not in out
    assert "step 2" in out  # the training's output is there, cleaned
    tool_lines = [line for line in out.splitlines() if "campaign 'pipe'" in line or "cooling down" in line]
    assert tool_lines and all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line) for line in tool_lines)


def test_a_terminal_gets_the_live_panel_and_the_closing_summary(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry = fake_registry(fake=fake_repo("busy", required_args=["--behaviour", "busy", "--seconds", "1"]))
    settings = write_json("s.json", {"experiment_name": "tty", "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny"}]})
    code, seen = in_terminal(["--registry", str(registry), "--results-dir", str(tmp_path / "r"), "run",
                              str(settings)], 80, timeout_s=30)
    assert code == 0
    text = seen.decode(errors="replace")
    assert "0/1 trials" in text and "now: 1 default fake/tiny" in text  # the live panel was drawn
    assert "1 of 1 trials recorded: 1 success" in text


def test_the_panel_shows_progress_eta_power_and_the_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "training.log"
    log.write_text("".join(f"epoch {i}\n" for i in range(20)) + "step 1\rstep 2\rstep 3")
    console = Console(file=io.StringIO(), width=100, color_system=None, force_terminal=False)
    panel = LiveProgress(console)
    panel.total, panel.done = 5, 2
    now = time.monotonic()
    eta = WallClockEta(trials_left=5, started_s=now - 39.5)
    eta.trial_ended(now - 9.5)  # two trials took 30 s of wall time, the last ended 9.5 s ago
    eta.trial_ended(now - 9.5)
    panel.eta = eta
    panel.attempt_started("3 mutation examples/mlp learning_rate=0.01", log, lambda: {"cpu": 45.2, "gpu": None})
    console.print(panel.render())
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "2/5 trials" in text and "ETA 0:35" in text  # 3 left at 15 s of wall time each, 9.5 s spent
    assert "now: 3 mutation examples/mlp learning_rate=0.01" in text and "power: cpu 45 W" in text
    assert "epoch 19" in text and "step 3" in text and "epoch 11" not in text and "step 2" not in text
    panel.cooldown(30)
    console.print(panel.render())
    assert "cooling down: 30 s" in console.file.getvalue()  # type: ignore[attr-defined]
    assert log_tail(tmp_path / "missing.log") == ""


def test_the_closing_summary_totals_energy_by_device_and_says_what_was_not_measured(tmp_path: Path) -> None:
    records = [a_record(energy=EnergyFields(cpu_energy_j=1500.0, cpu_energy_method="rapl")),
               a_record(energy=EnergyFields(cpu_energy_j=700.0, cpu_energy_method="rapl")),
               a_record(energy=EnergyFields())]
    text = summary_text(SessionResult(tmp_path, records, planned=3, stopped_by=None, wall_s=75), width=100)
    assert "energy: cpu 2.2 kJ (rapl), 1 trial(s) not measured; gpu not measured" in text
    assert "time: trainings 0:03, this session 1:15" in text


def test_the_eta_counts_wall_time_per_trial_not_training_time() -> None:
    eta = WallClockEta(trials_left=4, started_s=100.0)
    assert eta.remaining_s(105.0) is None  # nothing measured yet: no guess
    # A 10 s training with a 30 s cooldown and a 10 s baseline: 50 s of wall time per trial.
    eta.trial_ended(150.0)
    assert eta.remaining_s(150.0) == 150.0  # 3 left x 50 s (a mean of trainings would say 30 s)
    eta.trial_ended(190.0)  # the second took 40 s: the mean is now 45 s
    assert eta.remaining_s(190.0) == 90.0
    assert eta.remaining_s(200.0) == 80.0  # counting down between trials
    assert eta.remaining_s(10_000.0) == 0.0  # never negative


def test_the_eta_counts_each_trials_forecast_when_the_plan_has_them() -> None:
    # Two 10 s trainings then two of 100 s: the session's mean says 3 x 12 s left after the first;
    # the forecasts say 10 + 100 + 100 s, plus the 2 s a trial has taken beyond its forecast.
    eta = WallClockEta(trials_left=4, started_s=0.0, predicted_s=[10.0, 10.0, 100.0, 100.0])
    assert eta.remaining_s(5.0) == 215.0  # before any trial ended: the forecasts alone
    eta.trial_ended(12.0)  # 10 s of training, 2 s around it
    assert eta.remaining_s(12.0) == 216.0  # (2 + 10) + (2 + 100) + (2 + 100)
    plain = WallClockEta(trials_left=4, started_s=0.0)
    plain.trial_ended(12.0)
    assert plain.remaining_s(12.0) == 36.0  # without forecasts, as before
    partly = WallClockEta(trials_left=3, started_s=0.0, predicted_s=[10.0, None, 50.0])
    assert partly.remaining_s(1.0) is None  # not every trial has a forecast: no guess yet
    partly.trial_ended(12.0)
    assert partly.remaining_s(12.0) == 12.0 + 52.0  # the one without a forecast counts the mean


def test_the_eta_counts_the_cooldowns_still_to_come() -> None:
    # Seen by a user: `cooldown_s: 8` showed "about 0:00 left" while cooling down.
    eta = WallClockEta(trials_left=3, started_s=0.0, cooldown_s=8.0)
    eta.trial_ended(2.0)  # a 2 s trial; its cool-down starts now
    assert eta.remaining_s(2.0) == 20.0  # 2 trials left, each after an 8 s cool-down
    assert eta.remaining_s(6.0) == 16.0  # cooling down: the clock still counts down, not to 0:00
    eta.trial_ended(12.0)  # cooled 8 s, trained 2 s
    assert eta.remaining_s(12.0) == 10.0
    eta.trial_ended(22.0)
    assert eta.remaining_s(22.0) == 0.0


def test_a_campaign_counts_its_cooldowns_in_the_time_left(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry = fake_registry()
    settings = write_json("s.json", {"experiment_name": "cool", "cooldown_s": 2, "runs_per_config": 2,
                                     "experiments": [{"mode": "default", "repo": "fake", "model": "tiny"}]})
    result = invoke("--registry", registry, "--results-dir", tmp_path / "r", "run", settings)
    assert result.exit_code == 0, result.output
    first = next(line for line in result.stdout.splitlines() if "[1/2] 001_fake_tiny: success" in line)
    left = re.search(r"about 0:(\d\d) left$", first)
    assert left is not None and int(left.group(1)) >= 2, first  # the 2 s cool-down + the next trial (was 0:00)


def test_the_live_panel_shows_what_each_background_has_done(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry = fake_registry(fg=fake_repo("busy", required_args=["--behaviour", "busy", "--seconds", "3"]),
                             bg=fake_repo("sleep", required_args=["--behaviour", "sleep", "--seconds", "0.3"]))
    settings = write_json("p.json", {"experiment_name": "panel", "experiments": [
        {"mode": "parallel", "foreground": {"repo": "fg", "model": "tiny"},
         "background": {"repo": "bg", "model": "tiny"}}]})
    code, seen = in_terminal(["--registry", str(registry), "--results-dir", str(tmp_path / "r"), "run",
                              str(settings)], 100)
    assert code == 0, seen.decode(errors="replace")
    shown = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", seen).decode(errors="replace")
    counts = [int(count) for count in re.findall(r"background 1 bg/tiny: runs completed (\d+), failed 0", shown)]
    assert counts and max(counts) >= 2, shown[-2000:]  # redrawn as the loop goes
