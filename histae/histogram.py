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

``"moments"`` (``sd <= 8``; the training workload)
    Cut the value axis into groups of width ``w`` with ``sigma * w <= 0.5`` (a group is a bin,
    a fraction of a bin or several bins). On one group every ``b_k`` is an analytic function of
    the value's position ``tau`` in ``[-1, 1]``, so it equals its Chebyshev interpolant
    ``sum_p K[k, p] T_p(tau)`` of degree ``P - 1`` up to a bound we choose (below). The
    histogram is then ``hist = mu @ K`` with the group moments ``mu[g, p] = sum T_p(tau_i)``
    over the values in group ``g``: per value only ``P`` numbers are accumulated (about 8 in
    float32) instead of one sigmoid per bin. ``K`` is Toeplitz in the group, so it is tiny and
    is sampled once from the kernel in the exact edge form
    ``b = (1 - exp(-sd)) * sigmoid(a) * sigmoid(sd - a)``, ``a = sigma * (x - e_k)``.
``"window"`` (``sd > 8``)
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

Sums are accumulated in float64 whatever the input dtype, so float32 results are more accurate
than the reference's float32 evaluation (tested against a float64 evaluation).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

KERNELS = ("sigmoid", "triangular")
METHODS = ("auto", "moments", "window")

# Per value and bin error bound of the fast sigmoid histogram (see the module docstring).
_EPS = {torch.float64: 2.0**-56}
_EPS_DEFAULT = 2.0**-30
# Largest sigma * w of a moments group: P = 8 Chebyshev terms at float32 precision.
_GROUP_WIDTH = 0.5
# Above this sigma * delta the window of bins per value (2 T / sd + 2) is cheaper than the
# m = sd / 0.5 moment groups per bin (measured in benchmarks/bench_histogram.py).
_WINDOW_SD = 8.0
# Elements of work buffers per block (~2 MiB in float64) and of the per-chunk moment table.
_BLOCK_ELEMENTS = 2**18
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
            docstring). A value spreads over about ``3.6 / (sigma delta)`` bins (std
            ``1.8 / sigma``), one exactly on ``min``/``max`` counts 0.5. On ``rand`` values at
            bins=100, sigma=100, half the L1 distance to the hard histogram is 0.54 N.
            ``"triangular"``: linear interpolation between the two nearest bin centres,
            O(N); a value moves at most to the adjacent bin, the mean of the counts is
            exact inside ``[min + delta/2, max - delta/2]``, half the L1 distance to the
            hard histogram is at most 0.5 N (0.25 N on ``rand``); its gradient is piecewise
            constant. Both count about 0.5 for a value on ``min`` or ``max``.
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
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    x2 = work.reshape(-1, n)
    if x2.shape[0] == 0 or n == 0:
        return x.new_zeros(*lead, bins)
    if kernel == "triangular":
        hist = _triangular_histogram(x2, bins, float(min), float(max))
    else:
        plan = _make_plan(bins, float(min), float(max), float(sigma), work.dtype, method, x.device)
        hist = _SigmoidHistogram.apply(x2, plan, block_size)
    return hist.reshape(*lead, bins).to(x.dtype)


def _triangular_histogram(x: Tensor, bins: int, lo: float, hi: float) -> Tensor:
    """(R, N) -> (R, bins): each value split linearly between its two nearest bin centres."""
    delta = (hi - lo) / bins
    p = (x - lo) / delta - 0.5  # position in bin-centre units
    # Clamping far values keeps the long indices sane; their masked weights are 0 anyway.
    i0 = torch.nan_to_num(p.detach(), nan=-2.0).floor().clamp(-2, bins)
    frac = p - i0
    hist = x.new_zeros(x.shape[0], bins + 3)  # bins -2..bins map to columns 0..bins+2
    lower = (i0 + 2).long()
    hist = hist.scatter_add(1, lower, 1 - frac).scatter_add(1, lower + 1, frac)
    return hist[:, 2 : bins + 2]


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


def _signs(n: int) -> list[float]:
    """+1, +1, -1, -1, +1, ...: with S_k = sign_k T_k the Chebyshev recurrence becomes
    S_k = S_{k-2} + v_k tau S_{k-1}, one ``addcmul`` per term (same for U_k)."""
    return [(-1.0) ** (k // 2) for k in range(n)]


def _chebyshev_rows(first: Tensor, tau: Tensor, n: int) -> Tensor:
    """(nb,) first-degree row, tau -> (n, nb) signed S_0..S_{n-1} (T_k for first=tau, U_k
    for first=2 tau)."""
    out = tau.new_empty(n, tau.shape[0])
    out[0].fill_(1.0)
    if n > 1:
        out[1].copy_(first)
    signs = _signs(n)
    for k in range(2, n):
        torch.addcmul(out[k - 2], out[k - 1], tau, value=2.0 * signs[k] / signs[k - 1], out=out[k])
    return out


@functools.lru_cache(maxsize=16)
def _row_offsets(rows: int, cols: int, stride: int, device: str) -> Tensor:
    """(rows * cols,) int64: the row of each value of a row-major block, times ``stride``."""
    return (torch.arange(rows, device=device) * stride).repeat_interleave(cols)


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
    """Chebyshev moments of groups of values; see the module docstring.

    Super-row ``rho`` covers bins ``[u rho, u (rho + 1))`` and holds ``m`` groups (one of u, m
    is 1); rows ``rho_lo .. rho_lo + rows - 1`` cover every value with a weight above eps, one
    trash super-row at each end takes the rest. A histogram row's moment table is laid out
    ``(p, groups)``. Group ``(rho, q)`` feeds the ``wb`` bins from ``u rho - off`` through
    ``k_toep[q * p + k, j]``; ``k_full`` spells that out over all bins when it is small.
    """

    bins: int
    lo: float
    delta: float
    u: int
    m: int
    p: int
    rho_lo: int
    rows: int
    off: int
    wb: int
    k_toep: Tensor  # (m * p, wb) float64, rows scaled by _signs
    k_full: Tensor | None  # (p * groups, bins) float64, rows scaled by _signs

    @property
    def groups(self) -> int:
        return (self.rows + 2) * self.m

    @property
    def width(self) -> int:
        return self.p

    @property
    def row_size(self) -> int:
        """Elements of the moment table per histogram row."""
        return self.p * self.groups

    def _groups_and_frac(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(nb,) values (no NaN) -> (nb,) int64 group and (nb,) float64 position in it, [0, 1).

        Values beyond the covered super-rows are clamped into the trash super-rows at either
        end, whose moments ``k_full`` ignores.
        """
        w = self.delta * self.u / self.m
        first = (self.rho_lo - 1) * self.m  # global index of group 0
        t = x.to(torch.float64, copy=True).mul_(1.0 / w).add_(-self.lo / w - first)
        t = t.clamp_(0.0, self.groups - 1)  # >= 0, so truncation is floor
        return t.long(), t.frac_()

    def accumulate(self, table: Tensor, x: Tensor, offsets: Tensor, buffers: dict) -> None:
        """Add the (p, nb) moment terms of values ``x`` into the flat ``table``."""
        group, frac = self._groups_and_frac(x)
        nb = x.shape[0]
        terms = buffers["terms"][: self.p * nb].view(self.p, nb)
        torch.mul(frac, 2.0, out=terms[1] if self.p > 1 else frac).sub_(1.0)
        tau = terms[1]
        terms[0].fill_(1.0)
        signs = _signs(self.p)
        for k in range(2, self.p):
            # S_k = S_{k-2} + v_k tau S_{k-1} with S_k = sign_k T_k (see _signs)
            v = 2.0 * signs[k] / signs[k - 1]
            torch.addcmul(terms[k - 2], terms[k - 1], tau, value=v, out=terms[k])
        index = buffers["index"][: self.p * nb].view(self.p, nb)
        torch.add(group.add_(offsets)[None, :], buffers["feature"], out=index)
        table.view(-1).index_add_(0, index.view(-1), terms.view(-1))

    def buffers(self, block: int, device) -> dict:
        return {
            "terms": torch.empty(self.p * block, dtype=torch.float64, device=device),
            "index": torch.empty(self.p * block, dtype=torch.int64, device=device),
            "feature": torch.arange(self.p, device=device)[:, None] * self.groups,
        }

    def finish(self, table: Tensor) -> Tensor:
        """(R, p * groups) moments -> (R, bins) float64 histogram."""
        if self.k_full is not None:
            return table @ self.k_full
        n_rows = table.shape[0]
        mu = table.view(n_rows, self.p, self.rows + 2, self.m)[:, :, 1:-1]
        y = mu.permute(0, 2, 3, 1).reshape(n_rows, self.rows, self.m * self.p) @ self.k_toep
        length = self.u * (self.rows - 1) + self.wb
        hist = F.fold(y.transpose(1, 2), (1, length), (1, self.wb), stride=(1, self.u))
        first = self.off - self.u * self.rho_lo  # buffer index of bin 0
        return hist.view(n_rows, length)[:, first : first + self.bins]

    def grad_table(self, grad: Tensor) -> Tensor:
        """(R, bins) dL/dhist -> (R * groups, p - 1) coefficients of U_0..U_{p-2}(tau)."""
        n_rows = grad.shape[0]
        if self.k_full is not None:
            d = (grad @ self.k_full.to(grad.dtype).T).view(n_rows, self.p, self.groups)
        else:
            length = self.u * (self.rows - 1) + self.wb
            first = self.off - self.u * self.rho_lo
            padded = grad.new_zeros(n_rows, length)
            padded[:, first : first + self.bins] = grad
            windows = padded.unfold(1, self.wb, self.u)  # (R, rows, wb)
            d = windows @ self.k_toep.to(grad.dtype).T  # (R, rows, m * p)
            d = d.view(n_rows, self.rows, self.m, self.p).permute(0, 3, 1, 2)
            d = F.pad(d, (0, 0, 1, 1)).reshape(n_rows, self.p, self.groups)
        # d/dx sum_k mu_k K_k = sum_k K_k k U_{k-1}(tau) dtau/dx; both the moments and the
        # U rows carry _signs, so each column is scaled by the product of the two signs.
        signs = _signs(self.p)
        tau_scale = 2.0 * self.m / (self.u * self.delta)
        scale = [signs[k] * signs[k - 1] * k * tau_scale for k in range(1, self.p)]
        scale = torch.tensor(scale, dtype=grad.dtype, device=grad.device)
        table = d[:, 1:, :] * scale[:, None]  # (R, p - 1, groups)
        return table.transpose(1, 2).reshape(n_rows * self.groups, self.p - 1)

    def grad_values(self, x: Tensor, offsets: Tensor, table: Tensor) -> Tensor:
        """(nb,) values -> (nb,) dL/dx."""
        group, frac = self._groups_and_frac(x)
        tau = frac.to(table.dtype).mul_(2.0).sub_(1.0)
        u_rows = _chebyshev_rows(2.0 * tau, tau, self.p - 1)  # (p - 1, nb)
        coeffs = table.index_select(0, group.add_(offsets))  # (nb, p - 1)
        return (coeffs * u_rows.T).sum(1)


@dataclass(frozen=True, eq=False)
class _WindowPlan:
    """Saturated edge form: each value adds ``w`` bins starting ``k0 = ceil(t - reach) - 1``.

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

    def _args(self, x: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """(nb,) values -> (nb,) window start + w, and (nb, w + 1) a = sigma (x - e)."""
        t = torch.sub(x.to(torch.float64), self.lo).div_(self.delta)
        start = torch.nan_to_num(t - self.reach, nan=math.inf).ceil_()
        start = start.clamp_(-self.w + 1, self.bins + 1).sub_(1)
        # Measuring from a central edge keeps float32 arguments as exact as float64 ones.
        center = self.w // 2
        rel = t.sub_(start).sub_(center).to(dtype)
        j = torch.arange(self.w + 1, dtype=dtype, device=x.device) - center
        a = (rel[:, None] - j).mul_(self.sd)
        limit = 700.0 if dtype == torch.float64 else 80.0  # keep exp(-a) finite
        return start.add_(self.w).long(), a.clamp_(-limit, limit)

    def buffers(self, block: int, device) -> dict:
        return {}

    def accumulate(self, table: Tensor, x: Tensor, offsets: Tensor, buffers: dict) -> None:
        start, a = self._args(x, torch.float64)
        e = a.neg_().exp_()  # (nb, w + 1)
        s = (e + 1.0).reciprocal_()  # sigmoid(a); e * s = sigmoid(-a) without 1 - s
        # sigmoid(a_j) * sigmoid(-a_{j+1}) * (1 - exp(-sd)) = sigmoid(a_j) - sigmoid(a_{j+1})
        terms = s[:, :-1] * (e[:, 1:] * s[:, 1:])
        terms.mul_(-math.expm1(-self.sd))
        table.view(-1, self.w).index_put_((start + offsets,), terms, accumulate=True)

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

    def grad_values(self, x: Tensor, offsets: Tensor, table: Tensor) -> Tensor:
        start, a = self._args(x, table.dtype)
        e = a.abs_().neg_().exp_()
        slope = e / (e + 1.0).square_()  # sigmoid'(a) = sigmoid'(|a|), no overflow
        return (table.index_select(0, start.add_(offsets)) * slope).sum(1)


_Plan = _MomentPlan | _WindowPlan


@functools.lru_cache(maxsize=64)
def _make_plan_cached(
    bins: int, lo: float, hi: float, sigma: float, eps: float, method: str, device: str
) -> _Plan:
    delta = (hi - lo) / bins
    sd = sigma * delta
    reach = math.log(1.0 / eps) / sd
    if method == "window" or (method == "auto" and sd > _WINDOW_SD):
        # Bins ceil(t - reach) - 1 .. floor(t + reach): at most floor(2 reach) + 2 of them.
        return _WindowPlan(bins, lo, delta, sigma, reach, math.floor(2 * reach) + 2)
    if sd <= _GROUP_WIDTH:
        u, m = math.floor(_GROUP_WIDTH / sd), 1
    else:
        u, m = 1, math.ceil(sd / _GROUP_WIDTH)
    p = _chebyshev_terms(sd * u / m / 2, eps)
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
    coeffs = coeffs * torch.tensor(_signs(p), **f64)
    k_toep = coeffs.permute(0, 2, 1).reshape(m * p, wb)
    k_full = None
    groups = (rows + 2) * m
    if p * groups * bins <= _DENSE_ELEMENTS:
        first = u * (torch.arange(rows, device=device) + rho_lo) - off  # (rows,)
        jj = torch.arange(bins, device=device) - first[:, None]  # (rows, bins)
        inside = (jj >= 0) & (jj < wb)
        k_full = coeffs.new_zeros(p, rows + 2, m, bins)
        k_full[:, 1:-1] = (coeffs.permute(2, 0, 1)[:, :, jj.clamp(0, wb - 1)] * inside).transpose(1, 2)
        k_full = k_full.view(p * groups, bins)
    return _MomentPlan(bins, lo, delta, u, m, p, rho_lo, rows, off, wb, k_toep, k_full)


def _make_plan(
    bins: int, lo: float, hi: float, sigma: float, dtype: torch.dtype, method: str, device
) -> _Plan:
    return _make_plan_cached(bins, lo, hi, sigma, _eps(dtype), method, str(device))


def _run_forward(x: Tensor, plan: _Plan, block_size: int | None) -> Tensor:
    """(R, N) -> (R, bins) in x.dtype, streaming blocks of values into a table of sums."""
    n_rows, n = x.shape
    nan_rows = torch.isnan(x).any(1, keepdim=True)
    if nan_rows.any():
        x = x.nan_to_num(nan=0.0)  # rows with NaN are overwritten below
    out = torch.empty(n_rows, plan.bins, dtype=torch.float64, device=x.device)
    chunk = max(1, _TABLE_ELEMENTS // plan.row_size)
    block = block_size or max(1, _BLOCK_ELEMENTS // plan.width)
    buffers = plan.buffers(min(block, n_rows * n), x.device)
    stride = plan.row_size if isinstance(plan, _MomentPlan) else plan.starts
    for r0 in range(0, n_rows, chunk):
        r1 = min(n_rows, r0 + chunk)
        table = torch.zeros(r1 - r0, plan.row_size, dtype=torch.float64, device=x.device)
        for a, b, c0, c1 in _blocks(r0, r1, n, block):
            offsets = _row_offsets(b - a, c1 - c0, stride, str(x.device)) + (a - r0) * stride
            plan.accumulate(table, x[a:b, c0:c1].reshape(-1), offsets, buffers)
        out[r0:r1] = plan.finish(table)
    return torch.where(nan_rows, math.nan, out).to(x.dtype)


def _run_backward(x: Tensor, grad: Tensor, plan: _Plan, block_size: int | None) -> Tensor:
    """(R, N) values and (R, bins) dL/dhist -> (R, N) dL/dx, recomputing block by block."""
    n_rows, n = x.shape
    grad = grad.to(x.dtype)
    x = x.nan_to_num(nan=0.0)  # NaN rows have NaN histograms; their gradient is moot
    out = torch.empty_like(x)
    chunk = max(1, _TABLE_ELEMENTS // plan.row_size)
    block = block_size or max(1, _BLOCK_ELEMENTS // plan.width)
    stride = plan.groups if isinstance(plan, _MomentPlan) else plan.starts
    for r0 in range(0, n_rows, chunk):
        r1 = min(n_rows, r0 + chunk)
        table = plan.grad_table(grad[r0:r1].contiguous())
        for a, b, c0, c1 in _blocks(r0, r1, n, block):
            offsets = _row_offsets(b - a, c1 - c0, stride, str(x.device)) + (a - r0) * stride
            values = plan.grad_values(x[a:b, c0:c1].reshape(-1), offsets, table)
            out[a:b, c0:c1] = values.view(b - a, c1 - c0)
    return out


class _SigmoidHistogram(torch.autograd.Function):
    """(R, N) -> (R, bins) sigmoid soft histogram; saves only its input."""

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
