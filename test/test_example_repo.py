"""The bundled example training: a real NumPy training that fails loudly when it diverges."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test.conftest import PROJECT_ROOT

TRAIN = PROJECT_ROOT / "repos" / "examples" / "train.py"


def train(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TRAIN), *args], capture_output=True, text=True, timeout=120,
                          check=False)


def test_it_learns_beyond_chance_and_prints_its_metrics() -> None:
    result = train("--model", "mlp", "--epochs", "2", "--seed", "1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("epoch 1/2 train_loss=") and lines[2].startswith("epoch 2/2 ")
    accuracy = float(next(line for line in lines if line.startswith("test_accuracy: ")).split()[1])
    assert accuracy > 0.6  # three classes: chance is 1/3
    assert train("--model", "mlp", "--epochs", "2", "--seed", "1").stdout.splitlines()[-2] == lines[-2]


def test_a_diverging_loss_exits_non_zero_with_advice() -> None:
    result = train("--model", "mlp", "--epochs", "3", "--lr", "100")
    assert result.returncode == 3
    assert "error: training diverged at epoch 1" in result.stderr and "smaller --lr" in result.stderr
    assert "test_accuracy" not in result.stdout


def test_the_parallel_example_shows_the_background_looping(tmp_path: Path) -> None:
    import csv

    result = subprocess.run([sys.executable, str(PROJECT_ROOT / "mutation.py"), "--results-dir", str(tmp_path), "-q",
                             "run", str(PROJECT_ROOT / "settings" / "parallel_example.json")],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(next(tmp_path.glob("run_*")) / "summary.csv", newline="") as table:
        rows = list(csv.DictReader(table))
    # The background finished runs while each measured foreground trained: it loops, not starts once.
    assert len(rows) == 2 and all(int(row["bg_iterations_completed"]) >= 2 for row in rows), rows
    assert all(row["bg_iterations_failed"] == "0" for row in rows)
