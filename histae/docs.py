"""Regenerate the generated parts of README.md and docs/: ``python -m histae.docs [--check]``.

A generated part sits between ``<!-- BEGIN generated:NAME -->`` and
``<!-- END generated:NAME -->`` (the markers may be indented; the part takes their indent). Each
NAME is a function of the repository's files: the configuration tables read ``conf/`` (every
group, option and key, its default and the YAML's own comment, so a group or key added later
appears on regeneration), the findings tables read the saved run CSVs under ``docs/``, the hero
caption reads the pictures' record ``docs/figures.json`` (``docs/make_figures.py``), the
file tables read the modules that write those files. ``--check`` writes nothing and
exits 1 naming every file whose parts are stale.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)<!-- BEGIN generated:(?P<name>[\w-]+) -->\n"
    r"(?P<body>.*?)"
    r"^(?P=indent)<!-- END generated:(?P=name) -->$",
    flags=re.S | re.M,
)


# ---------------------------------------------------------------- conf/ parsing


def _split_comment(line: str) -> tuple[str, str]:
    """``key: value  # comment`` -> (``key: value``, ``comment``); a ``#`` inside quotes stays."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


KEY = re.compile(r"^(?P<key>[^\s:#][^:]*?):(?:\s+(?P<value>.*))?$")


def yaml_rows(text: str) -> tuple[str, list[tuple[str, str, str]]]:
    """An option file's leading comment and its (dotted key, value as written, comment) rows.

    Line-based on purpose: the comments are the point, and a YAML loader drops them. Nested
    keys are dotted (``terms.histogram.weight``), list items indexed (``sources[0].path``), a
    comment-only line below a key continues that key's comment.
    """
    lines = text.splitlines()
    head: list[str] = []
    i = 0
    while i < len(lines) and lines[i].startswith("#"):
        if not lines[i].startswith("# @package"):
            head.append(lines[i].lstrip("#").strip())
        i += 1
    rows: list[list[str]] = []
    stack: list[tuple[int, str]] = []  # (indent, path) of the open mappings and list items
    counts: dict[str, int] = {}
    for raw in lines[i:]:
        body, comment = _split_comment(raw)
        if not body.strip():
            if comment and rows and raw.startswith(" "):
                rows[-1][2] = f"{rows[-1][2]} {comment}".strip()
            continue
        indent = len(body) - len(body.lstrip())
        content = body.strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else ""
        item = content == "-" or content.startswith("- ")
        if item:
            counts[parent] = counts.get(parent, -1) + 1
            parent = f"{parent}[{counts[parent]}]"
            stack.append((indent, parent))
            content = content[1:].strip()
            indent += 2
        match = KEY.match(content)
        if match is None:  # a list item's plain value: `- _self_`, `- /usr/share/...`
            rows.append([parent, content, comment])
            continue
        key, value = match["key"].strip(), (match["value"] or "").strip()
        if item and parent.startswith("defaults["):  # `- loss: histogram`: one entry
            rows.append([parent, f"{key}: {value}", comment])
            continue
        path = f"{parent}.{key}" if parent else key
        if value or comment:
            rows.append([path, value, comment])
        if not value:
            stack.append((indent, path))
    return " ".join(head), [(p, v, c) for p, v, c in rows]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def _defaults(root: Path) -> dict[str, tuple[str, str]]:
    """conf/config.yaml's defaults list: group -> (option, its comment)."""
    out = {}
    for path, value, comment in yaml_rows((root / "conf" / "config.yaml").read_text())[1]:
        if path.startswith("defaults[") and ": " in value and not value.startswith("override"):
            group, option = (s.strip() for s in value.split(":", 1))
            out[group] = (option, comment)
    return out


def _groups(root: Path) -> list[Path]:
    """conf/'s groups, in the defaults list's order, then the others by name."""
    order = list(_defaults(root))
    folders = [p for p in (root / "conf").iterdir() if p.is_dir()]
    return sorted(folders, key=lambda p: (order.index(p.name) if p.name in order else 99, p.name))


def config_groups(root: Path) -> str:
    """The table of groups: options (the default marked) and what the defaults list says."""
    defaults = _defaults(root)
    lines = [
        "| group | options | the default, as `conf/config.yaml` describes it |",
        "|---|---|---|",
    ]
    for folder in _groups(root):
        default, comment = defaults.get(folder.name, ("", f"`+{folder.name}=<option>`"))
        options = ", ".join(
            f"`{p.stem}`" + (" (default)" if p.stem == default else "")
            for p in sorted(folder.glob("*.yaml"))
        )
        lines.append(f"| `{folder.name}` | {options} | {_cell(comment)} |")
    return "\n".join(lines)


def config_reference(root: Path) -> str:
    """One section per group, one table per option: every key, its default, its comment."""
    out: list[str] = []
    for folder in _groups(root):
        out.append(f"### `{folder.name}`")
        for path in sorted(folder.glob("*.yaml")):
            head, rows = yaml_rows(path.read_text())
            out += ["", f"#### `{folder.name}={path.stem}`", ""]
            if head:
                out += [head, ""]
            out += ["| key | default | comment |", "|---|---|---|"]
            for key, value, comment in rows:
                if value in ("_self_",) or "/schema/" in value:
                    continue
                out.append(f"| `{_cell(key)}` | {_cell(_code(value))} | {_cell(comment)} |")
        out.append("")
    return "\n".join(out).rstrip()


# ---------------------------------------------------------------- saved runs


def _pm(row: dict, key: str, digits: int) -> str:
    return f"{float(row[key]):.{digits}f} ± {float(row[key + '_std']):.{digits}f}"


def _arm(row: dict) -> str:
    if "colour_arm" in row:
        return f"`{row['colour_arm']}`"
    return f"`composite`, l1 weight {row['loss.terms.l1.weight']}"


def findings_table(csv_path: Path) -> str:
    """A report's results.csv (mean and std over seeds) as the findings table."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    lines = [
        "| arm | mean rank of own original (joint) | retrieval top-1 (joint) | "
        "spread of outputs / inputs | `hist_w1` | PSNR (dB) | images/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {_arm(r)} | {_pm(r, 'retrieval_rank_joint', 1)} | "
            f"{_pm(r, 'retrieval_top1_joint', 3)} | {_pm(r, 'spread_ratio', 2)} | "
            f"{_pm(r, 'hist_w1', 3)} | {_pm(r, 'psnr', 1)} | {float(r['images_per_second']):.0f} |"
        )
    return "\n".join(lines)


def hero_caption(root: Path) -> str:
    """The README picture's caption from docs/figures.json: command, commit, date, metrics."""
    job = json.loads((root / "docs" / "figures.json").read_text())["jobs"]["default-job"]
    m = job["final_val"]
    return (
        f"*`{job['command']}` at commit `{job['commit'][:10]}` ({job['date']}, "
        f"{job['threads']} CPU threads): validation tiles (rows 1, 3, ...) over their "
        f"reconstructions (rows 2, 4, ...); final validation loss {m['loss']:.2f}, "
        f"PSNR {m['psnr']:.2f} dB, `hist_w1` {m['hist_w1']:.3f}. Regenerated by "
        "`python docs/make_figures.py default-job <job folder>`; a test reruns the job's first "
        "steps and fails when the code no longer produces them.*"
    )


def report_example(root: Path) -> str:
    """The real sweep report shown in sweeps.md, from its saved record docs/report_example.json:
    the command, commit and time, the sentence the page wrote, and the lead metric per setting."""
    data = json.loads((root / "docs" / "report_example.json").read_text())
    lead = data["lead_metric"]
    lines = [
        f"*A real report: `{data['command']}` at commit `{data['commit'][:10]}` "
        f"({data['date']}; {data['jobs']} jobs, {data['wall_time_s'] / 60:.0f} min on a shared "
        "2-core machine): its page (top) and `heatmaps.png`. The page's answer:*",
        "",
    ]
    lines += [f"> {w}" for w in data["verdict"]["warnings"]]
    if data["verdict"]["warnings"]:
        lines.append(">")
    lines += [f"> **{data['verdict']['sentence']}**", ""]
    lines += [
        f"| setting | seeds | `{lead}` mean | 95% interval | PSNR (dB) | ranked | best | ≈ best |",
        "|---|---:|---:|---|---:|---|---|---|",
    ]

    def show(flag: object) -> str:
        return "" if flag is None else ("yes" if flag else "no")

    for s in data["settings"]:
        m, psnr = s["metrics"][lead], s["metrics"]["psnr"]
        ci = f"{m['ci95'][0]:.3f} to {m['ci95'][1]:.3f}" if m["ci95"] else "(one seed)"
        lines.append(
            f"| {s['setting']} | {s['seeds']} | {m['mean']:.4f} | {ci} | {psnr['mean']:.2f} | "
            f"{show(s['ranked'])} | {show(s['best'])} | {show(s['indistinguishable_from_best'])} |"
        )
    return "\n".join(lines)


def search_example(root: Path, folder: str = "colour_search", top: int = 8) -> str:
    """A real search shown in sweeps.md, from the files it left, saved under docs/<folder>/:
    run.json (command, commit, date, wall time), trials.csv, importance.csv and the report's
    results.json: the report's sentence, the best settings with their intervals, and the
    parameter importance."""
    from histae.importance import read_importance

    saved = root / "docs" / folder
    run = json.loads((saved / "run.json").read_text())
    report = json.loads((saved / "results.json").read_text())
    with open(saved / "trials.csv", newline="") as f:
        states = [r["state"] for r in csv.DictReader(f)]
    counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in sorted(set(states)))
    lead = report["lead_metric"]
    lines = [
        f"*A real search: `{run['command']}` at commit `{run['commit'][:10]}` ({run['date']}; "
        f"{len(states)} trials: {counts}; {run['wall_time_s'] / 60:.0f} min on a shared 2-core "
        "machine). Its report's answer:*",
        "",
        f"> **{report['verdict']['sentence']}**",
        "",
        f"| trial setting | seeds | `{lead}` mean ± std | 95% interval | ≈ best |",
        "|---|---:|---:|---|---|",
    ]
    ranked = [s for s in report["settings"] if s["ranked"]][:top]
    for s in ranked:
        m = s["metrics"][lead]
        spread = f" ± {m['std']:.1f}" if m["std"] is not None else ""
        ci = f"{m['ci95'][0]:.1f} to {m['ci95'][1]:.1f}" if m["ci95"] else "(one seed)"
        mark = "best" if s["best"] else ("yes" if s["indistinguishable_from_best"] else "no")
        lines.append(f"| {s['setting']} | {s['seeds']} | {m['mean']:.1f}{spread} | {ci} | {mark} |")
    importances = read_importance(saved)
    if importances:
        lines += [
            "",
            f"*Parameter importance over its {importances[0].trials} complete trials:*",
            "",
            "| key | share | 95% interval | p | an effect? |",
            "|---|---:|---|---:|---|",
        ]
        lines += [
            f"| `{i.key}` | {i.share:.2f} | {i.low:.2f} to {i.high:.2f} | {i.p:.2g} | "
            f"{'yes' if i.distinguishable else 'no'} |"
            for i in importances
        ]
    return "\n".join(lines)


MATRIX_METRICS = ("loss", "hist_tv", "hist_w1", "psnr", "retrieval_rank_joint")
"""The matrix table's columns: the raw loss first (it scales with 1/bins), then the metrics
that compare across bins."""


def matrix_judgement(csv_path: Path) -> tuple[list[dict], dict[str, dict]]:
    """The original matrix judged per metric by the report's own rule
    (:func:`histae.report.verdict.judge`), from a report's runs.csv (one row per job): a
    setting (bins, sigma) is ranked when all its jobs are done; the best is the ranked setting
    without a collapsed job with the best mean; a setting is indistinguishable from it when
    Welch's two-sided p > 0.05.

    Returns one record per setting (``bins``, ``sigma``, ``seeds``, ``ranked``, ``collapsed``,
    ``wall_time``, per metric a :class:`~histae.report.settings.Stat`, ``<metric>_p`` and
    ``<metric>_tie``) and per metric its ``best`` record and the ``distinguishable`` count.
    """
    from types import SimpleNamespace

    from histae.report.measures import METRICS, RAW_LOSS
    from histae.report.settings import Setting, Stat
    from histae.report.verdict import judge

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    groups: dict[tuple[int, int], list[dict]] = {}
    for r in rows:
        groups.setdefault((int(r["loss.bins"]), int(r["loss.sigma"])), []).append(r)
    records, settings = [], []
    for (bins, sigma), jobs in sorted(groups.items()):
        stats = {
            key: Stat.of([float(j[key]) for j in jobs if j.get(key)]) for key in MATRIX_METRICS
        }
        # judge reads a job's state, its collapse flag and its inputs: the row's columns
        seeds = [
            SimpleNamespace(
                state=j["status"],
                collapsed=j["collapsed"] == "True",
                record=SimpleNamespace(inputs=int(float(j.get("inputs") or 0))),
            )
            for j in jobs
        ]
        label = f"bins={bins}, sigma={sigma}"
        values = {"bins": str(bins), "sigma": str(sigma)}
        settings.append(Setting(values, label, seeds, stats=stats))  # type: ignore[arg-type]
        records.append(
            {
                "bins": bins,
                "sigma": sigma,
                "seeds": len(jobs),
                "ranked": all(j["status"] == "done" for j in jobs),
                "collapsed": sum(job.collapsed for job in seeds),
                "wall_time": sum(float(j["wall_time"]) for j in jobs),
                **stats,
            }
        )
    summary: dict[str, dict] = {}
    for key in MATRIX_METRICS:
        verdict = judge(settings, METRICS.get(key, RAW_LOSS))
        best = None
        for record, setting in zip(records, settings, strict=True):
            leads = setting is verdict.leader
            best = record if leads else best
            record[f"{key}_p"] = None if leads else verdict.p_values.get(setting.label)
            record[f"{key}_tie"] = None if leads else verdict.indistinguishable(setting)
        apart = sum(r[f"{key}_tie"] is False for r in records)
        summary[key] = {"best": best, "distinguishable": apart}
    return records, summary


def matrix_table(root: Path) -> str:
    """The original matrix with seeds (docs/matrix_48k/runs.csv) as a table: each setting's
    mean ± 95% interval per metric, the best by the rule bold, the settings distinguishable
    from it (Welch, p <= 0.05) marked with a dagger."""
    settings, summary = matrix_judgement(root / "docs" / "matrix_48k" / "runs.csv")
    heads = {
        "loss": "raw loss",
        "hist_tv": "`hist_tv`",
        "hist_w1": "`hist_w1`",
        "psnr": "PSNR (dB)",
        "retrieval_rank_joint": "retrieval rank (joint)",
    }
    digits = {"loss": 2, "hist_tv": 3, "hist_w1": 3, "psnr": 2, "retrieval_rank_joint": 1}
    lines = [
        "| bins | sigma | seeds | " + " | ".join(heads[k] for k in MATRIX_METRICS) + " |",
        "|---:|---:|---:|" + "---:|" * len(MATRIX_METRICS),
    ]
    for s in settings:
        cells = []
        for key in MATRIX_METRICS:
            stat, d = s[key], digits[key]
            if stat is None:
                cells.append("")
                continue
            ci = stat.ci95
            text = f"{stat.mean:.{d}f}" + (f" ± {(ci[1] - ci[0]) / 2:.{d}f}" if ci else "")
            if summary[key]["best"] is s:
                text = f"**{text}**"
            elif s[f"{key}_tie"] is False:
                text += " †"
            cells.append(text)
        lines.append(f"| {s['bins']} | {s['sigma']} | {s['seeds']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Distinguishable from the best (†, of "
        f"{len(settings) - 1}): "
        + "; ".join(f"{heads[k]} {summary[k]['distinguishable']}" for k in MATRIX_METRICS)
        + ".",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- file tables from the code


def _files_table(files: dict[str, str]) -> str:
    lines = ["| file | content |", "|---|---|"]
    lines += [f"| `{name}` | {_cell(what)} |" for name, what in files.items()]
    return "\n".join(lines)


def job_files(root: Path) -> str:
    """The job folder's files, from :data:`histae.jobdir.FILES` (the module that writes them)."""
    from histae.jobdir import FILES

    return _files_table(FILES)


def report_files(root: Path) -> str:
    """A sweep report's files, from :data:`histae.report.layout.REPORT_FILES`."""
    from histae.report.layout import REPORT_FILES

    return _files_table(REPORT_FILES)


GENERATORS: dict[str, Callable[[Path], str]] = {
    "job-files": job_files,
    "report-files": report_files,
    "config-groups": config_groups,
    "config-reference": config_reference,
    "findings-colour-losses": lambda root: findings_table(root / "docs" / "colour_losses.csv"),
    "findings-composite-weights": lambda root: findings_table(
        root / "docs" / "composite_weights.csv"
    ),
    "hero-caption": hero_caption,
    "report-example": report_example,
    "search-example": search_example,
    "findings-matrix": matrix_table,
}


# ---------------------------------------------------------------- files


def doc_files(root: Path) -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def render(text: str, root: Path, where: str = "") -> str:
    """``text`` with every generated part rewritten; an unknown NAME raises ValueError."""

    def one(match: re.Match) -> str:
        name, indent = match["name"], match["indent"]
        if name not in GENERATORS:
            raise ValueError(
                f"{where}: unknown generated part {name!r}; known: {sorted(GENERATORS)}"
            )
        body = GENERATORS[name](root).strip("\n")
        body = "\n".join(f"{indent}{ln}" if ln else "" for ln in body.splitlines())
        return f"{indent}<!-- BEGIN generated:{name} -->\n{body}\n{indent}<!-- END generated:{name} -->"

    return BLOCK.sub(one, text)


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with ``--check`` only compare) every generated part; 1 when any was stale."""
    parser = argparse.ArgumentParser(
        prog="python -m histae.docs", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the repository (default: this one)"
    )
    args = parser.parse_args(argv)
    from histae.atomic import write_text

    stale = []
    for path in doc_files(args.root):
        rel = path.relative_to(args.root)
        old = path.read_text()
        try:
            new = render(old, args.root, str(rel))
        except (OSError, ValueError, KeyError) as e:
            print(f"histae.docs: {rel}: {e}", file=sys.stderr)
            return 1
        if new != old:
            stale.append(rel)
            if not args.check:
                write_text(path, new)
    for rel in stale:
        if args.check:
            print(f"{rel}: generated parts are stale; run python -m histae.docs", file=sys.stderr)
        else:
            print(f"rewrote {rel}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
