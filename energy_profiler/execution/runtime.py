"""What a running campaign shares: the stop request set by signal handlers, and where it speaks."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from energy_profiler.execution.journal import Events
from energy_profiler.model.status import TrialStatus
from energy_profiler.process.training import ByteSink

POLL_S = 0.1


@dataclass
class StopRequest:
    """Set by the caller's signal handlers; read by the session. A second request means hurry.

    The handlers only append; whoever reads the request next (the session's loop, a training's
    wait, a teardown) says what each new signal does, through `listen`'s `say`: from the main
    loop or a teardown thread, never from the handler.
    """

    signals: list[int] = field(default_factory=list)
    received_utc: list[datetime] = field(default_factory=list)
    origins: list[str | None] = field(default_factory=list)
    """Who sent each signal where it came another way than a signal (`stop --now` from another shell)."""
    graceful: str | None = None
    """Set by `stop RUN_DIR` from another shell: who asked; the trial in progress finishes, no other starts."""
    _say: Callable[[str], None] | None = None
    _noted: Callable[[str], None] | None = None
    _grace_s: float = 0.0
    _announced: int = 0
    _graceful_announced: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def request(self, signum: int, origin: str | None = None) -> None:
        """Stop now, as `signum` does (`origin`: who asked, where it was not a signal)."""
        self.origins.append(origin)
        self.received_utc.append(datetime.now(UTC))
        self.signals.append(signum)  # last: a reader that sees the signal finds its origin and time

    def request_graceful(self, origin: str) -> None:
        """Stop after the trial in progress (`origin`: who asked)."""
        self.graceful = self.graceful or origin

    @property
    def winding_down(self) -> bool:
        """No other trial is to start: a stop, or a graceful stop, was asked."""
        return self.requested or self.graceful is not None

    def listen(self, say: Callable[[str], None], grace_s: float,
               noted: Callable[[str], None] | None = None) -> None:
        """Say (console and session.log) what each signal does, the first time it is read; `noted`
        is told the name of each real signal then (not from the handler: it may write files)."""
        self._say, self._grace_s, self._noted = say, grace_s, noted

    @property
    def requested(self) -> bool:
        self._announce()
        return bool(self.signals)

    @property
    def hurry(self) -> bool:
        self._announce()
        return len(self.signals) >= 2

    @property
    def first_signal(self) -> int | None:
        return self.signals[0] if self.signals else None

    @property
    def first_cause(self) -> str | None:
        """What stopped the campaign, in words: `SIGTERM`, or `` `stop --now` from alice ``."""
        if not self.signals:
            return None
        return self.origins[0] or signal_name(self.signals[0])

    def _announce(self) -> None:
        if self._say is None:
            return
        if self.graceful is not None and not self._graceful_announced:
            with self._lock:
                if not self._graceful_announced:
                    self._graceful_announced = True
                    self._say(f"{self.graceful}: the trial in progress finishes and is recorded, no other "
                              "starts (Ctrl-C or `stop --now` ends it now)")
        if self._announced >= len(self.signals):
            return
        with self._lock:
            while self._announced < len(self.signals):
                number = self._announced
                self._announced += 1
                name = self.origins[number] or signal_name(self.signals[number])
                if self._noted is not None and self.origins[number] is None:
                    self._noted(name)
                at = self.received_utc[number].astimezone().strftime("%H:%M:%S")
                if number == 0:
                    again = "Ctrl-C or `stop --now` again" if self.origins[number] else "press Ctrl-C again"
                    message = (f"{name} received at {at}: stopping. A running training is sent SIGTERM and given up "
                               f"to {self._grace_s:g} s (grace_s) before SIGKILL, then recorded as interrupted; "
                               f"{again} to end it now")
                elif number == 1:
                    message = f"{name} received at {at}: a second signal, so no more waiting: SIGKILL now"
                else:
                    message = f"{name} received at {at}: already stopping"
                self._say(message)


def clock(seconds: float | None) -> str:
    """`1:02:03` or `2:03`; `-` for an unknown time."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class WallClockEta:
    """The time left, from the wall time this session has taken per trial so far, plus cool-downs.

    Wall time, not training time: warm-ups, idle and background baselines and monitor start-up are
    part of each trial's cost, and a mean of training durations alone came out 2-6x short. The
    cool-down (`cooldown_s`, before each trial but the first) is counted apart, as what it is: one
    per trial left, so that a campaign cooling down 60 s between 5 s trainings is not shown as
    nearly done, nor the time left as 0:00 while it cools down. Trials recorded before a resume are
    not counted: their time is not this session's.

    With `predicted_s` (each remaining trial's forecast training time, None where there is none) a
    trial left counts its own forecast plus the time this session has spent per trial beyond its
    trials' forecasts, instead of the session's mean: a campaign whose slow trials come last is not
    shown as nearly done. Before a trial has ended, the forecasts alone, when every trial has one.
    """

    def __init__(self, trials_left: int, started_s: float, cooldown_s: float = 0.0,
                 predicted_s: Sequence[float | None] = ()):
        self.trials_left = trials_left
        self.started_s = started_s
        self.cooldown_s = cooldown_s
        self.finished = 0
        self.last_end_s = started_s
        self.predicted_s = list(predicted_s)
        """The forecasts of the trials left, in order (empty: none given)."""
        self.predicted_done_s: list[float] = []
        """The forecasts of the trials that ended, where they had one."""

    def trial_ended(self, now_s: float) -> None:
        """A trial has its record (called before its cool-down)."""
        self.finished += 1
        self.trials_left = max(0, self.trials_left - 1)
        self.last_end_s = now_s
        if self.predicted_s and (predicted := self.predicted_s.pop(0)) is not None:
            self.predicted_done_s.append(predicted)

    def remaining_s(self, now_s: float) -> float | None:
        """Seconds left at `now_s`; None before the first trial of this session has ended (unless every
        trial has a forecast)."""
        forecasts = self.predicted_s[: self.trials_left]
        forecast_all = len(forecasts) == self.trials_left and None not in forecasts
        if not self.finished:
            if not forecast_all or not self.trials_left:
                return None
            total_s = sum(f for f in forecasts if f is not None) + self.cooldown_s * (self.trials_left - 1)
            return max(0.0, total_s - (now_s - self.started_s))
        cooled_s = self.cooldown_s * (self.finished - 1)  # the cool-downs between the trials that ended
        per_trial_s = max(0.0, self.last_end_s - self.started_s - cooled_s) / self.finished
        if forecasts and self.predicted_done_s and len(self.predicted_done_s) == self.finished:
            beyond_s = max(0.0, per_trial_s - sum(self.predicted_done_s) / self.finished)
            left_s = sum(beyond_s + f if f is not None else per_trial_s for f in forecasts)
            left_s += per_trial_s * (self.trials_left - len(forecasts))
        else:
            left_s = per_trial_s * self.trials_left
        return max(0.0, left_s + self.cooldown_s * self.trials_left - (now_s - self.last_end_s))


class Progress:
    """What a progress display is told as a campaign goes; this one shows nothing (plain output)."""

    def campaign_started(self, total: int, already_done: int) -> None:
        """The plan has `total` trials, `already_done` of them recorded before (a resume)."""

    def attempt_started(self, label: str, log: Path, power_w: Callable[[], dict[str, float | None]]) -> None:
        """A training started: what it is, its log, and how to read live power (W by device)."""

    def backgrounds_running(self, described: Callable[[], list[str]]) -> None:
        """Background loops run beside the attempt; `described()` says what each has done so far."""

    def trial_finished(self, status: TrialStatus, duration_s: float, eta: WallClockEta) -> None:
        """A trial has its record; `eta` says how long the rest will take."""

    def cooldown(self, seconds: float) -> None:
        """A pause between trials begins."""

    def close(self) -> None:
        """The campaign is over."""


@dataclass(frozen=True)
class Output:
    """Where the session speaks: tool messages, verbose details, the trainings' own output, progress."""

    say: Callable[[str], None]
    detail: Callable[[str], None]
    training: ByteSink | None
    progress: Progress = field(default_factory=Progress)
    events: Events = field(default_factory=Events)
    """events.jsonl and state.json (a campaign with a run folder of its own; else silent)."""


def sleep_unless_stopped(seconds: float, stop: StopRequest, *, or_winding_down: bool = False) -> None:
    """Sleep `seconds`, less if a stop is asked (`or_winding_down`: a graceful stop too, as in a cool-down)."""
    deadline = time.monotonic() + seconds
    while not (stop.winding_down if or_winding_down else stop.requested) and time.monotonic() < deadline:
        time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))


def signal_name(number: int) -> str:
    """`SIGTERM` for 15; a number Python has no name for (a real-time signal: 34-64) as `signal 36`."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
