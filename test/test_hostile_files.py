"""Files no JSON reader should trust: each exits 2 naming the file and a line or JSON path, and
nothing is started or written. Before, each of these gave a traceback, hung, or was run."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from test.conftest import invoke
from test.privileges import in_child

VALID = {"experiment_name": "t", "experiments": [{"mode": "default", "repo": "examples", "model": "mlp"}]}
HEAD = '{"experiment_name": "t", "experiments": [{"mode": "default", "repo": "examples", "model": "mlp"'


def with_text(middle: str) -> bytes:
    """VALID with `middle` added to its first experiment, as raw text (JSON that json.dumps cannot write)."""
    return (HEAD + middle + "}]}").encode()


CASES: list[tuple[str, bytes, str]] = [
    ("invalid UTF-8", b'{"experiment_name": "t\xff"}', "is not UTF-8 text (byte 0xff at line 1, column 23)"),
    ("UTF-16", json.dumps(VALID).encode("utf-16"), "is UTF-16 text; settings and registries are read as UTF-8"),
    ("binary", bytes(range(256)) * 4, "is not UTF-8 text (byte 0x80"),
    ("nested 5,000 deep", b"[" * 5000 + b"]" * 5000, "nested deeper than 32 levels"),
    ("nested 100,000 deep", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested deeper than 32 levels"),
    ("nested 40 deep", b"[" * 40 + b"]" * 40, "[0][0][0]"),
    ("runs_per_config 2.0", with_text(', "runs_per_config": 2.0'),
     "experiments[0].runs_per_config: expected an integer"),
    ("runs_per_config 1e9", with_text(', "runs_per_config": 1e9'),
     "experiments[0].runs_per_config: expected an integer"),
    ("runs_per_config 10**400", with_text(', "runs_per_config": 1' + "0" * 400),
     "the integer 10000000000000000000... has 401 digits; at most 15 are allowed"),
    ("a huge hyperparameter", with_text(', "hyperparameters": {"epochs": ' + "9" * 400 + "}"), "has 400 digits"),
    ("runs_per_config 10**8", with_text(', "runs_per_config": 100000000'),
     "experiments[0].runs_per_config: 100000000 is greater than the maximum of 10000"),
    ("max_retries 1.0", (HEAD + '}], "max_retries": 1.0}').encode(), "max_retries: expected an integer"),
    ("NaN", (HEAD + '}],\n "cooldown_s": NaN}').encode(),
     "NaN is not a number JSON allows: use a finite number (at line 2, column 16)"),
    ("Infinity", with_text(', "timeout_s": Infinity'), "Infinity is not a number JSON allows"),
    ("-Infinity", (HEAD + '}], "grace_s": -Infinity}').encode(), "-Infinity is not a number JSON allows"),
    ("1e400", (HEAD + '}], "cooldown_s": 1e400}').encode(), "the number 1e400 is too large to be a finite number"),
    ("NaN inside a string is text", (HEAD + '}], "cooldown_s": "NaN"}').encode(),
     "cooldown_s: expected a number, got the string 'NaN'"),
    ("duplicate keys", with_text(', "runs_per_config": 1, "runs_per_config": 50'),
     "experiments[0].runs_per_config: the key 'runs_per_config' appears more than once in this object"),
    ("a name ending in a newline", json.dumps({**VALID, "experiment_name": "t\n"}).encode(),
     "experiment_name: 't\\n' does not match"),
    ("a duration beyond a day of cool-down", (HEAD + '}], "cooldown_s": 1e6}').encode(),
     "cooldown_s: 1000000.0 is greater than the maximum of 86400"),
]


@pytest.mark.parametrize(("content", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_hostile_settings_file_exits_2_and_writes_nothing(content: bytes, expected: str, tmp_path: Path) -> None:
    file = tmp_path / "bad.json"
    file.write_bytes(content)
    results = tmp_path / "results"
    started = time.monotonic()
    result = invoke("--results-dir", results, "run", file)
    assert result.exit_code == 2, result.output
    assert f"{file}: " in result.stderr and expected in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert not results.exists()
    assert time.monotonic() - started < 1.0


def test_a_duplicate_key_in_the_registry_is_an_error(tmp_path: Path) -> None:
    registry = tmp_path / "models.json"
    real = (Path(__file__).resolve().parents[1] / "repos" / "models.json").read_text()
    # The same repository twice: the second would silently replace the first.
    registry.write_text(real.replace('"repositories": {', '"repositories": {"examples": {}, ', 1))
    assert real != registry.read_text()
    result = invoke("--registry", registry, "list")
    assert result.exit_code == 2, result.output
    assert "repositories.examples: the key 'examples' appears more than once" in result.stderr, result.stderr


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_settings_path_that_is_not_a_regular_file_is_refused_at_once(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    if kind == "fifo":
        os.mkfifo(path)  # reading it would wait for a writer forever
    else:
        path.mkdir()
    outcome: dict[str, object] = {}
    reader = threading.Thread(target=lambda: outcome.update(result=invoke("--results-dir", tmp_path / "r", "run",
                                                                          path)), daemon=True)
    reader.start()
    reader.join(timeout=5)
    if reader.is_alive():  # unblock the reader before failing, so the suite does not hang
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("reading a FIFO as the settings file blocked")
    result = outcome["result"]
    assert getattr(result, "exit_code", None) == 2
    expected = f"{path}: is {'a FIFO (named pipe)' if kind == 'fifo' else 'a folder'}, not a regular file"
    assert expected in getattr(result, "stderr", ""), getattr(result, "stderr", "")
    assert not (tmp_path / "r").exists()


def test_an_unreadable_settings_file_says_how_to_fix_it(tmp_path: Path) -> None:
    # Root reads any file, so the CLI runs in a child without that right (see test/privileges.py);
    # a user's run meets the same EACCES.
    file = tmp_path / "settings.json"
    file.write_text(json.dumps(VALID))
    file.chmod(0)
    results = tmp_path / "results"

    def as_a_user() -> tuple[int, str]:
        result = invoke("--results-dir", results, "run", file)
        return result.exit_code, result.stderr

    code, stderr = in_child(as_a_user, as_nobody=False)
    assert code == 2
    assert stderr.splitlines()[-1].strip() == (f"{file}: cannot read: permission denied; check its permissions "
                                               "(ls -l) or run as a user who may read it")
    assert not results.exists()
