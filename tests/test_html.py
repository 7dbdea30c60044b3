"""The report pages in a real headless Chromium: every image loads, the table has a row per job.

The pages carry a small inline script that, once loaded, records on ``<body data-...>`` how many
images loaded (naturalWidth > 0), how many there are and how many table rows; Chromium's
``--dump-dom`` prints the DOM after that, without any driver. Skipped where Chromium is missing,
except in CI (env CI set), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from histae.report import write_outputs_index, write_report
from tests.test_report import make_job, make_sweep

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
        page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", done.stdout)
    assert body, done.stdout[:2000]
    found = dict(re.findall(r'data-([a-z-]+)="(\d+)"', body.group(1)))
    assert set(found) == {"images-total", "images-loaded", "table-rows"}, body.group(0)
    return {key: int(value) for key, value in found.items()}


def test_sweep_page_loads_every_image(tmp_path: Path) -> None:
    sweep_dir = make_sweep(tmp_path / "outputs" / "sweeps" / "2024-01-02_03-04-05")
    counts = page_counts(write_report(sweep_dir), tmp_path / "profile")
    # comparison + overview, and loss, histograms and grid of each of the 3 jobs with samples.
    assert counts["images-total"] == 2 + 3 * 3
    assert counts["images-loaded"] == counts["images-total"]
    assert counts["table-rows"] == 5


def test_a_missing_image_is_noticed(tmp_path: Path) -> None:
    sweep_dir = make_sweep(tmp_path / "sweep")
    index = write_report(sweep_dir)
    (sweep_dir / "bins-200_sigma-50" / "loss.png").unlink()
    counts = page_counts(index, tmp_path / "profile")
    assert counts["images-loaded"] == counts["images-total"] - 1


def test_outputs_index_loads(tmp_path: Path) -> None:
    make_sweep(tmp_path / "sweeps" / "2024-01-02_00-00-00")
    make_job(tmp_path / "runs" / "2024-01-03_00-00-00", ["loss=l1"])
    counts = page_counts(write_outputs_index(tmp_path), tmp_path / "profile")
    assert counts["table-rows"] == 2
    assert counts["images-total"] == 0


@pytest.mark.slow
def test_real_sweep_page_loads_every_image(real_sweep: Path, tmp_path: Path) -> None:
    counts = page_counts(real_sweep / "index.html", tmp_path / "profile")
    assert counts["images-total"] == 2 + 4 * 3
    assert counts["images-loaded"] == counts["images-total"]
    assert counts["table-rows"] == 4
