"""Fused CPU loops for the moments method of :mod:`histae._histogram_engine` (numba).

Eager PyTorch spends the moments method's time on memory: each value's position, group,
``terms`` polynomials and scatters are a dozen passes over float64 buffers larger than this
machine's L2 cache. These loops make one pass per value instead, with the value's table row
hot in L1, and split the histogram rows over threads (each row is summed by one thread, in
value order, so the result does not depend on the thread count and is bitwise reproducible).

The arithmetic is the torch path's (:meth:`MomentPlan.accumulate`, :meth:`MomentPlan.grad_values`)
operation for operation, so both agree to rounding; the tests run the engine both ways.
Compiled on first use per input dtype (2-3 s on 2 cores), then cached on disk by numba (a
later process loads them in about half a second).

Numba's first choice of threading layer, ``omp``, loads the same libgomp as torch's CPU
wheels, so both share one thread pool (its own ``workqueue`` pool, tried, made the loops 2x
slower: its threads and torch's spinning ones fought over the cores). Launching that pool
resets torch's thread count to all cores (a SLURM job set to one thread trained on two), so
:func:`_run` puts it back. Calls hold :data:`LOCK`, which the ``workqueue`` layer, numba's
fallback, needs.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np
import torch
from numba import njit, prange

log = logging.getLogger(__name__)

# numba's "workqueue" threading layer (where its "omp" one is missing) aborts on concurrent
# parallel launches: calls take turns.
LOCK = threading.Lock()


@njit(cache=True, nogil=True)
def _locate(
    x: np.ndarray, r: int, inv_width: float, offset: float, top: float, stride: int, dtype
) -> tuple[np.ndarray, np.ndarray]:
    """Row r's values -> each one's group times ``stride`` and its tau in ``dtype``: the torch
    path's _locate (t = x * scale + offset, clamped into the trash cells; NaN, as below the
    range, to the first). A loop of its own, which the compiler vectorizes."""
    cols = x.shape[1]
    keys = np.empty(cols, np.int64)
    taus = np.empty(cols, dtype)
    for i in range(cols):
        t = np.float64(x[r, i]) * inv_width + offset
        t = 0.0 if not t >= 0.0 else min(t, top)
        g = np.int64(t)
        keys[i] = g * stride
        taus[i] = (t - g) * 2.0 - 1.0
    return keys, taus


@njit(parallel=True, cache=True, nogil=True)
def _moments(
    x: np.ndarray, table: np.ndarray, inv_width: float, offset: float, top: float, terms: int
) -> None:
    rows, cols = x.shape
    for r in prange(rows):
        keys, taus = _locate(x, r, inv_width, offset, top, terms, np.float64)
        row = table[r]
        row[:] = 0.0
        for i in range(cols):
            base, tau = keys[i], taus[i]
            previous, current = 1.0, tau
            row[base] += previous
            row[base + 1] += current
            for k in range(2, terms):
                # V_k = V_{k-2} + 2 tau V_{k-1} for odd k, - for even (signed Chebyshev).
                following = previous + (2.0 if k % 2 else -2.0) * current * tau
                previous, current = current, following
                row[base + k] += current


@njit(parallel=True, cache=True, nogil=True)
def _gradient(
    table: np.ndarray, x: np.ndarray, out: np.ndarray, inv_width: float, offset: float, top: float
) -> None:
    rows, cols = x.shape
    last = table.shape[2] - 1
    for r in prange(rows):
        groups, taus = _locate(x, r, inv_width, offset, top, 1, table.dtype)
        coeffs = table[r]
        for i in range(cols):
            c, tau = coeffs[groups[i]], taus[i]
            acc = c[last]
            for j in range(last - 1, -1, -1):  # Horner's rule in powers of tau
                acc = c[j] + acc * tau
            out[r, i] = acc


def _run(kernel: Callable[..., None], *args: object) -> None:
    """``kernel(*args)`` (a compiled loop) on torch's thread count, which it leaves as it
    found it. A damaged numba cache of these loops is removed and the loops compiled afresh."""
    threads = torch.get_num_threads()
    with LOCK:
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
        try:
            kernel(*args)
        except Exception as error:
            if not _raised_by_numbas_cache(error):
                raise
            removed = [path for path in cache_files() if _unlink(path)]
            log.warning(
                f"numba's cache of histae's CPU loops was damaged ({type(error).__name__}: "
                f"{error}); removed {len(removed)} cache files, compiling them afresh"
            )
            kernel(*args)
    if torch.get_num_threads() != threads:  # numba's "omp" pool was just launched
        torch.set_num_threads(threads)


def cache_files() -> list[Path]:
    """numba's cache files of these loops: under ``NUMBA_CACHE_DIR`` if set, else beside this
    file (numba's own choice where that folder is writable)."""
    here = Path(__file__).resolve()
    root = Path(numba.config.CACHE_DIR) if numba.config.CACHE_DIR else here.parent / "__pycache__"
    return sorted(root.rglob(f"{here.stem}.*.nb[ci]")) if root.is_dir() else []


def _raised_by_numbas_cache(error: BaseException) -> bool:
    """Whether ``error`` came out of numba's cache loading (a truncated or stale file)."""
    caching = os.path.join("numba", "core", "caching.py")
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(caching):
            return True
        tb = tb.tb_next
    return False


def _unlink(path: Path) -> bool:
    """Remove ``path``; False if it was already gone (another process healed it first)."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def moments(
    x: torch.Tensor, table: torch.Tensor, inv_width: float, offset: float, top: float, terms: int
) -> None:
    """Overwrite ``table`` (R, groups * terms) float64 with the moments of ``x``'s rows.

    Args:
        x: (R, N) float32 or float64 CPU values; a NaN counts in no bin (the caller marks
            its row's histogram NaN).
        table: (R, groups * terms) float64, C-contiguous rows; row r's entry
            ``g * terms + k`` becomes the sum of ``V_k(tau)`` over row r's values in group g.
        inv_width, offset, top: a value's position in groups is ``t = x * inv_width +
            offset`` clamped to ``[0, top]``; group ``floor(t)``, ``tau = 2 frac(t) - 1``.
        terms: polynomials per group.
    """
    _run(_moments, x.detach().numpy(), table.numpy(), inv_width, offset, top, terms)


def gradient(
    table: torch.Tensor, x: torch.Tensor, inv_width: float, offset: float, top: float
) -> torch.Tensor:
    """(R, groups, terms - 1) coefficient table and (R, N) values -> (R, N) dL/dx in x.dtype:
    each value's group's polynomial at its tau, by Horner's rule in the table's dtype, as the
    torch path (0 at NaN: the first trash cell's polynomial)."""
    out = torch.empty_like(x)
    _run(_gradient, table.numpy(), x.detach().numpy(), out.numpy(), inv_width, offset, top)
    return out
