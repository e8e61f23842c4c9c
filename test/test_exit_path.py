"""One exit path: every command ends through `ToolExit`, turned into its lines and code in one place.

The source is read with ast, so a new `sys.exit` or a hand-written `error:` line in any module fails
here, naming the file; the behaviour (one `error:` line per message, the codes) is checked by
running the command line on real inputs.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
from pathlib import Path

import pytest

from energy_profiler.errors import ExitCode, ToolExit
from test.conftest import PROJECT_ROOT, invoke

PACKAGE = PROJECT_ROOT / "energy_profiler"
OWN_PROCESS = {"energy_profiler/process/watchdog.py"}
"""A program of its own (`python -m energy_profiler.process.watchdog`), not a command: its exit is its own."""
INTERNAL_EXCEPTIONS = {"_Refused", "_BareConstant"}
"""Raised and caught inside one module (json_file.py's duplicate-key hook), never reaching a command."""


def sources() -> list[tuple[str, ast.Module]]:
    return [(str(path.relative_to(PROJECT_ROOT)), ast.parse(path.read_text(), str(path)))
            for path in sorted(PACKAGE.rglob("*.py"))]


def test_no_module_calls_sys_exit_or_writes_its_own_error_line() -> None:
    exits, error_lines = [], []
    for name, tree in sources():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "exit"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "sys"
                    and name not in OWN_PROCESS):
                exits.append(f"{name}:{node.lineno}")
            texts = [node.value] if isinstance(node, ast.Constant) and isinstance(node.value, str) else []
            if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
                texts.append(str(node.values[0].value))
            if any(text.startswith("error: ") for text in texts) and not name.endswith(("errors.py",)):
                error_lines.append(f"{name}:{getattr(node, 'lineno', 0)}")
    assert exits == []
    assert error_lines == []


def test_every_exception_the_package_defines_carries_an_exit_code() -> None:
    defined = [cls for module in _modules() for _, cls in inspect.getmembers(importlib.import_module(module),
                                                                           inspect.isclass)
               if cls.__module__ == module and issubclass(cls, BaseException)]
    assert len(defined) >= 9  # ConfigError, EnergySetupError, SlurmError, RunDirBusy, GovernorError, ...
    assert [cls.__qualname__ for cls in defined
            if not issubclass(cls, ToolExit) and cls.__name__ not in INTERNAL_EXCEPTIONS] == []


def _modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] != "__main__":
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_an_error_is_one_line_on_stderr_with_its_code(tmp_path: Path) -> None:
    missing = invoke("--results-dir", tmp_path / "results", "status", "nowhere")
    assert missing.exit_code == ExitCode.REFUSED
    assert missing.stderr.splitlines() == [f"error: nowhere: no such run folder (looked for it as a path and in "
                                           f"{tmp_path / 'results'})"]
    assert missing.stdout == ""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"experiments": [{"mode": "nonsense"}]}))
    refused = invoke("validate", bad)
    lines = refused.stderr.splitlines()
    assert refused.exit_code == ExitCode.REFUSED and lines[0].startswith("error: ") and lines[0].endswith("found:")
    assert all(line.startswith(f"  {bad}: ") for line in lines[1:]) and len(lines) >= 2


@pytest.mark.parametrize(("error", "code", "lines"), [
    (ToolExit("a", "b"), ExitCode.REFUSED, ["error: a", "error: b"]),
    (ToolExit("x", details=["  y", "z"], exit_code=ExitCode.FAILED), ExitCode.FAILED, ["error: x", "  y", "z"]),
    (ToolExit(exit_code=130), 130, []),
])
def test_the_base_says_its_messages_then_its_details(error: ToolExit, code: int, lines: list[str]) -> None:
    assert error.exit_code == code and error.lines() == lines
