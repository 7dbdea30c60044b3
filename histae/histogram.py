"""Differentiable soft histograms.

The sigmoid kernel (Tony-Y's soft histogram) counts value ``x`` in bin ``k`` with weight

    b_k(x) = sigmoid(sigma * (x - e_k)) - sigmoid(sigma * (x - e_{k+1})),

edges ``e_k = min + k * delta``, ``delta = (max - min) / bins``. ``sigma`` is an inverse
temperature in units of 1 / value (not scaled by the bin width).

:func:`soft_histogram_reference` evaluates that formula densely, one ``(..., bins, N)`` tensor:
it is the reference every test and benchmark compares against. :func:`soft_histogram` computes
the same numbers without ever holding an ``(N, bins)`` tensor, through a custom autograd
Function that streams the values in slabs, saves only its input and recomputes in backward.
It picks one of two exact methods by ``sigma * delta``: ``"moments"`` (Chebyshev moments of
groups of values, ``sigma * delta <= 24``, the training workload) or ``"window"`` (each value
adds only the bins within saturation reach). Both match the reference within ``eps`` per value
and bin: ``2**-30`` in float32 and lower, ``2**-56`` in float64. The methods, their error
bound and the streaming live in :mod:`histae._histogram_engine`; this module is what a reader
of an experiment needs: the formula, its checks and the two kernels.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from histae._histogram_engine import StreamingHistogram, make_plan, stream_forward

KERNELS = ("sigmoid", "triangular")
METHODS = ("auto", "moments", "window")


def soft_histogram_reference(x: Tensor, bins: int, min: float, max: float, sigma: float) -> Tensor:
    """Soft histogram by the reference formula, dense: the ground truth for tests and benchmarks.

    Builds the ``(..., bins, N)`` tensor of sigmoid differences, so memory is O(N * bins).

    Args:
        x: (..., N) values.
        bins: number of bins of width ``delta = (max - min) / bins``.
        min: lower edge of the first bin.
        max: upper edge of the last bin.
        sigma: slope of the sigmoids, in 1 / value units.

    Returns:
        (..., bins) soft counts; ``hist.sum(-1)`` is about the number of values inside the range.

    Example:
        >>> h = soft_histogram_reference(torch.tensor([0.25]), 2, 0.0, 1.0, sigma=1000.0)
        >>> [round(v, 6) for v in h.tolist()]
        [1.0, 0.0]
    """
    delta = (max - min) / bins
    centers = min + delta * (torch.arange(bins, device=x.device, dtype=x.dtype) + 0.5)
    d = x.unsqueeze(-2) - centers.unsqueeze(-1)  # (..., bins, N)
    return (torch.sigmoid(sigma * (d + delta / 2)) - torch.sigmoid(sigma * (d - delta / 2))).sum(-1)


def check_histogram_args(
    bins: int, min: float, max: float, sigma: float, kernel: str, prefix: str = ""
) -> None:
    """Raise ``ValueError`` naming ``prefix + key`` for the first bad histogram argument."""
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"{prefix}bins must be an integer >= 1, got {bins!r}")
    for key, value in (("min", min), ("max", max), ("sigma", sigma)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{prefix}{key} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{prefix}{key} must be finite, got {value!r}")
    if not min < max:
        raise ValueError(f"{prefix}min must be < {prefix}max, got min={min!r}, max={max!r}")
    if not sigma > 0:
        raise ValueError(f"{prefix}sigma must be > 0, got {sigma!r}")
    if kernel not in KERNELS:
        raise ValueError(f"{prefix}kernel must be one of {', '.join(KERNELS)}; got {kernel!r}")


def soft_histogram(
    x: Tensor,
    bins: int,
    min: float = 0.0,
    max: float = 1.0,
    sigma: float = 100.0,
    kernel: str = "sigmoid",
    *,
    block_size: int | None = None,
    method: str = "auto",
) -> Tensor:
    """Differentiable histogram of the last dimension.

    Args:
        x: (..., N) values; float16/bfloat16 are computed in float32.
        bins: number of bins of width ``delta = (max - min) / bins``.
        min: lower edge of the first bin.
        max: upper edge of the last bin.
        sigma: slope of the sigmoid kernel in 1 / value units (ignored by ``triangular``).
        kernel: ``"sigmoid"``: the reference kernel, equal to
            :func:`soft_histogram_reference` within ``eps`` per value and bin (module
            docstring). ``"triangular"``: linear interpolation between the two nearest bin
            centres, O(N); its gradient is piecewise constant. Against a hard histogram,
            the mass a value moves out of its own bin (half the L1 distance to its one-hot
            histogram), averaged over positions in the bin: triangular 0.25 (at most 0.5,
            only into the adjacent bin; the mean is exact inside
            ``[min + delta / 2, max - delta / 2]``); sigmoid 0.34, 0.57, 0.76, 0.88, 0.94 at
            ``sigma * delta`` = 4, 2, 1, 0.5, 0.25 (bins=100: sigma=400 .. 25), spread over
            about ``3.6 / (sigma * delta)`` bins (std ``1.8 / sigma``). Both count a value on
            ``min`` or ``max`` as 0.5.
        block_size: values per slab of the streamed sigmoid computation (bounds memory;
            default: 2**16 values, fewer where one value needs many work elements).
        method: ``"auto"``, or force ``"moments"``/``"window"`` (see
            :mod:`histae._histogram_engine`).

    Returns:
        (..., bins) soft counts in ``x``'s dtype and device. A histogram whose values contain
        NaN is all NaN.

    Example:
        >>> h = soft_histogram(torch.tensor([0.25]), 2, 0.0, 1.0, sigma=1000.0)
        >>> [round(v, 6) for v in h.tolist()]
        [1.0, 0.0]
    """
    check_histogram_args(bins, min, max, sigma, kernel)
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if block_size is not None and block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size!r}")
    return _soft_histogram(x, bins, min, max, sigma, kernel, block_size, method)


def _soft_histogram(
    x: Tensor,
    bins: int,
    min: float,
    max: float,
    sigma: float,
    kernel: str,
    block_size: int | None = None,
    method: str = "auto",
) -> Tensor:
    """:func:`soft_histogram` for arguments already checked (by it, or once by a module's
    ``__init__``); only ``x`` is checked here, since it changes from call to call."""
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension (..., N)")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating point tensor, got {x.dtype}")
    lead, n = x.shape[:-1], x.shape[-1]
    if x.numel() == 0:
        return x.new_zeros(*lead, bins)
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    x2 = work.reshape(-1, n)
    if kernel == "triangular":
        hist = _triangular_histogram(x2, bins, float(min), float(max))
    else:
        plan = make_plan(bins, float(min), float(max), float(sigma), work.dtype, method, x.device)
        if torch.is_grad_enabled() and x2.requires_grad:
            hist = StreamingHistogram.apply(x2, plan, block_size)
        else:  # a target's histogram: no graph node, no saved input
            hist = stream_forward(x2.contiguous(), plan, block_size)
    return hist.reshape(*lead, bins).to(x.dtype)


def _triangular_histogram(x: Tensor, bins: int, lo: float, hi: float) -> Tensor:
    """(R, N) -> (R, bins): each value split linearly between its two nearest bin centres."""
    delta = (hi - lo) / bins
    p = (x - lo) / delta - 0.5  # position in bin-centre units
    # Far values are clamped into the padding bins -2 and bins + 1, which are cut off.
    i0 = torch.nan_to_num(p.detach(), nan=-2.0).floor().clamp(-2, bins)
    frac = p - i0
    hist = x.new_zeros(x.shape[0], bins + 4)  # bin b is column b + 2
    lower = (i0 + 2).long()
    hist = hist.scatter_add(1, lower, 1 - frac).scatter_add(1, lower + 1, frac)
    return torch.where(torch.isnan(x).any(1, keepdim=True), math.nan, hist[:, 2 : bins + 2])
