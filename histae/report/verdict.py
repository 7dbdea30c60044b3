"""How sure the report is: which setting is best, and which are indistinguishable from it.

The rule, written on every sweep page and into results.json (:data:`RULE`):

- **Uncertainty** of a setting is over its seeds (``trainer.seed=1,2,3``): the mean, the sample
  standard deviation and a 95% confidence interval of the mean by Student's t with ``n - 1``
  degrees of freedom, ``mean ± t(0.975, n-1) · std / sqrt(n)``. One seed has no uncertainty:
  no std, no interval (never a zero that reads as "certain").
- **Who is ranked**: a setting whose every job ended ``done`` with a final value of the lead
  metric. A collapsed job's value counts in its setting's mean (collapse is what that setting
  does at that seed, and dropping it would flatter the setting), but a setting with a collapsed
  job is never the best; diverged, failed, stopped, running and unreadable jobs leave their
  setting unranked.
- **Best**: the ranked setting without collapsed jobs with the best mean. It is starred only
  when it is known to be better than something: it has two or more seeds and at least one
  other setting is either distinguishable from it or not ranked. Otherwise nothing is starred
  and the page says why.
- **Indistinguishable from the best**: a ranked setting with two or more seeds whose difference
  from the best is not significant by Welch's two-sided t-test at the 5% level (``p > 0.05``).
  Each setting is tested against the best alone, without a correction for the number of
  comparisons: a correction would only widen the group. A setting with one seed cannot be
  judged (``None``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from histae.report.measures import Metric
from histae.report.settings import Setting, Stat

ALPHA = 0.05
"""Welch's test level: p above it is "indistinguishable"."""

SEEDS_HINT = "trainer.seed=1,2,3"
"""What a user adds to a sweep to get uncertainty."""

RULE = (
    "Uncertainty: mean ± 95% confidence interval over a setting's seeds (Student's t, n-1 "
    "degrees of freedom); one seed has none. Ranked: settings whose jobs all ended done "
    "(collapsed jobs count in the mean). Best: the ranked setting with no collapsed job and the "
    "best mean, starred only when it has 2 or more seeds and differs from at least one other "
    "setting. Indistinguishable from the best (≈): Welch's two-sided t-test against the best, "
    f"p > {ALPHA}, each setting tested alone."
)


def welch_p(a: Stat, b: Stat) -> float | None:
    """Welch's two-sided t-test p-value for the means of ``a`` and ``b``; None below 2 seeds.

    Two settings without any spread are equal (p = 1) when their means are, else distinct (0).
    """
    if a.n < 2 or b.n < 2 or a.std is None or b.std is None:
        return None
    if a.std == 0 and b.std == 0:  # scipy's t is 0/0 here
        return 1.0 if a.mean == b.mean else 0.0
    from scipy.stats import ttest_ind_from_stats

    result = ttest_ind_from_stats(a.mean, a.std, a.n, b.mean, b.std, b.n, equal_var=False)
    return float(result.pvalue)


def ranked(setting: Setting, lead: Metric) -> bool:
    """Whether ``setting`` is ranked: all its jobs done, and a final value of ``lead``."""
    stat = setting.stat(lead.key)
    return (
        all(job.state == "done" for job in setting.jobs)
        and stat is not None
        and stat.n == len(setting.jobs)
        and math.isfinite(stat.mean)
    )


@dataclass
class Verdict:
    """The report's answer to "which setting is best on ``lead``?", and how sure it is."""

    lead: Metric
    leader: Setting | None = None  # the ranked setting with the best mean (starred or not)
    best: Setting | None = None  # the leader when the rule may star it, else None
    p_values: dict[str, float | None] = field(default_factory=dict)  # label -> p vs the leader
    unranked: list[Setting] = field(default_factory=list)
    sentence: str = ""  # the answer in words, the page's first line
    warnings: list[str] = field(default_factory=list)  # what the page must lead with

    def indistinguishable(self, setting: Setting) -> bool | None:
        """Whether ``setting`` is indistinguishable from the leader (the leader itself: True);
        None when that cannot be judged (one seed, not ranked, no leader)."""
        if self.leader is None or setting in self.unranked:
            return None
        if setting is self.leader:
            return True if self.leader.stat(self.lead.key).n > 1 else None  # type: ignore[union-attr]
        p = self.p_values.get(setting.label)
        return None if p is None else p > ALPHA

    @property
    def group(self) -> list[str]:
        """Labels of the other settings indistinguishable from the leader."""
        return [label for label, p in self.p_values.items() if p is not None and p > ALPHA]


def _collapse_warning(settings: Sequence[Setting]) -> str | None:
    jobs = [job for s in settings for job in s.jobs]
    collapsed = sum(job.collapsed for job in jobs)
    if not jobs or collapsed * 2 <= len(jobs):
        return None
    inputs = sorted({job.record.inputs for job in jobs if job.record.inputs})
    budget = f" after {inputs[-1]:,} images" if inputs else ""
    return (
        f"{collapsed} of {len(jobs)} jobs collapsed{budget}: their outputs left the "
        "histogram's range [loss.min, loss.max], where the loss gives no gradient, so their "
        "metrics say nothing about the setting. Likely cause: too few images "
        "(trainer.max_inputs; the default is 48,000) or the seed. Remedy: a larger "
        f"trainer.max_inputs, or several seeds ({SEEDS_HINT})."
    )


def judge(settings: Sequence[Setting], lead: Metric) -> Verdict:
    """Apply the rule in the module docstring to ``settings`` on ``lead``."""
    verdict = Verdict(lead)
    collapse = _collapse_warning(settings)
    if collapse:
        verdict.warnings.append(collapse)
    ranked_settings = [s for s in settings if ranked(s, lead)]
    verdict.unranked = [s for s in settings if s not in ranked_settings]
    candidates = [s for s in ranked_settings if not s.collapsed]
    what = lead.label
    if not candidates:
        if ranked_settings:
            verdict.sentence = (
                f"No setting is best on {what}: every setting with all its jobs done has "
                "collapsed jobs."
            )
        elif any(s.stat(lead.key) for s in settings):
            verdict.sentence = f"No setting is ranked on {what}: none has all its jobs done."
        else:
            verdict.sentence = f"No setting has a final {what} yet."
        return verdict

    def mean(s: Setting) -> float:
        return s.stat(lead.key).mean  # type: ignore[union-attr]

    leader = candidates[0]
    for s in candidates[1:]:
        if lead.better(mean(s), mean(leader)):
            leader = s
    verdict.leader = leader
    lead_stat = leader.stat(lead.key)
    assert lead_stat is not None
    others = [s for s in ranked_settings if s is not leader]
    for s in others:
        verdict.p_values[s.label] = welch_p(lead_stat, s.stat(lead.key))  # type: ignore[arg-type]
    value = f"{lead_stat.mean:.4g}"
    if len(settings) == 1:
        verdict.sentence = f"One setting ({what} {value}); nothing to compare it with."
        return verdict
    if lead_stat.n < 2:
        verdict.sentence = (
            f"{leader.label} has the best {what} ({value}), but with one seed the report "
            "cannot tell that from seed-to-seed noise: nothing is starred. Rerun with "
            f"{SEEDS_HINT} to judge."
        )
        return verdict
    group = verdict.group
    unknown = [label for label, p in verdict.p_values.items() if p is None]
    seeds = f"{lead_stat.n} seeds, Welch's t-test, p > {ALPHA}"
    if len(group) == len(others) and not verdict.unranked:
        verdict.sentence = (
            f"No setting is distinguishable from another on {what} at this budget ({seeds})."
        )
        return verdict
    if len(group) + len(unknown) == len(others) and not verdict.unranked and unknown:
        verdict.sentence = (
            f"{leader.label} has the best {what} ({value}), but no other setting is known to "
            f"differ from it ({len(unknown)} with one seed cannot be judged; {SEEDS_HINT})."
        )
        return verdict
    verdict.best = leader
    n = len(group)
    tail = (
        f"{n} other setting{'s are' if n != 1 else ' is'} indistinguishable from it ({seeds})"
        if n
        else f"every other setting differs from it ({lead_stat.n} seeds, Welch's t-test, p ≤ "
        f"{ALPHA}, or not ranked)"
    )
    verdict.sentence = f"{leader.label} is best on {what} ({value}); {tail}."
    flattered = [s for s in ranked_settings if s.collapsed and lead.better(mean(s), mean(leader))]
    if flattered:
        verdict.sentence += (
            f" {len(flattered)} setting(s) with a better mean have collapsed jobs and are never "
            "best."
        )
    if unknown:
        verdict.sentence += f" {len(unknown)} setting(s) with one seed are not judged."
    if verdict.unranked:
        verdict.sentence += f" {len(verdict.unranked)} setting(s) are not ranked (see status)."
    return verdict
