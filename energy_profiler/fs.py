"""Writing files so that a crash at any moment leaves either the old content or the new, whole."""

from __future__ import annotations

import contextlib
import errno
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


NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)
"""Errors that mean the results cannot be written here at all (full, over quota, read-only)."""


def _named(error: OSError, path: Path) -> OSError:
    """The same error with the path it concerns, so the one line the user reads can name it."""
    if error.filename is not None:
        return error
    return OSError(error.errno, error.strerror, str(path))


def umask() -> int:
    """This process's umask, read without changing it (Linux 4.7+ shows it in /proc/self/status);
    elsewhere set and put back at once, the only way POSIX offers."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write to a temporary file beside `path`, fsync it, then rename it over `path`.

    `durable=False` leaves the fsyncs out: a reader still sees the old content or the new, whole, but
    a power cut may lose the change (for a status file rewritten often, not for a record).
    """
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as error:
        raise _named(error, path) from error
    try:
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), 0o666 & ~umask())  # mkstemp makes 0600: colleagues could not read records
            file.write(data)
            file.flush()
            if durable:
                os.fsync(file.fileno())
        own(Path(temporary))  # owned before it appears under its name
        Path(temporary).replace(path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise _named(error, path) from error
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_directory(path.parent)


def append_whole(path: Path, data: bytes) -> None:
    """Append `data` with one write and fsync; if the disk refuses part of it, cut it back off.

    A full disk can take the first bytes of a row and refuse the rest: the table would end in half a
    row. The file is truncated to its length before the write, so rows stay whole.
    """
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        before = os.fstat(descriptor).st_size
        try:
            written = 0
            while written < len(data):
                written += os.write(descriptor, data[written:])
            os.fsync(descriptor)
        except OSError as error:
            with contextlib.suppress(OSError):
                os.ftruncate(descriptor, before)
            raise _named(error, path) from error
    finally:
        os.close(descriptor)


def atomic_write_json(path: Path, document: Any, *, durable: bool = True) -> None:
    atomic_write_bytes(path, (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode(), durable=durable)


def _fsync_directory(folder: Path) -> None:
    # The rename itself is durable only once the directory entry is on disk.
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
