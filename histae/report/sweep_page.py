"""The sweep page: what was run, the comparable results first, then curves, grids and jobs."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from histae.importance import RULE as IMPORTANCE_RULE
from histae.importance import Importance
from histae.report import layout
from histae.report.html import esc, href, img, page, state_counts, table_html
from histae.report.measures import METRICS, Metric
from histae.report.reading import Job
from histae.report.settings import Setting
from histae.report.tables import RAW_LOSS_HEADING, display_rows, mark, replicated_note
from histae.report.verdict import RULE


def importance_html(importances: Sequence[Importance]) -> str:
    """The search's parameter importance as a table, with its rule."""
    cells = [
        [
            imp.key,
            f"{imp.share:.2f}",
            f"{imp.low:.2f} to {imp.high:.2f}",
            f"{imp.p:.2g}",
            "yes" if imp.distinguishable else "no",
        ]
        for imp in importances
    ]
    heads = ["key", "share", "95% interval", "p", "an effect?"]
    return (
        '<h3 id="importance">Parameter importance</h3>'
        + table_html(heads, cells, "importance", numeric_from=1)
        + f'<p class="note">{esc(IMPORTANCE_RULE)}. From importance.csv in the sweep folder.</p>'
    )


def _metrics_note(lead: Metric, loss_normalised: bool) -> str:
    parts = [
        f"Sorted by <b>{esc(lead.label)}</b>, ranked settings first, best mean first; ★ marks "
        "the best by the rule above, ≈ the settings indistinguishable from it "
        "(<code>python -m histae.report DIR --lead KEY</code> chooses another metric: "
        + ", ".join(f"<code>{k}</code>" for k in METRICS)
        + ").",
        "<b>colour W1</b> (<code>hist_w1</code>): the exact 1-D Wasserstein distance between the "
        "per-channel colour distributions of reconstruction and original, in pixel-value units, "
        "with no bins: it compares across every setting. <b>pixel L1</b> and <b>PSNR</b>: of the "
        "clamped reconstructions.",
    ]
    if loss_normalised:
        parts.append(
            "<b>histogram loss, normalised (TV)</b>: the l1 histogram loss rescaled to the "
            "total-variation distance between the two soft histograms, "
            "<code>bins × loss / (2 × pixels per histogram)</code>: 0 when they agree, 1 when "
            "they do not overlap, 0.5 for a collapsed job, on the same scale at every bins."
        )
    parts.append(
        f"<b>{esc(RAW_LOSS_HEADING)}</b>: the training loss as logged. On raw counts it scales "
        "as 1/bins (a job whose outputs all left the range sits at about 3072/bins), so a "
        "larger bins looks better without being better."
    )
    return "".join(f'<p class="note">{p}</p>' for p in parts)


def sweep_page(
    sweep_dir: Path,
    jobs: Sequence[Job],
    settings: Sequence[Setting],
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    metrics: Sequence[Metric],
    short: Mapping[str, str],
    lead: Metric,
    figures: Sequence[str],
    info: Mapping[str, Any],
) -> str:
    """index.html of ``<sweep>/report/``.

    Args:
        rows: :func:`histae.report.tables.table` rows, in ``settings``' (sorted) order.
        figures: the report files that were drawn.
        info: ``command``, ``expected`` (jobs the command expands to), ``up`` (URL of
            outputs/index.html or None), ``normalised`` (whether hist_tv is shown).
    """
    here = sweep_dir / layout.REPORT
    expected = info.get("expected")
    started = (
        f"{len(jobs)} of {expected} jobs"
        if expected and expected != len(jobs)
        else f"{len(jobs)} jobs"
    )
    body = [f"<h1>Sweep {esc(sweep_dir.name)}</h1>"]
    meta = [f"folder <code>{esc(sweep_dir)}</code>", f"{started}: {state_counts(jobs)}"]
    if any(len(s.jobs) > 1 for s in settings):
        seeds = sorted({len(s.jobs) for s in settings})
        meta.append(f"{len(settings)} settings × {'/'.join(map(str, seeds))} seeds (trainer.seed)")
    meta.append(f"written {time.strftime('%Y-%m-%d %H:%M:%S')}")
    if info.get("up"):
        meta.append(f'<a href="{esc(info["up"])}">all sweeps and runs</a>')
    body.append('<p class="meta">' + " · ".join(meta) + "</p>")
    if info.get("command"):
        body.append(f"<p><code>{esc(info['command'])}</code></p>")
    verdict = info.get("verdict")
    if verdict is not None:
        for warning in verdict.warnings:
            body.append(f'<p class="warning" id="warning">{esc(warning)}</p>')
        body.append(f'<p class="verdict" id="verdict"><b>{esc(verdict.sentence)}</b></p>')
        note = replicated_note(rows)
        if note:
            body.append(f'<p class="note">{esc(note)}</p>')
        body.append(f'<p class="note rule" id="rule"><b>Rule.</b> {esc(RULE)}</p>')
    nav = [("results", "results"), ("comparison", "comparison"), ("curves", "curves")]
    nav += [("reconstructions", "reconstructions"), ("raw", "raw loss"), ("jobs-list", "jobs")]
    body.append("<nav>" + "".join(f'<a href="#{a}">{t}</a>' for a, t in nav) + "</nav>")

    body.append('<h2 id="results">Results</h2>')
    body.append(_metrics_note(lead, bool(info.get("normalised"))))
    heads, cells = display_rows(rows, keys, metrics, short)
    links = [f"{layout.JOBS}/{s.jobs[0].slug}.html" if len(s.jobs) == 1 else None for s in settings]
    classes = [
        "best" if row["best"] else "tie" if row["indistinguishable_from_best"] else ""
        for row in rows
    ]
    cells = [
        [(f"{mark(row)} " if mark(row) else "") + line[0], *line[1:]]
        for row, line in zip(rows, cells, strict=True)
    ]
    first_number = len(heads) - len(metrics) - 3
    body.append(table_html(heads, cells, "results", classes, links, first_number))
    files = (layout.RESULTS_CSV, layout.RESULTS_MD, layout.RESULTS_JSON)
    body.append(
        "<p>Also as "
        + ", ".join(f'<a href="{f}">{f}</a>' for f in files)
        + f'; one row per job (each seed) in <a href="{layout.RUNS_CSV}">{layout.RUNS_CSV}</a>.</p>'
    )

    body.append('<h2 id="comparison">Comparison</h2>')
    for name, text in (
        (
            layout.HEATMAPS,
            "Each lead metric over the two swept keys: the best cell (by the rule) boxed in "
            "solid red, cells indistinguishable from it in dashed red; the colour scale spans at "
            "least ± 2 pooled seed-to-seed std (± 5% of the mean with one seed), so a difference "
            "inside the noise stays one colour.",
        ),
        (
            layout.MARGINALS,
            f"{lead.label} against each key, the other keys and seeds pooled: mean and 95% "
            "interval; the axis spans at least ± 5% of the mean, so a tiny gap looks tiny.",
        ),
        (layout.PARALLEL, "Every setting as a line through its key values to its lead metric."),
        (
            layout.SEARCH,
            "The search's trials in the order they ran: each complete trial's value (mean ± std "
            "over its seeds; trials.csv in the sweep folder has them all), the best so far as a "
            "step line, pruned and failed trials marked on the axis without a value; beside it, "
            "once 8 trials are complete, each searched key's importance (table below).",
        ),
    ):
        if name in figures:
            body.append(f"<p>{esc(text)}</p>" + img(name, text))
    if layout.SEARCH in figures and info.get("importance"):
        body.append(importance_html(info["importance"]))
    body.append('<h2 id="curves">Curves</h2>')
    body.append(
        "<p>Train averages as lines, validations as markers, on one axis"
        + (
            " (mean over seeds, band from min to max)"
            if any(len(s.jobs) > 1 for s in settings)
            else ""
        )
        + ".</p>"
    )
    if jobs and info.get("validations", 2) < 2:
        body.append(
            '<p class="note">Each job has validated once, so the validation metrics are single '
            "values, not curves: lower <code>trainer.val_every_inputs</code> for more.</p>"
        )
    if layout.CURVES in figures:
        body.append(img(layout.CURVES, "loss and lead metric against inputs seen"))
    body.append('<h2 id="reconstructions">Reconstructions</h2>')
    if layout.MOSAIC in figures:
        body.append(
            "<p>Each setting's last validation grid: rows of originals over their "
            "reconstructions" + (", on the heatmaps' grid" if len(keys) == 2 else "") + ".</p>"
        )
        body.append(img(layout.MOSAIC, "every setting's reconstructions", "pixel"))
    body.append('<h2 id="raw">Raw loss</h2>')
    if layout.RAW_LOSS in figures:
        body.append(f'<p class="note">{esc(RAW_LOSS_HEADING)}: shown for completeness.</p>')
        body.append(img(layout.RAW_LOSS, "raw loss of every job"))

    body.append('<h2 id="jobs-list">Jobs</h2>')
    job_cells = [
        [j.label + (f", seed {j.seed}" if j.seed is not None else ""), j.status_text, j.name]
        for j in jobs
    ]
    job_links = [f"{layout.JOBS}/{j.slug}.html" for j in jobs]
    body.append(table_html(["job", "status", "folder"], job_cells, "jobs", links=job_links))
    body.append(
        "<p>Each job's folder: "
        + " · ".join(f'<a href="{href(j.path, here)}/">{esc(j.name)}</a>' for j in jobs)
        + "</p>"
    )
    return page(f"histae sweep {sweep_dir.name}", "\n".join(body))
