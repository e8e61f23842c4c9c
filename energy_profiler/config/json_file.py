"""Reading a user's JSON file strictly, so that no file can crash, hang or fool the tool.

Python's json module is lenient where a configuration must not be: it accepts NaN and Infinity,
lets the last of two equal keys win silently, turns `1e400` into infinity, and raises
RecursionError on deep nesting. A FIFO given as a settings file would block `read_text()` forever.
Every such case here becomes a ConfigIssue that names the file and a line or a JSON path.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from energy_profiler.config.errors import ConfigError, ConfigIssue, file_error

MAX_FILE_BYTES = 16 * 2**20
"""Far above any real settings file or registry (the bundled ones are a few KiB)."""
MAX_DEPTH = 32
"""Nesting levels of objects and lists; the schemas need fewer than 10."""
MAX_INTEGER_DIGITS = 15
"""Any count or size a campaign can use fits in 15 digits; more is a typo or an attack."""

_BARE_CONSTANT = re.compile(r'"(?:\\.|[^"\\])*"|(-?Infinity|NaN)')
_BOMS = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32", b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16"}
_FILE_KINDS = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISSOCK: "a socket",
               stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}


class _Refused(ValueError):
    """A value the parser met that the file may not hold (raised from json's hooks)."""


class _BareConstant(_Refused):
    """NaN or Infinity, which json's hook names without a position: one is searched for."""


class _Object(dict[str, Any]):
    """A JSON object that remembers the keys it held more than once."""

    duplicates: list[str]


def read_json(path: Path) -> Any:
    """The parsed content of a JSON file, or a ConfigError naming the file and a line or JSON path."""
    file = str(path)
    data = _read_bytes(path)
    for bom, encoding in _BOMS.items():
        if data.startswith(bom):
            raise file_error(file, f"is {encoding} text; settings and registries are read as UTF-8: save it as UTF-8")
    data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark, as some editors write
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = _position(data[: error.start].decode("utf-8", errors="replace"))
        raise file_error(file, f"is not UTF-8 text (byte 0x{data[error.start]:02x} at line {line}, column {column}); "
                           "settings and registries are read as UTF-8: save it as UTF-8") from None
    try:
        document = json.loads(text, object_pairs_hook=_object, parse_constant=_constant, parse_int=_integer,
                              parse_float=_float)
    except json.JSONDecodeError as error:
        raise file_error(file, f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
                               f"{syntax_hint(text, error.pos)}") from None
    except _Refused as error:
        where = _where_constant(text) if isinstance(error, _BareConstant) else ""
        raise file_error(file, f"{error}{where}") from None
    except RecursionError:
        raise file_error(file, f"not usable JSON: nested deeper than {MAX_DEPTH} levels") from None
    issues = _structure_issues(document, file)
    if issues:
        raise StructureError(issues, document)
    return document


class StructureError(ConfigError):
    """Keys given twice or nesting too deep; `document` is what was read (the last of repeated keys),
    for a caller that must know what kind of file it is (the older tool's files repeat keys)."""

    def __init__(self, issues: list[ConfigIssue], document: Any):
        super().__init__(issues)
        self.document = document


def syntax_hint(text: str, position: int) -> str:
    """`: <the usual cause>` of a JSON syntax error at `position`, where it is one people often make."""
    rest = text[position:]
    before = text[:position].rstrip()
    if rest[:1] in ("}", "]") and before.endswith(","):
        line, column = _position(before[:-1])
        return (f" (a trailing comma at line {line}, column {column}, before '{rest[0]}': JSON allows none after "
                "the last item)")
    if rest.startswith(("//", "/*", "#")):
        return (" (a comment: JSON has none; write a note as a key starting with '_', or as "
                "\"comment\": \"...\")")
    if rest[:1] == "'":
        return " (single quotes: JSON strings and keys take double quotes)"
    word = re.match(r"[A-Za-z]+", rest)
    if word and word.group() in ("True", "False", "None"):
        return f" ({word.group()} is Python: JSON writes true, false and null)"
    if word:
        return " (a key or a string without its double quotes?)"
    return ""


def _read_bytes(path: Path) -> bytes:
    file = str(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; the type is checked before reading.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise file_error(file, "file not found") from None
    except IsADirectoryError:
        raise file_error(file, "is a folder, not a file: give the path of a JSON file") from None
    except PermissionError:
        raise file_error(file, "cannot read: permission denied; check its permissions (ls -l) or run as "
                           "a user who may read it") from None
    except OSError as error:
        raise file_error(file, f"cannot read: {error.strerror}") from None
    try:
        mode = os.fstat(descriptor).st_mode
        for is_kind, kind in _FILE_KINDS.items():
            if is_kind(mode):
                raise file_error(file, f"is {kind}, not a regular file: give the path of a JSON file")
        chunks, size = [], 0
        while chunk := os.read(descriptor, 1 << 16):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_FILE_BYTES:
                raise file_error(file, f"is larger than {MAX_FILE_BYTES // 2**20} MiB: not a settings file or registry")
        return b"".join(chunks)
    except OSError as error:
        raise file_error(file, f"cannot read: {error.strerror}") from None
    finally:
        os.close(descriptor)


def _position(before: str) -> tuple[int, int]:
    """(line, column), both from 1, of the character just after `before`."""
    line = before.count("\n") + 1
    return line, len(before) - (before.rfind("\n") + 1) + 1


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    result = _Object()
    result.duplicates = []
    for key, value in pairs:
        if key in result and key not in result.duplicates:
            result.duplicates.append(key)
        result[key] = value
    return result


def _constant(name: str) -> Any:
    raise _BareConstant(f"{name} is not a number JSON allows: use a finite number")


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise _Refused(f"the integer {text[:20]}... has {len(text.lstrip('-'))} digits; at most "
                       f"{MAX_INTEGER_DIGITS} are allowed")
    return int(text)


def _float(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise _Refused(f"the number {text[:20]} is too large to be a finite number")
    return number


def _where_constant(text: str) -> str:
    """` at line L, column C` of the first NaN/Infinity outside a string."""
    for match in _BARE_CONSTANT.finditer(text):
        if match.group(1):
            line, column = _position(text[: match.start(1)])
            return f" (at line {line}, column {column})"
    return ""


def _structure_issues(document: Any, file: str) -> list[ConfigIssue]:
    """Duplicate keys (an error, not last-wins) and nesting too deep, each with its JSON path."""
    issues: list[ConfigIssue] = []
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(document, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            issues.append(ConfigIssue(file, path[:MAX_DEPTH], f"nested deeper than {MAX_DEPTH} levels"))
            continue
        if isinstance(value, _Object):
            issues.extend(ConfigIssue(file, (*path, key), f"the key '{key}' appears more than once in this object "
                                                          "(JSON readers disagree on which wins): keep one")
                          for key in value.duplicates)
            stack.extend((item, (*path, key)) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, (*path, index)) for index, item in enumerate(value))
    return sorted(issues, key=str)
