"""Parameter importance of a search, with how sure it is.

Optuna's PED-ANOVA evaluator (``optuna.importance.PedAnovaImportanceEvaluator``, the default of
``optuna.importance.get_param_importances`` since Optuna 5, and no scikit-learn) scores how much
each searched key matters for reaching the best 40% of the complete trials (its
``target_quantile``). Optuna's default of 10% leaves two "top" trials of twenty, and then
shuffled values score as high as a real effect. Measured on six studies of 20 random trials over
two keys, one of which sets the value (noise 5% of its range): the permutation test below found
that key (p <= 0.05) in 2 of 6 studies at 10%, 4 of 6 at 25%, 6 of 6 at 40%; the 18 keys without
an effect had p <= 0.05 in 0, 0 and 2 of them (``benchmarks/bench_importance.py``). A score
from twenty trials is itself noisy, so each comes with:

- ``share``: the key's part of the summed scores, and a 95% bootstrap interval of it (the
  complete trials resampled with replacement, :data:`RESAMPLES` times);
- ``p``: a permutation p-value, the chance that the key scores as high when the trial values are
  shuffled among the trials (so no key has any effect): ``(1 + #{shuffled >= observed}) /
  (1 + PERMUTATIONS)``. A key with ``p > 0.05`` is not distinguishable from no effect.

Written by the search (:mod:`histae.search`, which has Optuna) to ``importance.csv`` in the sweep
folder after every trial, once :data:`MIN_TRIALS` trials are complete; the report reads that file
and needs no Optuna.
"""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

IMPORTANCE_CSV = "importance.csv"
"""The search's parameter importance in the sweep folder."""
MIN_TRIALS = 8  # complete trials before any importance: fewer leave PED-ANOVA one or no "top" trial
RESAMPLES = 100  # bootstrap resamples for the interval
PERMUTATIONS = 200  # shuffles for the p-value (smallest p: 1/201)
ALPHA = 0.05
TARGET_QUANTILE = 0.4  # importance for reaching the best 40% of the trials (module docstring)
RULE = (
    f"PED-ANOVA importance (Optuna), for reaching the best {TARGET_QUANTILE:.0%} of the complete "
    f"trials; share of the summed importance with a 95% bootstrap interval ({RESAMPLES} "
    f"resamples of the trials); p: permutation test "
    f"({PERMUTATIONS} shuffles of the trial values); p > {ALPHA} is not distinguishable from no "
    f"effect; none before {MIN_TRIALS} complete trials"
)


@dataclass(frozen=True)
class Importance:
    """One searched key's importance: share of the summed importance (0..1) and its 95%
    bootstrap interval, the permutation p-value, over ``trials`` complete trials."""

    key: str
    share: float
    low: float
    high: float
    p: float
    trials: int

    @property
    def distinguishable(self) -> bool:
        """Whether the key's effect is distinguishable from none (``p <= ALPHA``)."""
        return self.p <= ALPHA


def _raw(optuna: Any, trials: Sequence[Any], values: Sequence[float], direction: str) -> dict:
    """PED-ANOVA's unnormalised importance of each key, for ``trials`` given ``values``."""
    study = optuna.create_study(direction=direction)
    study.add_trials(
        [
            optuna.trial.create_trial(params=t.params, distributions=t.distributions, value=v)
            for t, v in zip(trials, values, strict=True)
        ]
    )
    evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=TARGET_QUANTILE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # normalize=False
        scores = optuna.importance.get_param_importances(
            study, evaluator=evaluator, normalize=False
        )
    return dict(scores)


def _shares(raw: dict, keys: Sequence[str]) -> np.ndarray:
    scores = np.array([max(float(raw.get(k, 0.0)), 0.0) for k in keys])
    total = scores.sum()
    return scores / total if total > 0 else np.full(len(keys), 1.0 / len(keys))


def param_importance(
    optuna: Any, trials: Sequence[Any], direction: str, seed: int = 0
) -> list[Importance]:
    """The importance of each searched key over ``trials`` (Optuna FrozenTrials; the complete
    ones with a finite value count), most important first; [] with fewer than
    :data:`MIN_TRIALS` of them or fewer than two keys (one key's share is always 1).

    ``direction`` is ``"minimize"`` or ``"maximize"``; ``seed`` fixes the resampling, so the
    same trials give the same numbers.
    """
    done = [
        t
        for t in trials
        if t.state == optuna.trial.TrialState.COMPLETE
        and t.value is not None
        and math.isfinite(t.value)
    ]
    keys = sorted({k for t in done for k in t.params})
    if len(done) < MIN_TRIALS or len(keys) < 2:
        return []
    rng = np.random.default_rng(seed)
    values = np.array([t.value for t in done], dtype=float)
    observed = _raw(optuna, done, values, direction)
    share = _shares(observed, keys)
    boot = np.empty((RESAMPLES, len(keys)))
    for i in range(RESAMPLES):
        pick = rng.integers(0, len(done), len(done))
        boot[i] = _shares(_raw(optuna, [done[j] for j in pick], values[pick], direction), keys)
    beaten = np.zeros(len(keys))
    shuffles = np.random.default_rng([seed, 1])  # its own stream: RESAMPLES does not change p
    for _ in range(PERMUTATIONS):
        shuffled = _raw(optuna, done, shuffles.permutation(values), direction)
        beaten += [shuffled.get(k, 0.0) >= observed.get(k, 0.0) for k in keys]
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    out = [
        Importance(
            k,
            float(share[i]),
            float(low[i]),
            float(high[i]),
            float((1 + beaten[i]) / (1 + PERMUTATIONS)),
            len(done),
        )
        for i, k in enumerate(keys)
    ]
    return sorted(out, key=lambda imp: -imp.share)


def importance_csv(importances: Sequence[Importance]) -> str:
    """``importance.csv``: one row per searched key, most important first."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["key", "share", "share_low", "share_high", "p", "trials"])
    for imp in importances:
        writer.writerow(
            [imp.key, repr(imp.share), repr(imp.low), repr(imp.high), repr(imp.p), imp.trials]
        )
    return buf.getvalue()


def read_importance(sweep_dir: str | os.PathLike) -> list[Importance]:
    """The importances of a search's importance.csv; [] when there is none or it is unreadable
    or out of range (the report must not fail on a folder from elsewhere)."""
    from histae.jobdir import Unreadable, read_regular

    try:
        text = read_regular(Path(sweep_dir) / IMPORTANCE_CSV).decode()
        out = [
            Importance(
                r["key"],
                float(r["share"]),
                float(r["share_low"]),
                float(r["share_high"]),
                float(r["p"]),
                int(r["trials"]),
            )
            for r in csv.DictReader(io.StringIO(text))
        ]
    except (OSError, Unreadable, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return []
    numbers = [x for imp in out for x in (imp.share, imp.low, imp.high, imp.p)]
    if not all(math.isfinite(x) and 0.0 <= x <= 1.0 for x in numbers):
        return []
    return out


__all__ = [
    "IMPORTANCE_CSV",
    "MIN_TRIALS",
    "RULE",
    "Importance",
    "importance_csv",
    "param_importance",
    "read_importance",
]
