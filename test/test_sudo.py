"""Under sudo: trainings run as the invoking user, and every results file belongs to that user.

Needs root and a real unprivileged user (nobody); skipped otherwise. sudo itself is stood in for by
the environment it sets (SUDO_UID, SUDO_GID, SUDO_USER): the ownership changes are real.
"""

from __future__ import annotations

import csv
import json
import os
import pwd
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from energy_profiler.fs import give_files_to
from test.conftest import FAKE_TRAIN, fake_repo, invoke, only_run_dir

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to change users")
NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def under_sudo(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A results folder nobody can reach, and the environment sudo would set for nobody."""
    base = Path(tempfile.mkdtemp(prefix="sudo-test-"))
    base.chmod(0o755)
    monkeypatch.setenv("SUDO_UID", str(NOBODY.pw_uid))
    monkeypatch.setenv("SUDO_GID", str(NOBODY.pw_gid))
    monkeypatch.setenv("SUDO_USER", "nobody")
    try:
        yield base / "results"
    finally:
        give_files_to(None, None)  # process-wide: the next test must not inherit it
        shutil.rmtree(base)


def whoami_repo() -> dict[str, Any]:
    # The system interpreter: nobody cannot enter root's home, where the venv's one lives.
    return fake_repo("whoami", command=["/usr/bin/python3", FAKE_TRAIN.name])


def all_paths(root: Path) -> list[Path]:
    return [root, *root.rglob("*")]


def test_trainings_run_as_the_invoking_user_who_owns_every_result(
        under_sudo: Path, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path]) -> None:
    registry = fake_registry(fake=whoami_repo(), bg=whoami_repo())
    settings = write_json("s.json", {"experiment_name": "sudo", "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny"},
        {"mode": "parallel", "foreground": {"repo": "fake", "model": "tiny"},
         "background": {"repo": "bg", "model": "tiny"}, "warmup_s": 0.5}]})
    result = invoke("--registry", registry, "--results-dir", under_sudo, "run", settings)
    assert result.exit_code == 0, result.output
    assert "trainings run as nobody (uid 65534)" in result.stdout
    run_dir = only_run_dir(under_sudo)
    expected = f"UID {NOBODY.pw_uid} GID {NOBODY.pw_gid} HOME {NOBODY.pw_dir} USER nobody"
    for log in [*run_dir.glob("*/attempt_1/training.log"), *run_dir.glob("*/attempt_1/background_logs/bg1_run_1.log")]:
        assert expected in log.read_text(), log
    not_given = [path for path in all_paths(under_sudo) if path.stat().st_uid != NOBODY.pw_uid]
    assert not_given == []
    assert (under_sudo / "summary_all.csv").stat().st_gid == NOBODY.pw_gid


def test_run_as_root_keeps_trainings_as_root_but_results_still_go_to_the_user(
        under_sudo: Path, write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path]) -> None:
    settings = write_json("s.json", {"experiment_name": "root", "run_as_root": True, "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny"}]})
    result = invoke("--registry", fake_registry(fake=whoami_repo()), "--results-dir", under_sudo, "run", settings)
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(under_sudo)
    assert "UID 0 " in next(run_dir.glob("*/attempt_1/training.log")).read_text()
    assert all(path.stat().st_uid == NOBODY.pw_uid for path in all_paths(under_sudo))
    with open(run_dir / "summary.csv", newline="") as table:
        assert next(csv.DictReader(table))["status"] == "success"
    assert json.loads((run_dir / "plan.json").read_text())["seed_was_drawn"] is True
