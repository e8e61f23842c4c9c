"""Host facts recorded with every trial: what machine and what code produced a number."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import psutil

from energy_profiler import __version__

TOOL_ROOT = Path(__file__).resolve().parents[2]


def host_facts() -> dict[str, Any]:
    """Hostname, CPU, cores, kernel, Python, and the tool's version and git commit."""
    tool_git = git_state(TOOL_ROOT)
    return {
        "hostname": socket.gethostname(),
        "cpu_model": _cpu_model(),
        "cpu_logical_cores": os.cpu_count(),
        "cpu_physical_cores": psutil.cpu_count(logical=False),
        "memory_total_mib": round(psutil.virtual_memory().total / 2**20),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "tool_version": __version__,
        "tool_commit": tool_git["commit"],
        "tool_dirty": tool_git["dirty"],
    }


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


@cache
def git_state(folder: Path) -> dict[str, Any]:
    """The commit and dirty flag of the git repository whose top folder is `folder`, else nulls.

    A folder that merely lies inside another repository (repos/examples inside this project) is
    not a repository of its own: reporting the outer commit for it would mislead.
    """
    unknown: dict[str, Any] = {"commit": None, "dirty": None}
    top = _git(folder, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != folder.resolve():
        return unknown
    commit = _git(folder, "rev-parse", "HEAD")
    status = _git(folder, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def _git(folder: Path, *args: str) -> str | None:
    try:
        # safe.directory: under sudo, git would refuse a repository its user owns; we only read it.
        result = subprocess.run(["git", "-c", "safe.directory=*", "-C", str(folder), *args], capture_output=True,
                                text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None
