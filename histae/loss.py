"""Histogram losses: compare the soft histograms of a reconstruction and its input.

:func:`histogram_loss` is the math, :class:`HistogramLoss` the module a config builds. One
histogram per image with the channels pooled, as the reference (``per_channel=False``:
(B, C, H, W) -> (B, C*H*W) -> (B, bins)), or one per channel (``per_channel=True``:
(B, C, H, W) -> (B, C, bins)).

Distances (``loss``):

- ``l1``/``mae``, ``l2``/``mse``, ``bce``: elementwise between the two histograms, mean over the
  bins and the batch, after the reference's ``normalize`` (see :func:`normalize_histograms`);
- ``kl_div``: KL(target || output) between the histograms as distributions, averaged over the
  batch (``batchmean``); the reference handed raw histograms to ``F.kl_div``, which expects
  log-probabilities, so its value was not a divergence: here it is one;
- ``ce``: cross entropy -sum p_target log p_output of the distributions, batch mean;
- ``emd``: the 1-D Earth Mover's distance, the L1 distance between the two normalised CDFs
  times the bin width (value units), batch mean;
- ``hellinger``: sqrt(1/2 sum (sqrt p - sqrt q)^2), in [0, 1];
- ``chi2``: symmetric chi-squared 1/2 sum (p - q)^2 / (p + q), in [0, 1];
- ``sorted_w1``: no histogram at all: the exact 1-D Wasserstein distance between the pixel values
  themselves, mean |sort(output) - sort(target)| per image (or channel).

The distribution distances (kl_div, ce, emd, hellinger, chi2) normalise both histograms to sum 1
themselves, so ``normalize`` does not change them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from histae.histogram import check_histogram_args, soft_histogram

EPS = 1e-7  # keeps roots and logs of empty bins finite (and their gradients)

ELEMENTWISE = {
    "l1": F.l1_loss,
    "mae": F.l1_loss,
    "l2": F.mse_loss,
    "mse": F.mse_loss,
    "bce": lambda out, tgt: F.binary_cross_entropy(out.clamp(EPS, 1 - EPS), tgt.clamp(0, 1)),
}
DISTRIBUTION = ("kl_div", "ce", "emd", "hellinger", "chi2")
LOSS_NAMES = (*ELEMENTWISE, *DISTRIBUTION, "sorted_w1")


def check_loss_args(loss: Any, normalize: Any, prefix: str = "loss.") -> None:
    """Raise ValueError naming ``prefix + key`` for an unknown distance or a bad ``normalize``."""
    if not callable(loss) and loss not in LOSS_NAMES:
        raise ValueError(f"{prefix}loss must be one of {', '.join(LOSS_NAMES)}; got {loss!r}")
    if isinstance(normalize, bool):
        return
    if not isinstance(normalize, int | float) or not normalize > 0:
        raise ValueError(
            f"{prefix}normalize must be false, true or a p-norm order > 0, got {normalize!r}"
        )


def normalize_histograms(
    hist_out: Tensor, hist_tgt: Tensor, normalize: bool | float, count: int
) -> tuple[Tensor, Tensor]:
    """The reference's ``normalize``: False raw counts; True divide both by ``count`` (the
    pixels per histogram); a number p: divide both by the p-norm of the *output* histogram."""
    if normalize is True:
        return hist_out / count, hist_tgt / count
    if normalize is False:
        return hist_out, hist_tgt
    norm = torch.linalg.vector_norm(hist_out, ord=float(normalize), dim=-1, keepdim=True) + EPS
    return hist_out / norm, hist_tgt / norm


def _distribution(hist: Tensor) -> Tensor:
    return hist / (hist.sum(dim=-1, keepdim=True) + EPS)


def histogram_distance(
    hist_out: Tensor, hist_tgt: Tensor, loss: str, bin_width: float = 1.0
) -> Tensor:
    """A distribution distance between (..., bins) histograms, averaged over the leading dims.

    Example:
        >>> p = torch.tensor([[1.0, 0.0]]); q = torch.tensor([[0.0, 1.0]])
        >>> round(histogram_distance(p, q, "emd", bin_width=0.5).item(), 4)
        0.5
    """
    p, q = _distribution(hist_out), _distribution(hist_tgt)
    if loss == "kl_div":
        per = (q * (torch.log(q + EPS) - torch.log(p + EPS))).sum(dim=-1)
    elif loss == "ce":
        per = -(q * torch.log(p + EPS)).sum(dim=-1)
    elif loss == "emd":
        per = (p.cumsum(dim=-1) - q.cumsum(dim=-1)).abs().sum(dim=-1) * bin_width
    elif loss == "hellinger":
        per = torch.sqrt(0.5 * ((torch.sqrt(p + EPS) - torch.sqrt(q + EPS)) ** 2).sum(dim=-1) + EPS)
    elif loss == "chi2":
        per = 0.5 * ((p - q) ** 2 / (p + q + EPS)).sum(dim=-1)
    else:
        raise ValueError(f"loss.loss {loss!r} is not a distribution distance")
    return per.mean()


def sorted_w1(output: Tensor, target: Tensor, per_channel: bool = False) -> Tensor:
    """Exact 1-D Wasserstein distance between the pixel values of output and target.

    (B, C, H, W) x2 -> scalar: mean over images (and channels) of mean |sort(out) - sort(tgt)|.
    No histogram, no bins, no kernel: the limit a soft-histogram loss approximates.
    """
    flat = 2 if per_channel else 1
    out = output.flatten(flat).sort(dim=-1).values
    tgt = target.flatten(flat).sort(dim=-1).values
    return (out - tgt).abs().mean()


def histogram_loss(
    output: Tensor,
    target: Tensor,
    bins: int,
    min: float = 0.0,
    max: float = 1.0,
    sigma: float = 100.0,
    loss: str | Callable[[Tensor, Tensor], Tensor] = "l1",
    normalize: bool | float = False,
    per_channel: bool = False,
    kernel: str = "sigmoid",
) -> Tensor:
    """Distance between the soft histograms of ``output`` and ``target``.

    Args:
        output: (B, C, H, W) reconstructions (any range; values outside [min, max] fall off).
        target: (B, C, H, W) inputs.
        loss: a name from the module docstring or a callable(hist_out, hist_tgt) -> scalar on
            (B, bins) or (B, C, bins) histograms.

    Returns:
        A scalar.
    """
    if output.shape != target.shape:
        raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} differ")
    if loss == "sorted_w1":
        return sorted_w1(output, target, per_channel)
    flat = 2 if per_channel else 1
    out, tgt = output.flatten(flat), target.flatten(flat)  # (B, N) or (B, C, N)
    hist_out = soft_histogram(out, bins, min, max, sigma, kernel)  # (B, bins) or (B, C, bins)
    with torch.no_grad():  # the target is data: its histogram needs no graph
        hist_tgt = soft_histogram(tgt, bins, min, max, sigma, kernel)
    if isinstance(loss, str) and loss in DISTRIBUTION:
        return histogram_distance(hist_out, hist_tgt, loss, (max - min) / bins)
    hist_out, hist_tgt = normalize_histograms(hist_out, hist_tgt, normalize, out.shape[-1])
    if callable(loss):
        return loss(hist_out, hist_tgt)
    return ELEMENTWISE[loss](hist_out, hist_tgt)


class HistogramLoss(nn.Module):
    """:func:`histogram_loss` with its settings fixed: ``forward(output, target) -> scalar``.

    Arguments are checked here, once, with messages naming the config keys (``loss.bins``, ...).
    """

    def __init__(
        self,
        bins: int = 100,
        min: float = 0.0,
        max: float = 1.0,
        sigma: float = 100.0,
        loss: str | Callable[[Tensor, Tensor], Tensor] = "l1",
        normalize: bool | float = False,
        per_channel: bool = False,
        kernel: str = "sigmoid",
    ) -> None:
        super().__init__()
        check_histogram_args(bins, float(min), float(max), float(sigma), kernel, prefix="loss.")
        check_loss_args(loss, normalize)
        self.bins, self.min, self.max, self.sigma = bins, float(min), float(max), float(sigma)
        self.loss, self.normalize = loss, normalize
        self.per_channel, self.kernel = bool(per_channel), kernel

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        return histogram_loss(
            output, target, self.bins, self.min, self.max, self.sigma,
            self.loss, self.normalize, self.per_channel, self.kernel,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"bins={self.bins}, min={self.min}, max={self.max}, sigma={self.sigma}, "
            f"loss={self.loss!r}, normalize={self.normalize}, per_channel={self.per_channel}, "
            f"kernel={self.kernel!r}"
        )
