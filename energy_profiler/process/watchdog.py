"""The watchdog: `python -m energy_profiler.process.watchdog LEDGER GRACE_S [LOG]`.

Started by a campaign in a session of its own, it blocks reading its stdin, a pipe whose other end
only the campaign holds. End of file means the campaign is over: it closed the pipe at a clean end,
or the kernel closed it because the campaign died (even by SIGKILL). Either way, every group still
in the ledger is ended (SIGTERM, grace, SIGKILL); after a clean end there is none.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from energy_profiler.process.ledger import (
    LEDGER_FOLDER,
    Ledger,
    TrackedGroup,
    end_recorded_groups,
    remove_ledger,
    restore_machine,
)
from energy_profiler.process.spawn import Campaign


@contextmanager
def tracking(results_root: Path, grace_s: float, log: Path | None = None) -> Iterator[Ledger]:
    """While inside: children are recorded, and a watchdog ends them should this process die."""
    ledger = Ledger(results_root / LEDGER_FOLDER / f"campaign-{os.getpid()}.json")
    ledger._write()
    command = [sys.executable, "-m", "energy_profiler.process.watchdog", str(ledger.path), str(grace_s)]
    watchdog = subprocess.Popen([*command, *([str(log)] if log else [])], stdin=subprocess.PIPE,
                                start_new_session=True, env={**os.environ, "PYTHONPATH": _package_root()})
    Campaign.ledger = ledger
    try:
        yield ledger
    finally:
        Campaign.ledger = None
        assert watchdog.stdin is not None
        watchdog.stdin.close()  # EOF: the watchdog ends whatever is still listed, then exits
        watchdog.wait()
        remove_ledger(ledger.path)


def _package_root() -> str:
    root = str(Path(__file__).resolve().parents[2])
    existing = os.environ.get("PYTHONPATH")
    return f"{root}{os.pathsep}{existing}" if existing else root


def main(argv: list[str]) -> int:
    ledger, grace_s = Path(argv[1]), float(argv[2])
    log = Path(argv[3]) if len(argv) > 3 else None
    for signum in (signal.SIGINT, signal.SIGHUP):  # a closed terminal must not stop the watchdog
        signal.signal(signum, signal.SIG_IGN)
    sys.stdin.buffer.read()
    try:
        document = json.loads(ledger.read_text())
    except (OSError, json.JSONDecodeError):
        return 0
    groups = [TrackedGroup(**group) for group in document["groups"]]
    if not groups and not document.get("governor") and not document.get("knobs"):
        return 0
    ended, notes = end_recorded_groups(groups, grace_s)
    done = ", ".join(f"{group.role} {group.pgid}" for group in ended)
    lines = [f"watchdog: campaign {document['owner']['pid']} ended with {len(groups)} group(s) listed; "
             + (f"ended {done}" if done else "none was left to end"), *notes,
             *restore_machine(document)]
    if log is not None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        with open(log, "a", encoding="utf-8") as file:
            file.writelines(f"{stamp} {line}\n" for line in lines)
    if not notes:
        remove_ledger(ledger)  # all done; otherwise `mutation.py cleanup` finds it
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
