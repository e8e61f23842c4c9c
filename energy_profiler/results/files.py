"""Writing files so that a crash at any moment leaves either the old content or the new, whole."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


class _Owner:
    """Who files written under the results folder belong to (None: whoever writes them).

    Set once by the command line when running under sudo (see system/sudo.py).
    """

    uid: int | None = None
    gid: int | None = None


def give_files_to(uid: int | None, gid: int | None) -> None:
    _Owner.uid, _Owner.gid = uid, gid


def own(path: Path) -> None:
    """Give `path` to the results' owner, if there is one."""
    if _Owner.uid is not None and _Owner.gid is not None:
        os.chown(path, _Owner.uid, _Owner.gid)


def make_dirs(path: Path) -> None:
    """mkdir -p, each folder it creates owned like every other file."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        own(folder)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync it, then rename it over `path`."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        own(Path(temporary))  # owned before it appears under its name
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def atomic_write_json(path: Path, document: Any) -> None:
    atomic_write_bytes(path, (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode())


def _fsync_directory(folder: Path) -> None:
    # The rename itself is durable only once the directory entry is on disk.
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
