"""Parallel mode with real processes: background loops, their teardown, and nothing left behind."""

from __future__ import annotations

import csv
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from energy_profiler.process.background import script_text
from test.conftest import PROJECT_ROOT, fake_repo, invoke, only_run_dir, running, wait_for

Registry = Callable[..., Path]
WriteJson = Callable[[str, Any], Path]


def busy(seconds: float) -> dict[str, Any]:
    return fake_repo("busy", required_args=["--behaviour", "busy", "--seconds", str(seconds)])


def background_repo(behaviour: str, *extra: str) -> dict[str, Any]:
    return fake_repo(behaviour, required_args=["--behaviour", behaviour, *extra])


def parallel_settings(write_json: WriteJson, background: Any = None, **extra: Any) -> Path:
    experiment = {"mode": "parallel", "foreground": {"repo": "fg", "model": "tiny"},
                  "background": background or {"repo": "bg", "model": "tiny"}, **extra.pop("experiment", {})}
    return write_json("parallel.json", {"experiment_name": "par", "grace_s": 1, **extra, "experiments": [experiment]})


def run(registry: Path, settings: Path, results: Path,
        *options: str) -> tuple[Any, Path, dict[str, str], dict[str, Any]]:
    result = invoke("--registry", registry, "--results-dir", results, "-q", "run", settings, *options)
    run_dir = only_run_dir(results)
    with open(run_dir / "summary.csv", newline="") as table:
        row = next(csv.DictReader(table))
    record = json.loads((run_dir / row["trial"] / "experiment.json").read_text())
    return result, run_dir, row, record


def test_a_background_whose_training_spawns_grandchildren_is_ended_whole(
        fake_registry: Registry, write_json: WriteJson, tmp_path: Path) -> None:
    pids = tmp_path / "bg_pids"
    registry = fake_registry(fg=busy(1.0), bg=background_repo("hang-with-child", "--pid-file", str(pids)))
    result, run_dir, row, record = run(registry, parallel_settings(write_json), tmp_path / "results")
    assert result.exit_code == 0, result.output
    assert row["trial"] == "001_fg_tiny_parallel" and row["mode"] == "parallel" and row["status"] == "success"
    started = [int(pid) for pid in pids.read_text().split()]
    assert len(started) == 2 and not any(running(pid) for pid in started)
    assert (row["bg_repo"], row["bg_signal"], row["bg_survivors"]) == ("bg", "SIGTERM", "0")
    assert (row["bg_iterations_started"], row["bg_iterations_completed"]) == ("1", "0")
    assert float(row["bg_teardown_s"]) < 1.0
    background = record["background"][0]
    assert background["script"] == "001_fg_tiny_parallel/attempt_1/background_1.sh"
    assert background["hyperparameters"] == {"learning_rate": 0.1, "epochs": 2}
    script = (run_dir / background["script"]).read_text()
    assert script.startswith("#!/bin/sh\n") and "while true; do" in script and "trap finish TERM INT HUP" in script


def test_a_background_ignoring_sigterm_is_killed_after_the_grace_period(
        fake_registry: Registry, write_json: WriteJson, tmp_path: Path) -> None:
    registry = fake_registry(fg=busy(0.5), bg=background_repo("ignore-term"))
    result, _, row, _ = run(registry, parallel_settings(write_json, grace_s=0.5), tmp_path / "results")
    assert result.exit_code == 0, result.output
    assert (row["bg_signal"], row["bg_survivors"]) == ("SIGKILL", "0")
    assert 0.5 <= float(row["bg_teardown_s"]) < 1.5


def test_a_background_that_fails_at_once_backs_off_gives_up_and_fails_the_trial(
        fake_registry: Registry, write_json: WriteJson, tmp_path: Path) -> None:
    # Seen by a user: a background whose command exits 1 at once ran 684 times in 3 s (685 logs)
    # inside the measured window, and the foreground's row said success.
    registry = fake_registry(fg=busy(9.0), bg=background_repo("fail"))
    result, run_dir, row, record = run(registry, parallel_settings(write_json), tmp_path / "results")
    assert result.exit_code == 1, result.output
    assert row["status"] == "background_failed", row
    assert row["status_reason"].startswith("background 1 (bg/tiny) gave up after run 5: 5 runs in a row failed "
                                           "within 30 s of starting (last exit code 4)")
    assert (row["bg_iterations_started"], row["bg_iterations_failed"], row["bg_iterations_completed"]) == \
        ("5", "5", "0")
    logs = run_dir / row["trial"] / "attempt_1" / "background_logs"
    with open(logs / "iterations.csv", newline="") as table:
        iterations = list(csv.DictReader(table))
    assert [line["exit_code"] for line in iterations] == ["4"] * 5
    # The pauses between failures doubled: 0.5, 1, 2 and 4 s (whole seconds in the table).
    starts = [datetime.fromisoformat(line["start_utc"].replace("Z", "+00:00")) for line in iterations]
    gaps_s = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(starts)]
    assert gaps_s[-1] >= 4 and gaps_s[-1] > gaps_s[0], gaps_s
    assert "Traceback: something broke" in (logs / "bg1_run_2.log").read_text()
    assert record["background"][0]["gave_up"].startswith("gave up after run 5")


def test_a_background_failing_at_once_beside_a_short_foreground_fails_the_trial_too(
        fake_registry: Registry, write_json: WriteJson, tmp_path: Path) -> None:
    registry = fake_registry(fg=busy(1.2), bg=background_repo("fail"))
    result, _, row, record = run(registry, parallel_settings(write_json), tmp_path / "results")
    assert result.exit_code == 1, result.output
    failed = int(row["bg_iterations_failed"])
    assert row["status"] == "background_failed" and 1 <= failed < 5, row  # not given up yet, every run failed
    assert row["status_reason"] == (f"background 1 (bg/tiny) failed each of its {failed} run(s) within seconds of "
                                    "starting; see its background_logs")
    assert record["background"][0]["gave_up"] is None


def test_a_background_whose_runs_are_short_keeps_the_first_and_last_logs(
        fake_registry: Registry, write_json: WriteJson, tmp_path: Path) -> None:
    # The foreground trains until the background has finished 14 runs (a header and 14 lines), not
    # for a fixed time: how many runs fit in a few seconds depends on how loaded the machine is.
    until_14_runs = fake_repo("wait-lines", required_args=[
        "--behaviour", "wait-lines", "--wait-file", "background_logs/iterations.csv", "--lines", "15",
        "--seconds", "60"])
    registry = fake_registry(fg=until_14_runs, bg=background_repo("ok"))
    result, run_dir, row, record = run(registry, parallel_settings(write_json), tmp_path / "results")
    assert result.exit_code == 0, result.output
    started = int(row["bg_iterations_started"])
    assert started > 14, row  # a short training: many runs while the foreground trains
    logs = run_dir / row["trial"] / "attempt_1" / "background_logs"
    kept = sorted(int(log.stem.rsplit("_", 1)[1]) for log in logs.glob("bg1_run_*.log"))
    assert kept[:5] == [1, 2, 3, 4, 5] and kept[-1] == started and len(kept) <= 11, kept
    assert record["background"][0]["logs_dropped"] == started - len(kept)
    with open(logs / "iterations.csv", newline="") as table:
        assert len(list(csv.DictReader(table))) >= started - 1  # every run that ended is listed


def test_several_backgrounds_are_recorded_side_by_side(
        fake_registry: Registry, write_json: WriteJson, tmp_path: Path) -> None:
    registry = fake_registry(fg=busy(0.5), bg=background_repo("hang"), bg2=background_repo("ignore-term"))
    settings = parallel_settings(write_json, [{"repo": "bg", "model": "tiny"},
                                              {"repo": "bg2", "model": "tiny", "hyperparameters": {"epochs": 3}}],
                                 grace_s=0.3)
    result, run_dir, row, _ = run(registry, settings, tmp_path / "results")
    assert result.exit_code == 0, result.output
    assert (row["bg_repo"], row["bg_signal"], row["bg_survivors"]) == ("bg;bg2", "SIGTERM;SIGKILL", "0;0")
    header, line = result.stdout.splitlines()[1:3]  # the closing table names the company of each trial
    assert header.split()[:3] == ["#", "model", "with"] and line.split()[:3] == ["1", "fg/tiny", "bg/tiny+bg2/tiny"]
    assert [json.loads(h)["epochs"] for h in row["bg_hyperparameters"].split(";")] == [2, 3]
    assert {p.name for p in (run_dir / row["trial"] / "attempt_1").glob("background_*.sh")} == \
        {"background_1.sh", "background_2.sh"}


def test_the_foreground_waits_for_the_backgrounds_first_run_and_the_warmup(
        fake_registry: Registry, write_json: WriteJson, tmp_path: Path) -> None:
    marker = tmp_path / "bg_started"
    # The loop's first run counts as begun when its log exists; a sh that stamps the time at once
    # (not a Python whose start-up takes 0.3 s on a loaded machine) marks that moment closely.
    background = fake_repo("hang", command=["/bin/sh", "-c", 'date +%s.%N > "$0"; exec sleep 3600', str(marker)],
                           required_args=[])
    registry = fake_registry(fg=busy(0.2), bg=background)
    settings = parallel_settings(write_json, experiment={"warmup_s": 0.7})
    result, _, row, _ = run(registry, settings, tmp_path / "results")
    assert result.exit_code == 0, result.output
    foreground_start = datetime.fromisoformat(row["start_utc"]).timestamp()
    assert foreground_start - float(marker.read_text()) >= 0.6


def test_arguments_reach_both_trainings_literally(
        fake_registry: Registry, write_json: WriteJson, tmp_path: Path) -> None:
    tricky = ["a b", "it's", '"q"', "x;y", "$(touch pwned)", "`touch pwned`", "$HOME", "*"]
    repo = fake_repo("echo-args", required_args=["--behaviour", "echo-args", *tricky],
                     models={"my model's; $(x)": {}})
    registry = fake_registry(fg=repo, bg=repo)
    env = {"WEIRD": "v a l'u\"e;$(touch pwned)`x`"}
    settings = parallel_settings(
        write_json, {"repo": "bg", "model": "my model's; $(x)", "env": env},
        experiment={"foreground": {"repo": "fg", "model": "my model's; $(x)", "env": env}, "warmup_s": 0.3})
    result, run_dir, row, _ = run(registry, settings, tmp_path / "results")
    assert result.exit_code == 0, result.output
    attempt = run_dir / row["trial"] / "attempt_1"
    for log in (attempt / "training.log", attempt / "background_logs" / "bg1_run_1.log"):
        argv = json.loads(next(line for line in log.read_text().splitlines() if line.startswith("ARGV "))[5:])
        assert argv[2:2 + len(tricky)] == tricky, log
        assert argv[argv.index("--model") + 1] == "my model's; $(x)"
        weird = json.loads(next(line for line in log.read_text().splitlines() if line.startswith("ENV "))[4:])
        assert weird == env["WEIRD"], log
    assert not list(PROJECT_ROOT.rglob("pwned"))


def test_an_out_of_memory_foreground_and_background_are_named(
        fake_registry: Registry, write_json: WriteJson, tmp_path: Path) -> None:
    oom = [sys.executable, "-c", "import sys; print('RuntimeError: CUDA out of memory. Tried to allocate 2 GiB'); "
                                 "sys.exit(1)"]
    registry = fake_registry(fg=fake_repo(command=oom, required_args=[]), bg=fake_repo(command=oom, required_args=[]))
    settings = parallel_settings(write_json, {"repo": "bg", "model": "tiny", "restart_delay_s": 0.05},
                                 experiment={"warmup_s": 1.2})  # two background runs: 0.5 s apart after a failure
    result, _, row, _ = run(registry, settings, tmp_path / "results")
    assert result.exit_code == 1
    assert row["status"] == "oom" and row["status_reason"] == "'CUDA out of memory' in the log (exit code 1)"
    assert int(row["bg_oom_iterations"]) >= 2


def test_a_trial_that_would_not_fit_in_gpu_memory_is_skipped(
        fake_registry: Registry, write_json: WriteJson, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUTATION_NVML_MODULE", "test.fixtures.fake_pynvml")  # GPU 0: 80 GiB, 5500 MiB used
    marker = tmp_path / "started"
    registry = fake_registry(fg=busy(0.1), bg=background_repo("hang", "--pid-file", str(marker)))
    settings = parallel_settings(write_json, {"repo": "bg", "model": "tiny", "gpu_memory_mib": 50000, "gpus": [0]},
                                 experiment={"foreground": {"repo": "fg", "model": "tiny", "gpu_memory_mib": 30000}})
    result, _, row, _ = run(registry, settings, tmp_path / "results")
    assert result.exit_code == 1
    assert row["status"] == "skipped_memory"
    assert row["status_reason"] == ("not enough free GPU memory: the workloads need 80000 MiB on GPU 0, "
                                    "76420 MiB are free")
    assert not marker.exists()  # nothing was started


def tool(registry: Path, settings: Path, results: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(PROJECT_ROOT / "mutation.py"), "--registry", str(registry),
                             "--results-dir", str(results), "run", str(settings)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGINT, 130), (signal.SIGHUP, 129),
                                                   (signal.SIGKILL, -9)])
def test_stopping_mutation_py_mid_trial_leaves_no_process(
        signum: int, exit_code: int, fake_registry: Registry, write_json: WriteJson, tmp_path: Path) -> None:
    fg_pids, bg_pids = tmp_path / "fg", tmp_path / "bg"
    registry = fake_registry(fg=background_repo("hang-with-child", "--pid-file", str(fg_pids)),
                             bg=background_repo("hang-with-child", "--pid-file", str(bg_pids)))
    settings = parallel_settings(write_json)
    results = tmp_path / "results"
    process = tool(registry, settings, results)
    try:
        assert wait_for(lambda: all(p.exists() and len(p.read_text().split()) == 2 for p in (fg_pids, bg_pids)), 20)
        loop = [p.pid for p in psutil.Process(process.pid).children() if "background_1.sh" in " ".join(p.cmdline())]
        pids = [int(pid) for pids in (fg_pids, bg_pids) for pid in pids.read_text().split()] + loop
        assert len(pids) == 5 and all(running(pid) for pid in pids)
        os.kill(process.pid, signum)
        assert process.wait(timeout=20) == exit_code
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert wait_for(lambda: not any(running(pid) for pid in pids), 2.0), [pid for pid in pids if running(pid)]
    if signum != signal.SIGKILL:
        run_dir = next(results.glob("run_*"))
        with open(run_dir / "summary.csv", newline="") as table:
            rows = list(csv.DictReader(table))
        assert [(r["status"], r["bg_survivors"]) for r in rows] == [("interrupted", "0")]


def test_the_loops_own_trap_ends_its_running_training(tmp_path: Path) -> None:
    """SIGTERM to the script alone (as the parent-death signal sends it) ends the run in progress too."""
    from energy_profiler.process.background import script_text, start_loop, wait_for_first_run, write_script

    pids = tmp_path / "pids"
    argv = [sys.executable, str(PROJECT_ROOT / "test" / "fixtures" / "fake_train.py"), "--behaviour",
            "hang-with-child", "--pid-file", str(pids)]
    logs = tmp_path / "logs"
    logs.mkdir()
    script = tmp_path / "background_1.sh"
    write_script(script, script_text(index=1, trial="t", argv=argv, cwd=str(tmp_path), env={}, logs=logs,
                                     restart_delay_s=0))
    loop = start_loop(script, "t")
    try:
        assert wait_for_first_run(logs, 1, 10, lambda: False)
        assert wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, 10)
        os.kill(loop.pid, signal.SIGTERM)  # the script only, not its group
        assert loop.wait(timeout=5) == 0
    finally:
        if loop.poll() is None:
            os.killpg(loop.pid, signal.SIGKILL)
    assert wait_for(lambda: not any(running(int(pid)) for pid in pids.read_text().split()), 1.0)


def test_peak_gpu_memory_is_attributed_to_each_workload(
        fake_registry: Registry, write_json: WriteJson, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUTATION_NVML_MODULE", "test.fixtures.fake_pynvml")
    # Markers only this test's trainings carry: NVML lists every process on the GPU, the fake every one on the machine.
    tag = f"peak-{uuid.uuid4().hex}"
    monkeypatch.setenv("FAKE_NVML_GPU_PROCESSES", f"--say {tag}-fg=3000,--say {tag}-bg=1500")
    registry = fake_registry(fg=fake_repo("busy", required_args=["--behaviour", "busy", "--seconds", "0.8",
                                                                 "--say", f"{tag}-fg"]),
                             bg=background_repo("hang", "--say", f"{tag}-bg"))
    # A short backgrounds-alone window: its default (5 s) is for real campaigns.
    energy = {"gpu": "nvml", "gpu_interval_s": 0.05, "background_baseline_s": 0.2}
    settings = parallel_settings(write_json, energy=energy)
    result, _, row, record = run(registry, settings, tmp_path / "results")
    assert result.exit_code == 0, result.output
    assert row["bg_gpu_mem_peak_mib"] == "1500.0"
    assert record["energy"]["details"]["foreground_gpu_mem_peak_mib"] == 3000.0
    assert record["background"][0]["gpu_mem_peak_mib"] == 1500.0


def test_a_second_ctrl_c_skips_the_grace_period(
        fake_registry: Registry, write_json: WriteJson, tmp_path: Path) -> None:
    marker = tmp_path / "bg"
    registry = fake_registry(fg=background_repo("hang"), bg=background_repo("ignore-term", "--pid-file", str(marker)))
    settings = parallel_settings(write_json, grace_s=60)  # without the second Ctrl-C this would take a minute
    process = tool(registry, settings, tmp_path / "results")
    try:
        assert wait_for(marker.exists, 20)
        time.sleep(0.3)  # let the background install its SIGTERM handler
        background = int(marker.read_text())
        started = time.monotonic()
        os.kill(process.pid, signal.SIGINT)
        time.sleep(0.5)
        os.kill(process.pid, signal.SIGINT)
        assert process.wait(timeout=20) == 130
        assert time.monotonic() - started < 10
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert wait_for(lambda: not running(background), 2.0)
    run_dir = next((tmp_path / "results").glob("run_*"))
    with open(run_dir / "summary.csv", newline="") as table:
        row = next(csv.DictReader(table))
    assert (row["status"], row["bg_signal"], row["bg_survivors"]) == ("interrupted", "SIGKILL", "0")


def test_no_user_string_ends_a_comment_of_the_loop_script(
        fake_registry: Registry, write_json: WriteJson, tmp_path: Path) -> None:
    # A newline in a results path or a model name once ended a `#` line of the script, and the
    # rest of it ran as a command.
    model = "m\ntouch canary_model\n#"
    repo = fake_repo("echo-args", required_args=["--behaviour", "echo-args"], models={model: {}})
    registry = fake_registry(fg=repo, bg=repo)
    # The warm-up lets the background print before the quick foreground ends the trial.
    settings = parallel_settings(write_json, {"repo": "bg", "model": model},
                                 experiment={"foreground": {"repo": "fg", "model": model}, "warmup_s": 0.3})
    results = tmp_path / "res\ntouch canary_results\n#"
    result, run_dir, row, _ = run(registry, settings, results)
    assert result.exit_code == 0, result.output
    attempt = run_dir / row["trial"] / "attempt_1"
    script = (attempt / "background_1.sh").read_text()
    header = script.split("\ncd ", 1)[0].splitlines()
    assert all(line.startswith("#") for line in header), header
    log = (attempt / "background_logs" / "bg1_run_1.log").read_text()
    argv = json.loads(next(line for line in log.splitlines() if line.startswith("ARGV "))[5:])
    assert argv[argv.index("--model") + 1] == model
    for folder in (PROJECT_ROOT, tmp_path, Path.cwd()):
        assert not list(folder.rglob("canary_*")), folder


def test_the_loop_script_refuses_an_environment_name_sh_would_run(tmp_path: Path) -> None:
    # The schemas refuse such names first; the generator does not rely on that.
    with pytest.raises(ValueError, match="not an environment variable name"):
        script_text(index=1, trial="t", argv=["true"], cwd=str(tmp_path), env={"X=1;touch pwned;Y": "v"},
                    logs=tmp_path, restart_delay_s=0)
    text = script_text(index=1, trial="t\nx", argv=["true"], cwd=str(tmp_path), env={"GOOD_1": "$(x)\n"},
                       logs=tmp_path, restart_delay_s=0)
    assert "export GOOD_1='$(x)\n'" in text and "trial t\\nx," in text


@pytest.mark.parametrize("save_to", ["{attempt_dir}/model.pt", "{trial_dir}/model.pt"])
def test_workloads_of_one_repository_save_checkpoints_apart_with_attempt_dir(
        save_to: str, fake_registry: Registry, write_json: WriteJson, tmp_path: Path) -> None:
    # pytorch/examples' word_language_model saves model.pt into its folder and reloads it: a background
    # of the same repository overwrote the foreground's. {attempt_dir} gives each workload its own folder;
    # {trial_dir} is shared by design, and the collision must then show (the test can fail).
    repo = fake_repo("checkpoint", required_args=["--behaviour", "checkpoint", "--save", save_to,
                                                  "--seconds", "0.6"])
    registry = fake_registry(lm=repo)
    settings = parallel_settings(write_json, {"repo": "lm", "model": "tiny"},
                                 experiment={"foreground": {"repo": "lm", "model": "tiny"}})
    result, run_dir, row, _ = run(registry, settings, tmp_path / "results")
    attempt = run_dir / row["trial"] / "attempt_1"
    if save_to.startswith("{trial_dir}"):
        # Whichever reads the other's write first fails (a race): the foreground, or the background,
        # whose log then says so and whose early failure the row reports.
        logs = "".join(log.read_text() for log in (attempt / "background_logs").glob("bg1_run_*.log"))
        assert (row["status"] == "failed" and "was overwritten by another process" in row["status_reason"]) or \
            (row["status"] == "background_failed" and "was overwritten by another process" in logs), row
        return
    assert result.exit_code == 0 and row["status"] == "success", row["status_reason"]
    foreground_pid, foreground_dir = (attempt / "model.pt").read_text().split(" ", 1)
    background_pid, background_dir = (attempt / "bg1" / "model.pt").read_text().split(" ", 1)
    assert (foreground_dir, background_dir) == (str(attempt), str(attempt / "bg1"))  # MUTATION_ATTEMPT_DIR
    assert foreground_pid != background_pid
    script = (attempt / "background_1.sh").read_text()
    assert f"--save {attempt / 'bg1' / 'model.pt'}" in script and "{attempt_dir}" not in script
