"""Property: whatever is done to a valid settings file or registry, the tool answers exit 0 or 2.

Hypothesis mutates the bundled files (a value replaced by any JSON value, a key dropped or added,
bytes flipped, inserted or cut) and `plan` reads them as a campaign would, without running one.
Never a traceback; on exit 2, the file named and nothing under the results folder; each within 1 s.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test.conftest import PROJECT_ROOT, invoke, real_registry_document

SETTINGS = json.loads((PROJECT_ROOT / "settings" / "quickstart.json").read_text())
REGISTRY = real_registry_document()  # written elsewhere: its repositories found by absolute path
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every JSON path in `value` (the root excluded)."""
    found = []
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in children:
        found.append((*prefix, key))
        found.extend(paths(child, (*prefix, key)))
    return found


@st.composite
def mutated(draw: st.DrawFn, document: dict[str, Any]) -> bytes:
    copy = json.loads(json.dumps(document))
    targets = paths(copy)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(targets))
        parent = copy
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(JSON_VALUES)
        elif action == "drop" and isinstance(parent, dict):
            parent.pop(path[-1], None)
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = draw(JSON_VALUES)
        targets = paths(copy) or [()]
        if targets == [()]:
            break
    data = bytearray(json.dumps(copy).encode())  # NaN and Infinity as Python writes them
    if draw(st.booleans()):
        position = draw(st.integers(0, len(data)))
        if draw(st.booleans()):
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[position:position + draw(st.integers(1, 8))]
    return bytes(data)


def answer_is_clean(tmp_path: Path, *args: str | Path) -> None:
    results = tmp_path / "results"
    # CPU time, not wall time: a guard against runaway work that a loaded CI machine's stalls (2.2 s of
    # wall time for a 7 ms plan, once) cannot trip.
    started = time.process_time()
    result = invoke("--results-dir", results, *args)  # an exception here fails the test: a crash
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert not results.exists()
        assert result.stderr.strip(), "exit 2 without a message"
    assert time.process_time() - started < 1.0


@PROPERTY
@given(content=mutated(SETTINGS))
def test_any_mutation_of_a_settings_file_exits_0_or_2(content: bytes, tmp_path: Path) -> None:
    file = tmp_path / "settings.json"
    file.write_bytes(content)
    answer_is_clean(tmp_path, "plan", file)


@PROPERTY
@given(content=mutated(REGISTRY))
def test_any_mutation_of_the_registry_exits_0_or_2(content: bytes, tmp_path: Path) -> None:
    registry = tmp_path / "models.json"
    registry.write_bytes(content)
    answer_is_clean(tmp_path, "--registry", registry, "plan", PROJECT_ROOT / "settings" / "quickstart.json")
