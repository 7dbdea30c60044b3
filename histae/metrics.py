"""Image metrics the reference never logged: pixel errors and an exact colour-distribution distance."""

from __future__ import annotations

import torch
from torch import Tensor


def psnr(mse: Tensor, peak: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB of a mean squared error (any shape)."""
    return 10.0 * torch.log10(peak**2 / mse.clamp_min(1e-12))


def histogram_w1(output: Tensor, target: Tensor) -> Tensor:
    """Exact 1-D Wasserstein distance between the per-channel pixel-value distributions.

    The hard counterpart of the soft-histogram losses: 0 when an image's colours, channel by
    channel, are the same multiset as the original's, whatever their positions. ``output`` is
    clamped to [0, 1] first, as it is when shown.

    Args:
        output: (B, C, H, W) reconstructions.
        target: (B, C, H, W) originals in [0, 1].

    Returns:
        (B,) distance per image in pixel-value units, averaged over channels.
    """
    out = output.clamp(0.0, 1.0).flatten(2).sort(dim=-1).values  # (B, C, H*W)
    tgt = target.flatten(2).sort(dim=-1).values
    return (out - tgt).abs().mean(dim=(1, 2))


def image_metrics(output: Tensor, target: Tensor, histogram: bool = True) -> dict[str, Tensor]:
    """Per-image pixel L1, MSE, PSNR (of the clamped output) and (if ``histogram``) histogram W1.

    Args:
        output: (B, C, H, W) reconstructions (unbounded; clamped to [0, 1] here).
        target: (B, C, H, W) originals in [0, 1].

    Returns:
        dict of (B,) tensors: ``pixel_l1``, ``pixel_mse``, ``psnr``, ``hist_w1``.
    """
    clamped = output.clamp(0.0, 1.0)
    mse = (clamped - target).pow(2).mean(dim=(1, 2, 3))
    metrics = {
        "pixel_l1": (clamped - target).abs().mean(dim=(1, 2, 3)),
        "pixel_mse": mse,
        "psnr": psnr(mse),
    }
    if histogram:
        metrics["hist_w1"] = histogram_w1(output, target)
    return metrics
