"""The HTML pages: the sweep page and one page per job, and the shell and style they share.

Pages use relative links only (they open from disk, and a folder can be moved whole). Pixel-art
grids keep nearest-neighbour scaling (``img.pixel``); plots scale smoothly, so their text stays
sharp.
"""

from __future__ import annotations

import html
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

import yaml

from histae.jobdir import GRID as JOB_GRID
from histae.jobdir import GRIDS, HISTOGRAMS, LOSS_PLOT, METRICS, STATUS, SUMMARY
from histae.labels import describe_config
from histae.report.reading import Job

STATUS_ORDER = ("done", "diverged", "failed", "running", "stopped", "pending", "unreadable")

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; padding: 0 1em;
       color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.meta, .note { color: #555; } code, pre { background: #f4f4f4; padding: 0 0.2em; }
pre { padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
table { border-collapse: collapse; font-size: 0.92em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; vertical-align: top; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best { background: #fff6cc; font-weight: 600; } tr.tie { background: #fffbe8; }
.warning { background: #fdecea; border-left: 4px solid #c62828; padding: 0.5em 0.8em; }
.verdict { font-size: 1.1em; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; border-radius: 2px;
          vertical-align: middle; margin-right: 0.3em; }
.done { color: #1a7f37; } .failed, .diverged, .unreadable, .collapsed { color: #c62828; }
.running { color: #1565c0; } .pending { color: #777; } .stopped { color: #b26a00; }
img { max-width: 100%; height: auto; }
img.pixel { image-rendering: pixelated; }
img.thumb { max-width: 160px; max-height: 120px; }  /* shrunk: smooth, not pixelated */
.plots { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
nav a { margin-right: 0.8em; }
"""

# Records, once the page has loaded, how many images loaded and how many rows each table has
# (on <body data-...>), so a headless browser's dumped DOM shows whether the page is whole.
CHECK_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (img) { return img.complete && img.naturalWidth > 0; });
  document.body.dataset.imagesTotal = images.length;
  document.body.dataset.imagesLoaded = loaded.length;
  document.body.dataset.tableRows = document.querySelectorAll("#results tbody tr").length;
  document.body.dataset.jobRows = document.querySelectorAll("#jobs tbody tr").length;
});
"""


def esc(text: object) -> str:
    """HTML-escaped text."""
    return html.escape(str(text))


def href(path: Path, start: Path) -> str:
    """A relative URL from the folder ``start`` to ``path`` (both absolute, not resolved)."""
    return quote(Path(os.path.relpath(path, start)).as_posix())


def img(src: str, alt: str, cls: str = "") -> str:
    """An image that links to itself: shown scaled to the page, a click opens it full size."""
    extra = f' class="{cls}"' if cls else ""
    return f'<a href="{esc(src)}"><img src="{esc(src)}" alt="{esc(alt)}"{extra}></a>'


def page(title: str, body: str) -> str:
    """A whole HTML document."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n"
        f"<script>{CHECK_SCRIPT}</script>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def state_counts(jobs: Sequence[Job]) -> str:
    """``"4 done, 1 failed (1 collapsed)"``."""
    counts = {s: sum(j.state == s for j in jobs) for s in STATUS_ORDER}
    text = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "none yet"
    collapsed = sum(j.collapsed for j in jobs)
    return text + (f" ({collapsed} collapsed)" if collapsed else "")


def table_html(
    heads: Sequence[str],
    cells: Sequence[Sequence[str]],
    table_id: str,
    classes: Sequence[str] = (),
    links: Sequence[str | None] = (),
    numeric_from: int | None = None,
) -> str:
    """A table; ``classes[i]`` on row i, ``links[i]`` on its first cell, numbers right-aligned."""
    out = [f'<table id="{table_id}"><thead><tr>']
    out += [f"<th>{esc(h)}</th>" for h in heads]
    out.append("</tr></thead>\n<tbody>")
    for i, row in enumerate(cells):
        cls = classes[i] if i < len(classes) else ""
        tds = []
        for j, cell in enumerate(row):
            text = esc(cell)
            if j == 0 and i < len(links) and links[i]:
                text = f'<a href="{esc(links[i])}">{text}</a>'
            numeric = numeric_from is not None and j >= numeric_from
            tds.append(f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>")
        out.append(
            f'<tr class="{cls}">' + "".join(tds) + "</tr>"
            if cls
            else "<tr>" + "".join(tds) + "</tr>"
        )
    out.append("</tbody></table>")
    return "\n".join(out)


def final_metrics_html(job: Job, best: Mapping[str, tuple[str, float]] | None = None) -> str:
    """The job's final validation metrics as a table; with ``best`` (metric key -> the sweep's
    best setting's label and mean), a column for contrast. "" when the job has no values."""
    from histae.report.measures import METRICS, RAW_LOSS
    from histae.report.settings import final_value
    from histae.report.tables import number

    rows = []
    for metric in [*METRICS.values(), RAW_LOSS]:
        value = final_value(job, metric.key)
        if value is None:
            continue
        line = [metric.label, number(value)]
        if best is not None:
            other = best.get(metric.key)
            line.append(f"{number(other[1])} ({other[0]})" if other else "")
        rows.append(line)
    if not rows:
        return ""
    heads = ["metric", "this job"] + (["the sweep's best mean (its setting)"] if best else [])
    return "<h2>Final metrics</h2>" + table_html(heads, rows, "final", numeric_from=1)


def job_page(
    job: Job,
    page_dir: Path,
    links: Mapping[str, str] | None = None,
    best: Mapping[str, tuple[str, float]] | None = None,
) -> str:
    """A job's page: what it is (config), status, its final metrics, links to its files,
    curves, grids, histograms.

    Args:
        page_dir: the folder the page is written to (links are relative to it).
        links: extra navigation, text -> URL (the sweep page, all outputs).
        best: for a sweep's job, metric key -> (label, mean) of the sweep's best setting.
    """

    def to(name: str) -> str:
        return href(job.path / name, page_dir)

    title = describe_config(job.config) or job.label or job.name
    body = [f"<h1>{esc(title)}</h1>"]
    state_class = "collapsed" if job.collapsed else job.state
    meta = [f'<span class="{esc(state_class)}">{esc(job.status_text)}</span>']
    meta.append(f"folder <code>{esc(job.path)}</code>")
    if job.record.inputs is not None:
        meta.append(f"{job.record.inputs:,} inputs")
    if job.record.wall_time is not None:
        meta.append(f"{job.record.wall_time:,.1f} s")
    meta += [f'<a href="{esc(url)}">{esc(text)}</a>' for text, url in (links or {}).items()]
    body.append('<p class="meta">' + " · ".join(meta) + "</p>")
    if job.collapsed:
        body.append(
            '<p class="collapsed">Collapsed: nearly every output value left the histogram range, '
            "where the loss has no gradient; the loss is frozen and the reconstructions are black.</p>"
        )
    if job.record.overrides:
        body.append(f"<p>overrides <code>{esc(' '.join(job.record.overrides))}</code></p>")
    files = [METRICS, SUMMARY, STATUS, ".hydra/config.yaml", ".hydra/overrides.yaml"]
    files += [p.name for p in sorted(job.path.glob("*.log"))]
    file_links = [f'<a href="{to(f)}">{esc(f)}</a>' for f in files if (job.path / f).is_file()]
    history = sorted((job.path / GRIDS).glob("inputs-*.png"))
    if history:
        steps = [
            f'<a href="{to(GRIDS + "/" + p.name)}">{esc(p.stem.split("-")[-1].lstrip("0") or "0")}</a>'
            for p in history
        ]
        file_links.append("grids at " + ", ".join(steps) + " inputs")
    if file_links:
        body.append("<p>files: " + " · ".join(file_links) + "</p>")
    body.append(final_metrics_html(job, best))
    plots = [
        img(to(name), f"{alt} of {title}")
        for name, alt in ((LOSS_PLOT, "loss curves"), (HISTOGRAMS, "colour histograms"))
        if (job.path / name).is_file()
    ]
    if plots:
        body.append('<div class="plots">' + "".join(plots) + "</div>")
    if (job.path / JOB_GRID).is_file():
        body.append(
            "<h2>Reconstructions</h2><p>The first validation images, each row of originals "
            "over its reconstructions, at the last validation.</p>"
        )
        body.append(img(to(JOB_GRID), f"reconstructions of {title}", "pixel"))
    if not plots and not file_links:
        body.append("<p>Nothing written yet.</p>")
    if job.config:
        config = yaml.safe_dump(job.config, sort_keys=False, default_flow_style=None)
        body.append(f"<h2>Config</h2><pre>{esc(config)}</pre>")
    body.append(f'<p class="meta">written {time.strftime("%Y-%m-%d %H:%M:%S")}</p>')
    return page(f"histae job {job.name}: {title}", "\n".join(body))
