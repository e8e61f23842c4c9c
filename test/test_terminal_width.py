"""Tables fit the terminal they are printed in: `plan`, `list`, `report`, `doctor` and the closing
table, each through a real pseudo-terminal of 60, 80 and 120 columns (the size set with
TIOCSWINSZ, as a terminal emulator or tmux sets it, and no COLUMNS variable). After Ctrl-C the
screen, as a terminal emulator (pyte) draws it, keeps no progress bar and ends with how to resume.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyte
import pytest

from energy_profiler.cli.tables import format_table
from test.conftest import PROJECT_ROOT, fake_repo
from test.test_report import known_run, write_table

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-~]|\x1b[@-_]")
WIDTHS = (60, 80, 120)


def in_terminal(args: list[str], columns: int, *, on_output: Callable[[bytes, int], None] | None = None,
                timeout_s: float = 60) -> tuple[int, bytes]:
    """Run mutation.py in a pseudo-terminal of `columns` x 40; its exit code and everything it wrote."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    environment = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}
    process = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "mutation.py"), *args], stdin=follower,
                               stdout=follower, stderr=follower, env=environment, start_new_session=True)
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the program ended
            break
        if not chunk:
            break
        seen += chunk
        if on_output is not None:
            on_output(seen, process.pid)
    os.close(leader)
    return process.wait(timeout=10), seen


def lines_of(output: bytes) -> list[str]:
    return [ANSI.sub("", line).rstrip("\r") for line in output.decode(errors="replace").split("\n")]


@pytest.fixture
def campaign_files(write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
                   tmp_path: Path) -> tuple[Path, Path]:
    registry = fake_registry(fake=fake_repo("ok"))
    settings = write_json("s.json", {"experiment_name": "narrow", "seed": 1, "experiments": [
        {"mode": "mutation", "repo": "fake", "model": "tiny", "mutate": ["all"], "runs_per_config": 3}]})
    return registry, settings


@pytest.mark.parametrize("columns", WIDTHS)
def test_plan_list_report_and_doctor_fit_the_terminal(columns: int, campaign_files: tuple[Path, Path],
                                                      tmp_path: Path) -> None:
    registry, settings = campaign_files
    run = known_run(tmp_path)
    for args, must_show in ((["--registry", str(registry), "plan", str(settings)], ["3 trials, seed 1"]),
                            (["--registry", str(registry), "list"], ["hyperparameter"]),
                            (["report", str(run), "-o", str(tmp_path / "out")], ["4 trials;"]),
                            (["doctor"], ["a campaign would use:"])):
        code, output = in_terminal(args, columns)
        lines = lines_of(output)
        assert code in (0, 2), output
        too_wide = [line for line in lines if len(line) > columns and "/" not in line]  # (a path wraps as it must)
        assert not too_wide, f"{args[-2:]} at {columns}: {too_wide}"
        for text in must_show:
            assert any(text in line for line in lines), (args, lines)
    # The plan's rows are all there, numbered, at every width.
    _, output = in_terminal(["--registry", str(registry), "plan", str(settings)], columns)
    numbers = [line.split()[0] for line in lines_of(output) if line[:1].isdigit()]
    assert numbers[:3] == ["1", "2", "3"]


@pytest.mark.parametrize("columns", WIDTHS)
def test_the_closing_table_of_a_campaign_fits_the_terminal(columns: int, campaign_files: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    registry, settings = campaign_files
    code, output = in_terminal(["--registry", str(registry), "--results-dir", str(tmp_path / "r"), "run",
                                str(settings)], columns)
    assert code == 0, output
    lines = lines_of(output)
    header = max(index for index, line in enumerate(lines) if line.startswith("#  model"))
    table = lines[header:lines.index("", header)]
    assert len(table) >= 4 and all(len(line) <= columns for line in table), table
    assert "3 of 3 trials recorded: 3 success" in output.decode()


def test_after_ctrl_c_the_screen_keeps_no_progress_bar_and_says_how_to_resume(
        write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path) -> None:
    registry = fake_registry(fake=fake_repo("busy", required_args=["--behaviour", "busy", "--seconds", "30"]))
    settings = write_json("s.json", {"experiment_name": "interrupted", "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny", "runs_per_config": 2}]})
    interrupted: list[float] = []

    def interrupt_when_training(seen: bytes, pid: int) -> None:
        if not interrupted and b"now: 1 default fake/tiny" in seen:
            os.killpg(pid, signal.SIGINT)  # Ctrl-C: the terminal signals its foreground process group
            interrupted.append(time.monotonic())

    code, output = in_terminal(["--registry", str(registry), "--results-dir", str(tmp_path / "r"), "run",
                                str(settings)], 80, on_output=interrupt_when_training)
    assert interrupted and code != 0
    screen = pyte.Screen(80, 40)
    pyte.ByteStream(screen).feed(output.replace(b"\n", b"\r\n"))
    shown = [line.rstrip() for line in screen.display if line.strip()]
    assert not any("trials  elapsed" in line or "ETA" in line for line in shown), shown  # no stale panel
    run_dir = next((tmp_path / "r").glob("run_*"))
    # The last thing on screen (a long line wraps at 80 columns, so compare with spaces collapsed):
    flat = re.sub(r"\s+", " ", "".join(screen.display)).strip()
    assert flat.endswith(f"to continue: {sys.executable} {PROJECT_ROOT / 'mutation.py'} run {settings} --resume "
                         f"{run_dir}"), shown[-6:]


def test_a_report_without_energy_at_60_columns_leaves_the_energy_columns_out_first_and_folds_its_notes(
        tmp_path: Path) -> None:
    run = tmp_path / "run_20260101_000000"
    write_table(run / "summary.csv", [[f"e{i}", run.name, f"00{i}_r_m", "mutation", "r", "m", "success", 1.0 + i,
                                       "x", i, 0.5 + i / 10, "", "none", "", "none"] for i in range(1, 4)])
    code, output = in_terminal(["report", str(run), "-o", str(tmp_path / "out")], 60)
    assert code == 0, output
    lines = lines_of(output)
    assert lines[0].split() == ["repo", "model", "mode", "trials", "duration_s", "accuracy"]
    # All 'none': left out before any other optional column (the note says why).
    assert "(not shown at this width: configs, success, energy_j, energy;" in " ".join(lines)
    first_note = next(index for index, line in enumerate(lines) if line.startswith("note: "))
    notes = lines[first_note:lines.index("", first_note)]
    assert len(notes) > 1 and all(len(line) <= 60 for line in notes), notes  # folded, not cut by the terminal
    assert notes[0].startswith("note: No energy plots: energy was not measured")
    assert all(line.startswith("  ") for line in notes[1:] if not line.startswith("note: "))
    assert notes[1] == "  none): no reason recorded."  # broken between words only


def test_a_narrow_text_cell_breaks_after_an_underscore_before_breaking_anywhere() -> None:
    table = format_table(["model", "rho"], [["deep_mlp_with_a_long_name", "x"], ["test_accuracy_of_5", "y"]],
                         width=17)
    cells = [line.split()[0] for line in table.splitlines()[1:]]
    # (textwrap alone: deep_mlp_wit / h_a_long_nam / e)
    assert cells == ["deep_mlp_", "with_a_long_", "name", "test_", "accuracy_of_", "5"], table


def test_a_table_too_narrow_for_its_columns_becomes_blocks_of_named_values() -> None:
    # Rather than names cut into pieces of 4 letters (exam / ples, estima / te): every column kept.
    table = format_table(["repo", "model", "energy", "energy_j"],
                         [["examples", "deep_mlp", "cpu estimate (process_tree)", "2.768 (2.747–2.793)"],
                          ["examples", "mlp", "cpu rapl (system)", "1.2"]], width=40)
    assert table.splitlines() == [
        "repo: examples  model: deep_mlp",
        "energy: cpu estimate (process_tree)",
        "energy_j: 2.768 (2.747–2.793)",
        "",
        "repo: examples  model: mlp",
        "energy: cpu rapl (system)  energy_j: 1.2"]


def test_width_left_over_goes_to_whole_words_before_whole_cells() -> None:
    # 31 columns: whole cells for type and range would leave the flag 4 wide (--we / ight- / deca / y).
    table = format_table(["flag", "type", "range"], [["--weight-decay", "int (seed)", "[1e-06, 0.01]"]], width=31)
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= 31
    assert lines[1].split() == ["--weight-decay", "int", "[1e-06,"] and lines[2].split() == ["(seed)", "0.01]"]


def test_a_column_is_left_out_before_an_identifier_is_broken() -> None:
    headers = ["model", "values", "accuracy", "duration_s"]
    rows = [["deep_mlp", "learning_rate=0.0272 weight_decay=1e-05", 0.91, 12.5]]
    table = format_table(headers, rows, width=40, optional=["accuracy", "duration_s"])
    lines = table.splitlines()
    assert any("learning_rate=0.0272" in line for line in lines)  # whole, not learning_rat / e=0.0272
    assert any("weight_decay=1e-05" in line for line in lines)
    assert "(not shown at this width: duration_s" in table and all(len(line) <= 40 for line in lines)
    # With nothing left to leave out, words fold as before.
    assert "learning_rate=0.0272" not in format_table(headers[:2], [rows[0][:2]], width=20)
