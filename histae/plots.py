"""Pictures of a job, drawn by the job when it validates: loss curves, grids, colour histograms.

Matplotlib runs on the non-interactive Agg backend so jobs work without a display.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image, ImageDraw, ImageFont

from histae.atomic import atomic_write
from histae.jobdir import read_samples


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] (values outside are clamped) -> uint8, same shape."""
    # NaN (a diverged model) shows as black rather than as whatever the cast makes of it.
    return (np.clip(np.nan_to_num(images), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def tile_grid(tiles: np.ndarray, cols: int = 8, scale: int = 1, gap: int = 0) -> np.ndarray:
    """Lay (N, C, H, W) uint8 tiles out in rows of ``cols``: -> (rows*(H+gap)-gap, ..., 3) uint8.

    Each pixel becomes a ``scale`` x ``scale`` block (nearest), so pixel art stays crisp. Missing
    cells of the last row stay black; one-channel tiles are shown grey.
    """
    if tiles.ndim != 4:
        raise ValueError(f"tiles must be (N, C, H, W), got shape {tiles.shape}")
    n, c, h, w = tiles.shape
    if c == 1:
        tiles = np.repeat(tiles, 3, axis=1)
    rows = max(1, -(-n // cols))
    cell_h, cell_w = h * scale + gap, w * scale + gap
    grid = np.zeros((rows * cell_h - gap, cols * cell_w - gap, 3), dtype=np.uint8)
    big = tiles.transpose(0, 2, 3, 1)[..., :3]
    if scale > 1:
        big = big.repeat(scale, axis=1).repeat(scale, axis=2)
    for i in range(n):
        r, col = divmod(i, cols)
        grid[r * cell_h : r * cell_h + h * scale, col * cell_w : col * cell_w + w * scale] = big[i]
    return grid


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or without FreeType: the small bitmap font
        return ImageFont.load_default()


def reconstruction_grid(
    originals: np.ndarray,
    reconstructions: np.ndarray,
    cols: int = 8,
    scale: int = 4,
    labelled: bool = False,
) -> np.ndarray:
    """The reference's picture: a row of ``cols`` originals over a row of their reconstructions.

    With ``labelled``, each pair of rows is named on the left ("original", "reconstruction") and
    pairs are ``2 * scale`` pixels apart on a grey ground, so nobody reads a reconstruction row as
    more originals. Pixels are scaled by repetition (nearest), so pixel art stays crisp.

    Args:
        originals: (N, C, H, W) float in [0, 1].
        reconstructions: (N, C, H, W) float, clamped to [0, 1] here.

    Returns:
        (P * 2 * H * scale + (P - 1) * gap, margin + cols * W * scale, 3) uint8 for P =
        ceil(N / cols) pairs (gap and margin 0 without ``labelled``).
    """
    if originals.shape != reconstructions.shape:
        raise ValueError(f"shapes differ: {originals.shape} vs {reconstructions.shape}")
    pairs = []
    for start in range(0, len(originals), cols):
        rows = [originals[start : start + cols], reconstructions[start : start + cols]]
        padded = [
            np.concatenate([r, np.zeros((cols - len(r), *r.shape[1:]), r.dtype)]) for r in rows
        ]
        pairs.append(tile_grid(to_uint8(np.concatenate(padded)), cols=cols, scale=scale))
    if not labelled:
        return np.concatenate(pairs) if pairs else np.zeros((0, 0, 3), np.uint8)
    font = _font(max(9, 3 * scale))
    gap = 2 * scale
    margin = int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength("reconstruction", font=font))
    margin += 2 * scale + 4
    row_h = originals.shape[2] * scale
    width = margin + cols * originals.shape[3] * scale
    height = len(pairs) * (2 * row_h + gap) - gap
    canvas = Image.new("RGB", (width, max(height, 1)), "#9e9e9e")
    draw = ImageDraw.Draw(canvas)
    for i, pair in enumerate(pairs):
        y = i * (2 * row_h + gap)
        canvas.paste(Image.fromarray(pair), (margin, y))
        for j, text in enumerate(("original", "reconstruction")):
            box = (0, y + j * row_h, margin - 1, y + (j + 1) * row_h - 1)
            draw.rectangle(box, fill="white" if j == 0 else "#e8e8e8")
            draw.text(
                (scale, y + j * row_h + row_h // 2), text, fill="black", font=font, anchor="lm"
            )
    return np.asarray(canvas)


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Atomically save an (H, W, 3) uint8 image as PNG."""
    return atomic_write(path, lambda f: Image.fromarray(image).save(f, format="PNG"))


def subplots(*grid: int, figsize: tuple[float, float], **kwargs: Any) -> tuple[Figure, Any]:
    """``plt.subplots`` without pyplot: a bare Figure draws with Agg, so nothing selects a
    backend at import and jobs run without a display; ``layout`` goes to the Figure."""
    layout = kwargs.pop("layout", None)
    fig = Figure(figsize=figsize, layout=layout)
    return fig, fig.subplots(*grid, **kwargs)


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Atomically save a matplotlib figure as PNG.

    Every text is drawn literally: titles, labels and legends carry swept values the user
    typed (``+tag='$x^$'``), and matplotlib would otherwise parse ``$...$`` as maths and fail.
    """
    for text in fig.findobj(Text):
        text.set_parse_math(False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))


def _series(rows: Sequence[Mapping[str, Any]], split: str, key: str) -> tuple[list, list]:
    pts = [(r["inputs"], r[key]) for r in rows if r.get("split") == split and key in r]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_loss(
    rows: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    title: str = "",
    ylabel: str = "loss",
) -> Path:
    """loss.png: train loss (line) and validation loss (markers) on one axis, and PSNR.

    Args:
        rows: metrics.csv rows.
        title: what the job is (:func:`histae.labels.describe_config`), not its folder.
        ylabel: what the loss is (:func:`histae.labels.loss_axis_label`).

    The loss axis is logarithmic when the curve spans more than a factor of 10.
    """
    fig, (ax, ax_psnr) = subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    spans = []
    for key, axis in (("loss", ax), ("psnr", ax_psnr)):
        for split, style in (("train", "-"), ("val", "o")):
            x, y = _series(rows, split, key)
            if x:
                name = "train (average)" if split == "train" else "validation"
                axis.plot(
                    x, y, style, label=name, markersize=5, color="C1" if split == "val" else "C0"
                )
                if key == "loss":
                    spans.extend(v for v in y if v == v and v > 0)
        axis.set_xlabel("inputs seen")
        axis.grid(True, alpha=0.3)
        if axis.lines:
            axis.legend()
    if spans and max(spans) / min(spans) > 10:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax_psnr.set_ylabel("pixel PSNR (dB)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


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
    """The arrays of a samples.npz (or a mapping of the same arrays) as a dict.

    Raises:
        Unreadable: the file is not a samples archive.
    """
    if isinstance(samples, Mapping):
        return {k: np.asarray(v) for k, v in samples.items()}
    return read_samples(samples)


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
    fig, axes = subplots(
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
