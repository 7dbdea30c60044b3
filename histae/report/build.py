"""Writing a report: a sweep's (``write_report``) and a single run's page (``write_job_page``).

The report only reads job folders. A sweep's report goes to ``<sweep>/report/`` and is
published whole (:mod:`histae.report.layout`); a single run's page is ``<run>/index.html``,
written by the job itself at its end.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from histae.atomic import write_text
from histae.importance import read_importance
from histae.labels import describe_config, short_keys
from histae.plots import save_png
from histae.report import layout
from histae.report.comparisons import plot_heatmaps, plot_marginals, plot_parallel
from histae.report.curves import loss_key, plot_curves, plot_raw_loss, validations
from histae.report.history import plot_history, read_trials
from histae.report.html import job_page
from histae.report.index import refresh_outputs_index
from histae.report.measures import DEFAULT_LEAD, METRICS, Metric
from histae.report.mosaic import mosaic
from histae.report.reading import (
    Job,
    expected_jobs,
    is_sweep_dir,
    load_job,
    read_jobs,
    read_search,
    read_sweep_lead,
    read_sweep_overrides,
)
from histae.report.settings import group_settings, lead_metrics, sort_settings
from histae.report.sweep_page import sweep_page
from histae.report.tables import results_csv, results_json, results_markdown, runs_rows, table
from histae.report.verdict import judge, ranked


def lead_metric(key: str) -> Metric:
    """The :data:`~histae.report.measures.METRICS` entry for ``key``.

    Raises:
        ValueError: an unknown key (the message lists the valid ones).
    """
    if key not in METRICS:
        raise ValueError(f"lead metric must be one of {', '.join(METRICS)}, got {key!r}")
    return METRICS[key]


def common_title(jobs: Sequence[Job]) -> str:
    """What every job shares, from their configs: ``"l1, 6,400 inputs"`` (varying parts left out)."""
    described = [describe_config(j.config).split(", ") for j in jobs if j.config]
    if not described:
        return ""
    return ", ".join(p for p in described[0] if all(p in d for d in described[1:]))


def _check_sweep_dir(sweep_dir: Path) -> None:
    if not sweep_dir.is_dir():
        raise FileNotFoundError(
            f"{sweep_dir} does not exist or is not a folder: pass a sweep folder"
        )
    if not is_sweep_dir(sweep_dir):
        raise ValueError(
            f"{sweep_dir} is not a sweep folder: no multirun.yaml and no job folders with "
            "status.json or .hydra/overrides.yaml (a single run's page: write_job_page)"
        )


def write_report(sweep_dir: str | os.PathLike, lead: str | None = None) -> Path:
    """Write the sweep's report into ``<sweep_dir>/report/``; return its index.html.

    Works on a finished sweep, a running one, one with failed or unreadable jobs. Reads the job
    folders only; every report file is replaced together. Also refreshes ``outputs/index.html``
    when the sweep lives in the default ``outputs/sweeps/``.

    Args:
        lead: the metric the table is sorted by and the curves show (``METRICS``' keys);
            None: the sweep's ``hydra.sweeper.report_lead`` from multirun.yaml, else
            ``DEFAULT_LEAD``.

    Raises:
        FileNotFoundError / ValueError: ``sweep_dir`` is missing or no sweep folder, or ``lead``
            is unknown.
    """
    sweep_dir = Path(os.path.abspath(sweep_dir))
    lead_m = lead_metric(lead or read_sweep_lead(sweep_dir) or DEFAULT_LEAD)
    _check_sweep_dir(sweep_dir)
    jobs = read_jobs(sweep_dir)
    # Ranked settings first (best mean first), then the ones the rule never ranks.
    settings = sorted(
        sort_settings(group_settings(jobs), lead_m), key=lambda s: not ranked(s, lead_m)
    )
    verdict = judge(settings, lead_m)
    metrics = lead_metrics(settings) or [lead_m]
    if lead_m not in metrics:
        metrics.insert(0, lead_m)
    keys = list(jobs[0].setting) if jobs else []  # the swept keys, seeds aside
    short = short_keys(keys)
    overrides = read_sweep_overrides(sweep_dir)
    command = "python -m histae -m " + " ".join(overrides) if overrides else ""
    title = common_title(jobs)
    colors = {job.name: s.color for s in settings for job in s.jobs}
    rows = table(settings, keys, metrics, verdict)
    verdicts = {m.key: verdict if m is lead_m else judge(settings, m) for m in metrics}
    leaders = {
        key: (v.leader.label, v.leader.stat(key).mean)  # type: ignore[union-attr]
        for key, v in verdicts.items()
        if v.leader is not None
    }

    staged = layout.new_report_dir(sweep_dir)
    try:
        figures = []
        if jobs:
            plot_curves(settings, lead_m, staged / layout.CURVES, title)
            plot_raw_loss(jobs, colors, staged / layout.RAW_LOSS, title)
            save_png(mosaic(settings, keys, short), staged / layout.MOSAIC)
            figures += [layout.CURVES, layout.RAW_LOSS, layout.MOSAIC]
        if len(keys) == 2 and len(settings) > 1:
            plot_heatmaps(
                settings,
                (keys[0], keys[1]),
                metrics,
                short,
                staged / layout.HEATMAPS,
                title,
                verdicts=verdicts,
            )
            figures.append(layout.HEATMAPS)
        elif keys and len(settings) > 1:
            plot_marginals(settings, keys, lead_m, short, staged / layout.MARGINALS)
            figures.append(layout.MARGINALS)
            if len(keys) > 2:
                plot_parallel(settings, keys, lead_m, short, staged / layout.PARALLEL)
                figures.append(layout.PARALLEL)
        search = read_search(sweep_dir)
        trials = read_trials(sweep_dir) if search else []
        importances = read_importance(sweep_dir) if search else []
        if search and trials:
            metric = METRICS.get(search[0], lead_m)
            plot_history(
                trials, metric.label, search[1] == "maximize", staged / layout.SEARCH, importances
            )
            figures.append(layout.SEARCH)
        write_text(staged / layout.RESULTS_CSV, results_csv(rows))
        runs = runs_rows(jobs, list(jobs[0].swept) if jobs else [])
        write_text(staged / layout.RUNS_CSV, results_csv(runs))
        write_parquet(runs, staged / layout.RUNS_PARQUET)
        write_text(
            staged / layout.RESULTS_MD,
            results_markdown(
                rows, keys, metrics, short, lead_m, verdict, f"Sweep {sweep_dir.name}", command
            ),
        )
        write_text(
            staged / layout.RESULTS_JSON,
            results_json(jobs, lead_m, str(sweep_dir), settings, rows, metrics, verdict),
        )
        up = "../../../index.html" if sweep_dir.parent.name == layout.SWEEPS else None
        for job in jobs:
            links = {"the sweep": "../index.html"} | ({"all outputs": "../" + up} if up else {})
            page_dir = sweep_dir / layout.REPORT / layout.JOBS
            write_text(
                staged / layout.JOBS / f"{job.slug}.html", job_page(job, page_dir, links, leaders)
            )
        info = {
            "command": command,
            # a search's jobs are not its command's grid: how many it runs is not known ahead
            "expected": None if search else expected_jobs(overrides),
            "up": up,
            "normalised": loss_key(jobs) == "hist_tv",
            "verdict": verdict,
            "validations": validations(jobs),
            "importance": importances,
        }
        page = sweep_page(
            sweep_dir, jobs, settings, rows, keys, metrics, short, lead_m, figures, info
        )
        write_text(staged / layout.INDEX, page)
    except BaseException:
        layout.discard(staged)
        raise
    index = layout.publish(sweep_dir, staged)
    refresh_outputs_index(sweep_dir)
    return index


def write_parquet(rows: Sequence[dict], path: Path) -> Path | None:
    """``rows`` as Parquet when pyarrow is installed (None, nothing written, when it is not)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return None
    if not rows:
        return None
    columns = {k: [row.get(k) for row in rows] for k in rows[0]}
    # Swept values are text in the overrides; keep them text so a column never mixes types.
    table = pa.table({k: pa.array(v, from_pandas=True) for k, v in columns.items()})
    pq.write_table(table, path)
    return path


def write_job_page(job_dir: str | os.PathLike) -> Path:
    """Write a single run's page, ``<job_dir>/index.html``, and refresh ``outputs/index.html``.

    The job calls this at its end (a single run has no sweep report). Never raises on what the
    folder holds: an unreadable file shows on the page.
    """
    job_dir = Path(os.path.abspath(job_dir))
    job = load_job(job_dir, job_dir.parent)
    job.label = job.name
    links = (
        {"all sweeps and runs": "../../index.html"} if job_dir.parent.name == layout.RUNS else {}
    )
    path = write_text(job_dir / layout.JOB_PAGE, job_page(job, job_dir, links))
    refresh_outputs_index(job_dir)
    return path
