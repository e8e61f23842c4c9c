"""Nothing mutation.py starts outlives it: SIGKILL mid-trial, the parent-death signal, cleanup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from energy_profiler.process.ledger import LEDGER_FOLDER, start_time
from energy_profiler.process.spawn import STOP_SIGNALS, child_setup
from test.conftest import PROJECT_ROOT, fake_repo, invoke, running, wait_for

FAKE_SMI = str(Path(__file__).parent / "fixtures" / "fake_nvidia_smi.py")


def descendants_running(pid: int, text: str) -> list[int]:
    """The processes below `pid` whose command line holds `text` (those that ended meanwhile left out)."""
    found = []
    for process in psutil.Process(pid).children(recursive=True):
        try:
            if text in " ".join(process.cmdline()) and running(process.pid):
                found.append(process.pid)
        except psutil.Error:  # gone, or a zombie, since the list was made
            continue
    return found


def processes_matching(text: str) -> list[int]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if text in " ".join(process.info["cmdline"] or []) and running(process.pid):
            found.append(process.pid)
    return found


def test_sigkill_of_mutation_py_mid_trial_leaves_nothing_running(
        fake_registry: Callable[..., Path], write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    registry = fake_registry(fake=fake_repo("hang-with-child", required_args=[
        "--behaviour", "hang-with-child", "--pid-file", str(pid_file)]))
    settings = write_json("s.json", {"experiment_name": "kill", "grace_s": 1, "energy": {"gpu": "nvidia_smi"},
                                     "experiments": [{"mode": "default", "repo": "fake", "model": "tiny"}]})
    results = tmp_path / "results"
    tool = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "mutation.py"), "--registry", str(registry),
                             "--results-dir", str(results), "run", str(settings)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "MUTATION_NVIDIA_SMI": FAKE_SMI})
    try:
        assert wait_for(lambda: pid_file.exists() and len(pid_file.read_text().split()) == 2, 20)
        training, grandchild = (int(pid) for pid in pid_file.read_text().split())
        ledger = next((results / LEDGER_FOLDER).glob("campaign-*.json"))
        roles = {group["role"] for group in json.loads(ledger.read_text())["groups"]}
        assert roles == {"training", "nvidia-smi"}  # every group this campaign runs is on record
        helpers = descendants_running(tool.pid, f"{FAKE_SMI} --query-gpu")  # this campaign's, not another test's
        assert helpers and running(training) and running(grandchild)
    finally:
        tool.kill()  # SIGKILL: mutation.py gets no chance to clean up itself
        tool.wait()
    everything = [training, grandchild, *helpers]
    assert wait_for(lambda: not any(running(pid) for pid in everything), 2.0), \
        [pid for pid in everything if running(pid)]
    # The grandchild got no parent-death signal (its parent is the training): the watchdog ended it.
    session_log = next(results.glob("run_*")).joinpath("session.log").read_text()
    assert wait_for(lambda: "watchdog: campaign" in next(results.glob("run_*")).joinpath("session.log").read_text(),
                    2.0), session_log
    assert wait_for(lambda: not (results / LEDGER_FOLDER).exists(), 2.0)


def test_a_spawned_child_gets_sigterm_when_its_parent_is_killed(tmp_path: Path) -> None:
    code = ("import sys, time; from energy_profiler.process.spawn import spawn; "
            "p = spawn(['sleep', '60'], role='test'); print(p.pid, flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        assert running(child) and os.getsid(child) == child  # its own session
    finally:
        parent.kill()
        parent.wait()
    assert wait_for(lambda: not running(child), 1.0)  # no watchdog here: the kernel's parent-death signal


def write_ledger(results: Path, owner_pid: int, owner_start: float | None, groups: list[dict[str, Any]]) -> Path:
    folder = results / LEDGER_FOLDER
    folder.mkdir(parents=True)
    path = folder / f"campaign-{owner_pid}.json"
    path.write_text(json.dumps({"owner": {"pid": owner_pid, "start_time": owner_start}, "groups": groups}))
    return path


def test_cleanup_ends_the_groups_of_a_dead_campaign_and_spares_reused_pids(tmp_path: Path) -> None:
    orphan = subprocess.Popen(["sleep", "60"], start_new_session=True)
    reused = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        results = tmp_path / "results"
        ledger = write_ledger(results, owner_pid=2**22 - 3, owner_start=1.0, groups=[
            {"pgid": orphan.pid, "leader_start_time": start_time(orphan.pid), "role": "training", "trial": "001_x"},
            # Recorded with another start time: that pid now belongs to another program.
            {"pgid": reused.pid, "leader_start_time": 12345.0, "role": "training", "trial": "002_x"},
        ])
        result = invoke("--results-dir", results, "cleanup", "--grace-s", "1")
        assert result.exit_code == 0
        assert f"ended training group {orphan.pid} of trial 001_x left by dead campaign {2**22 - 3}" in result.stdout
        assert f"group {reused.pid} (training) now belongs to another process: left alone" in result.stdout
        assert orphan.wait(timeout=2) == -signal.SIGTERM
        assert reused.poll() is None
        assert not ledger.exists()
        assert invoke("--results-dir", results, "cleanup").stdout == f"nothing to clean up in {results}\n"
    finally:
        for process in (orphan, reused):
            process.kill()
            process.wait()


def test_cleanup_leaves_a_running_campaign_alone(tmp_path: Path) -> None:
    busy = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        results = tmp_path / "results"
        ledger = write_ledger(results, owner_pid=os.getpid(), owner_start=start_time(os.getpid()), groups=[
            {"pgid": busy.pid, "leader_start_time": start_time(busy.pid), "role": "training", "trial": "001_x"}])
        assert "nothing to clean up" in invoke("--results-dir", results, "cleanup").stdout
        assert busy.poll() is None and ledger.exists()
    finally:
        busy.kill()
        busy.wait()


def test_a_clean_campaign_leaves_no_ledger_and_no_watchdog(
        fake_registry: Callable[..., Path], write_json: Callable[[str, Any], Path], tmp_path: Path) -> None:
    settings = write_json("s.json", {"experiment_name": "clean", "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny"}]})
    results = tmp_path / "results"
    result = invoke("--registry", fake_registry(), "--results-dir", results, "-q", "run", settings)
    assert result.exit_code == 0
    left = {path.name for path in results.iterdir()}
    assert left == {next(results.glob("run_*")).name, "summary_all.csv", ".summary_all.csv.lock"}  # no .running
    assert processes_matching(f"energy_profiler.process.watchdog {results}") == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_the_parent_death_signal_is_set_in_the_child() -> None:
    code = ("import ctypes, signal; v = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(v), 0, 0, 0); "
            "print(v.value)")  # PR_GET_PDEATHSIG
    from energy_profiler.process.spawn import spawn

    child = spawn([sys.executable, "-c", code], role="test", stdout=subprocess.PIPE, text=True)
    output, _ = child.communicate(timeout=10)
    assert int(output) == signal.SIGTERM


def test_a_stop_signal_in_the_fork_to_exec_window_ends_the_child_before_it_execs(tmp_path: Path) -> None:
    # The window made deterministic: a child that still has a Python SIGTERM handler (as every
    # child of mutation.py has until exec) gets SIGTERM while spawn() keeps the signal blocked,
    # then runs the preexec function. The handler used to swallow it and the child went on.
    marker = tmp_path / "exec-reached"
    setup = child_setup()
    pid = os.fork()
    if pid == 0:
        try:
            signal.signal(signal.SIGTERM, lambda *_: None)  # the campaign's handler, inherited
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # as spawn() forks
            os.kill(os.getpid(), signal.SIGTERM)  # pending: a teardown or the parent's death
            setup()
            marker.touch()  # where exec would run the training
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
    assert not marker.exists()


def test_a_spawned_child_starts_with_no_signal_blocked() -> None:
    from energy_profiler.process.spawn import spawn

    child = spawn(["grep", "^SigBlk", "/proc/self/status"], role="test", stdout=subprocess.PIPE, text=True)
    output, _ = child.communicate(timeout=10)
    assert int(output.split()[1], 16) == 0  # the block spawn() holds across the fork is not inherited


def test_the_ledger_keeps_every_change_when_threads_remove_groups_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Backgrounds are ended in parallel threads, each removing its group. Unlocked, a thread that
    # serialised the groups before another's removal could write last: stale entries. A disk that
    # is slower for the older content (held up to 10 ms after it is taken) makes that the usual order.
    from energy_profiler.fs import atomic_write_json as real_write
    from energy_profiler.process import ledger as ledger_module

    def slow_write(path: Path, document: Any) -> None:
        time.sleep(0.010 * len(document["groups"]) / 30)
        real_write(path, document)

    monkeypatch.setattr(ledger_module, "atomic_write_json", slow_write)
    ledger = ledger_module.Ledger(tmp_path / "campaign.json")
    pids = list(range(100_000, 100_030))
    for pid in pids:
        ledger.add(pid, "background", "t")
    threads = [threading.Thread(target=ledger.remove, args=(pid,)) for pid in pids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert json.loads(ledger.path.read_text())["groups"] == []
