"""The report pages in a real headless Chromium: every image loads, every job page is reachable.

The pages carry a small inline script that, once loaded, records on ``<body data-...>`` how many
images loaded (naturalWidth > 0), how many there are and how many rows the results and jobs
tables have; Chromium's ``--dump-dom`` prints the DOM after that, without any driver. Skipped
where Chromium is missing, except in CI (env CI set), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from histae.report import write_job_page, write_outputs_index, write_report
from tests.helpers import write_job, write_sweep

pytestmark = pytest.mark.browser  # every test here loads pages in headless Chromium

CHROMIUM = "/usr/bin/chromium"


def chromium() -> str:
    """The browser's path; skips the test without one, unless in CI."""
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; CI must install Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (set CI to make this a failure)")
    return path


def page_counts(page: Path, profile: Path) -> dict[str, int]:
    """Open ``page`` in headless Chromium; the counts its script wrote on <body>."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",  # tests may run as root in a container
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",  # let the load event fire before the DOM is dumped
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", done.stdout)
    assert body, done.stdout[:2000]
    found = dict(re.findall(r'data-([a-z-]+)="(\d+)"', body.group(1)))
    assert set(found) == {"images-total", "images-loaded", "table-rows", "job-rows"}, body.group(0)
    return {key: int(value) for key, value in found.items()}


@pytest.mark.slow  # Chromium on every page of a sweep: about 5 s of CPU
def test_sweep_page_and_every_job_page_load_whole(tmp_path: Path) -> None:
    sweep_dir = write_sweep(tmp_path / "outputs" / "sweeps" / "2024-01-02_03-04-05")
    index = write_report(sweep_dir)
    counts = page_counts(index, tmp_path / "profile")
    # heatmaps, curves, reconstructions, raw loss
    assert counts["images-total"] == 4
    assert counts["images-loaded"] == counts["images-total"]
    assert counts["table-rows"] == 4 and counts["job-rows"] == 4
    # Every job page the sweep page links to opens (the links resolve in the browser).
    pages = sorted(set(re.findall(r'href="(jobs/[^"]+\.html)"', index.read_text())))
    assert len(pages) == 4
    for link in pages:
        job = page_counts(index.parent / link, tmp_path / "profile")
        assert job["images-loaded"] == job["images-total"]


def test_a_missing_image_is_noticed(tmp_path: Path) -> None:
    sweep_dir = write_sweep(tmp_path / "sweep")
    index = write_report(sweep_dir)
    (index.parent / "curves.png").unlink()
    counts = page_counts(index, tmp_path / "profile")
    assert counts["images-loaded"] == counts["images-total"] - 1


def test_outputs_index_and_a_run_page_load(tmp_path: Path) -> None:
    write_sweep(tmp_path / "sweeps" / "2024-01-02_00-00-00")
    write_report(tmp_path / "sweeps" / "2024-01-02_00-00-00")
    run = write_job(tmp_path / "runs" / "2024-01-03_00-00-00", ["loss.bins=50"])
    write_job_page(run)
    counts = page_counts(write_outputs_index(tmp_path), tmp_path / "profile")
    assert counts["table-rows"] == 2
    assert counts["images-total"] == 1 == counts["images-loaded"]  # the sweep's thumbnail
    page = page_counts(run / "index.html", tmp_path / "profile")
    assert page["images-loaded"] == page["images-total"]


@pytest.mark.slow
def test_real_sweep_page_loads_every_image(real_sweep: Path, tmp_path: Path) -> None:
    counts = page_counts(real_sweep / "report" / "index.html", tmp_path / "profile")
    assert counts["images-total"] == 4
    assert counts["images-loaded"] == counts["images-total"]
    assert counts["table-rows"] == 4 == counts["job-rows"]
    for job_page in sorted((real_sweep / "report" / "jobs").glob("*.html")):
        job = page_counts(job_page, tmp_path / "profile")
        assert job["images-total"] >= 2  # loss.png and the grid, drawn by the job
        assert job["images-loaded"] == job["images-total"]


@pytest.mark.slow  # Chromium twice, on a real sweep
def test_the_sweep_folders_index_opens_and_screenshots_without_a_redirect(tmp_path: Path) -> None:
    sweep_dir = write_sweep(tmp_path / "sweep", seeds=(1, 2, 3))
    write_report(sweep_dir)
    counts = page_counts(sweep_dir / "index.html", tmp_path / "profile")
    assert counts["images-loaded"] == counts["images-total"] == 4
    assert counts["table-rows"] == 4 and counts["job-rows"] == 12
    # A screenshot tool waits on a redirect page for ever; this page has none.
    shot = tmp_path / "shot.png"
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--hide-scrollbars",
        "--window-size=1400,2400",
        f"--screenshot={shot}",
        (sweep_dir / "index.html").as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    with Image.open(shot) as img:
        assert img.size == (1400, 2400)
        # Not a blank page: the heatmaps and tables put many colours on it.
        assert len(img.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 100
