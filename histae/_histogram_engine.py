"""The engine behind :func:`histae.histogram.soft_histogram`'s sigmoid kernel.

It computes the reference formula's numbers without ever holding an ``(N, bins)`` tensor,
through a custom autograd Function (:class:`StreamingHistogram`) that streams the values in
blocks, saves only its input and recomputes in backward. It picks one of two exact methods
by ``sigma * delta`` (``sd`` below), each a plan class implementing :class:`HistogramPlan`
(:class:`MomentPlan`, :class:`WindowPlan`), built once per argument set and cached:

``"moments"`` (``sd <= 24``; the training workload)
    Cut the value axis into groups of width ``w`` with ``sigma * w <= 0.5`` (a group is a bin,
    a fraction of a bin or several bins). On one group every ``b_k`` is an analytic function of
    the value's position ``tau`` in ``[-1, 1]``: its Chebyshev interpolant of degree ``P - 1``
    (``P``: :attr:`MomentPlan.terms`) matches it within a bound we choose (below), written as
    ``sum_j K[g, j, k] tau**j``. The histogram is ``hist = mu @ K`` with the group moments
    ``mu[g, j] = sum tau_i**j`` over the values in group ``g``: each value adds ``P`` numbers
    (8 in float32) into a table instead of computing one sigmoid per bin. ``K`` is Toeplitz in
    the group; it is sampled once from the kernel in the exact product form
    ``b = (1 - exp(-sd)) sigmoid(a) sigmoid(sd - a)``, ``a = sigma (x - e_k)``, and cached.
    Backward: ``dL/dhist @ dK/dx`` is one derivative polynomial per group, evaluated per value
    by Horner's rule.
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

Granularity, one word each, largest first: a *row range* of histogram rows shares one table
of sums (at most ``TABLE_ELEMENTS``); a *slab* of those rows' values (rows x columns, at most
about ``SLAB_VALUES``) has its table keys prepared at once; a *block* of a slab's values
(``block_size``) is accumulated, or differentiated, at once.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

# Per value and bin error bound of the fast sigmoid histogram (see the module docstring).
EPS_BY_DTYPE = {torch.float64: 2.0**-56}
EPS_DEFAULT = 2.0**-30
# Largest sigma * w of a moments group: P = 8 terms at float32 precision.
GROUP_WIDTH = 0.5
# Above this sigma * delta the window of bins per value (2 T / sd + 2 bins) is cheaper than
# the sd / 0.5 moment groups per bin: on 64 x 3072 values moments take 7-8 ms up to sd = 16,
# the window 33 ms at sd = 8, 12 ms at 16, ~9 ms at 32 and beyond.
WINDOW_SIGMA_DELTA = 24.0
# Elements of the work buffers of one block (~4 MiB in float64), values of one slab (prepared
# at once, two numbers each) and elements of one row range's table of sums.
BLOCK_ELEMENTS = 2**19
SLAB_VALUES = 2**18
TABLE_ELEMENTS = 2**19
# Largest (terms * groups, bins) matrix spelled out for a single matmul; wider ones stay Toeplitz.
DENSE_ELEMENTS = 2**21


def eps_for(dtype: torch.dtype) -> float:
    """The error bound per value and bin of a histogram computed in ``dtype``."""
    return EPS_BY_DTYPE.get(dtype, EPS_DEFAULT)


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


def bin_kernel(a: Tensor, sd: float) -> Tensor:
    """``sigmoid(a) - sigmoid(a - sd)`` without cancellation: one bin's weight at ``a``."""
    return -math.expm1(-sd) * torch.sigmoid(a) * torch.sigmoid(sd - a)


def _chebyshev_to_monomial(terms: int) -> Tensor:
    """(terms, terms) float64 C with T_k(tau) = sum_j C[k, j] tau**j (exact integers)."""
    c = torch.zeros(terms, terms, dtype=torch.float64)
    c[0, 0] = 1.0
    if terms > 1:
        c[1, 1] = 1.0
    for k in range(2, terms):
        c[k, 1:] = 2.0 * c[k - 1, :-1]
        c[k] -= c[k - 2]
    return c


@functools.lru_cache(maxsize=16)
def _row_offsets(rows: int, cols: int, stride: int, device: str) -> Tensor:
    """(rows * cols,) int64: the row of each value of a row-major slab, times ``stride``."""
    return (torch.arange(rows, device=device) * stride).repeat_interleave(cols)


class _Scratch(threading.local):
    """Work buffers kept per thread from call to call. Fresh multi-MiB buffers are returned to
    the OS by malloc and page-faulted back in on every call, ~3 ms of a ~10 ms call on the
    reference workload. Bounded: slabs, blocks and tables are capped (~20 MiB in all)."""

    def __init__(self) -> None:
        self.buffers: dict[tuple, Tensor] = {}

    def get(self, name: str, numel: int, dtype: torch.dtype, device: torch.device | str) -> Tensor:
        """A flat tensor of ``numel`` elements, contents undefined."""
        key = (name, dtype, str(device))
        buf = self.buffers.get(key)
        if buf is None or buf.numel() < numel:
            buf = self.buffers[key] = torch.empty(numel, dtype=dtype, device=device)
        return buf[:numel]


SCRATCH = _Scratch()


def _slabs(r0: int, r1: int, n: int, values: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield (a, b, c0, c1): slabs of rows [a, b) x columns [c0, c1) with <= ~values values."""
    if n <= values:
        per = values // n
        for a in range(r0, r1, per):
            yield a, min(r1, a + per), 0, n
    else:
        for a in range(r0, r1):
            for c0 in range(0, n, values):
                yield a, a + 1, c0, min(n, c0 + values)


class HistogramPlan(Protocol):
    """What the streaming Function asks of a method. A histogram row's values are summed
    into one row of a float64 table; each value lands at an integer *key* (its table row,
    counted from the first histogram row of the row range) with a float64 *position*.

    Forward, per row range: ``prepare`` keys and positions of a slab, ``accumulate`` them a
    block at a time into the zeroed (rows, row_size) table, ``finish`` it into (rows, bins).
    Backward: ``grad_table`` turns (rows, bins) dL/dhist into a table with
    ``grad_keys_per_row`` rows per histogram row; ``grad_values`` reads it at a block's keys.
    """

    @property
    def bins(self) -> int: ...

    @property
    def work_per_value(self) -> int:
        """Work buffer elements per value (sets the default block size)."""
        ...

    @property
    def row_size(self) -> int:
        """float64 elements of the forward's table per histogram row."""
        ...

    @property
    def keys_per_row(self) -> int:
        """Forward table keys per histogram row."""
        ...

    @property
    def grad_keys_per_row(self) -> int:
        """Backward table rows per histogram row."""
        ...

    def prepare(self, x: Tensor, offsets: Tensor, offset: int) -> tuple[Tensor, Tensor]:
        """(n,) values, (n,) key offsets of their rows and a scalar one -> (n,) int64 keys,
        (n,) float64 positions."""
        ...

    def buffers(self, block: int, device: torch.device | str) -> dict[str, Tensor]:
        """Work buffers for blocks of up to ``block`` values, passed to ``accumulate``."""
        ...

    def accumulate(
        self, table: Tensor, keys: Tensor, pos: Tensor, buffers: dict[str, Tensor]
    ) -> None:
        """Add one block of (nb,) keys and positions into ``table`` (rows, row_size)."""
        ...

    def finish(self, table: Tensor) -> Tensor:
        """(rows, row_size) table -> (rows, bins) float64 histogram."""
        ...

    def grad_table(self, grad: Tensor) -> Tensor:
        """(rows, bins) dL/dhist -> (rows * grad_keys_per_row, k) table ``grad_values`` reads."""
        ...

    def grad_values(self, keys: Tensor, pos: Tensor, table: Tensor) -> Tensor:
        """One block's (nb,) keys and positions -> (nb,) dL/dx."""
        ...


@dataclass(frozen=True, eq=False)
class MomentPlan:
    """Chebyshev moments of groups of values; see the module docstring.

    A *cell* covers ``cell_bins`` bins and holds ``cell_groups`` groups of width
    ``delta * cell_bins / cell_groups`` (one of the two is 1: a group is a bin, a fraction of
    a bin or several bins). Cell ``c`` covers bins ``[cell_bins c, cell_bins (c + 1))``;
    cells ``first_cell .. first_cell + cells - 1`` hold every value with a weight above eps
    in some bin, one trash cell at each end takes the rest. Group ``q`` of cell ``c`` feeds
    the ``bins_fed`` bins from ``cell_bins c - bin_offset`` on, through
    ``kernel_toeplitz[q * terms + k, j]``: the coefficient of ``tau**k`` for its ``j``-th
    bin. A histogram row's moments ``mu[k, g] = sum tau**k`` are kept as complex numbers
    ``(terms / 2, groups)`` pairing powers 2j and 2j + 1, so one scatter adds two of them;
    ``kernel_dense`` spells ``kernel_toeplitz`` out over all bins, its rows in that table's
    order.
    """

    bins: int
    lo: float
    delta: float
    cell_bins: int
    cell_groups: int
    terms: int  # Chebyshev terms per group (the polynomial's degree + 1), even
    first_cell: int
    cells: int
    bin_offset: int  # bins a cell's groups feed below the cell's own first bin
    bins_fed: int  # bins each group feeds: cell_bins + bin_offset + ceil(reach)
    kernel_toeplitz: Tensor = field(repr=False)  # (cell_groups * terms, bins_fed) float64
    # (terms * groups, bins) float64, rows in the table's (terms / 2, groups, 2) order; or
    # None where too large (then finish and grad_table go through kernel_toeplitz)
    kernel_dense: Tensor | None = field(repr=False)
    # (bins, groups * (terms - 1)): dL/dhist @ kernel_grad is the backward's table; per dtype
    kernel_grad: dict[torch.dtype, Tensor] = field(default_factory=dict, repr=False)

    @property
    def groups(self) -> int:
        """Groups per histogram row, the two trash cells' included."""
        return (self.cells + 2) * self.cell_groups

    @property
    def work_per_value(self) -> int:
        """Work buffer elements per value."""
        return self.terms

    @property
    def row_size(self) -> int:
        """float64 elements of the moment table per histogram row."""
        return self.terms * self.groups

    @property
    def keys_per_row(self) -> int:
        """Table keys (complex elements of the moment table) per histogram row."""
        return self.row_size // 2

    @property
    def grad_keys_per_row(self) -> int:
        """Rows of the backward's table per histogram row: one per group."""
        return self.groups

    def prepare(self, x: Tensor, offsets: Tensor, offset: int) -> tuple[Tensor, Tensor]:
        """(n,) values (no NaN) -> (n,) table keys (group + offsets + offset) and float64 tau
        in [-1, 1), the position in the group. Values beyond the covered cells are
        clamped into the trash cells at either end, whose moments no bin reads."""
        group_width = self.delta * self.cell_bins / self.cell_groups
        first = (self.first_cell - 1) * self.cell_groups  # global index of group 0
        t = SCRATCH.get("t", x.shape[0], torch.float64, x.device).copy_(x)
        t.mul_(1.0 / group_width).add_(-self.lo / group_width - first).clamp_(0.0, self.groups - 1)
        keys = SCRATCH.get("keys", x.shape[0], torch.int64, x.device)
        keys.copy_(t).add_(offsets).add_(offset)  # t >= 0: truncation is floor
        return keys, t.frac_().mul_(2.0).sub_(1.0)

    def buffers(self, block: int, device: torch.device | str) -> dict[str, Tensor]:
        """Work buffers for blocks of up to ``block`` values, reused by every block."""
        half = self.terms // 2
        return {
            "terms": SCRATCH.get("terms", self.terms * block, torch.float64, device),
            "index": SCRATCH.get("index", half * block, torch.int64, device),
            "feature": torch.arange(half, device=device)[:, None] * self.groups,
        }

    def accumulate(
        self, table: Tensor, keys: Tensor, tau: Tensor, buffers: dict[str, Tensor]
    ) -> None:
        """Add the moments tau**k of one block of values into ``table`` (R, row_size)."""
        nb, half = keys.shape[0], self.terms // 2
        terms = buffers["terms"][: self.terms * nb].view(half, nb, 2)  # tau**(2j), tau**(2j + 1)
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
        n_rows, half = table.shape[0], self.terms // 2
        if self.kernel_dense is not None:
            return table @ self.kernel_dense
        mu = table.view(n_rows, half, self.groups, 2).transpose(2, 3)  # (R, terms / 2, 2, groups)
        mu = mu.reshape(n_rows, self.terms, self.cells + 2, self.cell_groups)[:, :, 1:-1]
        mu = mu.permute(0, 2, 3, 1).reshape(n_rows, self.cells, self.cell_groups * self.terms)
        y = mu @ self.kernel_toeplitz  # (R, cells, bins_fed)
        length = self.cell_bins * (self.cells - 1) + self.bins_fed
        hist = F.fold(
            y.transpose(1, 2), (1, length), (1, self.bins_fed), stride=(1, self.cell_bins)
        )
        first = self.bin_offset - self.cell_bins * self.first_cell  # buffer index of bin 0
        return hist.view(n_rows, length)[:, first : first + self.bins]

    def grad_table(self, grad: Tensor) -> Tensor:
        """(R, bins) dL/dhist -> (R * groups, terms - 1): dL/dx = sum_j table[g, j] tau**j."""
        n_rows = grad.shape[0]
        if self.kernel_dense is not None:
            if grad.dtype not in self.kernel_grad:
                derivative = self._derivative(self.kernel_dense)
                self.kernel_grad[grad.dtype] = derivative.to(grad.dtype)
            table = grad @ self.kernel_grad[grad.dtype]
            return table.view(n_rows * self.groups, self.terms - 1)
        length = self.cell_bins * (self.cells - 1) + self.bins_fed
        first = self.bin_offset - self.cell_bins * self.first_cell
        padded = grad.new_zeros(n_rows, length)
        padded[:, first : first + self.bins] = grad
        windows = padded.unfold(1, self.bins_fed, self.cell_bins)  # (R, cells, bins_fed)
        d = windows @ self.kernel_toeplitz.to(grad.dtype).T  # (R, cells, cell_groups * terms)
        d = d.view(n_rows, self.cells, self.cell_groups, self.terms)[..., 1:]
        d = d * self._scale(grad)
        d = F.pad(d, (0, 0, 0, 0, 1, 1))  # the trash cells
        return d.reshape(n_rows * self.groups, self.terms - 1)

    def _scale(self, like: Tensor) -> Tensor:
        """(terms - 1,): d/dx sum_k c_k tau**k = sum_k k c_k tau**(k - 1) * dtau/dx."""
        tau_scale = 2.0 * self.cell_groups / (self.cell_bins * self.delta)
        return torch.arange(1, self.terms, dtype=like.dtype, device=like.device) * tau_scale

    def _derivative(self, dense: Tensor) -> Tensor:
        """kernel_dense (table order) -> (bins, groups * (terms - 1)) for grad_table's matmul."""
        k = dense.view(self.terms // 2, self.groups, 2, self.bins).transpose(1, 2)
        k = k.reshape(self.terms, self.groups, self.bins)[1:] * self._scale(dense)[:, None, None]
        return k.permute(2, 1, 0).reshape(self.bins, self.groups * (self.terms - 1)).contiguous()

    def grad_values(self, keys: Tensor, tau: Tensor, table: Tensor) -> Tensor:
        """One block's keys and tau -> (nb,) dL/dx by Horner's rule on its group's row."""
        nb, dtype = keys.shape[0], table.dtype
        tau = SCRATCH.get("tau", nb, dtype, keys.device).copy_(tau)
        coeffs = SCRATCH.get("coeffs", nb * (self.terms - 1), dtype, keys.device)
        coeffs = torch.index_select(table, 0, keys, out=coeffs.view(nb, self.terms - 1))
        out = coeffs[:, -1]
        spare = [SCRATCH.get(f"horner{i}", nb, dtype, keys.device) for i in (0, 1)]
        for j in range(self.terms - 3, -1, -1):
            out = torch.addcmul(coeffs[:, j], out, tau, out=spare[j % 2])
        return out


@dataclass(frozen=True, eq=False)
class WindowPlan:
    """Saturated edge form: each value adds ``window`` bins starting at
    ``k0 = ceil(t - reach) - 1`` (``k0 = 0`` when ``window = bins``).

    A histogram row's table has one row of ``window`` sums per window start
    ``k0 = -window .. bins``.
    """

    bins: int
    lo: float
    delta: float
    sigma: float
    reach: float  # log(1 / eps) / sd, in bins: bins farther than this from a value get < eps
    window: int  # bins each value adds to: floor(2 reach) + 2, at most bins

    @property
    def sigma_delta(self) -> float:
        return self.sigma * self.delta

    @property
    def work_per_value(self) -> int:
        """Work buffer elements per value: the window's edges."""
        return self.window + 1

    @property
    def window_starts(self) -> int:
        """Distinct window starts ``k0 = -window .. bins``."""
        return self.bins + self.window + 1

    @property
    def row_size(self) -> int:
        """float64 elements of the table of sums per histogram row."""
        return self.window_starts * self.window

    @property
    def keys_per_row(self) -> int:
        """Table keys (rows of ``window`` sums) per histogram row."""
        return self.window_starts

    @property
    def grad_keys_per_row(self) -> int:
        """Rows of the backward's table per histogram row: one per window start."""
        return self.window_starts

    def prepare(self, x: Tensor, offsets: Tensor, offset: int) -> tuple[Tensor, Tensor]:
        """(n,) values -> (n,) table keys (window start + offsets + offset) and float64
        positions relative to each window's central edge, in bins."""
        t = torch.sub(x.to(torch.float64), self.lo).div_(self.delta)
        if self.window == self.bins:  # the dense edge form: every value, every bin
            start = torch.zeros_like(t)
        else:
            start = torch.nan_to_num(t - self.reach, nan=math.inf).ceil_()
            start = start.clamp_(-self.window + 1, self.bins + 1).sub_(1)
        # Measuring from a central edge keeps float32 arguments as exact as float64 ones.
        rel = t.sub_(start).sub_(self.window // 2)
        return start.long().add_(offsets).add_(offset + self.window), rel

    def _args(self, rel: Tensor, dtype: torch.dtype) -> Tensor:
        """(nb,) relative positions -> (nb, window + 1) a = sigma (x - e) at the window's edges."""
        j = torch.arange(self.window + 1, dtype=dtype, device=rel.device) - self.window // 2
        a = (rel.to(dtype)[:, None] - j).mul_(self.sigma_delta)
        limit = 700.0 if dtype == torch.float64 else 80.0  # keep exp(-a) finite
        return a.clamp_(-limit, limit)

    def buffers(self, block: int, device: torch.device | str) -> dict[str, Tensor]:
        """None needed: a block's (nb, window + 1) terms are fresh tensors."""
        return {}

    def accumulate(
        self, table: Tensor, keys: Tensor, rel: Tensor, buffers: dict[str, Tensor]
    ) -> None:
        """Add one block's window of bin weights into ``table`` (R, row_size)."""
        e = self._args(rel, torch.float64).neg_().exp_()  # (nb, window + 1)
        s = (e + 1.0).reciprocal_()  # sigmoid(a); e * s = sigmoid(-a) without 1 - s
        # sigmoid(a_j) * sigmoid(-a_{j+1}) * (1 - exp(-sd)) = sigmoid(a_j) - sigmoid(a_{j+1})
        terms = s[:, :-1] * (e[:, 1:] * s[:, 1:])
        terms.mul_(-math.expm1(-self.sigma_delta))
        table.view(-1, self.window).index_put_((keys,), terms, accumulate=True)

    def finish(self, table: Tensor) -> Tensor:
        """(R, row_size) window sums -> (R, bins) float64 histogram."""
        n_rows = table.shape[0]
        y = table.view(n_rows, self.window_starts, self.window)
        length = self.window_starts + self.window - 1
        hist = F.fold(y.transpose(1, 2), (1, length), (1, self.window)).view(n_rows, length)
        return hist[:, self.window : self.window + self.bins]

    def grad_table(self, grad: Tensor) -> Tensor:
        """(R, bins) -> (R * window_starts, window + 1): sigma * (g_k - g_{k-1}) at each
        window edge."""
        padded = F.pad(grad, (self.window, self.window))
        windows = padded.unfold(1, self.window, 1)  # (R, window_starts, window)
        edges = F.pad(windows, (1, 1)).diff(dim=-1)  # (R, window_starts, window + 1)
        return edges.mul_(self.sigma).reshape(-1, self.window + 1)

    def grad_values(self, keys: Tensor, rel: Tensor, table: Tensor) -> Tensor:
        """One block's keys and positions -> (nb,) dL/dx: the table row dotted with the
        sigmoid slopes at the window's edges."""
        e = self._args(rel, table.dtype).abs_().neg_().exp_()
        slope = e / (e + 1.0).square_()  # sigmoid'(a) = sigmoid'(|a|), no overflow
        return (table.index_select(0, keys) * slope).sum(1)


@functools.lru_cache(maxsize=64)
def build_plan(
    bins: int, lo: float, hi: float, sigma: float, eps: float, method: str, device: str
) -> HistogramPlan:
    """The plan for these arguments and error bound ``eps`` (cached: building the moments
    kernel solves a Vandermonde system per bin offset)."""
    delta = (hi - lo) / bins
    sd = sigma * delta
    reach = math.log(1.0 / eps) / sd
    if method == "window" or (method == "auto" and sd > WINDOW_SIGMA_DELTA):
        # Bins ceil(t - reach) - 1 .. floor(t + reach): at most floor(2 reach) + 2 of them;
        # a window as wide as the range is the dense edge form.
        return WindowPlan(bins, lo, delta, sigma, reach, min(math.floor(2 * reach) + 2, bins))
    if sd <= GROUP_WIDTH:
        cell_bins, cell_groups = math.floor(GROUP_WIDTH / sd), 1
    else:
        cell_bins, cell_groups = 1, math.ceil(sd / GROUP_WIDTH)
    terms = _chebyshev_terms(sd * cell_bins / cell_groups / 2, eps)
    terms += terms % 2  # moments travel in pairs
    # Cells holding a value within reach of [min, max], and the bins each one feeds.
    first_cell = math.floor(-reach / cell_bins)
    cells = math.floor((bins + reach) / cell_bins) - first_cell + 1
    bin_offset = math.floor(reach) + 1
    bins_fed = cell_bins + bin_offset + math.ceil(reach)
    f64 = dict(dtype=torch.float64, device=device)
    # Chebyshev points tau_i = cos(pi i / (terms - 1)), V[i, k] = T_k(tau_i), samples f = V c.
    angle = torch.arange(terms, **f64) * math.pi / (terms - 1)
    vandermonde = torch.cos(angle[:, None] * torch.arange(terms, **f64))
    q = torch.arange(cell_groups, **f64)[:, None, None]
    j = torch.arange(bins_fed, **f64)[None, :, None]
    # (cell_groups, bins_fed, terms): a = sigma (x - e) at each group's Chebyshev points
    a = sd * (cell_bins * (q + (torch.cos(angle) + 1) / 2) / cell_groups - (j - bin_offset))
    coeffs = torch.linalg.solve(vandermonde, bin_kernel(a, sd).unsqueeze(-1)).squeeze(-1)
    coeffs = coeffs @ _chebyshev_to_monomial(terms).to(device)  # the same polynomial in tau**k
    kernel_toeplitz = coeffs.permute(0, 2, 1).reshape(cell_groups * terms, bins_fed)
    kernel_dense = None
    groups = (cells + 2) * cell_groups
    if terms * groups * bins <= DENSE_ELEMENTS:
        first = cell_bins * (torch.arange(cells, device=device) + first_cell) - bin_offset
        jj = torch.arange(bins, device=device) - first[:, None]  # (cells, bins)
        inside = (jj >= 0) & (jj < bins_fed)
        # (terms, cell_groups, cells, bins)
        spelled = coeffs.permute(2, 0, 1)[:, :, jj.clamp(0, bins_fed - 1)] * inside
        dense = coeffs.new_zeros(terms, cells + 2, cell_groups, bins)  # trash cells stay 0
        dense[:, 1:-1] = spelled.transpose(1, 2)
        # (terms, groups, bins) -> the moment table's order (terms / 2, groups, 2, bins)
        dense = dense.view(terms // 2, 2, groups, bins).transpose(1, 2)
        kernel_dense = dense.reshape(terms * groups, bins)
    return MomentPlan(
        bins,
        lo,
        delta,
        cell_bins=cell_bins,
        cell_groups=cell_groups,
        terms=terms,
        first_cell=first_cell,
        cells=cells,
        bin_offset=bin_offset,
        bins_fed=bins_fed,
        kernel_toeplitz=kernel_toeplitz,
        kernel_dense=kernel_dense,
    )


def make_plan(
    bins: int,
    lo: float,
    hi: float,
    sigma: float,
    dtype: torch.dtype,
    method: str,
    device: torch.device | str,
) -> HistogramPlan:
    """The plan for a histogram computed in ``dtype`` (which sets its error bound)."""
    return build_plan(bins, lo, hi, sigma, eps_for(dtype), method, str(device))


def _row_ranges(
    n_rows: int, n: int, plan: HistogramPlan
) -> Iterator[tuple[int, int, Iterator[tuple[int, int, int, int]]]]:
    """Yield (r0, r1, slabs): row ranges whose table of sums fits TABLE_ELEMENTS, and in each
    the (a, b, c0, c1) slabs of at most ~SLAB_VALUES values prepared at once."""
    per_range = max(1, TABLE_ELEMENTS // plan.row_size)
    for r0 in range(0, n_rows, per_range):
        r1 = min(n_rows, r0 + per_range)
        yield r0, r1, _slabs(r0, r1, n, SLAB_VALUES)


def stream_forward(x: Tensor, plan: HistogramPlan, block_size: int | None) -> Tensor:
    """(R, N) -> (R, bins) in x.dtype, streaming blocks of values into a table of sums."""
    n_rows, n = x.shape
    # No data-dependent branch: `if isnan(x).any()` would wait for the device on a GPU.
    nan_rows = torch.isnan(x).any(1, keepdim=True)  # (R, 1)
    x = x.nan_to_num(nan=0.0)  # rows with NaN are overwritten below
    out = torch.empty(n_rows, plan.bins, dtype=torch.float64, device=x.device)
    block = block_size or max(1, BLOCK_ELEMENTS // plan.work_per_value)
    buffers = plan.buffers(min(block, n_rows * n), x.device)
    for r0, r1, slabs in _row_ranges(n_rows, n, plan):
        table = SCRATCH.get("table", (r1 - r0) * plan.row_size, torch.float64, x.device)
        table = table.view(r1 - r0, plan.row_size).zero_()
        for a, b, c0, c1 in slabs:
            offsets = _row_offsets(b - a, c1 - c0, plan.keys_per_row, str(x.device))
            keys, pos = plan.prepare(
                x[a:b, c0:c1].reshape(-1), offsets, (a - r0) * plan.keys_per_row
            )
            for s in range(0, keys.shape[0], block):
                plan.accumulate(table, keys[s : s + block], pos[s : s + block], buffers)
        out[r0:r1] = plan.finish(table)
    # Interpolation errors (< eps) can dip below 0 where the true weight is ~0.
    out = out.clamp_(min=0.0)
    return torch.where(nan_rows, math.nan, out).to(x.dtype)


def _stream_backward(
    x: Tensor, grad: Tensor, plan: HistogramPlan, block_size: int | None
) -> Tensor:
    """(R, N) values and (R, bins) dL/dhist -> (R, N) dL/dx, recomputing block by block."""
    n_rows, n = x.shape
    grad = grad.to(x.dtype)
    x = x.nan_to_num(nan=0.0)  # NaN rows have NaN histograms; their gradient is moot
    out = torch.empty_like(x)
    block = block_size or max(1, BLOCK_ELEMENTS // plan.work_per_value)
    for r0, r1, slabs in _row_ranges(n_rows, n, plan):
        table = plan.grad_table(grad[r0:r1].contiguous())
        for a, b, c0, c1 in slabs:
            offsets = _row_offsets(b - a, c1 - c0, plan.grad_keys_per_row, str(x.device))
            keys, pos = plan.prepare(
                x[a:b, c0:c1].reshape(-1), offsets, (a - r0) * plan.grad_keys_per_row
            )
            slab = out[a:b, c0:c1]
            for s in range(0, keys.shape[0], block):
                values = plan.grad_values(keys[s : s + block], pos[s : s + block], table)
                slab.view(-1)[s : s + block] = values
    return out


class StreamingHistogram(torch.autograd.Function):
    """(R, N) -> (R, bins) sigmoid soft histogram; saves only its input. Only for inputs that
    need a gradient: soft_histogram calls :func:`stream_forward` directly for the others."""

    @staticmethod
    def forward(ctx, x: Tensor, plan: HistogramPlan, block_size: int | None) -> Tensor:
        x = x.contiguous()
        ctx.save_for_backward(x)
        ctx.plan, ctx.block_size = plan, block_size
        return stream_forward(x, plan, block_size)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return _stream_backward(x, grad, ctx.plan, ctx.block_size), None, None
