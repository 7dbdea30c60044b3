"""How the settings compare: heatmaps over two keys, marginal panels and parallel coordinates.

Every drawing function returns the numbers it drew (the tests hold them against the table).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.patches import Rectangle

from histae.labels import value_key
from histae.plots import save_figure, subplots
from histae.report.measures import RAW_LOSS, Metric
from histae.report.settings import Setting, final_value


@dataclass
class Matrix:
    """A metric over two keys: ``mean``/``std``/``n`` are (rows, cols), nan/0 where no value."""

    rows: list[str]
    cols: list[str]
    mean: np.ndarray
    std: np.ndarray
    n: np.ndarray


def values_of(settings: Sequence[Setting], key: str) -> list[str]:
    """The values ``key`` takes in the settings, sorted (numbers numerically)."""
    return sorted({s.values.get(key, "") for s in settings}, key=value_key)


def matrix(settings: Sequence[Setting], row_key: str, col_key: str, metric: Metric) -> Matrix:
    """The settings' mean, std and seed count of ``metric`` on a ``row_key`` x ``col_key`` grid."""
    rows, cols = values_of(settings, row_key), values_of(settings, col_key)
    shape = (len(rows), len(cols))
    out = Matrix(rows, cols, np.full(shape, np.nan), np.full(shape, np.nan), np.zeros(shape, int))
    for setting in settings:
        stat = setting.stat(metric.key)
        if stat is not None:
            i, j = (
                rows.index(setting.values.get(row_key, "")),
                cols.index(setting.values.get(col_key, "")),
            )
            out.mean[i, j], out.std[i, j], out.n[i, j] = stat.mean, stat.std, stat.n
    return out


def _cmap(metric: Metric) -> str:
    return "viridis" if metric.higher_is_better else "viridis_r"  # better is always bright


def plot_heatmaps(
    settings: Sequence[Setting],
    keys: tuple[str, str],
    metrics: Sequence[Metric],
    short: Mapping[str, str],
    path: str | os.PathLike,
    title: str = "",
    raw: bool = True,
) -> dict[str, Matrix]:
    """heatmaps.png: one heatmap per metric, rows ``keys[0]``'s values, columns ``keys[1]``'s.

    Each cell prints the mean (and ``± std, n seeds`` with replicates); the best cell is boxed.
    With ``raw``, a last grey panel shows the raw loss, unranked, so its scale effect is seen
    beside the metrics that compare.
    """
    drawn: dict[str, Matrix] = {}
    panels = [*metrics, RAW_LOSS] if raw else list(metrics)
    cols = min(3, max(1, len(panels)))  # at most three across, so the numbers stay readable
    rows = -(-max(1, len(panels)) // cols)
    fig, axes = subplots(
        rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat[len(panels) :]:
        ax.set_axis_off()
    for ax, metric in zip(axes.flat, panels, strict=False):
        m = drawn[metric.key] = matrix(settings, keys[0], keys[1], metric)
        ax.imshow(m.mean, cmap="Greys" if metric is RAW_LOSS else _cmap(metric), aspect="auto")
        finite = m.mean[np.isfinite(m.mean)]
        best = None
        if finite.size and metric is not RAW_LOSS:
            best = finite.max() if metric.higher_is_better else finite.min()
        middle = (np.nanmax(m.mean) + np.nanmin(m.mean)) / 2 if finite.size else 0
        for (i, j), value in np.ndenumerate(m.mean):
            if not np.isfinite(value):
                ax.text(j, i, "no value", ha="center", va="center", fontsize=8, color="grey")
                continue
            text = f"{value:.4g}"
            if m.n[i, j] > 1:
                text += f"\n± {m.std[i, j]:.2g} ({m.n[i, j]} seeds)"
            dark = value < middle if metric.higher_is_better else value > middle
            dark = value > middle if metric is RAW_LOSS else dark
            color = "white" if dark else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=9, color=color)
            if value == best:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=3, ec="red"))
        ax.set_xticks(range(len(m.cols)), m.cols)
        ax.set_yticks(range(len(m.rows)), m.rows)
        ax.set_xlabel(short.get(keys[1], keys[1]))
        ax.set_ylabel(short.get(keys[0], keys[0]))
        ax.set_title(metric.label + (" (higher better)" if metric.higher_is_better else ""))
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
    return drawn


def marginal(
    settings: Sequence[Setting], key: str, metric: Metric
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``metric`` against ``key``'s values, over every job with that value (other keys pooled).

    Returns:
        values, mean (V,), std (V,) (nan where no job has a value).
    """
    values = values_of(settings, key)
    means, stds = np.full(len(values), np.nan), np.full(len(values), np.nan)
    for i, value in enumerate(values):
        found = [
            final_value(job, metric.key)
            for s in settings
            if s.values.get(key, "") == value
            for job in s.jobs
        ]
        found = [v for v in found if v is not None]
        if found:
            means[i] = np.mean(found)
            stds[i] = np.std(found, ddof=1) if len(found) > 1 else 0.0
    return values, means, stds


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def plot_marginals(
    settings: Sequence[Setting],
    keys: Sequence[str],
    metric: Metric,
    short: Mapping[str, str],
    path: str | os.PathLike,
    title: str = "",
) -> dict[str, tuple[list[str], np.ndarray, np.ndarray]]:
    """marginals.png: one small panel per key, ``metric`` (mean ± std over the other keys and
    seeds) against the key's values."""
    drawn = {key: marginal(settings, key, metric) for key in keys}
    # A panel per key, wide enough for its labels; named options (no order) get rotated labels
    # and no connecting line, which would suggest a trend between unrelated settings.
    widths = [max(3.4, 0.6 * len(drawn[k][0]) + 1.0) for k in keys] or [3.4]
    width = sum(widths) + 0.6
    fig, axes = subplots(
        1,
        len(widths),
        figsize=(width, 3.6),
        sharey=True,
        squeeze=False,
        layout="constrained",
        gridspec_kw={"width_ratios": widths},
    )
    for ax, key in zip(axes[0], keys, strict=False):
        values, mean, std = drawn[key]
        ordered = all(_is_number(v) for v in values)
        ax.errorbar(range(len(values)), mean, yerr=std, fmt="o-" if ordered else "o", capsize=3)
        ax.set_xticks(
            range(len(values)),
            values,
            rotation=0 if ordered else 35,
            ha="center" if ordered else "right",
        )
        ax.set_xlabel(short.get(key, key))
        ax.grid(True, alpha=0.3)
    axes[0, 0].set_ylabel(metric.label)
    heading = title or f"{metric.label} against each key (others pooled, mean ± std)"
    fig.suptitle(textwrap.fill(heading, max(30, int(width * 11))), fontsize="medium")
    save_figure(fig, path)
    return drawn


def plot_parallel(
    settings: Sequence[Setting],
    keys: Sequence[str],
    metric: Metric,
    short: Mapping[str, str],
    path: str | os.PathLike,
) -> dict[str, list[float]]:
    """parallel.png: each setting a line through its key values (one axis per key, values in
    sorted order) to its ``metric``, coloured by the metric.

    Returns:
        setting label -> its positions on the key axes (0..1) and the metric's mean.
    """
    positions = {key: values_of(settings, key) for key in keys}
    means = {s.label: (s.stat(metric.key).mean if s.stat(metric.key) else np.nan) for s in settings}
    finite = [v for v in means.values() if np.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    cmap = matplotlib.colormaps.get_cmap(_cmap(metric))
    fig, ax = subplots(figsize=(2.2 * (len(keys) + 1) + 1, 4), layout="constrained")
    drawn: dict[str, list[float]] = {}
    for setting in settings:
        ys = [
            positions[k].index(setting.values.get(k, "")) / max(1, len(positions[k]) - 1)
            for k in keys
        ]
        value = means[setting.label]
        scaled = (value - lo) / (hi - lo) if hi > lo and np.isfinite(value) else 0.5
        drawn[setting.label] = [*ys, value]
        color = cmap(scaled) if np.isfinite(value) else "lightgrey"
        ax.plot(range(len(keys) + 1), [*ys, scaled], "-o", color=color, alpha=0.8)
    label = {"fontsize": 8, "va": "center", "textcoords": "offset points", "xytext": (7, 0)}
    label["bbox"] = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8}
    for i, key in enumerate(keys):
        for j, value in enumerate(positions[key]):
            ax.annotate(value, (i, j / max(1, len(positions[key]) - 1)), **label)
    ax.annotate(f"{lo:.4g}", (len(keys), 0), **label)
    ax.annotate(f"{hi:.4g}", (len(keys), 1), **label)
    ax.set_xticks(range(len(keys) + 1), [short.get(k, k) for k in keys] + [metric.label])
    ax.set_yticks([])
    ax.grid(True, axis="x", alpha=0.5)
    ax.set_title(f"settings by {metric.label} (bright is better)")
    save_figure(fig, path)
    return drawn
