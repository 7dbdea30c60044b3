"""Differentiable soft histograms.

The sigmoid kernel (Tony-Y's soft histogram) counts value ``x`` in bin ``k`` with weight

    b_k(x) = sigmoid(sigma * (x - e_k)) - sigmoid(sigma * (x - e_{k+1})),

edges ``e_k = min + k * delta``, ``delta = (max - min) / bins``. ``sigma`` is an inverse
temperature in units of 1 / value (not scaled by the bin width).

:func:`soft_histogram_reference` evaluates that formula densely, one ``(..., bins, N)`` tensor:
it is the reference every test and benchmark compares against. :func:`soft_histogram` computes
the same numbers without ever holding an ``(N, bins)`` tensor, through a custom autograd
Function that streams the values in blocks, saves only its input and recomputes in backward.
It picks one of two exact methods by ``sigma * delta`` (``sd`` below):

``"moments"`` (``sd <= 24``; the training workload)
    Cut the value axis into groups of width ``w`` with ``sigma * w <= 0.5`` (a group is a bin,
    a fraction of a bin or several bins). On one group every ``b_k`` is an analytic function of
    the value's position ``tau`` in ``[-1, 1]``: its Chebyshev interpolant of degree ``P - 1``
    matches it within a bound we choose (below), written as ``sum_j K[g, j, k] tau**j``. The
    histogram is ``hist = mu @ K`` with the group moments ``mu[g, j] = sum tau_i**j`` over the
    values in group ``g``: each value adds ``P`` numbers (8 in float32) into a table instead of
    computing one sigmoid per bin. ``K`` is Toeplitz in the group; it is sampled once from the
    kernel in the exact product form ``b = (1 - exp(-sd)) sigmoid(a) sigmoid(sd - a)``,
    ``a = sigma (x - e_k)``, and cached. Backward: ``dL/dhist @ dK/dx`` is one derivative
    polynomial per group, evaluated per value by Horner's rule.
``"window"`` (``sd > 24``)
    The issue's saturated edge form: a value far below an edge adds 0 to that edge's sigmoid
    sum, far above it 1, and the two cancel in ``S(e_k) - S(e_{k+1})``, so only bins with an
    edge within ``T / sigma`` of the value get a term. Each value computes its window of about
    ``2 T / sd + 2`` bins in the product form above and adds them to its bins.

Error bound, per value and bin, both methods: ``eps = 2**-30`` (float32 and lower) or
``2**-56`` (float64).

* Saturation: for ``a_k = sigma (x - e_k) < -T`` or ``a_{k+1} > T``, ``0 < b_k < exp(-T)``;
  with ``T = log(1 / eps)`` those bins are skipped.
* Chebyshev (Trefethen, *Approximation Theory and Approximation Practice*, Thm 8.2): if ``f``
  is analytic in the Bernstein ellipse ``E_rho`` with ``|f| <= M`` there, the interpolant in
  ``n + 1`` Chebyshev points is within ``4 M rho**-n / (rho - 1)``. ``sigmoid`` has its poles
  at ``Im a = +-pi``; on ``|Im a| <= beta < pi``, ``|sigmoid| <= max(1, 1 / sin beta)``, so
  ``|b| <= M = 2 max(1, 1 / sin beta)``. A group of half-width ``h = sigma w / 2`` fits
  ``E_rho`` with ``rho = beta / h + sqrt((beta / h)**2 + 1)``; ``P`` is the least ``n + 1``
  that brings the bound under ``eps`` for the best ``beta``.

Writing the interpolant in powers of ``tau`` rather than Chebyshev polynomials costs at most a
factor ``2**(P - 1)`` of float64 rounding (1e-14 relative at P = 8, 1e-12 at P = 14).

Sums are accumulated in float64 whatever the input dtype, so float32 results are more accurate
than the reference's float32 evaluation (tested against a float64 evaluation).
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

KERNELS = ("sigmoid", "triangular")
METHODS = ("auto", "moments", "window")

# Per value and bin error bound of the fast sigmoid histogram (see the module docstring).
_EPS = {torch.float64: 2.0**-56}
_EPS_DEFAULT = 2.0**-30
# Largest sigma * w of a moments group: P = 8 terms at float32 precision.
_GROUP_WIDTH = 0.5
# Above this sigma * delta the window of bins per value (2 T / sd + 2 bins) is cheaper than
# the sd / 0.5 moment groups per bin: on 64 x 3072 values moments take 7-8 ms up to sd = 16,
# the window 33 ms at sd = 8, 12 ms at 16, ~9 ms at 32 and beyond.
_WINDOW_SD = 24.0
# Elements of the work buffers of one block (~4 MiB in float64), values prepared at once (two
# numbers each) and elements of the per-chunk table of sums.
_BLOCK_ELEMENTS = 2**19
_PIECE_VALUES = 2**18
_TABLE_ELEMENTS = 2**19
# Largest (p * groups, bins) matrix spelled out for a single matmul; wider ones stay Toeplitz.
_DENSE_ELEMENTS = 2**21


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
        block_size: values per block of the streamed sigmoid computation (bounds memory;
            default: about 2**19 buffer elements).
        method: ``"auto"``, or force ``"moments"``/``"window"`` (see module docstring).

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
        plan = _make_plan(bins, float(min), float(max), float(sigma), work.dtype, method, x.device)
        if torch.is_grad_enabled() and x2.requires_grad:
            hist = _SigmoidHistogram.apply(x2, plan, block_size)
        else:  # a target's histogram: no graph node, no saved input
            hist = _run_forward(x2.contiguous(), plan, block_size)
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


def _eps(dtype: torch.dtype) -> float:
    return _EPS.get(dtype, _EPS_DEFAULT)


def chebyshev_error_bound(n: int, half_width: float) -> float:
    """Bound on ``|b - p_n|`` for the degree-``n`` Chebyshev interpolant of the sigmoid bin
    kernel over a group of half-width ``half_width`` in ``a = sigma * x`` units.

    Example:
        >>> chebyshev_error_bound(7, 0.25) < 2**-30
        True
    """
    best = math.inf
    for i in range(1, 64):
        beta = math.pi * i / 64  # half-height of a strip below the poles at Im a = +-pi
        big_m = 2.0 * max(1.0, 1.0 / math.sin(beta))
        rho = beta / half_width + math.sqrt((beta / half_width) ** 2 + 1.0)
        best = min(best, 4.0 * big_m * rho**-n / (rho - 1.0))
    return best


def _chebyshev_terms(half_width: float, eps: float) -> int:
    """Least number of Chebyshev coefficients whose interpolation error is below ``eps``."""
    n = 1
    while chebyshev_error_bound(n, half_width) > eps:
        n += 1
    return n + 1


def _bin_kernel(a: Tensor, sd: float) -> Tensor:
    """``sigmoid(a) - sigmoid(a - sd)`` without cancellation: one bin's weight at ``a``."""
    return -math.expm1(-sd) * torch.sigmoid(a) * torch.sigmoid(sd - a)


def _chebyshev_to_monomial(p: int) -> Tensor:
    """(p, p) float64 C with T_k(tau) = sum_j C[k, j] tau**j (exact integers)."""
    c = torch.zeros(p, p, dtype=torch.float64)
    c[0, 0] = 1.0
    if p > 1:
        c[1, 1] = 1.0
    for k in range(2, p):
        c[k, 1:] = 2.0 * c[k - 1, :-1]
        c[k] -= c[k - 2]
    return c


@functools.lru_cache(maxsize=16)
def _row_offsets(rows: int, cols: int, stride: int, device: str) -> Tensor:
    """(rows * cols,) int64: the row of each value of a row-major block, times ``stride``."""
    return (torch.arange(rows, device=device) * stride).repeat_interleave(cols)


class _Scratch(threading.local):
    """Work buffers kept per thread from call to call. Fresh multi-MiB buffers are returned to
    the OS by malloc and page-faulted back in on every call, ~3 ms of a ~10 ms call on the
    reference workload. Bounded: pieces, blocks and tables are capped (~20 MiB in all)."""

    def __init__(self) -> None:
        self.buffers: dict[tuple, Tensor] = {}

    def get(self, name: str, numel: int, dtype: torch.dtype, device) -> Tensor:
        """A flat tensor of ``numel`` elements, contents undefined."""
        key = (name, dtype, str(device))
        buf = self.buffers.get(key)
        if buf is None or buf.numel() < numel:
            buf = self.buffers[key] = torch.empty(numel, dtype=dtype, device=device)
        return buf[:numel]


_SCRATCH = _Scratch()


def _blocks(r0: int, r1: int, n: int, block: int):
    """Yield (a, b, c0, c1): blocks of rows [a, b) x columns [c0, c1) with <= ~block values."""
    if n <= block:
        per = block // n
        for a in range(r0, r1, per):
            yield a, min(r1, a + per), 0, n
    else:
        for a in range(r0, r1):
            for c0 in range(0, n, block):
                yield a, a + 1, c0, min(n, c0 + block)


@dataclass(frozen=True, eq=False)
class _MomentPlan:
    """Polynomial moments of groups of values; see the module docstring.

    Super-row ``rho`` covers bins ``[u rho, u (rho + 1))`` and holds ``m`` groups (one of u, m
    is 1); super-rows ``rho_lo .. rho_lo + rows - 1`` hold every value with a weight above
    eps in some bin, one trash super-row at each end takes the rest. Group ``(rho, q)`` feeds
    the ``wb`` bins from ``u rho - off`` through ``k_toep[q * p + k, j]``: the coefficient of
    ``tau**k``. A histogram row's moments ``mu[k, g] = sum tau**k`` are kept as complex
    numbers ``(p / 2, groups)`` pairing powers 2j and 2j + 1, so one scatter adds two of them;
    ``k_full`` spells ``k_toep`` out over all bins, its rows in that table's order.
    """

    bins: int
    lo: float
    delta: float
    u: int
    m: int
    p: int  # even
    rho_lo: int
    rows: int
    off: int
    wb: int
    k_toep: Tensor  # (m * p, wb) float64
    k_full: Tensor | None  # (p * groups, bins) float64, rows in the table's (p / 2, groups, 2)
    # (bins, groups * (p - 1)): dL/dhist @ k_grad is the backward's table; per dtype
    k_grad: dict[torch.dtype, Tensor] = field(default_factory=dict)

    @property
    def groups(self) -> int:
        return (self.rows + 2) * self.m

    @property
    def width(self) -> int:
        """Work buffer elements per value."""
        return self.p

    @property
    def row_size(self) -> int:
        """float64 elements of the moment table per histogram row."""
        return self.p * self.groups

    @property
    def row_stride(self) -> int:
        """Complex elements of the moment table per histogram row."""
        return self.row_size // 2

    @property
    def grad_stride(self) -> int:
        return self.groups

    def prepare(self, x: Tensor, offsets: Tensor, offset: int) -> tuple[Tensor, Tensor]:
        """(n,) values (no NaN) -> (n,) table keys (group + offsets + offset) and float64 tau
        in [-1, 1), the position in the group. Values beyond the covered super-rows are
        clamped into the trash super-rows at either end, whose moments no bin reads."""
        w = self.delta * self.u / self.m
        first = (self.rho_lo - 1) * self.m  # global index of group 0
        t = _SCRATCH.get("t", x.shape[0], torch.float64, x.device).copy_(x)
        t.mul_(1.0 / w).add_(-self.lo / w - first).clamp_(0.0, self.groups - 1)
        keys = _SCRATCH.get("keys", x.shape[0], torch.int64, x.device)
        keys.copy_(t).add_(offsets).add_(offset)  # t >= 0: truncation is floor
        return keys, t.frac_().mul_(2.0).sub_(1.0)

    def buffers(self, block: int, device) -> dict:
        half = self.p // 2
        return {
            "terms": _SCRATCH.get("terms", self.p * block, torch.float64, device),
            "index": _SCRATCH.get("index", half * block, torch.int64, device),
            "feature": torch.arange(half, device=device)[:, None] * self.groups,
        }

    def accumulate(self, table: Tensor, keys: Tensor, tau: Tensor, buffers: dict) -> None:
        """Add the moments tau**k of one block of values into ``table`` (R, row_size)."""
        nb, half = keys.shape[0], self.p // 2
        terms = buffers["terms"][: self.p * nb].view(half, nb, 2)  # tau**(2j), tau**(2j + 1)
        even = terms[..., 0]
        even[0].fill_(1.0)
        if half > 1:
            torch.cumprod(tau.square().expand(half - 1, nb), 0, out=even[1:])
        torch.mul(even, tau, out=terms[..., 1])
        index = buffers["index"][: half * nb].view(half, nb)
        torch.add(keys, buffers["feature"], out=index)
        moments = torch.view_as_complex(table.view(-1, 2))
        moments.scatter_add_(0, index.view(-1), torch.view_as_complex(terms).view(-1))

    def finish(self, table: Tensor) -> Tensor:
        """(R, row_size) moments -> (R, bins) float64 histogram."""
        n_rows, half = table.shape[0], self.p // 2
        if self.k_full is not None:
            return table @ self.k_full
        mu = table.view(n_rows, half, self.groups, 2).transpose(2, 3)  # (R, p / 2, 2, groups)
        mu = mu.reshape(n_rows, self.p, self.rows + 2, self.m)[:, :, 1:-1]
        y = mu.permute(0, 2, 3, 1).reshape(n_rows, self.rows, self.m * self.p) @ self.k_toep
        length = self.u * (self.rows - 1) + self.wb
        hist = F.fold(y.transpose(1, 2), (1, length), (1, self.wb), stride=(1, self.u))
        first = self.off - self.u * self.rho_lo  # buffer index of bin 0
        return hist.view(n_rows, length)[:, first : first + self.bins]

    def grad_table(self, grad: Tensor) -> Tensor:
        """(R, bins) dL/dhist -> (R * groups, p - 1): dL/dx = sum_j table[g, j] tau**j."""
        n_rows = grad.shape[0]
        if self.k_full is not None:
            if grad.dtype not in self.k_grad:
                self.k_grad[grad.dtype] = self._derivative(self.k_full).to(grad.dtype)
            return (grad @ self.k_grad[grad.dtype]).view(n_rows * self.groups, self.p - 1)
        length = self.u * (self.rows - 1) + self.wb
        first = self.off - self.u * self.rho_lo
        padded = grad.new_zeros(n_rows, length)
        padded[:, first : first + self.bins] = grad
        windows = padded.unfold(1, self.wb, self.u)  # (R, rows, wb)
        d = windows @ self.k_toep.to(grad.dtype).T  # (R, rows, m * p)
        d = d.view(n_rows, self.rows, self.m, self.p)[..., 1:] * self._scale(grad)
        d = F.pad(d, (0, 0, 0, 0, 1, 1))  # the trash super-rows
        return d.reshape(n_rows * self.groups, self.p - 1)

    def _scale(self, like: Tensor) -> Tensor:
        """(p - 1,): d/dx sum_k c_k tau**k = sum_k k c_k tau**(k - 1) * dtau/dx."""
        tau_scale = 2.0 * self.m / (self.u * self.delta)
        return torch.arange(1, self.p, dtype=like.dtype, device=like.device) * tau_scale

    def _derivative(self, k_full: Tensor) -> Tensor:
        """k_full (table order) -> (bins, groups * (p - 1)) for grad_table's single matmul."""
        k = k_full.view(self.p // 2, self.groups, 2, self.bins).transpose(1, 2)
        k = k.reshape(self.p, self.groups, self.bins)[1:] * self._scale(k_full)[:, None, None]
        return k.permute(2, 1, 0).reshape(self.bins, self.groups * (self.p - 1)).contiguous()

    def grad_values(self, keys: Tensor, tau: Tensor, table: Tensor) -> Tensor:
        """One block's keys and tau -> (nb,) dL/dx by Horner's rule on its group's row."""
        nb, dtype = keys.shape[0], table.dtype
        tau = _SCRATCH.get("tau", nb, dtype, keys.device).copy_(tau)
        coeffs = _SCRATCH.get("coeffs", nb * (self.p - 1), dtype, keys.device)
        coeffs = torch.index_select(table, 0, keys, out=coeffs.view(nb, self.p - 1))
        out = coeffs[:, -1]
        spare = [_SCRATCH.get(f"horner{i}", nb, dtype, keys.device) for i in (0, 1)]
        for j in range(self.p - 3, -1, -1):
            out = torch.addcmul(coeffs[:, j], out, tau, out=spare[j % 2])
        return out


@dataclass(frozen=True, eq=False)
class _WindowPlan:
    """Saturated edge form: each value adds ``w`` bins starting ``k0 = ceil(t - reach) - 1``
    (``k0 = 0`` when ``w = bins``).

    A histogram row's table has one row of ``w`` sums per window start ``k0 = -w .. bins``.
    """

    bins: int
    lo: float
    delta: float
    sigma: float
    reach: float  # log(1 / eps) / sd: bins farther than this from a value get < eps
    w: int

    @property
    def sd(self) -> float:
        return self.sigma * self.delta

    @property
    def width(self) -> int:
        return self.w + 1

    @property
    def starts(self) -> int:
        return self.bins + self.w + 1

    @property
    def row_size(self) -> int:
        return self.starts * self.w

    @property
    def row_stride(self) -> int:
        return self.starts

    @property
    def grad_stride(self) -> int:
        return self.starts

    def prepare(self, x: Tensor, offsets: Tensor, offset: int) -> tuple[Tensor, Tensor]:
        """(n,) values -> (n,) table keys (window start + offsets + offset) and float64
        positions relative to each window's central edge, in bins."""
        t = torch.sub(x.to(torch.float64), self.lo).div_(self.delta)
        if self.w == self.bins:  # the dense edge form: every value, every bin
            start = torch.zeros_like(t)
        else:
            start = torch.nan_to_num(t - self.reach, nan=math.inf).ceil_()
            start = start.clamp_(-self.w + 1, self.bins + 1).sub_(1)
        # Measuring from a central edge keeps float32 arguments as exact as float64 ones.
        rel = t.sub_(start).sub_(self.w // 2)
        return start.long().add_(offsets).add_(offset + self.w), rel

    def _args(self, rel: Tensor, dtype: torch.dtype) -> Tensor:
        """(nb,) relative positions -> (nb, w + 1) a = sigma (x - e) at the window's edges."""
        j = torch.arange(self.w + 1, dtype=dtype, device=rel.device) - self.w // 2
        a = (rel.to(dtype)[:, None] - j).mul_(self.sd)
        limit = 700.0 if dtype == torch.float64 else 80.0  # keep exp(-a) finite
        return a.clamp_(-limit, limit)

    def buffers(self, block: int, device) -> dict:
        return {}

    def accumulate(self, table: Tensor, keys: Tensor, rel: Tensor, buffers: dict) -> None:
        e = self._args(rel, torch.float64).neg_().exp_()  # (nb, w + 1)
        s = (e + 1.0).reciprocal_()  # sigmoid(a); e * s = sigmoid(-a) without 1 - s
        # sigmoid(a_j) * sigmoid(-a_{j+1}) * (1 - exp(-sd)) = sigmoid(a_j) - sigmoid(a_{j+1})
        terms = s[:, :-1] * (e[:, 1:] * s[:, 1:])
        terms.mul_(-math.expm1(-self.sd))
        table.view(-1, self.w).index_put_((keys,), terms, accumulate=True)

    def finish(self, table: Tensor) -> Tensor:
        n_rows = table.shape[0]
        y = table.view(n_rows, self.starts, self.w)
        length = self.starts + self.w - 1
        hist = F.fold(y.transpose(1, 2), (1, length), (1, self.w)).view(n_rows, length)
        return hist[:, self.w : self.w + self.bins]

    def grad_table(self, grad: Tensor) -> Tensor:
        """(R, bins) -> (R * starts, w + 1): sigma * (g_k - g_{k-1}) at each window edge."""
        windows = F.pad(grad, (self.w, self.w)).unfold(1, self.w, 1)  # (R, starts, w)
        edges = F.pad(windows, (1, 1)).diff(dim=-1)  # (R, starts, w + 1)
        return edges.mul_(self.sigma).reshape(-1, self.w + 1)

    def grad_values(self, keys: Tensor, rel: Tensor, table: Tensor) -> Tensor:
        e = self._args(rel, table.dtype).abs_().neg_().exp_()
        slope = e / (e + 1.0).square_()  # sigmoid'(a) = sigmoid'(|a|), no overflow
        return (table.index_select(0, keys) * slope).sum(1)


_Plan = _MomentPlan | _WindowPlan


@functools.lru_cache(maxsize=64)
def _make_plan_cached(
    bins: int, lo: float, hi: float, sigma: float, eps: float, method: str, device: str
) -> _Plan:
    delta = (hi - lo) / bins
    sd = sigma * delta
    reach = math.log(1.0 / eps) / sd
    if method == "window" or (method == "auto" and sd > _WINDOW_SD):
        # Bins ceil(t - reach) - 1 .. floor(t + reach): at most floor(2 reach) + 2 of them;
        # a window as wide as the range is the dense edge form.
        return _WindowPlan(bins, lo, delta, sigma, reach, min(math.floor(2 * reach) + 2, bins))
    if sd <= _GROUP_WIDTH:
        u, m = math.floor(_GROUP_WIDTH / sd), 1
    else:
        u, m = 1, math.ceil(sd / _GROUP_WIDTH)
    p = _chebyshev_terms(sd * u / m / 2, eps)
    p += p % 2  # moments travel in pairs
    # Super-rows holding a value within reach of [min, max], and the bins each one feeds.
    rho_lo = math.floor(-reach / u)
    rows = math.floor((bins + reach) / u) - rho_lo + 1
    off = math.floor(reach) + 1
    wb = u + off + math.ceil(reach)
    f64 = dict(dtype=torch.float64, device=device)
    # Chebyshev points tau_i = cos(pi i / (p - 1)), V[i, k] = T_k(tau_i), samples f = V c.
    angle = torch.arange(p, **f64) * math.pi / (p - 1)
    vandermonde = torch.cos(angle[:, None] * torch.arange(p, **f64))
    q = torch.arange(m, **f64)[:, None, None]
    j = torch.arange(wb, **f64)[None, :, None]
    a = sd * (u * (q + (torch.cos(angle) + 1) / 2) / m - (j - off))  # (m, wb, p)
    coeffs = torch.linalg.solve(vandermonde, _bin_kernel(a, sd).unsqueeze(-1)).squeeze(-1)
    coeffs = coeffs @ _chebyshev_to_monomial(p).to(device)  # the same polynomial in tau**k
    k_toep = coeffs.permute(0, 2, 1).reshape(m * p, wb)
    k_full = None
    groups = (rows + 2) * m
    if p * groups * bins <= _DENSE_ELEMENTS:
        first = u * (torch.arange(rows, device=device) + rho_lo) - off  # (rows,)
        jj = torch.arange(bins, device=device) - first[:, None]  # (rows, bins)
        inside = (jj >= 0) & (jj < wb)
        spelled = coeffs.permute(2, 0, 1)[:, :, jj.clamp(0, wb - 1)] * inside  # (p, m, rows, bins)
        k_full = coeffs.new_zeros(p, rows + 2, m, bins)  # trash super-rows stay 0
        k_full[:, 1:-1] = spelled.transpose(1, 2)
        # (p, groups, bins) -> the moment table's order (p / 2, groups, 2, bins)
        k_full = k_full.view(p // 2, 2, groups, bins).transpose(1, 2).reshape(p * groups, bins)
    return _MomentPlan(bins, lo, delta, u, m, p, rho_lo, rows, off, wb, k_toep, k_full)


def _make_plan(
    bins: int, lo: float, hi: float, sigma: float, dtype: torch.dtype, method: str, device
) -> _Plan:
    return _make_plan_cached(bins, lo, hi, sigma, _eps(dtype), method, str(device))


def _pieces(n_rows: int, n: int, plan: _Plan):
    """Yield (r0, r1, pieces): chunks of rows whose sum table fits _TABLE_ELEMENTS, and in each
    the (a, b, c0, c1) pieces of at most ~_PIECE_VALUES values prepared at once."""
    per_chunk = max(1, _TABLE_ELEMENTS // plan.row_size)
    for r0 in range(0, n_rows, per_chunk):
        r1 = min(n_rows, r0 + per_chunk)
        yield r0, r1, _blocks(r0, r1, n, _PIECE_VALUES)


def _run_forward(x: Tensor, plan: _Plan, block_size: int | None) -> Tensor:
    """(R, N) -> (R, bins) in x.dtype, streaming blocks of values into a table of sums."""
    n_rows, n = x.shape
    # No data-dependent branch: `if isnan(x).any()` would wait for the device on a GPU.
    nan_rows = torch.isnan(x).any(1, keepdim=True)  # (R, 1)
    x = x.nan_to_num(nan=0.0)  # rows with NaN are overwritten below
    out = torch.empty(n_rows, plan.bins, dtype=torch.float64, device=x.device)
    block = block_size or max(1, _BLOCK_ELEMENTS // plan.width)
    buffers = plan.buffers(min(block, n_rows * n), x.device)
    for r0, r1, pieces in _pieces(n_rows, n, plan):
        table = _SCRATCH.get("table", (r1 - r0) * plan.row_size, torch.float64, x.device)
        table = table.view(r1 - r0, plan.row_size).zero_()
        for a, b, c0, c1 in pieces:
            offsets = _row_offsets(b - a, c1 - c0, plan.row_stride, str(x.device))
            keys, pos = plan.prepare(x[a:b, c0:c1].reshape(-1), offsets, (a - r0) * plan.row_stride)
            for s in range(0, keys.shape[0], block):
                plan.accumulate(table, keys[s : s + block], pos[s : s + block], buffers)
        out[r0:r1] = plan.finish(table)
    # Interpolation errors (< eps) can dip below 0 where the true weight is ~0.
    out = out.clamp_(min=0.0)
    return torch.where(nan_rows, math.nan, out).to(x.dtype)


def _run_backward(x: Tensor, grad: Tensor, plan: _Plan, block_size: int | None) -> Tensor:
    """(R, N) values and (R, bins) dL/dhist -> (R, N) dL/dx, recomputing block by block."""
    n_rows, n = x.shape
    grad = grad.to(x.dtype)
    x = x.nan_to_num(nan=0.0)  # NaN rows have NaN histograms; their gradient is moot
    out = torch.empty_like(x)
    block = block_size or max(1, _BLOCK_ELEMENTS // plan.width)
    for r0, r1, pieces in _pieces(n_rows, n, plan):
        table = plan.grad_table(grad[r0:r1].contiguous())
        for a, b, c0, c1 in pieces:
            offsets = _row_offsets(b - a, c1 - c0, plan.grad_stride, str(x.device))
            keys, pos = plan.prepare(
                x[a:b, c0:c1].reshape(-1), offsets, (a - r0) * plan.grad_stride
            )
            piece = out[a:b, c0:c1]
            for s in range(0, keys.shape[0], block):
                values = plan.grad_values(keys[s : s + block], pos[s : s + block], table)
                piece.view(-1)[s : s + block] = values
    return out


class _SigmoidHistogram(torch.autograd.Function):
    """(R, N) -> (R, bins) sigmoid soft histogram; saves only its input. Only for inputs that
    need a gradient: soft_histogram calls _run_forward directly for the others."""

    @staticmethod
    def forward(ctx, x: Tensor, plan: _Plan, block_size: int | None) -> Tensor:
        x = x.contiguous()
        ctx.save_for_backward(x)
        ctx.plan, ctx.block_size = plan, block_size
        return _run_forward(x, plan, block_size)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return _run_backward(x, grad, ctx.plan, ctx.block_size), None, None
