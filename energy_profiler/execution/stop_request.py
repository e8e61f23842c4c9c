"""`stop RUN_DIR` from another shell: a request file in the run folder that the campaign watches for.

A file, not a signal, because a campaign started with sudo runs as root and its user cannot signal
it, yet may stop it. Who may is decided twice: the run folder is writable only by the user who
started the campaign (under sudo, every file of it is theirs) and root, and the campaign acts only
on a request file that one of those owns (a group-writable folder lets no one else in). The file's
owner, not its content, says who asked. The campaign removes the file as it acts on it; a file
left by a campaign that died is removed by the next session of the folder before it watches.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from pathlib import Path

from energy_profiler.execution.runtime import StopRequest

STOP_REQUEST = "stop_request.json"
GRACEFUL, NOW = "graceful", "now"
POLL_S = 0.2
MAX_REQUEST_BYTES = 4096


def ask_to_stop(run_dir: Path, *, now: bool) -> None:
    """Leave the request for the campaign (atomically: it reads the whole file or none).

    Raises PermissionError where this user may not write into the run folder.
    """
    document = {"mode": NOW if now else GRACEFUL, "requested_utc": datetime.now(UTC).isoformat(),
                "pid": os.getpid()}
    descriptor, temporary = tempfile.mkstemp(prefix=f".{STOP_REQUEST}.", dir=run_dir)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), 0o644)
            json.dump(document, file)
        Path(temporary).replace(run_dir / STOP_REQUEST)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


class StopWatcher:
    """A thread that turns a request file into the campaign's stop: graceful, or now (as Ctrl-C)."""

    def __init__(self, run_dir: Path, stop: StopRequest, *, allowed_uids: Collection[int],
                 on_request: Callable[[str, str], None], say: Callable[[str], None]) -> None:
        self.path = run_dir / STOP_REQUEST
        self.stop = stop
        self.allowed_uids = set(allowed_uids)
        self.on_request = on_request
        self.say = say
        self._closed = threading.Event()
        self.path.unlink(missing_ok=True)  # a request to an earlier session of this folder is not for this one
        self._thread = threading.Thread(target=self._watch, name="stop-request", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._closed.wait(POLL_S):
            try:
                self.check()
            except OSError:
                continue  # a request half-way through its rename, or a folder gone: looked at again

    def check(self) -> None:
        """Act on a request file if there is one."""
        try:
            descriptor = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        except OSError:  # a symbolic link, or no right to read it: not a request
            self.path.unlink(missing_ok=True)
            return
        try:
            facts = os.fstat(descriptor)
            content = os.read(descriptor, MAX_REQUEST_BYTES) if stat.S_ISREG(facts.st_mode) else b""
        finally:
            os.close(descriptor)
        self.path.unlink(missing_ok=True)
        who = user_name(facts.st_uid)
        if facts.st_uid not in self.allowed_uids:
            self.say(f"warning: a stop request from {who} was ignored: only the user who started the campaign "
                     "or root may stop it")
            return
        try:
            mode = json.loads(content.decode("utf-8")).get("mode")
        except (UnicodeDecodeError, ValueError, AttributeError):
            mode = None
        if mode not in (GRACEFUL, NOW):
            self.say(f"warning: an unreadable stop request from {who} was ignored")
            return
        words = f"`stop{' --now' if mode == NOW else ''}` from {who}"
        if mode == NOW:
            self.stop.request(signal.SIGINT, origin=words)  # as Ctrl-C: the trial is recorded interrupted
        else:
            self.stop.request_graceful(words)
        self.on_request(mode, words)
