"""A search's optimisation history (``hydra.sweeper.search``): each trial's value in the order
the search ran them, the best so far as a step line.

Read from the search's ``trials.csv`` (written by :mod:`histae.search`), so the report needs
no Optuna: a complete trial is drawn at its mean over seeds with its standard deviation as an
error bar, a pruned or failed one as a mark on the axis, without a value (a pruned trial's last
intermediate value is one seed's, mid-way, and not comparable).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from histae.importance import Importance
from histae.plots import save_figure, subplots

TRIALS_CSV = "trials.csv"
"""The search's table of trials in the sweep folder."""


@dataclass(frozen=True)
class Trial:
    """One row of trials.csv, as the history needs it."""

    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING
    value: float | None
    std: float | None


def _number(text: str | None) -> float | None:
    try:
        value = float(text or "")
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_trials(sweep_dir: str | os.PathLike) -> list[Trial]:
    """The trials of a search's trials.csv; [] when the sweep is no search or the file is
    unreadable: a link, a FIFO, too large, not a table of ours (the report must not fail or
    hang on a folder from elsewhere; :func:`histae.jobdir.read_regular`)."""
    from histae.jobdir import Unreadable, read_regular

    try:
        text = read_regular(Path(sweep_dir) / TRIALS_CSV).decode()
        return [
            Trial(int(r["number"]), str(r["state"]), _number(r["value"]), _number(r["std"]))
            for r in csv.DictReader(io.StringIO(text))
        ]
    except (OSError, Unreadable, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return []


def best_so_far(trials: Sequence[Trial], higher_is_better: bool) -> list[float | None]:
    """The best complete value up to each trial (None before the first complete one).

    >>> best_so_far([Trial(0, "COMPLETE", 3.0, None), Trial(1, "FAIL", None, None),
    ...              Trial(2, "COMPLETE", 1.0, None)], higher_is_better=False)
    [3.0, 3.0, 1.0]
    """
    best: float | None = None
    out: list[float | None] = []
    for t in trials:
        if t.state == "COMPLETE" and t.value is not None:
            better = best is None or (t.value > best if higher_is_better else t.value < best)
            best = t.value if better else best
        out.append(best)
    return out


def plot_history(
    trials: Sequence[Trial],
    label: str,
    higher_is_better: bool,
    path: str | os.PathLike,
    importances: Sequence[Importance] = (),
) -> list[float | None]:
    """search.png: each complete trial's value (± std over its seeds) against its number, the
    best so far as a step line, pruned and failed trials marked on the bottom axis; with
    ``importances`` (:mod:`histae.importance`) a second panel of each key's share with its 95%
    interval, the keys not distinguishable from no effect hatched. Returns the best-so-far line
    it drew."""
    if importances:
        fig, (ax, side) = subplots(
            1, 2, figsize=(11, 3.6), layout="constrained", width_ratios=(2, 1)
        )
        plot_importance(importances, side)
    else:
        fig, ax = subplots(figsize=(7, 3.6), layout="constrained")
    done = [t for t in trials if t.state == "COMPLETE" and t.value is not None]
    if done:
        ax.errorbar(
            [t.number for t in done],
            [t.value for t in done],
            yerr=[t.std or 0.0 for t in done],
            fmt="o",
            color="tab:blue",
            capsize=3,
            label="complete trial (mean ± std over seeds)",
        )
    best = best_so_far(trials, higher_is_better)
    xs = [t.number for t, b in zip(trials, best, strict=True) if b is not None]
    ax.step(
        xs, [b for b in best if b is not None], where="post", color="tab:red", label="best so far"
    )
    for state, marker, colour in (("PRUNED", "v", "tab:orange"), ("FAIL", "x", "black")):
        numbers = [t.number for t in trials if t.state == state]
        if numbers:
            ax.plot(
                numbers,
                [0.0] * len(numbers),
                marker,
                color=colour,
                transform=ax.get_xaxis_transform(),
                clip_on=False,
                label=f"{state.lower()} (no value)",
            )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trials are numbered
    ax.set_xlabel("trial")
    ax.set_ylabel(label)
    ax.set_title(f"Search history ({'higher' if higher_is_better else 'lower'} is better)")
    ax.legend(fontsize=8)
    save_figure(fig, path)
    return best


def plot_importance(importances: Sequence[Importance], ax: Any) -> None:
    """Horizontal bars, most important on top: share of the summed importance with its 95%
    bootstrap interval and the permutation p-value; hatched and grey when p > 0.05."""
    order = list(reversed(importances))
    ys = range(len(order))
    plain = [imp.distinguishable for imp in order]
    bars = ax.barh(
        ys,
        [imp.share for imp in order],
        xerr=[
            [max(imp.share - imp.low, 0.0) for imp in order],
            [max(imp.high - imp.share, 0.0) for imp in order],
        ],
        color=["tab:blue" if ok else "lightgrey" for ok in plain],
        edgecolor="black",
        capsize=3,
    )
    for bar, y, imp, ok in zip(bars, ys, order, plain, strict=True):
        if not ok:
            bar.set_hatch("//")
        ax.text(
            1.02, y, f"p={imp.p:.2g}", va="center", fontsize=8, transform=ax.get_yaxis_transform()
        )
    ax.set_yticks(list(ys), [imp.key for imp in order], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of importance (95% interval)")
    n = importances[0].trials
    ax.set_title(
        f"Parameter importance ({n} complete trials)\nhatched: p > 0.05, not told from no effect",
        fontsize=9,
    )
