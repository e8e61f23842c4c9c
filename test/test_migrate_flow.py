"""The whole migration as a user lives it, on files cut from the older project's real ones.

migrate, then from the target folder and with no flag: validate, plan, a real run stopped by
Ctrl-C after two trials, the printed resume line pasted as it stands, report over the older and
the new rows. Everything lands in the target folder; the older project, the tool's checkout and
the folder around them stay as they were.
"""

from __future__ import annotations

import csv
import json
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd

from test.conftest import PROJECT_ROOT, wait_for

OLDER = Path(__file__).parent / "fixtures" / "older"
SETTINGS = "settings/phase7_final_completion.json"
"""A converted file that reads the converted history (use_deduplication) and sets no CPU governor."""


def tool(*words: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "mutation.py"), *words], cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False)


def files_under(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_migrate_then_validate_plan_run_interrupt_resume_and_report_from_the_target(tmp_path: Path) -> None:
    older = tmp_path / "Green-deep-learning"
    shutil.copytree(OLDER, older)
    for repo in json.loads((OLDER / "mutation" / "models_config.json").read_text())["models"].values():
        (older / repo["path"]).mkdir(parents=True)
        script = older / repo["path"] / repo["train_script"]
        script.write_text("#!/bin/sh\nsleep 0.3\necho 'Test Accuracy: 91.5'\n")  # a stand-in training
        script.chmod(0o755)
    older_before, checkout_results = files_under(older), sorted((PROJECT_ROOT / "results").rglob("*"))
    target = tmp_path / "migrated"

    migrated = tool("migrate", str(older), "--to", str(target), cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert "6 in settings/ validate and plan here" in migrated.stdout
    assert f"next: cd {target}, then run the commands under 'Next' in its MIGRATION.md" in migrated.stdout
    governed = sum('"governor"' in path.read_text() for path in (target / "settings").rglob("*.json"))
    assert governed and f"{governed} converted file(s) keep the older `\"governor\"`" in \
        (target / "MIGRATION.md").read_text()  # the sudo line would be refused on a VM: MIGRATION.md says so
    converted = [str(path.relative_to(target)) for path in sorted((target / "settings").rglob("*.json"))]
    validated = tool("validate", *converted, cwd=target)
    assert validated.returncode == 0 and validated.stdout.count("ok: ") == 6, validated.stderr  # as migrate said
    # The "Next" commands of MIGRATION.md work as printed (validate every converted file from the project).
    next_lines = (target / "MIGRATION.md").read_text().split("## Next", 1)[1].split("\n\n", 2)[1].splitlines()
    validate_line = next(line.strip() for line in next_lines if "xargs -0" in line)
    pasted = subprocess.run(["bash", "-c", validate_line], cwd=target, capture_output=True, text=True,
                            timeout=300, check=False)
    assert pasted.returncode == 0 and pasted.stdout.count("ok: ") == 6, pasted.stdout + pasted.stderr
    planned = tool("plan", SETTINGS, cwd=target)
    assert planned.returncode == 0, planned.stderr
    assert f"history {target / 'history' / 'data__raw_data.csv'}: 28 rows read, 28 comparable" in planned.stdout

    # The older runner slept 60 s between runs, written out as cooldown_s: a user shortens it for a try.
    settings_file = target / SETTINGS
    settings_file.write_text(json.dumps({**json.loads(settings_file.read_text()), "cooldown_s": 0}))
    campaign = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "mutation.py"), "-ec", SETTINGS,
                                 "--cpu-energy", "none", "--gpu-energy", "none"], cwd=target,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_for(lambda: any((target / "results").glob("run_*/003_*/attempt_1/training.log")), 60)
        campaign.send_signal(signal.SIGINT)
        output, _ = campaign.communicate(timeout=60)
    finally:
        if campaign.poll() is None:
            campaign.kill()
            campaign.wait()
    assert campaign.returncode == 130, output
    lines = output.rstrip().splitlines()
    assert lines[-2] == "to continue:"
    resumed = subprocess.run(shlex.split(lines[-1]), cwd=tmp_path, capture_output=True, text=True, timeout=300,
                             check=False)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr  # pasted from another folder, as printed
    with open(target / "results" / "summary_all.csv", newline="") as table:
        new_rows = list(csv.DictReader(table))
    assert len(new_rows) == 48 and all(row["status"] == "success" for row in new_rows)
    assert len({row["experiment_id"] for row in new_rows}) == 48

    # Dedup now counts the project's own table beside the converted history: the same file planned again
    # finds the kfold draws it just measured taken (before the run it planned 48).
    again = tool("plan", SETTINGS, cwd=target)
    assert again.returncode == 2 and "exist besides the defaults, earlier trials and the history" in again.stderr

    report = tool("report", "history/data__raw_data.csv", "results", "--no-plots", cwd=target)
    assert report.returncode == 0, report.stderr
    assert "76 trials;" in report.stdout  # 28 older and 48 new rows, none dropped
    page = (target / "history" / "report" / "report.md").read_text()
    assert "cpu perf (older tool) (system) + gpu nvidia_smi (older tool)" in page  # the older measurements
    assert "top1_accuracy: 0.3" in page and "test_accuracy: 91.71" in page  # each repository its own metric

    # One DataFrame: the converted history and the new rows share their column names.
    history, new = pd.read_csv(target / "history" / "data__raw_data.csv"), pd.read_csv(target / "results" /
                                                                                       "summary_all.csv")
    both = pd.concat([history, new], ignore_index=True)
    assert len(both) == 76 and both["experiment_id"].is_unique
    shared = {"experiment_id", "repo", "model", "mode", "status", "duration_s", "not_passed", "cpu_energy_j",
              "cpu_energy_method", "gpu_energy_j", "gpu_energy_method", "perf_top1_accuracy", "hp_epochs"}
    assert shared <= set(history.columns) & set(new.columns)
    assert both["duration_s"].notna().all()

    # Nothing written outside the target: the older project, the checkout's results, the folder around.
    assert files_under(older) == older_before
    assert sorted((PROJECT_ROOT / "results").rglob("*")) == checkout_results
    assert sorted(path.name for path in tmp_path.iterdir()) == ["Green-deep-learning", "migrated"]
