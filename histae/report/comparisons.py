"""How the settings compare: heatmaps over two keys, marginal panels and parallel coordinates.

Every drawing function returns the numbers it drew (the tests hold them against the table).
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import matplotlib
import numpy as np
from matplotlib.colors import Normalize
from matplotlib.patches import Rectangle

from histae.labels import value_key
from histae.plots import save_figure, subplots
from histae.report.measures import RAW_LOSS, Metric
from histae.report.settings import Setting, Stat, final_value
from histae.report.verdict import Verdict


@dataclass
class Matrix:
    """A metric over two keys: ``mean``/``std``/``half``/``n`` are (rows, cols), nan/0 where no
    value.

    ``std`` is the seed-to-seed std and ``half`` the 95% interval's half width (both nan for one
    seed). Once drawn, ``face`` and
    ``ink`` hold each cell's background and text colour (RGB in [0, 1]), ``span`` the colour
    scale's (low, high), and ``boxes`` the cells boxed: ``(row, col) -> "best" | "tie"``.
    """

    rows: list[str]
    cols: list[str]
    mean: np.ndarray
    std: np.ndarray
    half: np.ndarray
    n: np.ndarray
    face: dict[tuple[int, int], tuple[float, float, float]] = field(default_factory=dict)
    ink: dict[tuple[int, int], tuple[float, float, float]] = field(default_factory=dict)
    span: tuple[float, float] = (0.0, 1.0)
    boxes: dict[tuple[int, int], str] = field(default_factory=dict)
    settings: dict[tuple[int, int], Setting] = field(default_factory=dict)


def luminance(rgb: Sequence[float]) -> float:
    """WCAG relative luminance of an sRGB colour with channels in [0, 1]."""
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb[:3]]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: Sequence[float], b: Sequence[float]) -> float:
    """WCAG contrast ratio of two colours (1 to 21; 4.5 is legible body text)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def ink_for(face: Sequence[float]) -> tuple[float, float, float]:
    """Black or white, whichever contrasts more with ``face`` (always at least 4.58:1)."""
    black, white = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    return black if contrast(face, black) >= contrast(face, white) else white


def colour_span(m: Matrix) -> tuple[float, float]:
    """The colour scale's (low, high): the cells' range, widened to at least ± 2 pooled
    seed-to-seed standard deviations around its middle (the root mean square of the cells'
    stds; ± 5% of the middle's size with one seed or no spread at all), so a difference inside
    the noise stays near one colour instead of spanning the map."""
    finite = m.mean[np.isfinite(m.mean)]
    if not finite.size:
        return (0.0, 1.0)
    lo, hi = float(finite.min()), float(finite.max())
    middle = (lo + hi) / 2
    stds = m.std[np.isfinite(m.std)]
    pooled = math.sqrt(float(np.mean(np.square(stds)))) if stds.size else 0.0
    floor = 2 * pooled if pooled > 0 else 0.05 * abs(middle)
    half = max((hi - lo) / 2, floor, 1e-12)
    return (middle - half, middle + half)


def values_of(settings: Sequence[Setting], key: str) -> list[str]:
    """The values ``key`` takes in the settings, sorted (numbers numerically)."""
    return sorted({s.values.get(key, "") for s in settings}, key=value_key)


def matrix(settings: Sequence[Setting], row_key: str, col_key: str, metric: Metric) -> Matrix:
    """The settings' mean, std and seed count of ``metric`` on a ``row_key`` x ``col_key`` grid."""
    rows, cols = values_of(settings, row_key), values_of(settings, col_key)
    shape = (len(rows), len(cols))
    nan = np.full(shape, np.nan)
    out = Matrix(rows, cols, nan.copy(), nan.copy(), nan.copy(), np.zeros(shape, int))
    for setting in settings:
        i = rows.index(setting.values.get(row_key, ""))
        j = cols.index(setting.values.get(col_key, ""))
        out.settings[(i, j)] = setting
        stat = setting.stat(metric.key)
        if stat is not None:
            ci = stat.ci95
            out.mean[i, j], out.n[i, j] = stat.mean, stat.n
            out.half[i, j] = (ci[1] - ci[0]) / 2 if ci else np.nan
            out.std[i, j] = stat.std if stat.std is not None else np.nan
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
    verdicts: Mapping[str, Verdict] | None = None,
) -> dict[str, Matrix]:
    """heatmaps.png: one heatmap per metric, rows ``keys[0]``'s values, columns ``keys[1]``'s.

    Each cell prints the mean (and ``± 95% half width (n seeds)`` with replicates) in black or
    white, whichever contrasts more with the cell. The colour scale is :func:`colour_span`. By
    ``verdicts`` (metric key -> :class:`~histae.report.verdict.Verdict`), the starred best cell
    is boxed solid and the cells indistinguishable from it dashed; with no starred best nothing
    is boxed and the panel says why. With ``raw``, a last grey panel shows the raw loss,
    unranked, so its scale effect is seen beside the metrics that compare.
    """
    drawn: dict[str, Matrix] = {}
    panels = [*metrics, RAW_LOSS] if raw else list(metrics)
    cols = min(3, max(1, len(panels)))  # at most three across, so the numbers stay readable
    rows = -(-max(1, len(panels)) // cols)
    fig, axes = subplots(
        rows, cols, figsize=(4.4 * cols, 3.9 * rows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat[len(panels) :]:
        ax.set_axis_off()
    for ax, metric in zip(axes.flat, panels, strict=False):
        m = drawn[metric.key] = matrix(settings, keys[0], keys[1], metric)
        m.span = colour_span(m)
        cmap = matplotlib.colormaps["Greys" if metric is RAW_LOSS else _cmap(metric)]
        norm = Normalize(*m.span)
        ax.imshow(m.mean, cmap=cmap, norm=norm, aspect="auto")
        verdict = (verdicts or {}).get(metric.key) if metric is not RAW_LOSS else None
        for (i, j), value in np.ndenumerate(m.mean):
            if not np.isfinite(value):
                face = (1.0, 1.0, 1.0)  # imshow leaves NaN cells transparent: the white axes
                m.face[(i, j)], m.ink[(i, j)] = face, (0.3, 0.3, 0.3)
                ax.text(j, i, "no value", ha="center", va="center", fontsize=8, color="0.3")
                continue
            face = tuple(float(c) for c in cmap(norm(value))[:3])
            ink = ink_for(face)
            m.face[(i, j)], m.ink[(i, j)] = face, ink  # type: ignore[assignment]
            text = f"{value:.4g}"
            if m.n[i, j] > 1 and np.isfinite(m.half[i, j]):
                text += f"\n± {m.half[i, j]:.2g} ({m.n[i, j]} seeds)"
            ax.text(j, i, text, ha="center", va="center", fontsize=9, color=ink)
            setting = m.settings.get((i, j))
            if verdict is None or verdict.best is None or setting is None:
                continue
            if setting is verdict.best:
                m.boxes[(i, j)] = "best"
            elif verdict.indistinguishable(setting):
                m.boxes[(i, j)] = "tie"
            else:
                continue
            style = "-" if m.boxes[(i, j)] == "best" else "--"
            ax.add_patch(
                Rectangle((j - 0.46, i - 0.46), 0.92, 0.92, fill=False, lw=3, ec="red", ls=style)
            )
        ax.set_xticks(range(len(m.cols)), m.cols)
        ax.set_yticks(range(len(m.rows)), m.rows)
        lo, hi = m.span
        ax.set_xlabel(f"{short.get(keys[1], keys[1])}\n(colours span {lo:.4g} to {hi:.4g})")
        ax.set_ylabel(short.get(keys[0], keys[0]))
        heading = metric.label + (", higher better" if metric.higher_is_better else "")
        if verdict is not None and verdict.best is None:
            heading += "; no best: " + (
                "one seed"
                if verdict.leader and verdict.leader.stat(metric.key).n < 2  # type: ignore[union-attr]
                else "within noise"
                if verdict.leader
                else "none ranked"
            )
        ax.set_title(textwrap.fill(heading, 34), fontsize="medium")
    if title:
        fig.suptitle(textwrap.fill(title, 40 * cols))
    save_figure(fig, path)
    return drawn


def marginal(
    settings: Sequence[Setting], key: str, metric: Metric
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``metric`` against ``key``'s values, over every job with that value (other keys pooled).

    Returns:
        values, mean (V,), half width of the 95% interval (V,) (Student's t over the pooled
        jobs; nan where fewer than two jobs have a value).
    """
    values = values_of(settings, key)
    means, halves = np.full(len(values), np.nan), np.full(len(values), np.nan)
    for i, value in enumerate(values):
        found = [
            final_value(job, metric.key)
            for s in settings
            if s.values.get(key, "") == value
            for job in s.jobs
        ]
        stat = Stat.of([v for v in found if v is not None])
        if stat is not None:
            means[i] = stat.mean
            if (ci := stat.ci95) is not None:
                halves[i] = (ci[1] - ci[0]) / 2
    return values, means, halves


def marginal_span(bottoms: Sequence[float], tops: Sequence[float]) -> tuple[float, float]:
    """The marginal panels' y range: the error bars' extent with a margin, widened to at least
    ± 5% of its middle, so a gap of a fraction of a percent does not fill the panel."""
    lo, hi = min(bottoms), max(tops)
    middle, half = (lo + hi) / 2, (hi - lo) / 2
    half = max(half * 1.15, 0.05 * abs(middle), 1e-12)
    return (middle - half, middle + half)


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
    """marginals.png: one small panel per key, ``metric`` (mean and 95% interval over the other
    keys and seeds) against the key's values. The shared axis spans at least ± 5% of the
    values' middle, so a gap of a fraction of a percent does not fill the panel as a trend."""
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
    tops, bottoms = [], []
    for ax, key in zip(axes[0], keys, strict=False):
        values, mean, half = drawn[key]
        ordered = all(_is_number(v) for v in values)
        yerr = np.where(np.isfinite(half), half, 0.0)
        ax.errorbar(range(len(values)), mean, yerr=yerr, fmt="o-" if ordered else "o", capsize=3)
        finite = np.isfinite(mean)
        tops += list((mean + yerr)[finite])
        bottoms += list((mean - yerr)[finite])
        ax.set_xticks(
            range(len(values)),
            values,
            rotation=0 if ordered else 35,
            ha="center" if ordered else "right",
        )
        ax.set_xlabel(short.get(key, key))
        ax.grid(True, alpha=0.3)
    if tops:
        axes[0, 0].set_ylim(*marginal_span(bottoms, tops))
    axes[0, 0].set_ylabel(metric.label)
    heading = title or f"{metric.label} against each key (others pooled, mean and 95% interval)"
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
