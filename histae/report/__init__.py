"""The sweep report: it reads job folders (through :mod:`histae.jobdir`) and writes pages.

- :func:`write_report` ``(sweep_dir, lead="hist_w1")``: ``<sweep>/report/`` (layout.py lists
  its files), called by the sweeper when a sweep ends and by ``python -m histae.report``.
- :func:`write_job_page` ``(job_dir)``: a single run's ``index.html``, called by the job.
- :func:`write_outputs_index` / :func:`refresh_outputs_index`: ``outputs/index.html``.

Files, one concept each: ``layout`` (file names, publishing), ``reading`` (jobs, labels),
``measures`` (comparable metrics, normalisation, collapse), ``settings`` (seeds as replicates),
``curves``, ``comparisons`` (heatmaps, marginals, parallel coordinates), ``mosaic``, ``tables``,
``html`` (shell, job page), ``history`` (a search's trials), ``sweep_page``, ``index``
(outputs/index.html), ``build``.
"""

from histae.report.build import write_job_page, write_report
from histae.report.index import outputs_index_of, refresh_outputs_index, write_outputs_index

__all__ = [
    "outputs_index_of",
    "refresh_outputs_index",
    "write_job_page",
    "write_outputs_index",
    "write_report",
]
