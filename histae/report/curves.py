"""Curves against inputs seen: train as lines, validation as markers, on one axis per metric.

Each setting is one colour; with seeds, the line is the mean over seeds and a band spans their
min to max. Every drawing function returns the data it drew, so tests check the data, not pixels.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter

from histae.labels import loss_axis_label
from histae.plots import save_figure, subplots
from histae.report.measures import Metric, row_value, tv_scale
from histae.report.reading import Job
from histae.report.settings import Setting

Series = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # inputs, mean, min, max


def series(jobs: Sequence[Job], split: str, key: str) -> Series:
    """``key`` of ``split`` rows against inputs seen, mean/min/max over the jobs at each input."""
    at: dict[int, list[float]] = {}
    for job in jobs:
        for row in job.rows:
            if row.get("split") == split:
                value = row_value(row, key, job.config)
                if value is not None:
                    at.setdefault(row["inputs"], []).append(value)
    x = np.array(sorted(at), dtype=np.int64)
    values = [np.asarray(at[i]) for i in x]
    mean = np.array([v.mean() for v in values])
    low = np.array([v.min() for v in values])
    high = np.array([v.max() for v in values])
    return x, mean, low, high


def _draw(ax: Axes, settings: Sequence[Setting], key: str) -> dict[str, dict[str, Series]]:
    drawn: dict[str, dict[str, Series]] = {}
    for setting in settings:
        for split in ("train", "val"):
            x, mean, low, high = series(setting.jobs, split, key)
            if not len(x):
                continue
            drawn.setdefault(setting.label, {})[split] = (x, mean, low, high)
            if split == "train":
                ax.plot(x, mean, "-", color=setting.color, linewidth=1.3)
            else:  # a metric measured only at validation gets a thin line to follow
                style = "o" if "train" in drawn[setting.label] else "o:"
                ax.plot(x, mean, style, color=setting.color, markersize=5, markeredgecolor="white")
            if len(setting.jobs) > 1:
                ax.fill_between(x, low, high, color=setting.color, alpha=0.15, linewidth=0)
    ax.set_xlabel("inputs seen")
    ax.xaxis.set_major_formatter(EngFormatter())
    ax.grid(True, alpha=0.3)
    positive = [v for s in drawn.values() for x, m, lo, hi in s.values() for v in lo if v > 0]
    if positive and max(positive) / min(positive) > 20:
        ax.set_yscale("log")
    if not drawn:
        ax.text(0.5, 0.5, "no values yet", ha="center", transform=ax.transAxes)
    elif max(len(x) for s in drawn.values() for x, *_ in s.values()) < 2:
        ax.text(0.5, 0.5, FEW_POINTS, ha="center", va="center", transform=ax.transAxes, wrap=True)
    return drawn


FEW_POINTS = "one value per job: too few for a curve\n(lower trainer.val_every_inputs)"


def validations(jobs: Sequence[Job]) -> int:
    """The most validation rows any of ``jobs`` has (a curve needs two)."""
    return max((sum(r.get("split") == "val" for r in job.rows) for job in jobs), default=0)


def _legend(fig: Figure, settings: Sequence[Setting]) -> None:
    handles = [Line2D([], [], color=s.color, linewidth=2, label=_legend_label(s)) for s in settings]
    handles += [
        Line2D([], [], color="grey", linestyle="-", label="train (average)"),
        Line2D([], [], color="grey", marker="o", linestyle="", label="validation"),
    ]
    fig.legend(handles=handles, loc="outside right upper", fontsize="small")


def _legend_label(setting: Setting) -> str:
    n = len(setting.jobs)
    return setting.label + (f" ({n} seeds)" if n > 1 else "")


def loss_key(jobs: Sequence[Job]) -> str:
    """``hist_tv`` when every job's loss can be normalised, else the raw ``loss``."""
    configs = [job.config for job in jobs if job.rows]
    return "hist_tv" if configs and all(tv_scale(c) for c in configs) else "loss"


def plot_curves(
    settings: Sequence[Setting], lead: Metric, path: str | os.PathLike, title: str = ""
) -> dict[str, dict[str, dict[str, Series]]]:
    """curves.png: the comparable histogram loss and the lead metric against inputs seen.

    Returns:
        panel (``hist_tv`` or ``loss``, and the lead metric's key) -> setting label -> split ->
        (inputs, mean, min, max) as drawn.
    """
    key = loss_key([job for s in settings for job in s.jobs])
    fig, axes = subplots(1, 2, figsize=(13, 4.8), layout="constrained")
    drawn = {key: _draw(axes[0], settings, key), lead.key: _draw(axes[1], settings, lead.key)}
    axes[0].set_ylabel(
        "histogram loss as total variation (0..1)"
        if key == "hist_tv"
        else "raw loss (not comparable across bins or losses)"
    )
    axes[0].set_title("histogram loss, normalised" if key == "hist_tv" else "raw loss")
    axes[1].set_ylabel(lead.label + (" (higher is better)" if lead.higher_is_better else ""))
    axes[1].set_title(lead.label)
    _legend(fig, settings)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
    return drawn


def plot_raw_loss(
    jobs: Sequence[Job], colors: dict[str, str], path: str | os.PathLike, title: str = ""
) -> dict[str, dict[str, Series]]:
    """raw_loss.png: each job's raw ``loss`` column, train line and validation markers.

    Args:
        colors: job name -> colour (its setting's).
    """
    fig, ax = subplots(figsize=(11, 4.6), layout="constrained")
    drawn: dict[str, dict[str, Series]] = {}
    for job in jobs:
        fake = Setting(job.setting, job.label, [job], colors.get(job.name, "#000000"))
        for series_by_split in _draw(ax, [fake], "loss").values():
            drawn[job.name] = series_by_split
    labels = {loss_axis_label(job.config) for job in jobs if job.config}
    ax.set_ylabel(labels.pop() if len(labels) == 1 else "loss (differs between jobs)")
    ax.set_title("raw loss: NOT comparable across bins (l1 on raw counts scales as 1/bins)")
    handles = [
        Line2D([], [], color=colors.get(j.name, "#000"), label=f"{j.label}, seed {j.seed}")
        if j.seed is not None
        else Line2D([], [], color=colors.get(j.name, "#000"), label=j.label)
        for j in jobs
    ]
    if handles:
        fig.legend(handles=handles, loc="outside right upper", fontsize="small")
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
    return drawn
