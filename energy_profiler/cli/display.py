"""How a campaign looks: a live panel in a terminal, plain timestamped lines anywhere else.

In a terminal the panel shows the campaign bar (done/total, elapsed, an ETA from the wall time
measured so far), the current training (what it is, how long it has run, live power where a
monitor samples it), the cooldown countdown, and the tail of the training's log; the tool's own
messages scroll above it. Under nohup, in a pipe or a file there is no panel: the tool's lines get
a timestamp, and the training's output is copied with escape codes removed and carriage returns
(progress bars) turned into new lines, so the file reads cleanly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from energy_profiler.execution.runtime import Progress, WallClockEta, clock
from energy_profiler.metrics import ESCAPES, TEXT_ESCAPES
from energy_profiler.model.status import TrialStatus

TAIL_LINES = 8
TAIL_BYTES = 8192


class PlainStream:
    """A byte stream for files and pipes: no escape codes, no carriage returns."""

    def __init__(self, target: BinaryIO):
        self.target = target

    def write(self, data: bytes) -> int:
        cleaned = ESCAPES.sub(b"", data).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        self.target.write(cleaned)
        return len(data)

    def flush(self) -> None:
        self.target.flush()


def timestamped(say: Callable[[str], None]) -> Callable[[str], None]:
    def say_with_time(message: str) -> None:
        say(f"{datetime.now():%Y-%m-%d %H:%M:%S} {message}")

    return say_with_time


duration = clock


def log_tail(path: Path | None, lines: int = TAIL_LINES) -> str:
    """The last lines of a log as a terminal would show them (a `\\r` rewrites its line)."""
    if path is None or not path.exists():
        return ""
    with open(path, "rb") as log:
        log.seek(0, 2)
        log.seek(max(0, log.tell() - TAIL_BYTES))
        text = log.read().decode("utf-8", "replace")
    # Split on newlines only: splitlines() would also split on the \r that rewrites a line.
    shown = [TEXT_ESCAPES.sub("", line.rstrip("\r").rsplit("\r", 1)[-1]) for line in text.split("\n")]
    while shown and not shown[-1]:
        shown.pop()
    return "\n".join(shown[-lines:])


class LiveProgress(Progress):
    """The live panel (rich), redrawn twice a second while the campaign runs."""

    def __init__(self, console: Console):
        self.console = console
        self.total = self.done = 0
        self.eta: WallClockEta | None = None
        self.started = time.monotonic()
        self.label = "starting"
        self.log: Path | None = None
        self.power: Callable[[], dict[str, float | None]] = dict
        self.attempt_started_at: float | None = None
        self.cooldown_until: float | None = None
        self.backgrounds: Callable[[], list[str]] | None = None
        self.running = False
        # Last: Live renders once as it is made, and render() needs every field above.
        self.live = Live(console=console, refresh_per_second=2, transient=True, get_renderable=self.render)

    def say(self, message: str) -> None:
        self.console.print(Text(message))  # above the panel while it is live

    def campaign_started(self, total: int, already_done: int) -> None:
        self.total, self.done = total, already_done
        self.started = time.monotonic()
        self.live.start()
        self.running = True

    def attempt_started(self, label: str, log: Path, power_w: Callable[[], dict[str, float | None]]) -> None:
        self.label, self.log, self.power = label, log, power_w
        self.attempt_started_at = time.monotonic()
        self.cooldown_until = None
        self.backgrounds = None

    def backgrounds_running(self, described: Callable[[], list[str]]) -> None:
        self.backgrounds = described

    def trial_finished(self, status: TrialStatus, duration_s: float, eta: WallClockEta) -> None:
        self.done += 1
        self.eta = eta
        self.attempt_started_at = None
        self.backgrounds = None

    def cooldown(self, seconds: float) -> None:
        self.cooldown_until = time.monotonic() + seconds

    def close(self) -> None:
        if self.running:
            self.live.stop()
            self.running = False

    def _background_lines(self) -> list[str]:
        """What the background loops have done, read from their files; nothing if they cannot be read
        (the panel must never stop a campaign)."""
        try:
            return self.backgrounds() if self.backgrounds is not None else []
        except (OSError, ValueError, KeyError):
            return []

    def render(self) -> RenderableType:
        now = time.monotonic()
        eta = self.eta.remaining_s(now) if self.eta is not None else None
        head = Table.grid(padding=(0, 1))
        head.add_row(ProgressBar(total=max(self.total, 1), completed=self.done, width=24),
                     Text(f"{self.done}/{self.total} trials  elapsed {duration(now - self.started)}  "
                          f"ETA {duration(eta)}"))
        parts: list[RenderableType] = [head]
        if self.cooldown_until is not None and self.cooldown_until > now:
            parts.append(Text(f"cooling down: {self.cooldown_until - now:.0f} s"))
        elif self.attempt_started_at is not None:
            power = self.power()
            shown = "  ".join(f"{device} {watts:.0f} W" for device, watts in power.items() if watts is not None)
            parts.append(Text(f"now: {self.label}  {duration(now - self.attempt_started_at)}"
                              + (f"  power: {shown}" if shown else "")))
            parts += [Text(line) for line in self._background_lines()]
            parts.append(Panel(Text(log_tail(self.log)), title=self.log.name if self.log else "log",
                               title_align="left", height=TAIL_LINES + 2))
        return Group(*parts)
