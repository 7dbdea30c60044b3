"""Pictures of a job: the loss curves and the reconstruction grid.

Matplotlib runs on the non-interactive Agg backend so jobs work without a display.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from histae.atomic import atomic_write


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


def reconstruction_grid(
    originals: np.ndarray, reconstructions: np.ndarray, cols: int = 8, scale: int = 4
) -> np.ndarray:
    """The reference's picture: a row of ``cols`` originals over a row of their reconstructions.

    Args:
        originals: (N, C, H, W) float in [0, 1].
        reconstructions: (N, C, H, W) float, clamped to [0, 1] here.

    Returns:
        (2 * ceil(N / cols) * H * scale, cols * W * scale, 3) uint8.
    """
    if originals.shape != reconstructions.shape:
        raise ValueError(f"shapes differ: {originals.shape} vs {reconstructions.shape}")
    rows = []
    for start in range(0, len(originals), cols):
        rows.append(originals[start : start + cols])
        rows.append(reconstructions[start : start + cols])
    pad = [np.concatenate([r, np.zeros((cols - len(r), *r.shape[1:]), r.dtype)]) for r in rows]
    return tile_grid(to_uint8(np.concatenate(pad)), cols=cols, scale=scale)


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Atomically save an (H, W, 3) uint8 image as PNG."""
    return atomic_write(path, lambda f: Image.fromarray(image).save(f, format="PNG"))


def save_figure(fig: plt.Figure, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Atomically save a matplotlib figure as PNG and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))


def _series(rows: Sequence[Mapping[str, Any]], split: str, key: str) -> tuple[list, list]:
    pts = [(r["inputs"], r[key]) for r in rows if r.get("split") == split and key in r]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_loss(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, title: str = "") -> Path:
    """loss.png: train and validation loss against inputs seen, and validation PSNR.

    The loss axis is logarithmic when the curve spans more than a factor of 10.
    """
    fig, (ax, ax_psnr) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    spans = []
    for split, style in (("train", "-"), ("val", "o-")):
        x, y = _series(rows, split, "loss")
        if x:
            ax.plot(x, y, style, label=f"{split} loss", markersize=4)
            spans.extend(v for v in y if v == v and v > 0)
    if spans and max(spans) / min(spans) > 10:
        ax.set_yscale("log")
    ax.set_xlabel("inputs seen")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    ax.legend()
    for split, style in (("train", "-"), ("val", "o-")):
        x, y = _series(rows, split, "psnr")
        if x:
            ax_psnr.plot(x, y, style, label=f"{split} PSNR", markersize=4)
    ax_psnr.set_xlabel("inputs seen")
    ax_psnr.set_ylabel("pixel PSNR (dB)")
    ax_psnr.grid(True, alpha=0.3)
    ax_psnr.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
