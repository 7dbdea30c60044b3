"""Settings: jobs that differ only in ``trainer.seed`` are replicates of one setting.

``-m loss.bins=50,200 trainer.seed=1,2,3`` has two settings of three seeds each; the table,
heatmaps and curves show each setting's mean and spread over its seeds, and say how many.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_hex

from histae.report.measures import METRICS, Metric, row_value
from histae.report.reading import Job


@dataclass(frozen=True)
class Stat:
    """A metric over a setting's seeds: mean, sample std, min, max, count, 95% interval.

    One seed has no uncertainty: ``std`` and ``ci95`` are None, never a zero that reads as
    "certain" (:mod:`histae.report.verdict` states the rule).
    """

    mean: float
    std: float | None
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat | None:
        """The statistics of ``values``, or None if there are none."""
        if not values:
            return None
        a = np.asarray(values, dtype=np.float64)
        std = float(a.std(ddof=1)) if len(a) > 1 else None
        return cls(float(a.mean()), std, float(a.min()), float(a.max()), len(a))

    @property
    def ci95(self) -> tuple[float, float] | None:
        """The mean's 95% confidence interval, Student's t with ``n - 1`` degrees of freedom."""
        if self.std is None or not math.isfinite(self.std):
            return None
        half = student_t95(self.n) * self.std / math.sqrt(self.n)
        return (self.mean - half, self.mean + half)


def student_t95(n: int) -> float:
    """The two-sided 95% quantile of Student's t with ``n - 1`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1))


@dataclass
class Setting:
    """The jobs of one setting (its seeds), in seed order."""

    values: dict[str, str]  # setting key -> value, as in the overrides
    label: str
    jobs: list[Job]
    color: str = "#000000"  # its colour in every plot and in the table
    stats: dict[str, Stat | None] = field(default_factory=dict)  # metric key -> over seeds

    @property
    def collapsed(self) -> int:
        """How many of its jobs collapsed."""
        return sum(job.collapsed for job in self.jobs)

    def stat(self, key: str) -> Stat | None:
        """The setting's ``key`` over the seeds that have a final validation value."""
        if key not in self.stats:
            values = [final_value(job, key) for job in self.jobs]
            self.stats[key] = Stat.of([v for v in values if v is not None])
        return self.stats[key]


def final_value(job: Job, key: str) -> float | None:
    """The job's last validation value of ``key`` (``hist_tv`` computed), or None."""
    return row_value(job.record.final("val"), key, job.config)


def group_settings(jobs: Sequence[Job]) -> list[Setting]:
    """The settings of labelled jobs (:func:`histae.report.reading.label_jobs`), in job order."""
    groups: dict[tuple[tuple[str, str], ...], Setting] = {}
    for job in jobs:
        key = tuple(job.setting.items()) or (("job", job.name),)
        if key not in groups:
            groups[key] = Setting(dict(job.setting), job.label, [])
        groups[key].jobs.append(job)
    settings = list(groups.values())
    for setting, color in zip(settings, colors(len(settings)), strict=True):
        setting.color = color
    return settings


def colors(n: int) -> list[str]:
    """``n`` distinguishable colours as ``#rrggbb``: tab10 up to 9, tab20 up to 18, then turbo.

    The palettes' greys are left out: grey is the plots' colour for train averages and seeds'
    bands, so a grey setting would read as one of those.
    """
    for name, size in (("tab10", 9), ("tab20", 18)):
        if n <= size:
            chosen = [to_hex(c) for c in colormaps[name].colors]
            return [c for c in chosen if not _is_grey(c)][:n]
    return [to_hex(c) for c in colormaps["turbo"](np.linspace(0.05, 0.95, n))]


def _is_grey(color: str) -> bool:
    return color[1:3] == color[3:5] == color[5:7]


def lead_metrics(settings: Sequence[Setting]) -> list[Metric]:
    """The metrics of :data:`METRICS` that at least one job has a final value of."""
    return [m for m in METRICS.values() if any(s.stat(m.key) for s in settings)]


def sort_settings(settings: Sequence[Setting], lead: Metric) -> list[Setting]:
    """Best mean ``lead`` first; settings without a value last, in their given order."""

    def key(setting: Setting) -> tuple[int, float]:
        stat = setting.stat(lead.key)
        if stat is None or not math.isfinite(stat.mean):
            return (1, 0.0)
        return (0, -stat.mean if lead.higher_is_better else stat.mean)

    return sorted(settings, key=key)


def has_replicates(settings: Sequence[Setting]) -> bool:
    """Whether any setting has more than one job (seed)."""
    return any(len(s.jobs) > 1 for s in settings)
