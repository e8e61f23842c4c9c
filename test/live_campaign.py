"""A campaign started as users start it (its own mutation.py process), for tests that watch or stop it from outside."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from test.conftest import PROJECT_ROOT, invoke, wait_for

MUTATION = str(PROJECT_ROOT / "mutation.py")


@contextmanager
def campaign(registry: Path, settings: Path, results: Path, *extra: str,
             env: Mapping[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """`mutation.py run SETTINGS` in the background; killed at the end if a test left it running."""
    tool = subprocess.Popen([sys.executable, MUTATION, "--registry", str(registry), "--results-dir", str(results),
                             "run", str(settings), *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=None if env is None else dict(env))
    try:
        yield tool
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.communicate(timeout=30)


def state(results: Path) -> dict[str, Any]:
    """The only run folder's state.json ({} until it is written)."""
    try:
        return dict(json.loads(next(results.glob("run_*/state.json")).read_text()))
    except (StopIteration, OSError, ValueError):
        return {}


def wait_for_trial(results: Path, index: int, timeout_s: float = 30) -> bool:
    """Until the campaign is training trial `index` (its state says so)."""
    return wait_for(lambda: (state(results).get("current") or {}).get("index") == index
                    and (state(results).get("current") or {}).get("phase") == "training", timeout_s)


def status_json(registry: Path, results: Path, run_dir: Path | None = None) -> dict[str, Any]:
    shown = invoke("--registry", registry, "--results-dir", results, "status",
                   *([run_dir] if run_dir else []), "--format", "json")
    assert shown.exit_code == 0, shown.output
    return dict(json.loads(shown.stdout))
