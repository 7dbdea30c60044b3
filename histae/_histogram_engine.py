"""The engine behind :func:`histae.histogram.soft_histogram`'s sigmoid kernel.

It computes the reference formula's numbers without ever holding an ``(N, bins)`` tensor,
through a custom autograd Function (:class:`StreamingHistogram`) that streams the values in
slabs, saves only its input and recomputes in backward. It picks one of two exact methods
by ``sigma * delta`` (``sd`` below), each a plan class implementing :class:`HistogramPlan`
(:class:`MomentPlan`, :class:`WindowPlan`), built once per argument set and cached:

``"moments"`` (``sd <= 32``; the training workload)
    Cut the value axis into groups of width ``w`` with ``sigma * w <= 1`` (a group is a bin,
    a fraction of a bin or several bins). On one group every ``b_k`` is an analytic function of
    the value's position ``tau`` in ``[-1, 1]``: its Chebyshev interpolant of degree ``P - 1``
    (``P``: :attr:`MomentPlan.terms`) matches it within a bound we choose (below), written as
    ``sum_j K[g, j, k] V_j(tau)`` in (signed) Chebyshev polynomials. The histogram is
    ``hist = mu @ K`` with the group moments ``mu[g, j] = sum V_j(tau_i)`` over the values in
    group ``g``: each value adds ``P`` numbers (10 in float32) into a table instead of
    computing one sigmoid per bin. ``K`` is Toeplitz in the group; it is sampled once from
    the kernel in the exact product form ``b = (1 - exp(-sd)) sigmoid(a) sigmoid(sd - a)``,
    ``a = sigma (x - e_k)``, and cached. A group feeds only the bins within ``T / sigma``
    (below), so ``K`` is banded and the product runs band by band over its nonzeros.
    Backward: ``dL/dhist @ dK/dx`` is one derivative polynomial per group, evaluated per value
    by Horner's rule. On CPU the per-value passes (position, polynomials, sums; Horner) are
    fused loops (:mod:`histae._histogram_cpu`, numba), elsewhere eager torch ops.
``"window"`` (``sd > 32``)
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

The backward writes the interpolant in powers of ``tau`` (for Horner's rule), which costs at
most a factor ``2**(P - 1)`` of float64 rounding (1e-13 relative at P = 10, 1e-12 at P = 14);
the forward's Chebyshev moments do not.

Sums are accumulated in float64 whatever the input dtype, so float32 results are more accurate
than the reference's float32 evaluation (tested against a float64 evaluation).

Granularity, largest first: a *row range* of histogram rows shares one table of sums (at
most ``TABLE_ELEMENTS``). The fused loops take a row range at once, a row per thread at a
time. The eager path goes a *slab* of those rows' values at a time (rows x columns, at most
``block_size`` values, by default ``SLAB_VALUES`` or what fits ``WORK_ELEMENTS``), whole
rows where a row fits.
"""

from __future__ import annotations

import functools
import math
import threading
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

# Per value and bin error bound of the fast sigmoid histogram (see the module docstring).
EPS_BY_DTYPE = {torch.float64: 2.0**-56}
EPS_DEFAULT = 2.0**-30
# Largest sigma * w of a moments group: P = 10 terms at float32 precision. Half as wide
# (P = 8, twice the groups) made the kernel products larger than the per-value work saved:
# fwd + bwd after a cache flush, 64 x 3 x 1024 values, 4.1-4.3 ms against 4.5-4.9 at
# 200 bins / sigma 200 per channel, and no slower at any setting of the reference matrix.
GROUP_WIDTH = 1.0
# Above this sigma * delta the window of bins per value (2 T / sd + 2 bins) is cheaper than
# the sd moment groups per bin: on 64 x 3072 values (forward + backward, 2 threads, fused
# moments) moments take 5.4 / 7.1 / 9.8 ms at sd = 24 / 32 / 48, the window 7.9 / 7.9 /
# 7.0 ms.
WINDOW_SIGMA_DELTA = 32.0
# Values of one slab: at least twice torch's parallel grain (32768 elements), so that every
# op on a slab runs on two threads; on 64 x 3 x 1024 values 2**15 took 1.4x as long, 2**17
# and the whole input (3 x 2**16) 1.0-1.1x. At most WORK_ELEMENTS (8 MiB in float64) of
# work buffers per slab, and TABLE_ELEMENTS in one row range's table of sums.
SLAB_VALUES = 2**16
WORK_ELEMENTS = 2**20
TABLE_ELEMENTS = 2**20
# Bins per band of the kernel products (see MomentPlan._bands).
BAND_BINS = 32
# Whether the moments method runs its per-value passes as the fused loops of
# histae._histogram_cpu on CPU tensors (where numba is installed): 1.5-2x faster than eager
# torch there. The tests switch it off to check the eager path, which CUDA always takes.
FUSED_CPU = True


@functools.cache
def _histogram_cpu() -> types.ModuleType | None:
    """histae._histogram_cpu, imported on first use (numba takes ~0.2 s to import); None
    without numba."""
    try:
        from histae import _histogram_cpu as module
    except ImportError:
        return None
    return module


def _fused(x: Tensor) -> bool:
    """Whether the fused CPU loops take ``x``: float32 or float64 on CPU, with numba."""
    return (
        FUSED_CPU
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and _histogram_cpu() is not None
    )


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
def _row_starts(rows: int, stride: int, device: str) -> Tensor:
    """(rows, 1) int64: each row's first key in a table with ``stride`` keys per row."""
    return (torch.arange(rows, device=device) * stride)[:, None]


class _Scratch(threading.local):
    """Work buffers kept per thread from call to call. Fresh multi-MiB buffers are returned to
    the OS by malloc and page-faulted back in on every call, ~3 ms of a ~10 ms call on the
    reference workload. Bounded: slabs and tables are capped (~12 MiB in all)."""

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
    """Yield (a, b, c0, c1): slabs of rows [a, b) x columns [c0, c1) with <= values values,
    whole rows of about equal count where a row fits."""
    if n <= values:
        count = -(-(r1 - r0) // (values // n))  # fewest slabs, then rows spread evenly
        per = -(-(r1 - r0) // count)
        for a in range(r0, r1, per):
            yield a, min(r1, a + per), 0, n
    else:
        for a in range(r0, r1):
            for c0 in range(0, n, values):
                yield a, a + 1, c0, min(n, c0 + values)


class HistogramPlan(Protocol):
    """What the streaming Function asks of a method. Each histogram row's values are summed
    into one row of a float64 table.

    Forward, per row range: ``tabulate`` the rows' values into tables of sums (about
    ``row_size`` float64 elements per row), ``finish`` them into (rows, bins). Backward:
    ``grad_table`` turns (rows, bins)
    dL/dhist into a table whose row r serves histogram row r; ``gradient`` reads it at the
    rows' values. :class:`Slabbed` does both a slab of values (rows x columns) at a time
    through ``accumulate`` and ``grad_values``.
    """

    @property
    def bins(self) -> int: ...

    @property
    def work_per_value(self) -> int:
        """Work buffer elements per value (sets the default slab size)."""
        ...

    @property
    def row_size(self) -> int:
        """float64 elements of the forward's table per histogram row."""
        ...

    def tabulate(self, x: Tensor, values: int) -> tuple[Tensor, ...]:
        """The tables of sums of ``x``'s (rows, N) values, ``values`` at a time; a NaN adds
        to no bin (its row's histogram is made NaN). Valid until the next call."""
        ...

    def finish(self, tables: tuple[Tensor, ...]) -> Tensor:
        """``tabulate``'s tables -> (rows, bins) float64 histogram."""
        ...

    def grad_table(self, grad: Tensor) -> Tensor:
        """(rows, bins) dL/dhist -> (rows, ...) table ``gradient`` reads."""
        ...

    def gradient(self, table: Tensor, x: Tensor, values: int) -> Tensor:
        """The ``grad_table`` of some rows and their (rows, N) values -> (rows, N) dL/dx."""
        ...


class Slabbed:
    """``sum_slabs`` and ``gradient`` a slab of at most ``values`` values at a time, through
    the plan's ``accumulate(table, slab)`` (add a slab's (rows, cols) values into its rows
    of the table) and ``grad_values(table, slab)`` (a slab's rows of the ``grad_table`` and
    its values -> (rows, cols) dL/dx): the eager PyTorch form, any device."""

    def sum_slabs(self, x: Tensor, values: int) -> Tensor:
        """(rows, N) values -> (rows, row_size) float64 table of their sums (a scratch
        buffer), accumulated slab by slab."""
        x = x.nan_to_num(nan=0.0)  # a NaN row's histogram is overwritten with NaN
        table = SCRATCH.get("table", x.shape[0] * self.row_size, torch.float64, x.device)
        table = table.view(x.shape[0], self.row_size).zero_()
        for a, b, c0, c1 in _slabs(0, x.shape[0], x.shape[1], values):
            self.accumulate(table[a:b], x[a:b, c0:c1])
        return table

    def gradient(self, table: Tensor, x: Tensor, values: int) -> Tensor:
        x = x.nan_to_num(nan=0.0)  # NaN rows have NaN histograms; their gradient is moot
        out = torch.empty_like(x)
        for a, b, c0, c1 in _slabs(0, x.shape[0], x.shape[1], values):
            out[a:b, c0:c1] = self.grad_values(table[a:b], x[a:b, c0:c1])
        return out


@dataclass(frozen=True, eq=False)
class MomentPlan(Slabbed):
    """Chebyshev moments of groups of values; see the module docstring.

    A *cell* covers ``cell_bins`` bins and holds ``cell_groups`` groups of width
    ``delta * cell_bins / cell_groups`` (one of the two is 1: a group is a bin, a fraction of
    a bin or several bins). Cell ``c`` covers bins ``[cell_bins c, cell_bins (c + 1))``;
    cells ``first_cell .. first_cell + cells - 1`` hold every value with a weight above eps
    in some bin, one trash cell at each end takes the rest. Group ``q`` of cell ``c`` feeds
    the ``bins_fed`` bins from ``cell_bins c - bin_offset`` on, through
    ``kernel_toeplitz[q * terms + k, j]``: the coefficient of ``V_k(tau)`` for its ``j``-th
    bin, where ``V_k = s_k T_k`` are the Chebyshev polynomials with signs ``s_k`` = +1, +1,
    -1, -1, ... that make their recurrence ``V_k = V_{k-2} -+ 2 tau V_{k-1}`` one fused
    multiply-add. A histogram row's moments ``mu[g, k] = sum V_k(tau)`` fill its table row
    group by group, ``g * terms + k`` (the same cost as powers of ``tau``, whose coefficients
    grow like ``2**k`` and cancel in the forward's float64 sums), so a run of groups is a run
    of columns: the kernel products go band by band (:meth:`_bands`). The backward uses
    ``grad_toeplitz``, the same polynomials in powers of ``tau``: Horner's rule per value is
    one fused multiply-add a term.
    """

    bins: int
    lo: float
    delta: float
    cell_bins: int
    cell_groups: int
    terms: int  # Chebyshev terms per group (the polynomial's degree + 1)
    first_cell: int
    cells: int
    bin_offset: int  # bins a cell's groups feed below the cell's own first bin
    bins_fed: int  # bins each group feeds: cell_bins + bin_offset + ceil(reach)
    kernel_toeplitz: Tensor = field(repr=False)  # (cell_groups * terms, bins_fed) float64, V_k
    grad_toeplitz: Tensor = field(repr=False)  # the same, coefficients of tau**k
    # The kernels' nonzero bands by (direction, dtype), built on first use (see _bands).
    kernels: dict[tuple[str, torch.dtype], list] = field(default_factory=dict, repr=False)

    @property
    def groups(self) -> int:
        """Groups per histogram row, the two trash cells' included."""
        return (self.cells + 2) * self.cell_groups

    @property
    def work_per_value(self) -> int:
        """Work buffer elements per value: position, group, three polynomials, a row of
        ``terms - 1`` coefficients, and tau and two Horner partial sums (narrower, counted 1)."""
        return self.terms + 5

    @property
    def row_size(self) -> int:
        """float64 elements of the moment table per histogram row."""
        return self.terms * self.groups

    def _position(self) -> tuple[float, float, float]:
        """(scale, offset, top): a value's position in groups, ``t = x * scale + offset``
        clamped to ``[0, top]``; its group is ``floor(t)``, ``tau = 2 frac(t) - 1``."""
        group_width = self.delta * self.cell_bins / self.cell_groups
        first = (self.first_cell - 1) * self.cell_groups  # global index of group 0
        return 1.0 / group_width, -self.lo / group_width - first, float(self.groups - 1)

    def _locate(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(rows, cols) values (no NaN) -> (rows, cols) int64 group of each value in its row
        and float64 tau in [-1, 1), the position in the group. Values beyond the covered
        cells are clamped into the trash cells at either end, whose moments no bin reads."""
        scale, offset, top = self._position()
        t = SCRATCH.get("t", x.numel(), torch.float64, x.device).view(x.shape).copy_(x)
        t.mul_(scale).add_(offset).clamp_(0.0, top)
        group = SCRATCH.get("group", x.numel(), torch.int64, x.device).view(t.shape)
        group.copy_(t)  # t >= 0: truncation is floor
        return group, t.frac_().mul_(2.0).sub_(1.0)

    def tabulate(self, x: Tensor, values: int) -> tuple[Tensor]:
        """(rows, N) values -> ((rows, groups * terms) float64 moments,): entry ``g * terms
        + k`` sums ``V_k(tau)`` over the row's values in group ``g``. One fused pass on CPU
        (:mod:`histae._histogram_cpu`), else slab by slab."""
        if not _fused(x):
            return (self.sum_slabs(x, values),)
        table = SCRATCH.get("table", x.shape[0] * self.row_size, torch.float64, x.device)
        table = table.view(x.shape[0], self.row_size)
        _histogram_cpu().moments(x, table, *self._position(), self.terms)
        return (table,)

    def gradient(self, table: Tensor, x: Tensor, values: int) -> Tensor:
        """(rows, groups, terms - 1) ``grad_table`` and (rows, N) values -> (rows, N) dL/dx."""
        if _fused(x):
            return _histogram_cpu().gradient(table, x, *self._position())
        return super().gradient(table, x, values)

    def accumulate(self, table: Tensor, x: Tensor) -> None:
        """Add the moments V_k(tau) of a slab's (rows, cols) values into ``table`` (rows,
        row_size). One 2-D scatter per polynomial: torch spreads its rows over the threads."""
        group, tau = self._locate(x)
        keys = group.mul_(self.terms)  # V_k of group g sums into table[r, g * terms + k]
        work = SCRATCH.get("power", 3 * x.numel(), torch.float64, x.device)
        work = work.view(3, *keys.shape)
        previous, current = work[1].fill_(1.0), tau  # V_0, V_1
        table.scatter_add_(1, keys, previous)
        table[:, 1:].scatter_add_(1, keys, current)
        for k in range(2, self.terms):
            # V_k = V_{k-2} + 2 tau V_{k-1} for odd k, - for even; into the slot V_{k-3} held.
            value = 2.0 if k % 2 else -2.0
            following = torch.addcmul(previous, current, tau, value=value, out=work[k % 3])
            previous, current = current, following
            table[:, k:].scatter_add_(1, keys, current)

    def finish(self, tables: tuple[Tensor]) -> Tensor:
        """((R, row_size) moments,) -> (R, bins) float64 histogram, one product per band."""
        (table,) = tables
        hist = table.new_empty(table.shape[0], self.bins)
        for (i0, i1), (o0, o1), kernel in self._bands("forward", torch.float64):
            torch.mm(table[:, i0:i1], kernel, out=hist[:, o0:o1])
        return hist

    def grad_table(self, grad: Tensor) -> Tensor:
        """(R, bins) dL/dhist -> (R, groups, terms - 1): dL/dx = sum_j table[r, g, j] tau**j."""
        n_rows = grad.shape[0]
        table = grad.new_empty(n_rows, self.groups * (self.terms - 1))
        done = 0  # columns written so far; the bands are in column order
        for (i0, i1), (o0, o1), kernel in self._bands("backward", grad.dtype):
            table[:, done:o0] = 0.0  # the first trash cell, cells that feed no bin
            torch.mm(grad[:, i0:i1], kernel, out=table[:, o0:o1])
            done = o1
        table[:, done:] = 0.0  # the last trash cell
        return table.view(n_rows, self.groups, self.terms - 1)

    def _scale(self, like: Tensor) -> Tensor:
        """(terms - 1,): d/dx sum_k c_k tau**k = sum_k k c_k tau**(k - 1) * dtau/dx."""
        tau_scale = 2.0 * self.cell_groups / (self.cell_bins * self.delta)
        return torch.arange(1, self.terms, dtype=like.dtype, device=like.device) * tau_scale

    def _first_bins(self, c0: int, c1: int) -> Tensor:
        """(c1 - c0,) int64: the first bin each of cells c0 .. c1 - 1 feeds (may be < 0)."""
        cells = torch.arange(c0, c1, device=self.kernel_toeplitz.device)
        return self.cell_bins * (cells + self.first_cell) - self.bin_offset

    def _bands(self, direction: str, dtype: torch.dtype) -> list[tuple]:
        """The kernel's nonzero bands in ``dtype``, built on first use: ((i0, i1), (o0, o1),
        kernel) with ``out[:, o0:o1] = in[:, i0:i1] @ kernel``. ``"forward"``: moments
        (R, groups * terms) -> histogram (R, bins), a band per BAND_BINS bins; ``"backward"``:
        dL/dhist (R, bins) -> (R, groups * (terms - 1)), a band per cells covering about
        BAND_BINS bins. A group feeds only the ``bins_fed`` bins within reach, so the full
        kernel is mostly zeros: at per channel 200 / 200 the bands hold a third of it."""
        bands = self.kernels.get((direction, dtype))
        if bands is not None:
            return bands
        bands = []
        first = self._first_bins(0, self.cells)
        if direction == "forward":
            width = self.cell_groups * self.terms  # table columns per cell
            for b0 in range(0, self.bins, BAND_BINS):
                b1 = min(self.bins, b0 + BAND_BINS)
                feeds = ((first <= b1 - 1) & (first + self.bins_fed > b0)).nonzero()
                c0, c1 = int(feeds[0]), int(feeds[-1]) + 1
                kernel = self._spell(self.kernel_toeplitz, c0, c1, b0, b1)
                columns = ((c0 + 1) * width, (c1 + 1) * width)  # after the trash cell
                bands.append((columns, (b0, b1), kernel.reshape(-1, b1 - b0).to(dtype)))
        else:
            width = self.cell_groups * (self.terms - 1)
            per_band = max(1, BAND_BINS // self.cell_bins)
            for c0 in range(0, self.cells, per_band):
                c1 = min(self.cells, c0 + per_band)
                b0 = max(0, int(first[c0]))
                b1 = min(self.bins, int(first[c1 - 1]) + self.bins_fed)
                if b0 >= b1:
                    continue  # these cells feed no bin: their rows stay 0
                kernel = self._spell(self.grad_toeplitz, c0, c1, b0, b1)[:, :, 1:]
                kernel = kernel * self._scale(kernel)[:, None]  # (cells, cg, terms - 1, nb)
                kernel = kernel.permute(3, 0, 1, 2).reshape(b1 - b0, -1)
                columns = ((c0 + 1) * width, (c1 + 1) * width)
                bands.append(((b0, b1), columns, kernel.contiguous().to(dtype)))
        self.kernels[(direction, dtype)] = bands
        return bands

    def _spell(self, toeplitz: Tensor, c0: int, c1: int, b0: int, b1: int) -> Tensor:
        """(cell_groups * terms, bins_fed) Toeplitz coefficients -> (c1 - c0, cell_groups,
        terms, b1 - b0) float64: cells c0 .. c1 - 1's kernel over bins b0 .. b1 - 1."""
        coeffs = toeplitz.view(self.cell_groups, self.terms, self.bins_fed)
        jj = torch.arange(b0, b1, device=toeplitz.device) - self._first_bins(c0, c1)[:, None]
        inside = (jj >= 0) & (jj < self.bins_fed)  # (cells, nb)
        spelled = coeffs[:, :, jj.clamp(0, self.bins_fed - 1)] * inside  # (cg, terms, cells, nb)
        return spelled.permute(2, 0, 1, 3)

    def grad_values(self, table: Tensor, x: Tensor) -> Tensor:
        """A slab's (rows, groups, terms - 1) table rows and (rows, cols) values -> (rows,
        cols) dL/dx by Horner's rule on each value's group's row."""
        group, tau64 = self._locate(x)
        rows, cols = group.shape
        n, dtype, device = x.numel(), table.dtype, x.device
        keys = group.add_(_row_starts(rows, self.groups, str(device))).view(-1)
        coeffs = SCRATCH.get("coeffs", n * (self.terms - 1), dtype, device).view(n, -1)
        torch.index_select(table.reshape(-1, self.terms - 1), 0, keys, out=coeffs)
        tau = SCRATCH.get("tau", n, dtype, device).copy_(tau64.view(-1))
        out = coeffs[:, -1]
        spare = [SCRATCH.get(f"horner{i}", n, dtype, device) for i in (0, 1)]
        for j in range(self.terms - 3, -1, -1):
            out = torch.addcmul(coeffs[:, j], out, tau, out=spare[j % 2])
        return out.view(rows, cols)


@dataclass(frozen=True, eq=False)
class WindowPlan(Slabbed):
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
        """Work buffer elements per value: the window's edges, three arrays of them."""
        return 3 * (self.window + 1)

    @property
    def window_starts(self) -> int:
        """Distinct window starts ``k0 = -window .. bins``."""
        return self.bins + self.window + 1

    @property
    def row_size(self) -> int:
        """float64 elements of the table of sums per histogram row."""
        return self.window_starts * self.window

    def _locate(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(rows, cols) values -> (rows * cols,) table keys (window start + window + the
        row's first key) and float64 positions relative to each window's central edge, in
        bins."""
        t = torch.sub(x.to(torch.float64), self.lo).div_(self.delta)
        if self.window == self.bins:  # the dense edge form: every value, every bin
            start = torch.zeros_like(t)
        else:
            start = torch.nan_to_num(t - self.reach, nan=math.inf).ceil_()
            start = start.clamp_(-self.window + 1, self.bins + 1).sub_(1)
        # Measuring from a central edge keeps float32 arguments as exact as float64 ones.
        rel = t.sub_(start).sub_(self.window // 2)
        keys = start.long().add_(
            self.window + _row_starts(t.shape[0], self.window_starts, str(x.device))
        )
        return keys.view(-1), rel.view(-1)

    def _args(self, rel: Tensor, dtype: torch.dtype) -> Tensor:
        """(n,) relative positions -> (n, window + 1) a = sigma (x - e) at the window's edges."""
        j = torch.arange(self.window + 1, dtype=dtype, device=rel.device) - self.window // 2
        a = (rel.to(dtype)[:, None] - j).mul_(self.sigma_delta)
        limit = 700.0 if dtype == torch.float64 else 80.0  # keep exp(-a) finite
        return a.clamp_(-limit, limit)

    def accumulate(self, table: Tensor, x: Tensor) -> None:
        """Add a slab's window of bin weights into ``table`` (rows, row_size)."""
        keys, rel = self._locate(x)
        e = self._args(rel, torch.float64).neg_().exp_()  # (n, window + 1)
        s = (e + 1.0).reciprocal_()  # sigmoid(a); e * s = sigmoid(-a) without 1 - s
        # sigmoid(a_j) * sigmoid(-a_{j+1}) * (1 - exp(-sd)) = sigmoid(a_j) - sigmoid(a_{j+1})
        terms = s[:, :-1] * (e[:, 1:] * s[:, 1:])
        terms.mul_(-math.expm1(-self.sigma_delta))
        table.view(-1, self.window).index_put_((keys,), terms, accumulate=True)

    def tabulate(self, x: Tensor, values: int) -> tuple[Tensor]:
        """(rows, N) values -> ((rows, row_size) float64 window sums,)."""
        return (self.sum_slabs(x, values),)

    def finish(self, tables: tuple[Tensor]) -> Tensor:
        """((R, row_size) window sums,) -> (R, bins) float64 histogram."""
        (table,) = tables
        n_rows = table.shape[0]
        y = table.view(n_rows, self.window_starts, self.window)
        length = self.window_starts + self.window - 1
        hist = F.fold(y.transpose(1, 2), (1, length), (1, self.window)).view(n_rows, length)
        return hist[:, self.window : self.window + self.bins]

    def grad_table(self, grad: Tensor) -> Tensor:
        """(R, bins) -> (R, window_starts, window + 1): sigma * (g_k - g_{k-1}) at each
        window edge."""
        padded = F.pad(grad, (self.window, self.window))
        windows = padded.unfold(1, self.window, 1)  # (R, window_starts, window)
        edges = F.pad(windows, (1, 1)).diff(dim=-1)  # (R, window_starts, window + 1)
        return edges.mul_(self.sigma)

    def grad_values(self, table: Tensor, x: Tensor) -> Tensor:
        """A slab's table rows and (rows, cols) values -> (rows, cols) dL/dx: each value's
        table row dotted with the sigmoid slopes at its window's edges."""
        keys, rel = self._locate(x)
        e = self._args(rel, table.dtype).abs_().neg_().exp_()
        slope = e / (e + 1.0).square_()  # sigmoid'(a) = sigmoid'(|a|), no overflow
        rows = table.reshape(-1, self.window + 1).index_select(0, keys)
        return (rows * slope).sum(1).view(x.shape)


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
    chebyshev = torch.linalg.solve(vandermonde, bin_kernel(a, sd).unsqueeze(-1)).squeeze(-1)
    k = torch.arange(terms, device=device)
    signs = 1.0 - 2.0 * ((k // 2) % 2)  # s_k of V_k = s_k T_k: +1, +1, -1, -1, ...
    powers = chebyshev @ _chebyshev_to_monomial(terms).to(device)  # the same in tau**k
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
        kernel_toeplitz=(chebyshev * signs).permute(0, 2, 1).reshape(-1, bins_fed),
        grad_toeplitz=powers.permute(0, 2, 1).reshape(-1, bins_fed),
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


def _row_ranges(n_rows: int, plan: HistogramPlan) -> Iterator[tuple[int, int]]:
    """Yield (r0, r1): row ranges whose table of sums fits TABLE_ELEMENTS."""
    per_range = max(1, TABLE_ELEMENTS // plan.row_size)
    for r0 in range(0, n_rows, per_range):
        yield r0, min(n_rows, r0 + per_range)


def _slab_values(plan: HistogramPlan, block_size: int | None) -> int:
    """Values per slab: ``block_size`` if given, else SLAB_VALUES within WORK_ELEMENTS."""
    return block_size or max(1, min(SLAB_VALUES, WORK_ELEMENTS // plan.work_per_value))


def stream_forward(x: Tensor, plan: HistogramPlan, block_size: int | None) -> Tensor:
    """(R, N) -> (R, bins) in x.dtype, streaming slabs of values into a table of sums."""
    n_rows = x.shape[0]
    # No data-dependent branch: `if isnan(x).any()` would wait for the device on a GPU.
    # A row's max is NaN exactly when the row holds one; cheaper than isnan over all values.
    nan_rows = torch.isnan(x.amax(1, keepdim=True))  # (R, 1); their histograms are NaN
    out = torch.empty(n_rows, plan.bins, dtype=torch.float64, device=x.device)
    values = _slab_values(plan, block_size)
    for r0, r1 in _row_ranges(n_rows, plan):
        out[r0:r1] = plan.finish(plan.tabulate(x[r0:r1], values))
    # Interpolation errors (< eps) can dip below 0 where the true weight is ~0.
    out = out.clamp_(min=0.0).masked_fill_(nan_rows, math.nan)
    return out.to(x.dtype)


def _stream_backward(
    x: Tensor, grad: Tensor, plan: HistogramPlan, block_size: int | None
) -> Tensor:
    """(R, N) values and (R, bins) dL/dhist -> (R, N) dL/dx, recomputing slab by slab."""
    n_rows = x.shape[0]
    grad = grad.to(x.dtype)
    out = torch.empty_like(x)
    values = _slab_values(plan, block_size)
    for r0, r1 in _row_ranges(n_rows, plan):
        table = plan.grad_table(grad[r0:r1].contiguous())
        out[r0:r1] = plan.gradient(table, x[r0:r1], values)
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
