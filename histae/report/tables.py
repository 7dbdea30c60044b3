"""The results table (one row per setting, best first) and results.json (one record per job)."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from histae.atomic import json_safe
from histae.report.measures import Metric
from histae.report.reading import Job
from histae.report.settings import Setting, final_value

RAW_LOSS_HEADING = "raw loss (not comparable across bins)"


def number(value: Any, digits: int = 4) -> str:
    """A table cell for a number ("" for None)."""
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}" if math.isfinite(value) else str(value)
    return str(value)


def setting_status(setting: Setting) -> str:
    """``done``, ``done, collapsed`` or ``failed: ...`` for one job; counts for several."""
    if len(setting.jobs) == 1:
        return setting.jobs[0].status_text
    counts: dict[str, int] = {}
    for job in setting.jobs:
        counts[job.state] = counts.get(job.state, 0) + 1
    text = ", ".join(f"{n} {state}" for state, n in counts.items())
    if setting.collapsed:
        text += f"; {setting.collapsed} of {len(setting.jobs)} collapsed"
    errors = [f"seed {j.seed}: {j.record.error}" for j in setting.jobs if j.record.error]
    return text + ("; " + "; ".join(errors) if errors else "")


def best_setting(settings: Sequence[Setting], lead: Metric) -> Setting | None:
    """The setting with the best mean ``lead``, or None if none has a value."""
    best: Setting | None = None
    for setting in settings:
        stat = setting.stat(lead.key)
        if stat is None:
            continue
        if best is None or lead.better(stat.mean, best.stat(lead.key).mean):  # type: ignore[union-attr]
            best = setting
    return best


def _raw_loss(setting: Setting) -> float | None:
    values = [final_value(job, "loss") for job in setting.jobs]
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def table(
    settings: Sequence[Setting], keys: Sequence[str], metrics: Sequence[Metric], lead: Metric
) -> list[dict[str, Any]]:
    """The rows of results.csv: setting keys, seeds, status, each metric's mean and std, the raw
    loss, inputs, speed; ``best`` is True on the best row by ``lead``. Rows in ``settings``'
    order (the caller sorts them)."""
    best = best_setting(settings, lead)
    rows = []
    for setting in settings:
        row: dict[str, Any] = {k: setting.values.get(k, "") for k in keys}
        if not keys:
            row["job"] = setting.jobs[0].name
        row["seeds"] = len(setting.jobs)
        row["status"] = setting_status(setting)
        row["collapsed"] = setting.collapsed
        for metric in metrics:
            stat = setting.stat(metric.key)
            row[metric.key] = stat.mean if stat else None
            row[f"{metric.key}_std"] = stat.std if stat else None
        row["raw_loss"] = _raw_loss(setting)
        inputs = [job.record.inputs for job in setting.jobs if job.record.inputs is not None]
        row["inputs"] = min(inputs) if inputs else None
        speeds = [s for job in setting.jobs if (s := job.record.images_per_second) is not None]
        row["images_per_second"] = round(sum(speeds) / len(speeds), 2) if speeds else None
        row["best"] = setting is best
        rows.append(row)
    return rows


def results_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """results.csv text: a header and the rows of :func:`table`."""
    if not rows:
        return "status\n"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: number(v, 6) for k, v in row.items()})
    return buf.getvalue()


def display_rows(
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    metrics: Sequence[Metric],
    short: Mapping[str, str],
) -> tuple[list[str], list[list[str]]]:
    """Headings and text cells of the table as the page and results.md show it."""
    replicated = any(row["seeds"] > 1 for row in rows)
    heads = [short.get(k, k) for k in keys] or ["job"]
    heads += (["seeds"] if replicated else []) + ["status"]
    heads += [m.label for m in metrics] + [RAW_LOSS_HEADING, "inputs", "images/s"]
    cells = []
    for row in rows:
        line = [str(row[k]) for k in keys] or [str(row["job"])]
        line += ([str(row["seeds"])] if replicated else []) + [row["status"]]
        for metric in metrics:
            text = number(row[metric.key])
            if replicated and row["seeds"] > 1 and row[f"{metric.key}_std"] is not None:
                text += f" ± {number(row[metric.key + '_std'], 2)}"
            line.append(text)
        line += [number(row["raw_loss"]), number(row["inputs"]), number(row["images_per_second"])]
        cells.append(line)
    return heads, cells


def results_markdown(
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    metrics: Sequence[Metric],
    short: Mapping[str, str],
    lead: Metric,
    title: str,
    command: str = "",
) -> str:
    """results.md: a title, the command, and the table sorted by ``lead`` (best row starred)."""
    lines = [f"# {title}", ""] + ([f"`{command}`", ""] if command else [])
    if not rows:
        return "\n".join([*lines, "No jobs yet.", ""])
    heads, cells = display_rows(rows, keys, metrics, short)
    lines.append(f"Sorted by {lead.label}, best first; ★ marks the best setting.")
    lines.append("")
    lines.append("| " + " | ".join(["", *heads]) + " |")
    text_cols = len(heads) - len(metrics) - 3
    lines.append(
        "|---|" + "|".join("---" if i < text_cols else "---:" for i in range(len(heads))) + "|"
    )
    for row, line in zip(rows, cells, strict=True):
        mark = "★" if row["best"] else ""
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in [mark, *line]) + " |")
    return "\n".join([*lines, ""])


def job_record(job: Job) -> dict[str, Any]:
    """results.json's record of one job."""
    return {
        "job": job.name,
        "folder": str(job.path),
        "overrides": job.record.overrides,
        "swept": job.swept,
        "setting": job.label,
        "seed": job.seed,
        "status": job.state,
        "error": job.record.error,
        "collapsed": job.collapsed,
        "inputs": job.record.inputs,
        "wall_time": job.record.wall_time,
        "images_per_second": job.record.images_per_second,
        "hist_tv": final_value(job, "hist_tv"),
        "final": {"train": job.record.final("train"), "val": job.record.final("val")},
    }


def results_json(jobs: Sequence[Job], lead: Metric, sweep: str) -> str:
    """results.json text: the sweep, the lead metric and one record per job (NaN as null)."""
    data = {"sweep": sweep, "lead_metric": lead.key, "jobs": [job_record(j) for j in jobs]}
    return json.dumps(json_safe(data), indent=2) + "\n"
