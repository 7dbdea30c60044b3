"""The results table (one row per setting, best first) and results.json (one record per job)."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from histae.atomic import json_safe
from histae.jobdir import finite_or_none
from histae.report.measures import Metric
from histae.report.reading import Job
from histae.report.settings import Setting, final_value
from histae.report.verdict import ALPHA, RULE, SEEDS_HINT, Verdict

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


def _raw_loss(setting: Setting) -> float | None:
    values = [final_value(job, "loss") for job in setting.jobs]
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def table(
    settings: Sequence[Setting],
    keys: Sequence[str],
    metrics: Sequence[Metric],
    verdict: Verdict,
) -> list[dict[str, Any]]:
    """The rows of results.csv: setting keys, seeds, status, whether ranked, each metric's mean,
    std and 95% interval (empty for one seed), the raw loss, inputs, speed; ``best`` is True on
    the starred row and ``indistinguishable_from_best`` says the rule's answer for the lead
    metric (empty where it cannot judge). Rows in ``settings``' order (the caller sorts them)."""
    rows = []
    for setting in settings:
        row: dict[str, Any] = {k: setting.values.get(k, "") for k in keys}
        if not keys:
            row["job"] = setting.jobs[0].name
        row["seeds"] = len(setting.jobs)
        row["status"] = setting_status(setting)
        row["collapsed"] = setting.collapsed
        row["ranked"] = setting not in verdict.unranked
        row["best"] = setting is verdict.best
        row["indistinguishable_from_best"] = verdict.indistinguishable(setting)
        p = verdict.p_values.get(setting.label)
        row["p_vs_best"] = p
        for metric in metrics:
            stat = setting.stat(metric.key)
            ci = stat.ci95 if stat else None
            row[metric.key] = stat.mean if stat else None
            row[f"{metric.key}_std"] = stat.std if stat else None
            row[f"{metric.key}_ci95_low"] = ci[0] if ci else None
            row[f"{metric.key}_ci95_high"] = ci[1] if ci else None
        row["raw_loss"] = _raw_loss(setting)
        inputs = [job.record.inputs for job in setting.jobs if job.record.inputs is not None]
        row["inputs"] = min(inputs) if inputs else None
        speeds = [s for job in setting.jobs if (s := job.record.images_per_second) is not None]
        row["images_per_second"] = round(sum(speeds) / len(speeds), 2) if speeds else None
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


def with_interval(row: Mapping[str, Any], key: str) -> str:
    """``"0.123 ± 0.004"``: the mean and the 95% interval's half width (just the mean for one
    seed, "" for none)."""
    text = number(row[key])
    low, high = row.get(f"{key}_ci95_low"), row.get(f"{key}_ci95_high")
    if text and low is not None and high is not None:
        text += f" ± {number((high - low) / 2, 2)}"
    return text


def mark(row: Mapping[str, Any]) -> str:
    """★ on the best row, ≈ on the rows indistinguishable from it, "" elsewhere."""
    if row["best"]:
        return "★"
    return "≈" if row["indistinguishable_from_best"] else ""


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
            line.append(with_interval(row, metric.key))
        line += [number(row["raw_loss"]), number(row["inputs"]), number(row["images_per_second"])]
        cells.append(line)
    return heads, cells


def results_markdown(
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    metrics: Sequence[Metric],
    short: Mapping[str, str],
    lead: Metric,
    verdict: Verdict,
    title: str,
    command: str = "",
) -> str:
    """results.md: a title, the command, the verdict and the rule, and the table sorted by
    ``lead`` (★ best, ≈ indistinguishable from it)."""
    lines = [f"# {title}", ""] + ([f"`{command}`", ""] if command else [])
    if not rows:
        return "\n".join([*lines, "No jobs yet.", ""])
    heads, cells = display_rows(rows, keys, metrics, short)
    lines.append(f"Sorted by {lead.label}, best first. {verdict.sentence}")
    lines.append("")
    if replicated_note(rows):
        lines += [replicated_note(rows), ""]
    lines += [f"Rule: {RULE}", ""]
    lines.append("| " + " | ".join(["", *heads]) + " |")
    text_cols = len(heads) - len(metrics) - 3
    lines.append(
        "|---|" + "|".join("---" if i < text_cols else "---:" for i in range(len(heads))) + "|"
    )
    for row, line in zip(rows, cells, strict=True):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in [mark(row), *line]) + " |")
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


def runs_rows(jobs: Sequence[Job], keys: Sequence[str]) -> list[dict[str, Any]]:
    """runs.csv's rows, one per job: ``keys`` (the swept keys, seed included), status and every
    final metric (validation as named, train as ``train_<metric>``; None where missing)."""
    from histae.jobdir import METRIC_COLUMNS

    names = [c for c in METRIC_COLUMNS if c not in ("inputs", "split")]
    rows = []
    for job in jobs:
        row: dict[str, Any] = {"job": job.name}
        row.update({k: job.swept.get(k, job.overrides.get(k, "")) for k in keys})
        row["status"], row["collapsed"] = job.state, job.collapsed
        row["inputs"] = job.record.inputs
        row["wall_time"] = job.record.wall_time
        row["images_per_second"] = job.record.images_per_second
        val, train = job.record.final("val") or {}, job.record.final("train") or {}
        row.update({c: finite_or_none(val.get(c)) for c in names})
        row["hist_tv"] = final_value(job, "hist_tv")
        row.update({f"train_{c}": finite_or_none(train.get(c)) for c in names})
        rows.append(row)
    return rows


def replicated_note(rows: Sequence[Mapping[str, Any]]) -> str:
    """What the ± means, or that one seed gives no uncertainty ("" when rows mix or are empty)."""
    if rows and all(row["seeds"] == 1 for row in rows):
        return (
            "One seed per setting: no uncertainty is known, so no ranking is judged. Add "
            f"{SEEDS_HINT} to the command for a 95% interval and a judged best."
        )
    if rows:
        return "± is the half width of the 95% confidence interval over seeds (Student's t)."
    return ""


def setting_record(
    setting: Setting, row: Mapping[str, Any], metrics: Sequence[Metric]
) -> dict[str, Any]:
    """results.json's record of one setting: its values, seeds, and per metric mean, std, ci95."""
    return {
        "setting": setting.label,
        "values": dict(setting.values),
        "seeds": len(setting.jobs),
        "jobs": [job.name for job in setting.jobs],
        "ranked": row["ranked"],
        "best": row["best"],
        "indistinguishable_from_best": row["indistinguishable_from_best"],
        "p_vs_best": row["p_vs_best"],
        "metrics": {
            m.key: {
                "mean": row[m.key],
                "std": row[f"{m.key}_std"],
                "ci95": (
                    [row[f"{m.key}_ci95_low"], row[f"{m.key}_ci95_high"]]
                    if row[f"{m.key}_ci95_low"] is not None
                    else None
                ),
                "n": s.n if (s := setting.stat(m.key)) else 0,
            }
            for m in metrics
        },
    }


def results_json(
    jobs: Sequence[Job],
    lead: Metric,
    sweep: str,
    settings: Sequence[Setting] = (),
    rows: Sequence[Mapping[str, Any]] = (),
    metrics: Sequence[Metric] = (),
    verdict: Verdict | None = None,
) -> str:
    """results.json text: the sweep, the lead metric, the verdict and its rule, one record per
    setting (mean, std, ci95, indistinguishable_from_best) and one per job (NaN as null)."""
    data: dict[str, Any] = {"sweep": sweep, "lead_metric": lead.key}
    if verdict is not None:
        data["verdict"] = {
            "sentence": verdict.sentence,
            "warnings": verdict.warnings,
            "best": verdict.best.label if verdict.best else None,
            "leader": verdict.leader.label if verdict.leader else None,
            "rule": RULE,
            "alpha": ALPHA,
        }
    data["settings"] = [
        setting_record(s, row, metrics) for s, row in zip(settings, rows, strict=True)
    ]
    data["jobs"] = [job_record(j) for j in jobs]
    return json.dumps(json_safe(data), indent=2) + "\n"
