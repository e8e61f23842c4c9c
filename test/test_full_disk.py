"""A results folder that fills up or is read-only: the campaign stops cleanly, and what it wrote stays whole.

A real small tmpfs is mounted where the suite runs as root and may mount (CI here); elsewhere the
tests are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from energy_profiler.fs import append_whole
from test.conftest import invoke
from test.test_lifetime import descendants_running

RUNS = 8
SETTINGS: dict[str, object] = {"experiment_name": "full", "runs_per_config": RUNS, "experiments": [
    {"mode": "default", "repo": "examples", "model": "mlp", "hyperparameters": {"epochs": 1}}]}


def mounted(folder: Path, options: str) -> Iterator[Path]:
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or 'not root'})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    yield from mounted(tmp_path / "small", "size=120k")


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    yield from mounted(tmp_path / "ro", "size=1m,ro")


def test_a_full_disk_stops_the_campaign_with_one_line_and_whole_rows(
        small_disk: Path, tmp_path: Path) -> None:
    settings = tmp_path / "s.json"
    settings.write_text(json.dumps(SETTINGS))
    result = invoke("--results-dir", small_disk / "results", "-q", "run", settings)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "No space left on device: the campaign stopped" in errors[0], result.stderr
    assert "Traceback" not in result.output
    run_dir = next((small_disk / "results").glob("run_*"))
    # The command to continue, on a line of its own (to be copied whole), names the run folder.
    assert result.stderr.rstrip().endswith(f"\nmutation.py run {settings} --resume {run_dir}")
    with open(run_dir / "summary.csv", newline="") as table:
        rows = list(csv.reader(table))
    assert len(rows) >= 2 and all(len(row) == len(rows[0]) for row in rows)  # the header and whole rows only
    assert len(rows) - 1 < RUNS  # it did stop early
    # The campaign ran inside this process: no training of its may outlive it (nor another test's be counted).
    assert not descendants_running(os.getpid(), "train.py")


def test_a_read_only_results_folder_is_named_in_one_line(read_only_disk: Path, tmp_path: Path) -> None:
    settings = tmp_path / "s.json"
    settings.write_text(json.dumps(SETTINGS))
    result = invoke("--results-dir", read_only_disk / "results", "-q", "run", settings)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"error: {read_only_disk / 'results'}: Read-only file system: the campaign")


def test_a_row_the_disk_takes_only_in_part_is_cut_back_off(small_disk: Path) -> None:
    table = small_disk / "table.csv"
    table.write_text("a,b\n1,2\n")
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as file, contextlib.suppress(OSError):  # fill the disk, free a page
        while True:
            file.write(b"x" * 4096)
    filler.write_bytes(filler.read_bytes()[:-4096])
    with pytest.raises(OSError) as raised:
        append_whole(table, b"3," + b"y" * 20_000 + b"\n")  # more than is left: a partial write first
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(table)
    assert table.read_text() == "a,b\n1,2\n"
