"""Loading JSON files and checking them against the shipped JSON Schemas.

jsonschema finds the errors; this module words them for people: each names the JSON path of the
offending value, unknown keys get a did-you-mean, and every error in the file is reported, not
only the first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from energy_profiler.config.errors import ConfigIssue, did_you_mean, quoted

ANNOTATION_KEYS = ("description", "comment", "notes")
OLDER_VALUES = {"nonparallel": "the older tool's 'nonparallel' is mode 'mutation' here: one training at a time"}
"""Values the older tool's files use, and what they are called here."""


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    """`pattern` as JSON Schema (ECMA 262) means it: `$` is the end of the string.

    Python's `$` also matches before a final newline, so `name\\n` would pass `^[a-z]+$`, and a
    newline would reach an environment name or a folder name.
    """
    if not isinstance(instance, str):
        return
    anchored = pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith(r"\$") else pattern
    if not re.search(anchored, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


# JSON Schema counts 1.0 as an integer; the code behind a count (range(), a loop bound) does not.
_extend: Callable[..., Any] = jsonschema.validators.extend  # untyped in types-jsonschema
StrictValidator = _extend(
    jsonschema.Draft202012Validator,
    validators={"pattern": _pattern},
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)),
)


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The shipped schema `name` (`settings` or `registry`)."""
    text = resources.files("energy_profiler.config").joinpath(f"{name}.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def schema_path(name: str) -> Path:
    """Where the shipped schema file lies, for `$schema` references in user files."""
    return Path(str(resources.files("energy_profiler.config").joinpath(f"{name}.schema.json")))


def schema_issues(document: Any, schema_name: str, file: str) -> list[ConfigIssue]:
    """Every way `document` breaks the schema, worded with JSON paths, in document order."""
    validator = StrictValidator(load_schema(schema_name))
    issues: list[ConfigIssue] = []
    for error in validator.iter_errors(document):
        issues.extend(_describe(error, file, document, schema_name))
    unique = {(issue.path, issue.message): issue for issue in issues}
    return sorted(unique.values(), key=lambda issue: issue_sort_key(issue.path))


def issue_sort_key(path: tuple[str | int, ...]) -> tuple[tuple[int, str | int], ...]:
    # Ints before strings at the same depth would be arbitrary; sort each part by (kind, value).
    return tuple((0, part) if isinstance(part, int) else (1, part) for part in path)


@cache
def _property_names(schema_name: str) -> frozenset[str]:
    """Every key the schema names anywhere: a key unknown here may be a real key of another part."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            names.update(node.get("properties", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(load_schema(schema_name))
    return frozenset(names)


def _describe(error: ValidationError, file: str, document: Any, schema_name: str) -> list[ConfigIssue]:
    """One or more issues for one jsonschema error (several for several unknown keys)."""
    path = tuple(error.absolute_path)
    instance: Any = error.instance
    keyword = error.validator
    schema: Any = error.schema if isinstance(error.schema, dict) else {}
    expected: Any = error.validator_value

    if keyword == "additionalProperties" and isinstance(instance, dict):
        known = list(schema.get("properties", {}))
        allowed = set(known)
        issues = []
        for key in instance:
            if key in allowed or key.startswith("_"):
                continue
            if not isinstance(schema.get("additionalProperties"), bool):
                continue  # a typed map (name -> value): the value's own errors are reported
            if key in _property_names(schema_name):  # `mode` in a background: not a typo of `model`
                hint = f" ({quoted(key)} is a key of other parts of a {schema_name} file, not of this one)"
            else:
                hint = did_you_mean(key, [k for k in known if k not in ANNOTATION_KEYS])
            issues.append(ConfigIssue(file, (*path, key), f"unknown key {quoted(key)}{hint}", harmless=True))
        if issues:
            return issues
    if "propertyNames" in error.relative_schema_path:
        # The key itself is wrong (env names): jsonschema reports it at the object, with the key as instance.
        return [ConfigIssue(file, (*path, str(instance)), f"{instance!r} is not an environment variable name: "
                                                          "use letters, digits and _, not starting with a digit")]
    if keyword == "required":
        missing = [key for key in expected if key not in instance]
        return [ConfigIssue(file, path, f"missing required key '{key}'") for key in missing]
    if keyword == "enum":
        choices = ", ".join(f"'{choice}'" for choice in expected)
        older = OLDER_VALUES.get(str(instance))
        hint = f" ({older})" if older else did_you_mean(str(instance), [str(c) for c in expected])
        return [ConfigIssue(file, path, f"{instance!r} is not one of {choices}{hint}")]
    if keyword == "type":
        return [ConfigIssue(file, path, f"expected {_article(expected)}, got {_describe_value(instance)}")]
    if keyword == "not" and isinstance(expected, dict) and list(expected) == ["required"]:
        # A key that this mode forbids, e.g. `mutate` outside mutation mode. With a mode that is
        # itself wrong, only the mode's error is worth reading.
        if isinstance(instance, dict) and instance.get("mode", "default") not in _modes():
            return []
        return [ConfigIssue(file, (*path, key), _forbidden_key_message(key, instance))
                for key in expected["required"]]
    return [ConfigIssue(file, path, error.message)]


def _modes() -> list[str]:
    """Every mode an experiment may have, as the shipped settings schema lists them."""
    modes: list[str] = load_schema("settings")["$defs"]["experiment"]["properties"]["mode"]["enum"]
    return modes


def _forbidden_key_message(key: str, instance: Any) -> str:
    mode = instance.get("mode") if isinstance(instance, dict) else None
    if key == "mutate":
        return f"'mutate' is only allowed with mode 'mutation' (mode is {mode!r})"
    return f"'{key}' is not allowed with mode {mode!r}"


def _article(type_name: object) -> str:
    names = type_name if isinstance(type_name, list) else [type_name]
    words = {"object": "an object", "array": "a list", "integer": "an integer", "number": "a number",
             "string": "a string", "boolean": "true or false", "null": "null"}
    return " or ".join(words.get(str(name), str(name)) for name in names)


def _describe_value(value: object) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value!r}"
    if value is None:
        return "null"
    return repr(value)
