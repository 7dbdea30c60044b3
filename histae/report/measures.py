"""What the report compares jobs by: metrics that mean the same at every setting.

The raw histogram loss does not: with ``l1`` on raw soft counts, every bin's mean absolute count
difference shrinks as the counts spread over more bins, so the same reconstruction scores about
``1/bins`` (a network whose outputs all left the range scores ``3072/bins``). The report leads
with comparable metrics instead:

- ``hist_w1``: the exact 1-D Wasserstein distance between the per-channel colour distributions of
  reconstruction and original (no bins at all), from metrics.csv;
- ``pixel_l1`` and ``psnr`` of the clamped reconstructions;
- ``hist_tv``: the histogram loss normalised to a total-variation distance. For ``loss=l1``
  (alias ``mae``), mean reduction over ``bins`` bins of histograms of ``N`` values each
  (``N = C*H*W`` pooled, ``H*W`` per channel), ``sum_k |a_k - b_k| = bins * loss``, so

      hist_tv = bins * loss_reconstruction / (2 * N)       (normalize=false: raw counts)
      hist_tv = bins * loss_reconstruction / 2             (normalize=true: fractions)

  the total-variation distance between the two soft histograms as distributions: 0 when they
  agree, 1 when they do not overlap, 0.5 for the collapse. It is on one scale at every ``bins``
  (finer bins still resolve finer differences). Other distances have no such rescaling here
  and get no ``hist_tv``; their raw loss is shown, labelled as not comparable across bins.

Collapse: a job is ``collapsed`` when at least :data:`COLLAPSE_FRACTION` of the values of its
last validation reconstructions (samples.npz) lie outside ``[loss.min, loss.max]``, where the
sigmoid kernel is flat and gives no gradient back (README: "Outputs that leave [min, max] stop
learning"). A real ``trainer.seed=0`` job has 99.6% of its values below 0 after 4,000 inputs,
a learning one a few percent. Reading the outputs, not the loss, works for every distance and
does not depend on how many pixels are exactly at the range's edge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from histae.jobdir import SAMPLES, Unreadable, finite_or_none, read_samples

COLLAPSE_FRACTION = 0.95
"""A job is collapsed when at least this fraction of its output values left the loss's range."""


@dataclass(frozen=True)
class Metric:
    """A validation metric the report can lead with."""

    key: str  # metrics.csv column (or ``hist_tv``, computed here)
    label: str  # column heading and axis label
    higher_is_better: bool = False

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a > b if self.higher_is_better else a < b


METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric("hist_w1", "colour W1 (hist_w1)"),
        Metric("pixel_l1", "pixel L1"),
        Metric("psnr", "PSNR (dB)", higher_is_better=True),
        Metric("hist_tv", "histogram loss, normalised (TV)"),
        Metric("retrieval_top1_joint", "colour retrieval top-1 (joint)", higher_is_better=True),
        Metric(
            "retrieval_top1_channel", "colour retrieval top-1 (per channel)", higher_is_better=True
        ),
        Metric("retrieval_rank_joint", "mean rank of own original (joint)"),
        Metric("spread_ratio", "spread of outputs / inputs", higher_is_better=True),
    )
}
"""The lead metrics in the order shown; a sweep shows those its jobs have values for."""

DEFAULT_LEAD = "hist_w1"

RAW_LOSS = Metric("loss", "raw loss (not comparable across bins)")
"""The loss as logged: shown beside the lead metrics, never ranked."""


def section(config: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``config[key]`` if it is a mapping, else {} (a hand-edited summary may hold anything)."""
    value = config.get(key) if isinstance(config, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _pixels_per_histogram(config: Mapping[str, Any]) -> int | None:
    shape = section(config, "model").get("shape")
    if not isinstance(shape, list) or len(shape) != 3 or not all(isinstance(s, int) for s in shape):
        return None
    per_channel = bool(section(config, "loss").get("per_channel"))
    return shape[1] * shape[2] if per_channel else math.prod(shape)


def tv_scale(config: Mapping[str, Any]) -> float | None:
    """The factor that turns the job's ``loss_reconstruction`` into ``hist_tv``, or None.

    Only for ``l1``/``mae`` on raw counts or on fractions (see the module docstring).
    """
    loss = section(config, "loss")
    if loss.get("_target_") != "histae.loss.HistogramLoss":  # a joint or RGB-uv histogram's
        return None  # l1 has other totals, a composite's loss is a weighted sum
    bins, normalize = loss.get("bins"), loss.get("normalize")
    if loss.get("loss") not in ("l1", "mae") or not isinstance(bins, int) or bins < 1:
        return None
    if normalize is True:
        return bins / 2
    if normalize is False or normalize is None:
        pixels = _pixels_per_histogram(config)
        return bins / (2 * pixels) if pixels else None
    return None  # normalised by the output's p-norm: no fixed total to divide by


def normalised_loss(row: Mapping[str, Any], config: Mapping[str, Any]) -> float | None:
    """``hist_tv`` of one metrics row, or None where the loss has no normalisation."""
    scale = tv_scale(config)
    value = finite_or_none(row.get("loss_reconstruction"))
    return None if scale is None or value is None else value * scale


def row_value(row: Mapping[str, Any], key: str, config: Mapping[str, Any]) -> float | None:
    """``key`` of a metrics row as a finite float (``hist_tv`` computed), or None."""
    if key == "hist_tv":
        return normalised_loss(row, config)
    return finite_or_none(row.get(key))


def is_collapsed(job_dir: Path, config: Mapping[str, Any]) -> bool:
    """Whether the job's last reconstructions all but left the loss's range (docstring above)."""
    loss = section(config, "loss")
    if loss.get("bins") is None:
        return False  # pixel losses have gradients everywhere
    low, high = finite_or_none(loss.get("min")), finite_or_none(loss.get("max"))
    low, high = (0.0 if low is None else low), (1.0 if high is None else high)
    try:
        outputs = read_samples(job_dir / SAMPLES)["reconstructions"]
    except (Unreadable, FileNotFoundError):
        return False
    if not np.issubdtype(outputs.dtype, np.number) or outputs.size == 0:
        return False
    outside = (outputs < low) | (outputs > high)
    return bool(outside.mean() >= COLLAPSE_FRACTION)
