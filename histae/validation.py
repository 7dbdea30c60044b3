"""A validation: metrics over every validation tile, and the job's own pictures of it."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from histae.build import Setup
from histae.jobdir import GRID, HISTOGRAMS, LOSS_PLOT, JobDir
from histae.labels import describe_config, loss_axis_label
from histae.metrics import image_metrics
from histae.plots import plot_histograms, plot_loss, reconstruction_grid, save_png

VAL_BATCH = 256  # validation batch: memory, not results, depends on it


def to_float(tiles: Tensor, device: torch.device) -> Tensor:
    """(B, C, H, W) uint8 -> float32 in [0, 1] on ``device``."""
    return tiles.to(device, non_blocking=True).float().div_(255.0)


@torch.no_grad()
def validate(setup: Setup, val: Tensor) -> tuple[dict[str, float], Tensor]:
    """Loss parts and image metrics averaged over all (M, C, H, W) uint8 validation tiles.

    Returns the averages and the (M, C, H, W) float reconstructions on the CPU.
    """
    setup.model.eval()
    sums: dict[str, Tensor] = {}
    outputs = []
    for start in range(0, len(val), VAL_BATCH):
        x = to_float(val[start : start + VAL_BATCH], setup.device)
        output, code = setup.model.reconstruct(x)
        parts = setup.objective(output, code, x)
        values = {**{k: v * len(x) for k, v in parts.items()}, **image_metrics(output, x)}
        for key, value in values.items():
            sums[key] = sums.get(key, 0.0) + value.double().sum()
        outputs.append(output.cpu())
    setup.model.train()
    keys = list(sums)
    averages = (torch.stack([sums[k] for k in keys]) / len(val)).tolist()
    return dict(zip(keys, averages, strict=True)), torch.cat(outputs)


def colour_histograms(images: Tensor, edges: np.ndarray) -> np.ndarray:
    """(N, C, H, W) float images, clamped to [0, 1] -> (C, len(edges) - 1) counts per channel."""
    values = images.clamp(0, 1).transpose(0, 1).flatten(1).numpy()
    return np.stack([np.histogram(v, bins=edges)[0] for v in values])


def draw_validation(
    job: JobDir,
    inputs: int,
    rows: list[dict[str, Any]],
    val: Tensor,
    recon: Tensor,
    count: int,
    config: dict[str, Any],
) -> np.ndarray | None:
    """The job's own pictures and samples at a validation: grids, samples, loss and colours.

    Returns the reconstruction grid, (H, W, 3) uint8, or None when ``count`` is 0.
    """
    originals, grid = val.float() / 255.0, None
    if count:
        grid = reconstruction_grid(originals[:count].numpy(), recon[:count].numpy(), labelled=True)
        save_png(grid, job.grid_path(inputs))
        save_png(grid, job.path / GRID)
    edges = np.linspace(0.0, 1.0, 257)
    samples = {
        "inputs": inputs,
        "originals": originals[:count].numpy(),
        "reconstructions": recon[:count].numpy(),
        "hist_edges": edges,
        "hist_originals": colour_histograms(originals, edges),
        "hist_reconstructions": colour_histograms(recon, edges),
    }
    job.write_samples(samples)
    title = describe_config(config)
    plot_loss(rows, job.path / LOSS_PLOT, title=title, ylabel=loss_axis_label(config))
    plot_histograms(
        samples, job.path / HISTOGRAMS, title=f"{title}: colours of all validation images"
    )
    return grid
