"""The report's files: their names (spelled here only) and how they replace the old ones together.

A sweep's report lives in ``<sweep>/report/``, a symbolic link to a folder that is written whole
before the link is switched to it (one atomic rename), so a reader, or a report written while
the sweep runs, sees either the whole old report or the whole new one, never a mix. The
sweep folder's ``index.html`` is a fixed page that forwards to ``report/index.html``.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

from histae.atomic import write_text

REPORT = "report"  # the link in the sweep folder
INDEX = "index.html"
CURVES = "curves.png"
RAW_LOSS = "raw_loss.png"
HEATMAPS = "heatmaps.png"
MARGINALS = "marginals.png"
PARALLEL = "parallel.png"
MOSAIC = "reconstructions.png"
RESULTS_CSV, RESULTS_MD, RESULTS_JSON = "results.csv", "results.md", "results.json"
JOBS = "jobs"  # one page per job: jobs/<job>.html

REPORT_FILES: dict[str, str] = {
    INDEX: "the sweep page: all of the below, and a link to each job's page",
    CURVES: "normalised histogram loss (train line, validation markers) and the lead metric "
    "against inputs seen, mean and min-max band over seeds",
    RAW_LOSS: "every job's raw loss, labelled as not comparable across bins",
    HEATMAPS: "sweeps over two keys: one heatmap per lead metric, the values in the cells, and "
    "the raw loss in grey, unranked",
    MARGINALS: "sweeps over one or more than two keys: the lead metric against each key's values",
    PARALLEL: "sweeps over more than two keys: a parallel-coordinates plot of the settings",
    MOSAIC: "every job's last reconstruction grid, on the sweep's grid for two keys",
    RESULTS_CSV: "one row per setting, sorted by the lead metric (mean and std over seeds)",
    RESULTS_MD: "the same table in Markdown",
    RESULTS_JSON: "one record per job: overrides, folder, status, final metrics",
    f"{JOBS}/": "one page per job: config, curves, grids, colour histograms, links to its files",
}
"""Every file of ``<sweep>/report/``, with what it holds (README's list is checked against it)."""

JOB_PAGE = "index.html"
"""A single run's page, written into its own folder by the job (``write_job_page``)."""

RUNS, SWEEPS = "runs", "sweeps"  # the default config's folders under outputs/

_FORWARD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>histae sweep report</title>
<meta http-equiv="refresh" content="0; url=report/index.html"></head>
<body><p><a href="report/index.html">The sweep report</a></p></body></html>
"""


def new_report_dir(sweep_dir: Path) -> Path:
    """An empty hidden folder in ``sweep_dir`` to write a report into before :func:`publish`."""
    path = sweep_dir / f".{REPORT}-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    return path


def publish(sweep_dir: Path, staged: Path) -> Path:
    """Make ``staged`` the sweep's report in one rename; delete the reports it replaces.

    Returns:
        ``<sweep_dir>/report/index.html``.
    """
    link = sweep_dir / REPORT
    if link.exists() and not link.is_symlink():  # a report folder from before the link
        shutil.rmtree(link)
    previous = sweep_dir / os.readlink(link) if link.is_symlink() else None
    tmp_link = sweep_dir / f".{REPORT}-link-{uuid.uuid4().hex[:12]}"
    os.symlink(staged.name, tmp_link)
    os.replace(tmp_link, link)  # atomic: readers see the old report or the new one
    stale = time.time() - 600  # another report being written now is younger than this
    for old in sweep_dir.glob(f".{REPORT}-*"):
        if old == staged or old.is_symlink():
            continue
        if old == previous or old.stat().st_mtime < stale:
            shutil.rmtree(old, ignore_errors=True)
    forward = sweep_dir / INDEX
    if not forward.is_file() or forward.read_text(errors="replace") != _FORWARD:
        write_text(forward, _FORWARD)
    return link / INDEX


def discard(staged: Path) -> None:
    """Remove a staged report that could not be finished; the published one stays."""
    shutil.rmtree(staged, ignore_errors=True)
