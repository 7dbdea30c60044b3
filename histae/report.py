"""The sweep report: one page comparing every job of a multirun, and an index of all outputs.

``write_report(sweep_dir)`` reads what the jobs wrote (status.json, metrics.csv, summary.json,
samples.npz, .hydra/overrides.yaml) and writes, beside them:

- ``comparison.png``: train and validation loss of every job against inputs seen;
- ``results.csv`` / ``results.md``: one row per job with its swept values, final numbers, status;
- ``reconstructions.png``: every job's last reconstruction grid, labelled;
- ``histograms.png`` in each job folder: colour histograms of originals vs reconstructions;
- ``index.html``: all of it on one self-contained page (relative links, no external assets).

It only reads the jobs' files, all of which are written atomically, so it runs at any time: when
the sweep ends (the sweeper calls it, also after failures), or by hand on a sweep still running::

    python -m histae.report outputs/sweeps/2024-01-01_12-00-00
    python -m histae.report outputs          # refresh outputs/index.html (all sweeps and runs)
"""

from __future__ import annotations

import argparse
import csv
import html
import io
import logging
import math
import os
import re
import sys
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import yaml
from matplotlib.colors import to_hex
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter
from PIL import Image, ImageDraw, ImageFont

from histae.atomic import write_text
from histae.jobdir import STATUSES, is_stopped, read_metrics
from histae.plots import reconstruction_grid, save_figure, save_png


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        import json

        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_status(job_dir: Path) -> dict[str, Any] | None:
    return read_json(Path(job_dir) / "status.json")


log = logging.getLogger("histae.report")

# Files the report writes into the sweep folder (and, for histograms.png, into each job folder).
INDEX, COMPARISON, RECONSTRUCTIONS = "index.html", "comparison.png", "reconstructions.png"
RESULTS_CSV, RESULTS_MD, HISTOGRAMS = "results.csv", "results.md", "histograms.png"

RESULT_COLUMNS = [
    "status",
    "error",
    "inputs",
    "train_loss",
    "val_loss",
    "val_pixel_l1",
    "val_psnr",
    "val_hist_w1",
    "images_per_second",
    "wall_time",
]
"""Columns of results.csv after ``job`` and the swept keys."""

# Headings of the columns in results.md and index.html (status and error share one cell there).
_HEADINGS = {
    "inputs": "inputs",
    "train_loss": "train loss",
    "val_loss": "val loss",
    "val_pixel_l1": "val pixel L1",
    "val_psnr": "val PSNR (dB)",
    "val_hist_w1": "val hist W1",
    "images_per_second": "images/s",
    "wall_time": "wall time (s)",
}

# How the page summarises job states: "4 done, 1 failed, 2 running".
_STATUS_ORDER = ("done", "diverged", "failed", "running", "stopped", "pending")

# Folder names the default config gives single runs and sweeps under outputs/.
RUNS, SWEEPS = "runs", "sweeps"
_STAMP = "%Y-%m-%d_%H-%M-%S"  # hydra.run.dir / hydra.sweep.dir's ${now:...} in conf/config.yaml


# ----------------------------------------------------------------------------------------------
# Reading a sweep


@dataclass
class Job:
    """What one job folder holds, as the report needs it."""

    path: Path
    name: str  # the folder relative to the sweep folder, with forward slashes
    overrides: dict[str, str]  # .hydra/overrides.yaml as key -> value, in the file's order
    status: str  # done | failed | diverged | running | stopped (killed) | pending (no status yet)
    error: str | None  # the first line of the error of a failed or diverged job
    updated: str | None  # when status.json was last written
    inputs: int | None
    wall_time: float | None
    images_per_second: float | None
    rows: list[dict[str, Any]]  # metrics.csv
    swept: dict[str, str] = field(default_factory=dict)  # the overrides that vary in the sweep
    label: str = ""  # the swept values as people read them: "bins=100, sigma=50"
    color: str = "#000000"  # this job's colour in every plot and in the table

    def final(self, split: str) -> dict[str, Any]:
        """The last metrics row of ``split`` (train | val), or {} if there is none yet."""
        return next((r for r in reversed(self.rows) if r.get("split") == split), {})

    @property
    def anchor(self) -> str:
        """The id of this job's section in index.html."""
        return "job-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", self.name)


def is_job_dir(path: Path) -> bool:
    """A job folder holds status.json (once training started) or Hydra's overrides.yaml."""
    return (path / "status.json").is_file() or (path / ".hydra" / "overrides.yaml").is_file()


def find_job_dirs(sweep_dir: Path) -> list[Path]:
    """The job folders of a sweep, sorted by path.

    In a folder Hydra made (it holds multirun.yaml) they are searched 3 levels deep, as
    hydra.sweep.subdir may contain slashes; elsewhere only the folders directly inside count,
    so a folder that merely contains runs somewhere below is not mistaken for a sweep.
    """
    max_depth = 3 if (sweep_dir / "multirun.yaml").is_file() else 1
    found: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        for child in sorted(folder.iterdir()):
            if not child.is_dir() or child.name.startswith("."):
                continue
            if is_job_dir(child):
                found.append(child)
            elif depth < max_depth:
                walk(child, depth + 1)

    walk(sweep_dir, 1)
    return found


def parse_overrides(overrides: Sequence[str]) -> dict[str, str]:
    """``["loss.bins=100", "+x=1", "~y"]`` -> ``{"loss.bins": "100", "x": "1", "y": ""}``."""
    parsed = {}
    for override in overrides:
        key, _, value = str(override).partition("=")
        parsed[key.lstrip("+~")] = value
    return parsed


def read_override_list(job_dir: Path) -> list[str]:
    """The job's command-line overrides as written, from .hydra/overrides.yaml ([] if missing
    or broken)."""
    try:
        data = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return []
    return [str(o) for o in data] if isinstance(data, list) else []


def read_overrides(job_dir: Path) -> dict[str, str]:
    """The job's command-line overrides as key -> value ({} if missing or broken)."""
    return parse_overrides(read_override_list(job_dir))


def first_line(text: Any) -> str | None:
    """The first non-empty line of ``text``, or None."""
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return lines[0] if lines else None


def load_job(job_dir: Path, sweep_dir: Path) -> Job:
    """Read one job folder; a job that has not written status.json yet is ``pending``."""
    status = read_status(job_dir) or {}
    summary = read_json(job_dir / "summary.json") or {}
    try:
        rows = read_metrics(job_dir / "metrics.csv")
    except (OSError, ValueError):
        rows = []
    state = status.get("status") if status.get("status") in STATUSES else "pending"
    error = first_line(status.get("error"))
    if is_stopped(status):  # killed mid-run (SIGKILL, preemption): say so, not "running"
        state = "stopped"
        error = f"process {status['pid']} exited without finishing; rerun the sweep to resume"
    inputs = status.get("inputs", rows[-1]["inputs"] if rows else None)
    wall_time = status.get("wall_time")
    if state == "done" and summary.get("images_per_second") is not None:
        speed = summary["images_per_second"]
    elif inputs and wall_time:
        speed = round(inputs / wall_time, 2)
    else:
        speed = None
    return Job(
        path=job_dir,
        name=job_dir.relative_to(sweep_dir).as_posix(),
        overrides=read_overrides(job_dir),
        status=state,
        error=error,
        updated=status.get("updated"),
        inputs=inputs,
        wall_time=wall_time,
        images_per_second=speed,
        rows=rows,
    )


def short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Each key shortened to its last part (``loss.bins`` -> ``bins``) unless two share it,
    the same rule the sweeper names job folders by."""
    short = {k: k.rsplit(".", 1)[-1].rsplit("/", 1)[-1] for k in keys}
    counts = list(short.values())
    return {k: s if counts.count(s) == 1 else k for k, s in short.items()}


def value_key(value: str) -> tuple[int, float, str]:
    """Sort key of an override value: numbers numerically, before any text."""
    try:
        number = float(value)
    except ValueError:
        return (1, 0.0, value)
    return (0, number, "") if math.isfinite(number) else (1, 0.0, value)


def natural_key(name: str) -> tuple[tuple[int, float, str], ...]:
    """Sort key of a folder name with the numbers in it compared as numbers (job-2 < job-10);
    a dash is a separator here, not a sign, as in the sweeper's names (bins-100_sigma-50)."""
    return tuple(value_key(part) for part in re.split(r"(\d+(?:\.\d+)?)", name) if part)


def label_jobs(jobs: Sequence[Job]) -> list[Job]:
    """Fill in each job's swept values and label, and sort the jobs by them.

    Swept values are the overrides whose values differ between jobs (all of them for a single
    job); a job without overrides is known by its folder name.
    """
    keys: list[str] = []
    for job in jobs:
        keys.extend(k for k in job.overrides if k not in keys and not k.startswith("hydra."))
    varying = [k for k in keys if len({job.overrides.get(k) for job in jobs}) > 1]
    if len(jobs) == 1:
        varying = keys
    short = short_keys(varying)
    for job in jobs:
        job.swept = {k: job.overrides.get(k, "") for k in varying}
        shown = [f"{short[k]}={v}" for k, v in job.swept.items() if k in job.overrides]
        job.label = ", ".join(shown) or job.name
    ordered = sorted(
        jobs,
        key=lambda j: (tuple(value_key(v) for v in j.swept.values()), natural_key(j.name)),
    )
    for job, color in zip(ordered, job_colors(len(ordered)), strict=True):
        job.color = color
    return ordered


def job_colors(n: int) -> list[str]:
    """``n`` distinguishable colours as ``#rrggbb``: tab10 up to 10 jobs, tab20 up to 20."""
    if n <= 10:
        colors = plt.get_cmap("tab10").colors[:n]
    elif n <= 20:
        colors = plt.get_cmap("tab20").colors[:n]
    else:
        colors = plt.get_cmap("turbo")(np.linspace(0.05, 0.95, n))
    return [to_hex(c) for c in colors]


def read_sweep_overrides(sweep_dir: Path) -> list[str]:
    """The overrides a sweep was started with, from multirun.yaml ([] if there is none)."""
    try:
        config = yaml.safe_load((sweep_dir / "multirun.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    hydra = config.get("hydra") or {}
    task = (hydra.get("overrides") or {}).get("task") or []
    params = (hydra.get("sweeper") or {}).get("params") or {}
    return [str(o) for o in task] + [f"{k}={v}" for k, v in params.items()]


def expected_jobs(overrides: Sequence[str]) -> int | None:
    """How many jobs the sweep overrides expand to, or None if they cannot be parsed here."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
        counts = [len(list(o.sweep_string_iterator())) for o in parsed if o.is_sweep_override()]
    except Exception:  # glob sweeps need the config; the count is only informative
        return None
    return math.prod(counts) if counts else None


# ----------------------------------------------------------------------------------------------
# Plots


def _curve(rows: Sequence[Mapping[str, Any]], split: str, key: str) -> tuple[list, list]:
    points = [(r["inputs"], r[key]) for r in rows if r.get("split") == split and key in r]
    return [p[0] for p in points], [p[1] for p in points]


def plot_comparison(
    rows_by_job: Mapping[str, Sequence[Mapping[str, Any]]],
    path: str | os.PathLike,
    labels: Mapping[str, str] | None = None,
    colors: Mapping[str, str] | None = None,
    title: str = "",
    metric: str = "loss",
) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """comparison.png: ``metric`` of every job against inputs seen, train and validation panels.

    One colour per job in both panels, the legend (swept values) outside on the right; the
    shared y axis is logarithmic when the values span more than a factor of 10.

    Args:
        rows_by_job: job name -> its metrics.csv rows, in legend order.
        labels, colors: job name -> legend text / matplotlib colour (default: name / tab10).

    Returns:
        What was drawn, read back from the plot: job name -> split -> (inputs (K,), values (K,)),
        for the splits the job has rows of.
    """
    names = list(rows_by_job)
    labels = labels or {}
    colors = colors or dict(zip(names, job_colors(len(names)), strict=True))
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True, layout="constrained")
    values: list[float] = []
    for ax, split in zip(axes, ("train", "val"), strict=True):
        for name in names:
            x, y = _curve(rows_by_job[name], split, metric)
            if x:
                style = "-" if split == "train" else "o-"
                ax.plot(x, y, style, color=colors[name], gid=name, linewidth=1.2, markersize=3)
                values.extend(v for v in y if math.isfinite(v) and v > 0)
        ax.set_title(f"{'validation' if split == 'val' else 'train'} {metric}")
        ax.set_xlabel("inputs seen")
        ax.xaxis.set_major_formatter(EngFormatter())
        ax.grid(True, alpha=0.3)
    if values and max(values) / min(values) > 10:
        axes[0].set_yscale("log")
    axes[0].set_ylabel(metric + (" (log scale)" if axes[0].get_yscale() == "log" else ""))
    if not values:
        axes[0].text(0.5, 0.5, "no metrics yet", ha="center", transform=axes[0].transAxes)
    # One legend entry per job, also for a job with nothing to draw yet.
    handles = [
        Line2D([], [], color=colors[name], linewidth=2, label=labels.get(name, name))
        for name in names
    ]
    if handles:
        fig.legend(handles=handles, loc="outside right upper", fontsize="small")
    if title:
        fig.suptitle(title)
    drawn: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for ax, split in zip(axes, ("train", "val"), strict=True):
        for line in ax.get_lines():
            if line.get_gid() in rows_by_job:
                x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
                drawn.setdefault(line.get_gid(), {})[split] = (x, y)
    save_figure(fig, path)
    return drawn


def binned_w1(edges: np.ndarray, counts_a: np.ndarray, counts_b: np.ndarray) -> np.ndarray:
    """Exact 1-D Wasserstein distance between two binned distributions, per channel.

    The integral of |CDF_a - CDF_b| over the value axis, with each bin's mass at its lower edge
    (exact for pixel values that fall on the bin edges, as 8-bit values do on 256 bins).

    Args:
        edges: (bins + 1,) bin edges.
        counts_a, counts_b: (C, bins) counts (any scale; each channel is normalised).

    Returns:
        (C,) distances in value units; nan for a channel with no counts.
    """
    a = np.asarray(counts_a, dtype=np.float64)
    b = np.asarray(counts_b, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cdf_a = np.cumsum(a, axis=-1) / a.sum(axis=-1, keepdims=True)
        cdf_b = np.cumsum(b, axis=-1) / b.sum(axis=-1, keepdims=True)
    return (np.abs(cdf_a - cdf_b)[..., :-1] * np.diff(edges)[:-1]).sum(axis=-1)


def load_samples(samples: str | os.PathLike | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays of a samples.npz (or a mapping of the same arrays) as a dict."""
    if isinstance(samples, Mapping):
        return {k: np.asarray(v) for k, v in samples.items()}
    with np.load(samples) as data:
        return {k: data[k] for k in data.files}


_CHANNELS = (("red", "#d62728"), ("green", "#2ca02c"), ("blue", "#1f77b4"))


def rebin(counts: np.ndarray, edges: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum (C, B) counts over groups of adjacent bins to ``bins`` bins when B is a multiple of
    it (else return them unchanged): -> (C, bins) counts, (bins + 1,) edges."""
    total = counts.shape[-1]
    if bins >= total or total % bins:
        return counts, edges
    group = total // bins
    return counts.reshape(*counts.shape[:-1], bins, group).sum(axis=-1), edges[::group]


def plot_histograms(
    samples: str | os.PathLike | Mapping[str, np.ndarray],
    path: str | os.PathLike,
    title: str = "",
    display_bins: int = 64,
) -> dict[str, np.ndarray]:
    """histograms.png: per-channel colour distributions of originals vs reconstructions.

    Top row: histograms, summed to ``display_bins`` bins so pixel art's palette spikes stay
    readable; the y axis ignores the first and last bin, where clamping piles reconstructions
    up, and says how much sits there instead. Bottom row: the cumulative distributions, whose
    area between is the W1 distance in each title (computed on the full bins).

    Args:
        samples: a samples.npz, or a mapping with ``hist_edges`` (bins + 1,) and
            ``hist_originals``, ``hist_reconstructions`` (C, bins) counts.

    Returns:
        What was drawn: ``edges`` (display_bins + 1,), ``originals`` and ``reconstructions``
        (C, display_bins) as fractions of each channel's pixels, ``w1`` (C,).
    """
    data = load_samples(samples)
    edges = np.asarray(data["hist_edges"], dtype=np.float64)
    counts = {
        k: np.asarray(data[f"hist_{k}"], dtype=np.float64) for k in ("originals", "reconstructions")
    }
    shape = counts["originals"].shape
    if len(shape) != 2 or counts["reconstructions"].shape != shape or shape[1] != len(edges) - 1:
        raise ValueError(
            f"histograms must be (C, bins) with bins + 1 edges, got edges {edges.shape}, "
            f"originals {shape}, reconstructions {counts['reconstructions'].shape}"
        )
    w1 = binned_w1(edges, counts["originals"], counts["reconstructions"])
    shown_edges = edges
    fractions, cdfs = {}, {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for key, value in counts.items():
            total = value.sum(axis=-1, keepdims=True)
            cdfs[key] = np.cumsum(value, axis=-1) / total
            coarse, shown_edges = rebin(value, edges, display_bins)
            fractions[key] = coarse / total
    n = shape[0]
    fig, axes = plt.subplots(
        2,
        n,
        figsize=(4.3 * n, 5.6),
        sharex=True,
        sharey="row",
        squeeze=False,
        # Fixed margins: a constrained layout would cost a second per figure, once per job.
        gridspec_kw={
            "height_ratios": [3, 2],
            "left": 0.8 / (4.3 * n),
            "right": 1 - 0.15 / (4.3 * n),
            "bottom": 0.09,
            "top": 0.86,
            "wspace": 0.1,
            "hspace": 0.08,
        },
    )
    interior = np.concatenate([f[:, 1:-1].ravel() for f in fractions.values()])
    top = np.nanmax(interior) * 1.1 if interior.size and np.nanmax(interior) > 0 else None
    for c in range(n):
        name, color = _CHANNELS[c] if n == 3 else (f"channel {c}", "#555555")
        ax, ax_cdf = axes[0, c], axes[1, c]
        original, recon = fractions["originals"][c], fractions["reconstructions"][c]
        ax.stairs(original, shown_edges, fill=True, color=color, alpha=0.4, label="originals")
        ax.stairs(recon, shown_edges, color="black", linewidth=1.0, label="reconstructions")
        heading = f"{name}: W1 {w1[c]:.4f}"
        if top is not None:
            ax.set_ylim(0, top)
            ends = ((0, edges[0]), (-1, edges[-1]))
            clipped = [f"{recon[i]:.0%} at {value:g}" for i, value in ends if recon[i] > top]
            if clipped:
                heading += "\nreconstructions off the scale: " + ", ".join(clipped)
        ax.set_title(heading, fontsize="medium")
        ax.grid(True, alpha=0.3)
        steps = edges[1:]
        ax_cdf.plot(steps, cdfs["originals"][c], color=color, label="originals")
        ax_cdf.plot(
            steps, cdfs["reconstructions"][c], color="black", linewidth=1.0, label="reconstructions"
        )
        ax_cdf.fill_between(
            steps, cdfs["originals"][c], cdfs["reconstructions"][c], color=color, alpha=0.15
        )
        ax_cdf.set_xlabel("pixel value")
        ax_cdf.set_xlim(edges[0], edges[-1])
        ax_cdf.set_xticks(np.linspace(edges[0], edges[-1], 5))
        ax_cdf.set_ylim(0, 1.02)
        ax_cdf.grid(True, alpha=0.3)
    axes[0, 0].set_ylabel("fraction of pixels")
    axes[1, 0].set_ylabel("cumulative fraction")
    axes[1, -1].legend(fontsize="small", loc="lower right")
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
    return {"edges": shown_edges, **fractions, "w1": w1}


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or without FreeType: the small bitmap font
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    """``text`` shortened with an ellipsis until it is at most ``width`` pixels wide."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def compose_cells(
    cells: Sequence[tuple[str, np.ndarray | None]],
    cols: int,
    gap: int = 16,
    label_height: int = 26,
    empty_size: tuple[int, int] = (512, 512),
) -> np.ndarray:
    """Lay labelled (H, W, 3) uint8 images out in rows of ``cols`` on white, label above each.

    A cell whose image is None shows a grey box saying so. Cells are as large as the largest
    image (``empty_size`` (H, W) if there is none).

    Returns:
        (rows * (label_height + H + gap) - gap, cols * (W + gap) - gap, 3) uint8.
    """
    images = [img for _, img in cells if img is not None]
    cell_h = max((img.shape[0] for img in images), default=empty_size[0])
    cell_w = max((img.shape[1] for img in images), default=empty_size[1])
    cols = max(1, min(cols, len(cells)))
    rows = max(1, -(-len(cells) // cols))
    step_y, step_x = label_height + cell_h + gap, cell_w + gap
    canvas = Image.new("RGB", (cols * step_x - gap, rows * step_y - gap), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font(max(10, label_height - 10))
    for i, (label, img) in enumerate(cells):
        r, c = divmod(i, cols)
        x, y = c * step_x, r * step_y
        draw.text((x + 2, y + 4), _fit(draw, label, font, cell_w - 4), fill="black", font=font)
        if img is None:
            draw.rectangle(
                [x, y + label_height, x + cell_w - 1, y + label_height + cell_h - 1], fill="#dddddd"
            )
            draw.text(
                (x + 12, y + label_height + 12), "no reconstructions yet", fill="#555555", font=font
            )
        else:
            canvas.paste(Image.fromarray(img), (x, y + label_height))
    return np.asarray(canvas)


def reconstruction_cols(jobs: Sequence[Job]) -> int:
    """Columns for the reconstructions overview: the values of the last swept key when the jobs
    form a full matrix (3x3 for the reference), else up to 4 side by side."""
    if jobs and len(jobs[0].swept) >= 2:
        distinct = [len({j.swept[k] for j in jobs}) for k in jobs[0].swept]
        if math.prod(distinct) == len(jobs) and distinct[-1] <= 6:
            return distinct[-1]
    return min(len(jobs), 4) or 1


def job_grid(
    job: Job, samples: Mapping[str, np.ndarray] | None, scale: int = 2
) -> np.ndarray | None:
    """The job's last reconstruction grid at ``scale`` x, from samples.npz or its PNG."""
    if samples is not None and len(samples.get("originals", ())):
        return reconstruction_grid(samples["originals"], samples["reconstructions"], scale=scale)
    png = job.path / RECONSTRUCTIONS
    if png.is_file():
        try:
            with Image.open(png) as opened:
                image = np.asarray(opened.convert("RGB"))
        except OSError:
            return None
        return image[:: max(1, 4 // scale), :: max(1, 4 // scale)]  # the PNG is 4x nearest
    return None


# ----------------------------------------------------------------------------------------------
# Tables


def result_row(job: Job) -> dict[str, Any]:
    """One row of results.csv: ``job``, the swept keys, then :data:`RESULT_COLUMNS`."""
    train, val = job.final("train"), job.final("val")
    return {
        "job": job.name,
        **job.swept,
        "status": job.status,
        "error": job.error or "",
        "inputs": job.inputs,
        "train_loss": train.get("loss"),
        "val_loss": val.get("loss"),
        "val_pixel_l1": val.get("pixel_l1"),
        "val_psnr": val.get("psnr"),
        "val_hist_w1": val.get("hist_w1"),
        "images_per_second": job.images_per_second,
        "wall_time": job.wall_time,
    }


def _number(value: Any, digits: int = 4) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}" if math.isfinite(value) else str(value)
    return str(value)


def results_csv(jobs: Sequence[Job]) -> str:
    """results.csv text: a header and one row per job."""
    swept = list(jobs[0].swept) if jobs else []
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["job", *swept, *RESULT_COLUMNS], lineterminator="\n")
    writer.writeheader()
    for job in jobs:
        writer.writerow({k: _number(v, 6) for k, v in result_row(job).items()})
    return buf.getvalue()


def status_text(job: Job) -> str:
    """``done``, ``failed: <error>``, ``running (updated ...)`` or ``pending (...)``."""
    if job.error:
        return f"{job.status}: {job.error}"
    if job.status == "running" and job.updated:
        return f"running (updated {job.updated})"
    if job.status == "pending":
        return "pending (no status.json yet)"
    return job.status


def _table_cells(job: Job, short: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """Headings and plain-text cells of a job's row in results.md / index.html."""
    row = result_row(job)
    heads = [short[k] for k in job.swept] or ["job"]
    cells = [job.swept[k] for k in job.swept] or [job.name]
    heads.append("status")
    cells.append(status_text(job))
    for key, heading in _HEADINGS.items():
        heads.append(heading)
        cells.append(_number(row[key]))
    return heads, cells


def results_markdown(jobs: Sequence[Job], title: str, command: str = "") -> str:
    """results.md text: a title, the sweep command and the results table."""
    short = short_keys(list(jobs[0].swept)) if jobs else {}
    lines = [f"# {title}", ""]
    if command:
        lines += [f"`{command}`", ""]
    if not jobs:
        return "\n".join([*lines, "No jobs yet.", ""])
    for i, job in enumerate(jobs):
        heads, cells = _table_cells(job, short)
        if i == 0:
            lines.append("| " + " | ".join(heads) + " |")
            n_text = len(heads) - len(_HEADINGS)  # swept values (or job) and status: text
            lines.append(
                "|" + "|".join("---" if k < n_text else "---:" for k in range(len(heads))) + "|"
            )
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join([*lines, ""])


# ----------------------------------------------------------------------------------------------
# HTML

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1500px; padding: 0 1em;
       color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.meta { color: #555; } code { background: #f4f4f4; padding: 0 0.2em; }
table { border-collapse: collapse; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; vertical-align: top; }
th { background: #f0f0f0; } td:first-child { white-space: nowrap; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafafa; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; border-radius: 2px;
          vertical-align: middle; margin-right: 0.3em; }
.done { color: #1a7f37; } .failed, .diverged { color: #c62828; font-weight: 600; }
.running { color: #1565c0; } .pending { color: #777; } .stopped { color: #b26a00; }
img { max-width: 100%; height: auto; image-rendering: pixelated; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.plots img { max-width: min(100%, 720px); }
img.grid { width: 512px; }
nav a { margin-right: 0.6em; }
"""

# Records, once the page has loaded, how many images loaded and how many table rows there are
# (on <body data-...>), so a headless browser's dumped DOM shows whether the page is whole.
_CHECK_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (img) { return img.complete && img.naturalWidth > 0; });
  document.body.dataset.imagesTotal = images.length;
  document.body.dataset.imagesLoaded = loaded.length;
  document.body.dataset.tableRows = document.querySelectorAll("#results tbody tr").length;
});
"""


def _href(path: Path, start: Path) -> str:
    """A relative URL from the folder ``start`` to ``path``."""
    return quote(Path(os.path.relpath(path, start)).as_posix())


def _img(src: str, alt: str, cls: str = "") -> str:
    """An image that links to itself: the page shows it scaled down, a click at full size."""
    extra = f' class="{cls}"' if cls else ""
    src = html.escape(src)
    return f'<a href="{src}"><img src="{src}" alt="{html.escape(alt)}"{extra}></a>'


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n"
        f"<script>{_CHECK_SCRIPT}</script>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def results_html(jobs: Sequence[Job]) -> str:
    """The results table: one row per job, its colour swatch linking to its section."""
    if not jobs:
        return '<table id="results"><tbody></tbody></table><p>No jobs yet.</p>'
    short = short_keys(list(jobs[0].swept))
    heads, _ = _table_cells(jobs[0], short)
    n_text = len(heads) - len(_HEADINGS)  # swept values (or job) and status are text
    out = ['<table id="results">', "<thead><tr>"]
    out += [f"<th>{html.escape(h)}</th>" for h in heads]
    out.append("</tr></thead>\n<tbody>")
    for job in jobs:
        _, cells = _table_cells(job, short)
        tds = []
        for i, cell in enumerate(cells):
            text = html.escape(cell)
            if i == 0:
                swatch = f'<span class="swatch" style="background:{job.color}"></span>'
                tds.append(f'<td>{swatch}<a href="#{job.anchor}">{text}</a></td>')
            elif i == n_text - 1:
                tds.append(f'<td class="{job.status}">{text}</td>')
            elif i < n_text:
                tds.append(f"<td>{text}</td>")
            else:
                tds.append(f'<td class="num">{text}</td>')
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def job_html(job: Job, sweep_dir: Path) -> str:
    """A job's section: status, links to its files, loss and histogram plots, its grid."""

    def href(name: str) -> str:
        return _href(job.path / name, sweep_dir)

    parts = [
        f'<h2 id="{job.anchor}"><span class="swatch" style="background:{job.color}"></span>'
        f"{html.escape(job.label)}</h2>",
        f'<p class="meta"><span class="{job.status}">{html.escape(status_text(job))}</span>'
        f" · folder <code>{html.escape(job.name)}</code>",
    ]
    if job.inputs is not None:
        parts[-1] += f" · {job.inputs:,} inputs"
    if job.wall_time is not None:
        parts[-1] += f" · {job.wall_time:,.1f} s"
    parts[-1] += "</p>"
    files = [
        ("metrics.csv", "metrics.csv"),
        ("summary.json", "summary.json"),
        ("status.json", "status.json"),
        (".hydra/config.yaml", "config"),
        (".hydra/overrides.yaml", "overrides"),
    ]
    files += [(p.name, p.name) for p in sorted(job.path.glob("*.log"))]
    links = [f'<a href="{href(f)}">{t}</a>' for f, t in files if (job.path / f).is_file()]
    history = sorted((job.path / "reconstructions").glob("inputs-*.png"))
    if history:
        steps = [
            f'<a href="{href("reconstructions/" + p.name)}">{int(p.stem.split("-")[-1]):,}</a>'
            for p in history
        ]
        links.append("reconstructions at " + ", ".join(steps) + " inputs")
    if links:
        parts.append("<p>" + " · ".join(links) + "</p>")
    plots = [
        _img(href(name), f"{alt} of {job.label}")
        for name, alt in (("loss.png", "loss curves"), (HISTOGRAMS, "colour histograms"))
        if (job.path / name).is_file()
    ]
    if plots:
        parts.append('<div class="plots">' + "".join(plots) + "</div>")
    if (job.path / RECONSTRUCTIONS).is_file():
        parts.append(
            "<p>The first validation images (rows of originals over their reconstructions):</p>"
            + _img(href(RECONSTRUCTIONS), f"reconstructions of {job.label}", "grid")
        )
    if not plots and not links:
        parts.append("<p>Nothing written yet.</p>")
    return "\n".join(parts)


def report_html(
    jobs: Sequence[Job],
    sweep_dir: Path,
    command: str,
    expected: int | None,
    up_link: str | None,
) -> str:
    """index.html of a sweep."""
    counts = {s: sum(j.status == s for j in jobs) for s in _STATUS_ORDER}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    started = (
        f"{len(jobs)} of {expected} jobs"
        if expected and expected != len(jobs)
        else f"{len(jobs)} jobs"
    )
    body = [f"<h1>Sweep {html.escape(sweep_dir.name)}</h1>"]
    meta = [
        f"folder <code>{html.escape(str(sweep_dir))}</code>",
        f"{started}: {summary or 'none yet'}",
        f"written {time.strftime('%Y-%m-%d %H:%M:%S')}",
    ]
    if up_link:
        meta.append(f'<a href="{up_link}">all sweeps and runs</a>')
    body.append('<p class="meta">' + " · ".join(meta) + "</p>")
    if command:
        body.append(f"<p><code>{html.escape(command)}</code></p>")
    nav = ['<a href="#comparison">loss curves</a>', '<a href="#table">results</a>']
    nav.append('<a href="#reconstructions">reconstructions</a>')
    nav += [f'<a href="#{j.anchor}">{html.escape(j.label)}</a>' for j in jobs]
    body.append("<nav>" + "".join(nav) + "</nav>")
    body.append('<h2 id="comparison">Loss against inputs seen</h2>')
    if (sweep_dir / COMPARISON).is_file():
        body.append(_img(COMPARISON, "train and validation loss of every job"))
    body.append('<h2 id="table">Results</h2>')
    body.append(
        "<p>Final numbers of each job (validation over all validation images). "
        "<em>hist W1</em> is the exact 1-D Wasserstein distance between the per-channel colour "
        "distributions of reconstructions (clamped to [0, 1]) and originals: small when the "
        "colours match, wherever they are in the image. "
        f'Also as <a href="{RESULTS_CSV}">{RESULTS_CSV}</a> and '
        f'<a href="{RESULTS_MD}">{RESULTS_MD}</a>.</p>'
    )
    body.append(results_html(jobs))
    body.append('<h2 id="reconstructions">Reconstructions</h2>')
    if (sweep_dir / RECONSTRUCTIONS).is_file() and jobs:
        body.append(
            "<p>Each job's last validation grid: rows of 8 originals over their 8 "
            "reconstructions.</p>" + _img(RECONSTRUCTIONS, "every job's reconstructions")
        )
    for job in jobs:
        body.append(job_html(job, sweep_dir))
    return _page(f"histae sweep {sweep_dir.name}", "\n".join(body))


# ----------------------------------------------------------------------------------------------
# The report


def _read_job_samples(job: Job) -> dict[str, np.ndarray] | None:
    path = job.path / "samples.npz"
    if not path.is_file():
        return None
    try:
        return load_samples(path)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        log.warning(f"{path}: cannot read ({err}); skipping its plots")
        return None


def _write_histograms(job: Job, samples: Mapping[str, np.ndarray]) -> None:
    out, src = job.path / HISTOGRAMS, job.path / "samples.npz"
    # Redrawing costs a matplotlib figure per job; skip it when samples.npz has not changed.
    if out.is_file() and out.stat().st_mtime >= src.stat().st_mtime:
        return
    try:
        plot_histograms(samples, out, title=f"{job.label}: colours of all validation images")
    except (KeyError, ValueError) as err:
        log.warning(f"{src}: no histograms ({err})")


def write_report(sweep_dir: str | os.PathLike) -> Path:
    """Write the sweep report (see the module docstring) into ``sweep_dir``; return index.html.

    Works on a finished sweep, a running one and one where jobs failed. Also refreshes
    ``outputs/index.html`` when the sweep lives in the default ``outputs/sweeps/``.

    Raises:
        FileNotFoundError / ValueError: ``sweep_dir`` is missing, or is not a sweep folder.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(
            f"{sweep_dir} does not exist or is not a folder: pass a sweep folder"
        )
    if is_job_dir(sweep_dir):
        raise ValueError(
            f"{sweep_dir} is a single job's folder, not a sweep folder: pass the folder that "
            "holds multirun.yaml and the job folders"
        )
    job_dirs = find_job_dirs(sweep_dir)
    if not job_dirs and not (sweep_dir / "multirun.yaml").is_file():
        raise ValueError(
            f"{sweep_dir} is not a sweep folder: no job folders with status.json or "
            ".hydra/overrides.yaml"
        )
    jobs = label_jobs([load_job(d, sweep_dir) for d in job_dirs])
    overrides = read_sweep_overrides(sweep_dir)
    command = "python -m histae -m " + " ".join(overrides) if overrides else ""

    grids = []
    for job in jobs:
        samples = _read_job_samples(job)
        grids.append((f"{job.label} ({job.status})", job_grid(job, samples)))

    plot_comparison(
        {j.name: j.rows for j in jobs},
        sweep_dir / COMPARISON,
        labels={j.name: j.label + ("" if j.status == "done" else f" ({j.status})") for j in jobs},
        colors={j.name: j.color for j in jobs},
        title=f"sweep {sweep_dir.name}",
    )
    if jobs:
        save_png(compose_cells(grids, reconstruction_cols(jobs)), sweep_dir / RECONSTRUCTIONS)
    write_text(sweep_dir / RESULTS_CSV, results_csv(jobs))
    write_text(sweep_dir / RESULTS_MD, results_markdown(jobs, f"Sweep {sweep_dir.name}", command))

    up_link = "../../index.html" if sweep_dir.resolve().parent.name == SWEEPS else None
    page = report_html(jobs, sweep_dir, command, expected_jobs(overrides), up_link)
    index = write_text(sweep_dir / INDEX, page)
    refresh_outputs_index(sweep_dir)
    return index


def refresh_outputs_index(folder: str | os.PathLike) -> Path | None:
    """Rewrite ``outputs/index.html`` if ``folder`` is a sweep or run in the default layout
    (``outputs/sweeps/<name>`` or ``outputs/runs/<name>``); return it, or None elsewhere."""
    folder = Path(folder).resolve()
    if folder.parent.name in (SWEEPS, RUNS):
        return write_outputs_index(folder.parent.parent)
    return None


# ----------------------------------------------------------------------------------------------
# outputs/index.html


@dataclass
class Entry:
    """A sweep or a single run listed in outputs/index.html."""

    kind: str  # sweep | run
    path: Path
    started: float  # seconds since the epoch
    statuses: dict[str, int]
    overrides: list[str]
    val_loss: float | None  # a run's final validation loss, or the best of a sweep's jobs


def _started(folder: Path, marker: Path) -> float:
    """When a run or sweep started: from its folder name (the default ``${now:...}``), else the
    time its first Hydra file was written."""
    try:
        return time.mktime(time.strptime(folder.name, _STAMP))
    except ValueError:
        pass
    for path in (marker, folder):
        try:
            return path.stat().st_mtime
        except OSError:
            continue
    return 0.0


def _final_val_loss(job_dir: Path) -> float | None:
    try:
        rows = read_metrics(job_dir / "metrics.csv")
    except (OSError, ValueError):
        return None
    losses = [r["loss"] for r in rows if r.get("split") == "val" and "loss" in r]
    return losses[-1] if losses and math.isfinite(losses[-1]) else None


def _job_state(job_dir: Path) -> str:
    state = (read_status(job_dir) or {}).get("status")
    return state if state in STATUSES else "pending"


def list_outputs(outputs_root: Path) -> list[Entry]:
    """The sweeps (``sweeps/*``) and single runs (``runs/*``) under ``outputs_root``, newest first."""
    entries = []
    sweeps, runs = outputs_root / SWEEPS, outputs_root / RUNS
    for folder in sorted(sweeps.iterdir()) if sweeps.is_dir() else []:
        if not folder.is_dir():
            continue
        job_dirs = find_job_dirs(folder)
        if not job_dirs and not (folder / "multirun.yaml").is_file():
            continue
        statuses: dict[str, int] = {}
        for job_dir in job_dirs:
            state = _job_state(job_dir)
            statuses[state] = statuses.get(state, 0) + 1
        losses = [v for v in map(_final_val_loss, job_dirs) if v is not None]
        entries.append(
            Entry(
                "sweep",
                folder,
                _started(folder, folder / "multirun.yaml"),
                statuses,
                read_sweep_overrides(folder),
                min(losses) if losses else None,
            )
        )
    for folder in sorted(runs.iterdir()) if runs.is_dir() else []:
        if not folder.is_dir() or not is_job_dir(folder):
            continue
        entries.append(
            Entry(
                "run",
                folder,
                _started(folder, folder / ".hydra" / "config.yaml"),
                {_job_state(folder): 1},
                read_override_list(folder),
                _final_val_loss(folder),
            )
        )
    return sorted(entries, key=lambda e: (e.started, e.path.name), reverse=True)


def is_outputs_root(folder: Path) -> bool:
    """An outputs folder holds ``sweeps/`` or ``runs/`` (and is no job folder itself)."""
    return ((folder / SWEEPS).is_dir() or (folder / RUNS).is_dir()) and not is_job_dir(folder)


def write_outputs_index(outputs_root: str | os.PathLike) -> Path:
    """Write ``outputs_root/index.html``: every sweep and single run, newest first; return it.

    Raises:
        FileNotFoundError / ValueError: the folder is missing or holds neither sweeps/ nor runs/.
    """
    root = Path(outputs_root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} does not exist or is not a folder: pass an outputs folder")
    if not is_outputs_root(root):
        raise ValueError(f"{root} is not an outputs folder: no {SWEEPS}/ or {RUNS}/ folder inside")
    entries = list_outputs(root)
    rows = []
    for e in entries:
        page = e.path / INDEX
        target = page if page.is_file() else e.path
        links = [f'<a href="{_href(target, root)}">{html.escape(e.path.name)}</a>']
        if e.kind == "run":
            links += [
                f'<a href="{_href(e.path / name, root)}">{name}</a>'
                for name in ("loss.png", RECONSTRUCTIONS, "metrics.csv")
                if (e.path / name).is_file()
            ]
        states = ", ".join(
            f'<span class="{s}">{n} {s}</span>'
            if e.kind == "sweep"
            else f'<span class="{s}">{s}</span>'
            for s, n in sorted(e.statuses.items())
        )
        shown = " ".join(e.overrides)
        rows.append(
            "<tr>"
            f"<td>{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(e.started))}</td>"
            f"<td>{e.kind}</td><td>{' · '.join(links)}</td><td>{states}</td>"
            f'<td class="num">{_number(e.val_loss)}</td>'
            f"<td>{f'<code>{html.escape(shown)}</code>' if shown else ''}</td></tr>"
        )
    table = (
        '<table id="results"><thead><tr><th>started</th><th>kind</th><th>folder</th>'
        "<th>jobs</th><th>val loss (best job)</th><th>overrides</th></tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table>"
    )
    body = (
        f'<h1>histae outputs</h1>\n<p class="meta">folder <code>{html.escape(str(root))}'
        f"</code> · sweeps: {sum(e.kind == 'sweep' for e in entries)}, "
        f"single runs: {sum(e.kind == 'run' for e in entries)} · written "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}</p>\n{table if entries else '<p>Nothing yet.</p>'}"
    )
    return write_text(root / INDEX, _page("histae outputs", body))


# ----------------------------------------------------------------------------------------------
# Command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m histae.report FOLDER...``: write the report of each sweep folder, or the index
    of each outputs folder; print what was written. Returns 0, or 1 if any folder was bad."""
    parser = argparse.ArgumentParser(
        prog="python -m histae.report",
        description="Write a sweep's report (index.html, comparison.png, results.csv/.md, "
        "reconstructions.png, each job's histograms.png), at any time, also while it runs.",
    )
    parser.add_argument(
        "folders",
        nargs="+",
        type=Path,
        metavar="FOLDER",
        help="a sweep folder (holds multirun.yaml and one folder per job), or an outputs folder "
        "(holds sweeps/ and runs/) whose index.html of all sweeps and runs to refresh",
    )
    args = parser.parse_args(argv)
    failed = False
    for folder in args.folders:
        try:
            if folder.is_dir() and is_outputs_root(folder):
                print(write_outputs_index(folder))
            else:
                print(write_report(folder))
        except (OSError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
