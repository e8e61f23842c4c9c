"""The report page answers "what happened?" and reads on a phone as on a desktop.

The campaign is a real one (fake trainings, real run folder); the page is checked as a reader gets
it: its failures with their reasons and working links (after the results folder is copied
elsewhere too), its header, its captions, and, in headless Chromium where it is installed (CI
requires it, as it does Slurm), its layout at a phone's 420 px and a desktop's 1200 px and its
sorting by a click.
"""

from __future__ import annotations

import csv
import html
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from energy_profiler import __version__
from test.conftest import fake_repo, invoke, only_run_dir

CHROMIUM = next((found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))),
                None)
if CHROMIUM is None and os.environ.get("CI") == "true":
    raise RuntimeError("CI must check the report page in a browser, but Chromium is not installed")


@pytest.fixture
def reported(write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path],
             tmp_path: Path) -> tuple[Path, Path]:
    """A campaign with three trials that succeed and one that fails, and its report: (run folder, report folder)."""
    registry = fake_registry(ok=fake_repo("ok"), broken=fake_repo("fail"))
    settings = write_json("wide settings.json", {"experiment_name": "page", "seed": 3, "experiments": [
        {"mode": "mutation", "repo": "ok", "model": "tiny", "mutate": ["learning_rate", "epochs"],
         "runs_per_config": 3},
        {"mode": "default", "repo": "broken", "model": "tiny"}]})
    result = invoke("--registry", registry, "--results-dir", tmp_path / "results", "run", settings)
    assert result.exit_code == 1, result.output  # one trial failed
    run_dir = only_run_dir(tmp_path / "results")
    report = invoke("--registry", registry, "report", run_dir)
    assert report.exit_code == 0, report.output
    return run_dir, run_dir / "report"


def test_the_page_says_what_failed_and_why_with_links_that_survive_a_copy(reported: tuple[Path, Path],
                                                                          tmp_path: Path) -> None:
    run_dir, folder = reported
    page = (folder / "report.html").read_text()
    markdown = (folder / "report.md").read_text()
    with open(run_dir / "summary.csv", newline="") as table:
        failed = next(row for row in csv.DictReader(table) if row["status"] == "failed")
    section = page.split("Trials that did not succeed</h2>")[1].split("<h2>")[0]
    assert "1 of 4 trials did not succeed (1 failed)" in section
    assert html.escape(failed["status_reason"]) in section and "exit code 4" in failed["status_reason"]
    links = re.findall(r'<a href="([^"]+)">([^<]+)</a>', section)
    assert links == [(f"../{failed['trial']}/", failed["trial"])]
    assert section.index(failed["trial"]) < section.index("exit code 4")  # why, right beside the trial
    # The run folder's table named as a file (the docs' form) finds the trial folders beside it too.
    as_file = invoke("report", run_dir / "summary.csv", "-o", tmp_path / "from the file")
    assert as_file.exit_code == 0, as_file.output
    assert (tmp_path / "from the file" / "report.html").read_text().count("<a href=") == 4 + 1
    assert f"[{failed['trial']}](<../{failed['trial']}/>)" in markdown
    # Relative: the results folder copied elsewhere, each link still finds its trial's training.log.
    copy = tmp_path / "copied elsewhere"
    shutil.copytree(run_dir.parent, copy)
    copied_report = copy / run_dir.name / "report"
    for href, _ in re.findall(r'<a href="([^"]+)">([^<]+)</a>', (copied_report / "report.html").read_text()):
        assert (copied_report / href / "attempt_1" / "training.log").is_file()
    # Every trial in the per-trial table, each linked, the values it drew shown.
    trials = page.split("<h2>Trials</h2>")[1].split("<h2>")[0]
    assert trials.count("<tr>") == 1 + 4 and trials.count("<a href=") == 4
    assert re.search(r"learning_rate=[0-9.e-]+ epochs=[0-9]+", trials)


def test_the_header_names_when_what_version_and_the_settings_and_the_captions_count_trials(
        reported: tuple[Path, Path]) -> None:
    run_dir, folder = reported
    markdown = (folder / "report.md").read_text()
    header = markdown.split("\n\n")[1]
    assert f"- by: mutation.py {__version__}" in header
    assert re.search(r"- made: \d{4}-\d\d-\d\d \d\d:\d\d", header)
    assert f"- run folders: {run_dir}" in header
    assert "- settings files: " in header and "wide settings.json" in header
    captions = re.findall(r"<figcaption>([^<]+)</figcaption>", (folder / "report.html").read_text())
    assert captions and all("/" in caption for caption in captions)
    assert "ok/tiny: duration against learning_rate, one point per successful trial that drew learning_rate (3)" \
        in "\n".join(html.unescape(caption) for caption in captions)


PROBE = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="margin:0">
<iframe id="page" src="report.html" style="border:0;width:{width}px;height:900px"></iframe>
<script>
document.getElementById("page").addEventListener("load", function () {{
  var frame = document.getElementById("page"), doc = frame.contentDocument, width = {width};
  var boxes = Array.prototype.map.call(doc.querySelectorAll("table"), function (table) {{
    var box = table.parentElement.getBoundingClientRect();
    return {{right: Math.round(box.right), scrolls: table.scrollWidth > table.parentElement.clientWidth + 1}};
  }});
  var images = Array.prototype.map.call(doc.querySelectorAll("img"), function (img) {{
    return Math.round(img.getBoundingClientRect().width);
  }});
  var trials = Array.prototype.filter.call(doc.querySelectorAll("table.sortable"), function (table) {{
    return table.rows[0].cells[5].textContent === "duration_s";
  }})[0];
  trials.rows[0].cells[5].click();
  var sorted = Array.prototype.map.call(trials.tBodies[0].rows, function (row) {{ return row.cells[5].textContent; }});
  document.body.setAttribute("data-probe", JSON.stringify({{
    page: doc.documentElement.scrollWidth, boxes: boxes, images: images, sorted: sorted,
    fontPx: parseFloat(doc.defaultView.getComputedStyle(doc.body).fontSize)}}));
}});
</script></body></html>"""


def _measure(folder: Path, width: int) -> dict[str, Any]:
    """The page laid out in a frame `width` pixels wide in headless Chromium (a window narrower than
    500 px is widened by Chromium itself; a frame is not), with a click on duration_s's header."""
    probe = folder / f"probe_{width}.html"
    probe.write_text(PROBE.format(width=width))
    dumped = subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
                             "--allow-file-access-from-files", "--virtual-time-budget=5000", "--window-size=1300,1000",
                             "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120, check=False)
    found = re.search(r'data-probe="([^"]+)"', dumped.stdout)
    assert found, dumped.stdout[-2000:] + dumped.stderr[-2000:]
    measured: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return measured


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed here (make test installs it where it can)")
@pytest.mark.parametrize(("width", "images_px"), [(420, (340, 420)), (1200, (640, 640))])
def test_the_page_reads_on_a_phone_and_a_desktop_in_a_real_browser(reported: tuple[Path, Path], width: int,
                                                                   images_px: tuple[int, int]) -> None:
    _, folder = reported
    measured = _measure(folder, width)
    assert measured["page"] <= width, measured  # the page itself never scrolls sideways
    assert all(box["right"] <= width for box in measured["boxes"]), measured
    if width == 420:
        assert any(box["scrolls"] for box in measured["boxes"]), measured  # a wide table scrolls in its box
    # A plot fills a phone's width (less the margins and the scroll bar) and is 640 px on a desktop.
    assert measured["images"] and all(images_px[0] <= px <= images_px[1] for px in measured["images"]), measured
    assert measured["fontPx"] >= 14  # not shrunk to fit
    durations = [float(cell) for cell in measured["sorted"]]
    assert durations == sorted(durations) and len(durations) == 4  # a click sorts, numbers as numbers
