"""How a sweep's jobs are named: which overrides vary, and how keys and values are shown.

One rule for the sweeper (job folder names) and the report (labels), so a folder and its row
always say the same thing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

# Shown as they are in folder names; every other character is percent-encoded (%XX of its UTF-8
# bytes), so two different values can never map to one folder (-1 vs 1, a_b vs a-b).
_SAFE = re.compile(r"[A-Za-z0-9.,+\-]")


def parse_override(override: str) -> tuple[str, str]:
    """``"+loss.bins=100"`` -> ``("loss.bins", "100")``; ``"~key"`` -> ``("key", "")``."""
    key, _, value = str(override).partition("=")
    return key.lstrip("+~"), value


def varying_keys(jobs: Sequence[Mapping[str, str]]) -> list[str]:
    """The keys, in first-seen order, whose values differ between jobs (all keys of one job)."""
    keys: list[str] = []
    for job in jobs:
        keys.extend(k for k in job if k not in keys and not k.startswith("hydra."))
    if len(jobs) <= 1:
        return keys
    return [k for k in keys if len({job.get(k) for job in jobs}) > 1]


def short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Each key shortened to its last part (``loss.bins`` -> ``bins``) unless two share it."""
    short = {k: k.rsplit(".", 1)[-1].rsplit("/", 1)[-1] for k in keys}
    counts = list(short.values())
    return {k: s if counts.count(s) == 1 else k for k, s in short.items()}


def folder_value(value: str) -> str:
    """A value as a folder name shows it: ``-0.5`` stays ``-0.5``, ``a_b`` becomes ``a%5Fb``."""
    return (
        "".join(
            ch
            if _SAFE.fullmatch(ch)
            else "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogateescape"))
            for ch in value
        )
        or "%00"
    )  # an empty value (``key=``) differs from every other


def job_names(jobs: Sequence[Sequence[str]]) -> list[str]:
    """A folder name for each job from the overrides whose values differ between jobs.

    ``[["loss.bins=50", "loss.sigma=100"], ["loss.bins=100", "loss.sigma=100"]]`` gives
    ``["bins-50", "bins-100"]``: ``<key>-<value>`` joined by ``_``, keys shortened as in
    :func:`short_keys`. Distinct value lists give distinct names: values never contain ``_``.
    """
    parsed = [dict(parse_override(o) for o in job) for job in jobs]
    varying = varying_keys(parsed)
    labels = short_keys(varying)
    names = []
    for job in parsed:
        parts = [f"{labels[k]}-{folder_value(job[k])}" for k in varying if k in job]
        names.append("_".join(parts) or "default")
    return names
