"""The report's files: their names (spelled here only) and how they replace the old ones together.

A sweep's report lives in ``<sweep>/report/``, a symbolic link to a folder that is written whole
before the link is switched to it (one atomic rename), so a reader, or a report written while
the sweep runs, sees either the whole old report or the whole new one, never a mix. The
sweep folder's ``index.html`` is the report's page itself with ``<base href="report/">``, so
it opens without a redirect (headless browsers and screenshot tools wait forever on one), and
is replaced in one rename too.
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
SEARCH = "search.png"
RESULTS_CSV, RESULTS_MD, RESULTS_JSON = "results.csv", "results.md", "results.json"
RUNS_CSV, RUNS_PARQUET = "runs.csv", "runs.parquet"
JOBS = "jobs"  # one page per job: jobs/<job>.html

REPORT_FILES: dict[str, str] = {
    INDEX: "the sweep page: the verdict in one sentence (and a collapse warning first when "
    "most jobs collapsed), the rule, all of the below, and a link to each job's page "
    "(pictures are linked files, not embedded: keep the folder together); the sweep folder's "
    "own `index.html` is the same page",
    CURVES: "normalised histogram loss (train line, validation markers) and the lead metric "
    "against inputs seen, mean and min-max band over seeds",
    RAW_LOSS: "every job's raw loss, labelled as not comparable across bins",
    HEATMAPS: "sweeps over two keys: one heatmap per lead metric, the mean and 95% interval "
    "printed in the cells, the best boxed solid and the settings indistinguishable from it "
    "dashed, a colour scale no narrower than the seeds' noise, and the raw loss in grey, "
    "unranked",
    MARGINALS: "sweeps over one or more than two keys: the lead metric (mean and 95% interval) "
    "against each key's values, the others pooled",
    PARALLEL: "sweeps over more than two keys: a parallel-coordinates plot of the settings",
    SEARCH: "searches (`hydra.sweeper.search`): each trial's value (mean ± std over its seeds) "
    "in the order the trials ran, the best so far as a step line, pruned and failed trials "
    "marked without a value; from 8 complete trials on, beside it each searched key's "
    "importance with its 95% interval and p-value (the page has the table and the rule)",
    MOSAIC: "every setting's last grid (originals over reconstructions), on the heatmaps' grid "
    "for two keys",
    RESULTS_CSV: "one row per setting, ranked settings first by the lead metric: swept values, "
    "seeds, status, whether ranked, `best` (starred), `indistinguishable_from_best`, `p_vs_best` "
    "(Welch), each metric's mean, std and 95% interval (empty with one seed), raw loss, inputs, "
    "images/s",
    RESULTS_MD: "the same table in Markdown",
    RESULTS_JSON: "the verdict and its rule; one record per setting (per metric `mean`, `std`, "
    "`ci95`, and `indistinguishable_from_best`) and one per job (overrides, folder, status, "
    "collapsed, final train and validation metrics)",
    RUNS_CSV: "long format, one row per job (setting x seed): the swept keys, the seed, status, "
    "and every final metric as a column (validation as named, train as `train_<metric>`), "
    "ready for pandas, polars or R",
    RUNS_PARQUET: "the same rows as Parquet, when pyarrow is installed",
    f"{JOBS}/": "one page per job: its final metrics beside the sweep's best, config, loss "
    "curves, grids, colour histograms, links to its files",
}
"""Every file of ``<sweep>/report/``, with what it holds (docs/sweeps.md's table, generated)."""

JOB_PAGE = "index.html"
"""A single run's page, written into its own folder by the job (``write_job_page``)."""

RUNS, SWEEPS = "runs", "sweeps"  # the default config's folders under outputs/

BASE = '<base href="report/">'


def sweep_index(report_page: str) -> str:
    """The sweep folder's index.html: the report's page, its links resolved from report/."""
    return report_page.replace("<head>\n", f"<head>\n{BASE}\n", 1)


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
    # Read now: once the link is switched, a report written at the same time may delete this
    # one as its "previous" (two rebuilds of one sweep at once).
    page = (staged / INDEX).read_text()
    tmp_link = sweep_dir / f".{REPORT}-link-{uuid.uuid4().hex[:12]}"
    os.symlink(staged.name, tmp_link)
    os.replace(tmp_link, link)  # atomic: readers see the old report or the new one
    stale = time.time() - 600  # another report being written now is younger than this
    for old in sweep_dir.glob(f".{REPORT}-*"):
        if old == staged or old.is_symlink():
            continue
        try:
            if old == previous or old.stat().st_mtime < stale:
                shutil.rmtree(old, ignore_errors=True)
        except FileNotFoundError:  # another rebuild removed it first
            continue
    write_text(sweep_dir / INDEX, sweep_index(page))
    return link / INDEX


def discard(staged: Path) -> None:
    """Remove a staged report that could not be finished; the published one stays."""
    shutil.rmtree(staged, ignore_errors=True)
