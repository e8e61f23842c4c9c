"""Running under sudo: results belong to the invoking user, and trainings run as that user.

RAPL counters and perf need root, so users start campaigns with sudo. But a training has no reason
to run as root (it would write root-owned checkpoints and caches into the user's repository), and
results files the user cannot edit or delete are a nuisance. So, when SUDO_UID/SUDO_GID are set
and we are root: trainings run as the invoking user, with that user's HOME, USER, LOGNAME and
groups (GPU device groups included), and every file written under the results folder is given to
that user as it is written. The monitors, the watchdog and the governor keep root.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class InvokingUser:
    uid: int
    gid: int
    name: str
    home: str

    def popen_options(self) -> dict[str, Any]:
        """subprocess.Popen arguments that start a process as this user, with all its groups."""
        return {"user": self.uid, "group": self.gid, "extra_groups": os.getgrouplist(self.name, self.gid)}

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        return {**env, "HOME": self.home, "USER": self.name, "LOGNAME": self.name}


def invoking_user(environ: Mapping[str, str] = os.environ) -> InvokingUser | None:
    """The user who ran `sudo mutation.py ...`, or None when not root or not started by sudo."""
    if os.geteuid() != 0 or not environ.get("SUDO_UID") or not environ.get("SUDO_GID"):
        return None
    uid, gid = int(environ["SUDO_UID"]), int(environ["SUDO_GID"])
    if uid == 0:
        return None
    try:
        entry = pwd.getpwuid(uid)
        name, home = entry.pw_name, entry.pw_dir
    except KeyError:
        name, home = environ.get("SUDO_USER", str(uid)), "/"
    return InvokingUser(uid=uid, gid=gid, name=name, home=home)
