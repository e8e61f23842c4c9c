"""The PyTorch example repository: a real training wherever torch is installed (skipped elsewhere)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from test.conftest import PROJECT_ROOT

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")


@pytest.mark.parametrize("model", ["mlp", "convnet"])
def test_it_trains_beyond_chance_on_the_cpu(model: str) -> None:
    result = subprocess.run([sys.executable, "train.py", "--model", model, "--epochs", "2", "--device", "cpu"],
                            cwd=PROJECT_ROOT / "repos" / "torch_examples", capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    accuracy = float(next(line for line in result.stdout.splitlines() if line.startswith("test_accuracy: "))[15:])
    assert accuracy > 0.3  # ten classes: chance is 0.1
