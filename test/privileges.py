"""Running a test's function without root's power over files, where the suite runs as root.

Root reads any file whatever its mode, so a test of what a user without that right sees (a
root-only RAPL counter, an unreadable settings file) runs its function in a forked child that has
given the right up: as `nobody` where nobody can run this interpreter, else as root without the
capabilities that bypass file modes (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH).
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2
LINUX_CAPABILITY_VERSION_3 = 0x20080522


def drop_file_permission_override() -> None:
    """Make this (root) process subject to file modes: clear CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH."""
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    libc = ctypes.CDLL(None, use_errno=True)
    header, data = Header(LINUX_CAPABILITY_VERSION_3, 0), (Data * 2)()
    assert libc.capget(ctypes.byref(header), data) == 0, os.strerror(ctypes.get_errno())
    mask = ~((1 << CAP_DAC_OVERRIDE) | (1 << CAP_DAC_READ_SEARCH)) & 0xFFFFFFFF
    data[0].effective &= mask
    data[0].permitted &= mask
    assert libc.capset(ctypes.byref(header), data) == 0, os.strerror(ctypes.get_errno())


def nobody_can_run_this_interpreter() -> bool:
    return bool(in_child(lambda: os.access(sys.executable, os.X_OK) and os.access(dependencies_folder(), os.R_OK),
                         as_nobody=True))


def dependencies_folder() -> str:
    """A folder the interpreter imports this project's dependencies from."""
    return str(Path(pytest.__file__).parent.parent)


def in_child(function: Callable[[], Any], *, as_nobody: bool) -> Any:
    """`function()` in a forked child without root's file access; its JSON-able result comes back.

    The child drops to `nobody` where nobody can run this interpreter (the campaign starts
    helpers with it); where it cannot (an interpreter under /root), the child stays root but
    loses the capabilities that let root read any file, so file modes bind it as they bind a user.
    """
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        answer: dict[str, Any]
        try:
            if as_nobody:
                nobody = pwd.getpwnam("nobody")
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
            else:
                drop_file_permission_override()
            answer = {"result": function()}
        except BaseException:  # the parent shows it: a child's traceback would be lost
            answer = {"error": traceback.format_exc()}
        try:
            os.write(write_end, json.dumps(answer).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        answer = json.loads(pipe.read())
    os.waitpid(child, 0)
    assert "error" not in answer, answer["error"]
    return answer["result"]
