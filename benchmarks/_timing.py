"""What every benchmark prints besides its figures: the spread of its timings and the machine's
load, so figures taken on a busy machine say so.

A timing on a shared machine is a sample of (our work + everybody else's): the minimum is the
closest to the work alone, the median what a run sees, the maximum how bad it got. Load average
(runnable processes, 1-minute mean) above the cores we may use means others took CPU time from
us during the run, and ratios between figures taken at different moments are then not
comparable. Ours and the reference run interleaved, so both sides share the noise.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence


def cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0))


def load() -> float:
    """1-minute load average."""
    return os.getloadavg()[0]


def load_line(label: str) -> str:
    """``load before: 1.52 0.98 0.41 (1, 5, 15 min) on 2 cores``."""
    one, five, fifteen = os.getloadavg()
    return f"load {label}: {one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min) on {cores()} cores"


class LoadWatch:
    """Records the load average at the start, prints it at the start and in :meth:`verdict`."""

    def __init__(self) -> None:
        self.before = load()
        print(load_line("before"), flush=True)

    def verdict(self) -> str:
        """The load after, and one plain line saying whether the figures are comparable."""
        after = load()
        worst = max(self.before, after)
        lines = [load_line("after")]
        if worst > cores():
            lines.append(
                f"BUSY MACHINE: load reached {worst:.2f} > {cores()} cores; other processes took "
                "CPU time during this run: the absolute figures are not comparable with a quiet "
                "run, and even the interleaved ratios move by several percent."
            )
        else:
            lines.append(f"quiet enough: load stayed <= {cores()} cores.")
        return "\n".join(lines)


def timed(fn: Callable[[], object], clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds of one call by ``clock``: wall time by default; ``time.process_time`` counts
    only the CPU time this process got, which other processes cannot inflate (with one torch
    thread it is the work itself; with more, threads waiting for a core also spin and count)."""
    start = clock()
    fn()
    return clock() - start


def spread(times: Sequence[float], scale: float = 1e3) -> tuple[float, float, float]:
    """(min, median, max) of ``times`` (seconds), times ``scale`` (default: milliseconds)."""
    return min(times) * scale, statistics.median(times) * scale, max(times) * scale


def fmt_spread(times: Sequence[float], scale: float = 1e3, digits: int = 1) -> str:
    """``min / median / max`` of ``times`` in ms (``scale``), right-aligned."""
    lo, mid, hi = spread(times, scale)
    return f"{lo:7.{digits}f} {mid:7.{digits}f} {hi:7.{digits}f}"


def median_interval(values: Sequence[float], z: float = 1.96) -> tuple[float, float]:
    """A distribution-free confidence interval of at least ~95% (``z`` = 1.96; 95-98% in a
    simulation at 10-60 values) for the median of
    ``values``: the sorted values ``k`` places in from either end, ``k`` from the normal
    approximation to the Binomial(n, 1/2) count of values below the median. Noise on a
    shared machine is skewed (other processes only ever add time), which this assumes
    nothing about. With fewer than 6 values, (min, max)."""
    ordered = sorted(values)
    n = len(ordered)
    k = max(0, round((n - z * n**0.5) / 2) - 1) if n >= 6 else 0
    return ordered[k], ordered[n - 1 - k]
