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


# The 13 directions of a 3x3x3 cube (3 axes, 6 face and 4 body diagonals), in RGB space: the
# joint retrieval distance projects colours on these. Symmetric under any permutation of the
# channels, includes the per-channel axes and the grey axis (1, 1, 1).
CUBE_DIRECTIONS = (
    (1, 0, 0), (0, 1, 0), (0, 0, 1),
    (1, 1, 0), (1, -1, 0), (1, 0, 1), (1, 0, -1), (0, 1, 1), (0, 1, -1),
    (1, 1, 1), (1, 1, -1), (1, -1, 1), (-1, 1, 1),
)  # fmt: skip

INPUT_DEPENDENCE_KEYS = (
    "retrieval_top1_channel",
    "retrieval_rank_channel",
    "retrieval_top1_joint",
    "retrieval_rank_joint",
    "spread_ratio",
)
"""The keys :func:`input_dependence` returns (metrics.csv columns)."""


def sorted_colour_profiles(images: Tensor, joint: bool) -> Tensor:
    """(M, 3, H, W) -> (M, K * H * W) float64: each image's colour values sorted per direction.

    ``joint=False``: the K = C channels' values, sorted (the per-channel colour distributions).
    ``joint=True``: the RGB colours projected on the 13 unit :data:`CUBE_DIRECTIONS`, sorted.
    The squared L2 distance between two profiles divided by their length is the exact squared
    1-D Wasserstein-2 distance averaged over the channels (or directions): the sliced W2**2
    between the images' colour distributions for ``joint=True``.
    """
    x = images.double().flatten(2)  # (M, C, N)
    if joint:
        d = torch.tensor(CUBE_DIRECTIONS, dtype=torch.float64, device=x.device)
        d = d / torch.linalg.vector_norm(d, dim=-1, keepdim=True)
        x = d @ x  # (M, 13, N)
    return x.sort(dim=-1).values.flatten(1)


def profile_distances(a: Tensor, b: Tensor) -> Tensor:
    """(M, L) and (M', L) float64 profiles -> (M, M') mean squared differences of their rows.

    By ``|a|^2 + |b|^2 - 2 a.b``, one matrix product instead of the (M, M', L) differences
    (50x faster than an L1 distance on 2 cores); in float64 its rounding error is below
    ``1e-13 * L``, far under :data:`TIE_TOLERANCE`.
    """
    squared = a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2.0 * (a @ b.T)
    return squared.clamp_min(0.0) / a.shape[1]


# Distances closer than this count as equal (ties). Two distinct uint8 images differ by at
# least (1/255)**2 / 3 / (H*W*13) ~ 1e-9 per value in a profile distance; rounding stays below
# 1e-13.
TIE_TOLERANCE = 1e-11


def retrieval_ranks(distances: Tensor, tolerance: float = 0.0) -> tuple[Tensor, Tensor]:
    """Where each reconstruction's own original ranks among all originals.

    Args:
        distances: (M, M), ``distances[i, j]`` between reconstruction i and original j.
        tolerance: distances within this of the own original's count as ties.

    Returns:
        ``rank`` (M,): 1 + the number of originals strictly closer than original i, + half the
        number of other originals exactly as close (ties share the places); 1 is best,
        (M + 1) / 2 is chance. ``top1`` (M,): 1 if original i is strictly the closest, 1 / (1 +
        ties) if tied with others (the chance of picking it), else 0.
    """
    own = distances.diagonal().unsqueeze(1)  # (M, 1)
    closer = (distances < own - tolerance).sum(1)
    ties = ((distances - own).abs() <= tolerance).sum(1) - 1
    rank = 1.0 + closer + ties / 2.0
    top1 = (closer == 0).double() / (1.0 + ties)
    return rank.double(), top1


def spread_ratio(originals: Tensor, reconstructions: Tensor) -> float:
    """How much the reconstructions vary across inputs, relative to the inputs.

    ``sqrt(sum_m ||R_m - mean(R)||^2 / sum_m ||X_m - mean(X)||^2)`` over the M images (pixel
    space): 0 when every input gets the same output, 1 for the identity (or any permutation of
    the inputs). Reconstructions are clamped to [0, 1] first, as shown.

    Args:
        originals: (M, C, H, W) in [0, 1].
        reconstructions: (M, C, H, W).
    """
    x = originals.double().flatten(1)
    r = reconstructions.double().clamp(0.0, 1.0).flatten(1)
    spread_x = (x - x.mean(0)).pow(2).sum()
    spread_r = (r - r.mean(0)).pow(2).sum()
    if spread_x == 0:
        return float("nan")
    return float((spread_r / spread_x).sqrt())


def input_dependence(originals: Tensor, reconstructions: Tensor) -> dict[str, float]:
    """Does the output depend on the input? Colour retrieval scores and the spread ratio.

    For each validation image i, all M originals are ranked by the exact colour-distribution
    distance between original j and reconstruction i (clamped to [0, 1]): ``channel`` by the
    exact squared 1-D Wasserstein-2 distance per channel, averaged over channels; ``joint`` by
    the sliced W2**2 over the 13 :data:`CUBE_DIRECTIONS` of RGB space, which also sees which
    values occur together in a pixel (both: :func:`sorted_colour_profiles`). A network that outputs the same image for
    every input scores chance (top-1 = 1/M, mean rank = (M + 1)/2); one whose outputs have their
    inputs' colours scores top-1 = 1 and rank 1. Originals with the very same colour multiset
    share their places (see :func:`retrieval_ranks`).

    Args:
        originals: (M, 3, H, W) validation images in [0, 1], M >= 2.
        reconstructions: (M, 3, H, W) their reconstructions (unbounded).

    Returns:
        ``retrieval_top1_channel``, ``retrieval_rank_channel``, ``retrieval_top1_joint``,
        ``retrieval_rank_joint`` (means over the M images) and ``spread_ratio``
        (:func:`spread_ratio`).

    Example:
        >>> x = torch.rand(4, 3, 2, 2)
        >>> input_dependence(x, x)["retrieval_top1_joint"]
        1.0
    """
    if originals.shape != reconstructions.shape:
        raise ValueError(
            f"originals and reconstructions shapes differ: {tuple(originals.shape)} vs "
            f"{tuple(reconstructions.shape)}"
        )
    if originals.dim() != 4 or originals.shape[1] != 3 or len(originals) < 2:
        raise ValueError(
            f"originals must be (M, 3, H, W) with M >= 2, got {tuple(originals.shape)}"
        )
    clamped = reconstructions.clamp(0.0, 1.0)
    result: dict[str, float] = {}
    for name, joint in (("channel", False), ("joint", True)):
        a = sorted_colour_profiles(clamped, joint)  # (M, L)
        b = sorted_colour_profiles(originals, joint)
        distances = profile_distances(a, b)  # (M, M)
        rank, top1 = retrieval_ranks(distances, TIE_TOLERANCE)
        result[f"retrieval_top1_{name}"] = float(top1.mean())
        result[f"retrieval_rank_{name}"] = float(rank.mean())
    result["spread_ratio"] = spread_ratio(originals, reconstructions)
    return result
