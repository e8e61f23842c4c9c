"""The watchdog: `python -m energy_profiler.process.watchdog LEDGER GRACE_S [LOG]`.

Started by a campaign in a session of its own, it blocks reading its stdin, a pipe whose other end
only the campaign holds. End of file means the campaign is over: it closed the pipe at a clean end,
or the kernel closed it because the campaign died (even by SIGKILL). Either way, every group still
in the ledger is ended (SIGTERM, grace, SIGKILL); after a clean end there is none.
"""

from __future__ import annotations

import json
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from energy_profiler.process.lifetime import TrackedGroup, end_recorded_groups, remove_ledger, restore_governor


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
    if not groups and not document.get("governor"):
        return 0
    ended, notes = end_recorded_groups(groups, grace_s)
    done = ", ".join(f"{group.role} {group.pgid}" for group in ended)
    lines = [f"watchdog: campaign {document['owner']['pid']} ended with {len(groups)} group(s) listed; "
             + (f"ended {done}" if done else "none was left to end"), *notes,
             *restore_governor(document.get("governor"))]
    if log is not None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        with open(log, "a", encoding="utf-8") as file:
            file.writelines(f"{stamp} {line}\n" for line in lines)
    if not notes:
        remove_ledger(ledger)  # all done; otherwise `mutation.py cleanup` finds it
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
