"""Teardown's hard cases on a scripted kernel (test/fake_os.py): each takes milliseconds.

The same code ends real process groups in test_training_process.py and test_lifetime.py; here the
cases real processes cannot be made to show on demand: a leader SIGKILL cannot end, a member we
may not signal, members that appear while the group is being ended, a group gone between listing
and signalling, a group of zombies, and a wait that must not block.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from energy_profiler.planning.placeholders import WorkloadDirs
from energy_profiler.planning.plan import BackgroundRun
from energy_profiler.process import background
from energy_profiler.process.groups import KILL_WAIT_S, end_group
from energy_profiler.process.managed import ManagedGroup, ProcessState
from energy_profiler.process.training import _Child
from test.fake_os import FakeOs, FakeProcess


def test_a_group_that_ends_on_sigterm_is_exited_after_its_handler_ran() -> None:
    kernel = FakeOs()
    leader = kernel.start(our_child=True, exits_after_sigterm_s=1.5)
    teardown = end_group(leader.pid, grace_s=3, reap=lambda: None, os_calls=kernel)
    assert (teardown.signal, teardown.state, teardown.survivors) == ("SIGTERM", ProcessState.EXITED, 0)
    assert 1.5 <= teardown.duration_s < 1.6  # waited for the handler, not the whole grace period
    assert kernel.sent == [(leader.pid, signal.SIGTERM)]


def test_a_handler_slower_than_the_grace_period_is_killed() -> None:
    kernel = FakeOs()
    leader = kernel.start(exits_after_sigterm_s=10)
    teardown = end_group(leader.pid, grace_s=2, os_calls=kernel)
    assert (teardown.signal, teardown.state, teardown.survivors) == ("SIGKILL", ProcessState.KILLED, 0)
    assert 2 <= teardown.duration_s < 2.2
    assert leader.ended_by == signal.SIGKILL


def test_a_leader_that_survives_sigkill_is_reported_and_never_waited_for() -> None:
    kernel = FakeOs()
    leader = kernel.start(our_child=True, ignores_sigterm=True, stuck=True)
    real_start = time.monotonic()
    teardown = end_group(leader.pid, grace_s=5, os_calls=kernel)
    assert (teardown.state, teardown.survivors, teardown.signal) == (ProcessState.UNKNOWN, 1, "SIGKILL")
    assert teardown.duration_s == pytest.approx(5 + KILL_WAIT_S, abs=0.1)  # bounded, on the fake clock
    assert time.monotonic() - real_start < 1

    popen = cast(subprocess.Popen[bytes], SimpleNamespace(pid=leader.pid, returncode=None))
    child = _Child(popen, kernel)  # the training's own wait, on the same leader
    assert child.reap_within(5.0) is None  # gives up after 5 s instead of wait4 blocking forever


def test_a_member_we_may_not_signal_is_a_survivor_not_a_crash() -> None:
    kernel = FakeOs()
    leader = kernel.start(ignores_sigterm=True)
    kernel.start(pgid=leader.pid, foreign=True)  # same group, another user: killpg reaches only ours
    kernel.start(sid=leader.sid, foreign=True)  # a group of its own in the session: killpg is EPERM
    teardown = end_group(leader.pid, grace_s=1, os_calls=kernel)
    assert leader.zombie and leader.ended_by == signal.SIGKILL
    assert (teardown.state, teardown.survivors) == (ProcessState.UNKNOWN, 2)


def test_a_member_forked_by_a_sigterm_trap_is_ended_too() -> None:
    kernel = FakeOs()

    def trap(process: FakeProcess) -> None:  # like a shell trap starting a cleanup in a group of its own
        kernel.start(sid=process.sid, ignores_sigterm=True)

    leader = kernel.start(on_sigterm=trap)
    teardown = end_group(leader.pid, grace_s=1, os_calls=kernel)
    assert (teardown.state, teardown.survivors) == (ProcessState.KILLED, 0)
    assert kernel.alive() == []


def test_a_member_that_appears_right_after_the_sigkill_listing_still_gets_sigkill() -> None:
    kernel = FakeOs()
    leader = kernel.start(ignores_sigterm=True)
    late: list[FakeProcess] = []

    def race() -> None:
        if kernel.clock < 1000 + 1:  # still in the 1 s grace period: wait for the SIGKILL round's listing
            kernel.after_listing = race
            return
        late.append(kernel.start(sid=leader.sid, ignores_sigterm=True))  # a group the listing missed

    kernel.after_listing = race
    teardown = end_group(leader.pid, grace_s=1, os_calls=kernel)
    assert late and late[0].ended_by == signal.SIGKILL  # the race happened, and it was caught
    assert (teardown.state, teardown.survivors) == (ProcessState.KILLED, 0)
    assert kernel.alive() == []


def test_a_group_gone_between_listing_and_signalling_is_no_error() -> None:
    kernel = FakeOs()
    leader = kernel.start()

    def vanish() -> None:
        leader.zombie = leader.reaped = True

    kernel.after_listing = vanish
    teardown = end_group(leader.pid, grace_s=1, os_calls=kernel)  # its killpg meets ESRCH
    assert (teardown.state, teardown.survivors) == (ProcessState.EXITED, 0)


def test_a_group_of_unreaped_zombies_is_not_waited_on_for_the_whole_grace_period() -> None:
    kernel = FakeOs()
    leader = kernel.start()
    leader.zombie = True  # an orphan's zombie: killpg(pgid, 0) still succeeds on it
    teardown = end_group(leader.pid, grace_s=30, os_calls=kernel)
    assert (teardown.signal, teardown.state) == (None, ProcessState.EXITED)
    assert teardown.duration_s < 0.2  # the full scan every 5th poll sees no live member


def test_hurry_cuts_the_grace_period_short() -> None:
    kernel = FakeOs()
    leader = kernel.start(ignores_sigterm=True)
    teardown = end_group(leader.pid, grace_s=30, hurry=lambda: True, os_calls=kernel)
    assert teardown.state == ProcessState.KILLED and teardown.duration_s < 0.1


def test_states_only_move_along_the_diagram() -> None:
    group = ManagedGroup("background")
    with pytest.raises(RuntimeError, match="starting cannot become stopping"):
        group.move(ProcessState.STOPPING)
    group.started(123)
    group.move(ProcessState.STOPPING)
    group.move(ProcessState.KILLED)
    with pytest.raises(RuntimeError, match="killed cannot become running"):
        group.move(ProcessState.RUNNING)


def test_a_background_start_that_fails_part_way_ends_the_loop_that_did_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = [BackgroundRun(index=i, repo="r", model="m", argv=(sys.executable, "-c", "import time; time.sleep(60)"),
                          cwd=str(tmp_path), env=(), hyperparameters=(), restart_delay_s=0, gpu_memory_mib=None)
            for i in (1, 2, 3)]
    started: list[subprocess.Popen[bytes]] = []
    real_start_loop = background.start_loop

    def second_fails(script: Path, trial: str, run_as: object = None) -> subprocess.Popen[bytes]:
        if started:
            raise OSError(24, "Too many open files")
        started.append(real_start_loop(script, trial))
        return started[-1]

    monkeypatch.setattr(background, "start_loop", second_fails)
    loops = background.Backgrounds(runs, WorkloadDirs(tmp_path, tmp_path, tmp_path / "attempt"), "t")
    with pytest.raises(OSError, match="Too many open files"):
        loops.start(lambda: False)
    # Slack for a loaded machine: SIGTERM ends the loop in well under a second.
    results = loops.stop(grace_s=5, hurry=lambda: False, run_dir=tmp_path)
    assert [result.index for result in results] == [1]
    assert results[0].survivors == 0 and started[0].poll() is not None
    # The loop's trap ended its run on SIGTERM; the two never started have nothing to end.
    assert [group.state for group in loops.groups] == [ProcessState.EXITED] * 3
    assert results[0].state == "exited" and results[0].signal == "SIGTERM"
