"""How jobs are named to people: which overrides vary, shortened keys, titles from a config.

One rule for every place a job is named: the sweeper's folder names, the report's labels, table
columns and plot titles. ``varying_keys`` and ``short_keys`` are the sweeper's naming rule; the
report imports the same functions, so a folder and its label can never disagree.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

REPLICATE_KEY = "trainer.seed"
"""Swept beside other keys, this key is repetition (replicates), not a setting."""


def split_override(override: str) -> tuple[str, str]:
    """``"+loss.bins=100"`` -> ``("loss.bins", "100")``; ``"~x"`` -> ``("x", "")``."""
    key, _, value = str(override).partition("=")
    return key.lstrip("+~"), value


def parse_overrides(overrides: Sequence[str]) -> dict[str, str]:
    """``["loss.bins=100", "+x=a=b", "~y"]`` -> ``{"loss.bins": "100", "x": "a=b", "y": ""}``."""
    return dict(split_override(o) for o in overrides)


def varying_keys(jobs: Sequence[Mapping[str, str]]) -> list[str]:
    """The keys whose values differ between jobs, in first-seen order (every key for one job).

    ``hydra.*`` keys (``hydra.sweep.subdir``...) say where a job runs, not what it computes.
    """
    keys: list[str] = []
    for job in jobs:
        keys.extend(k for k in job if k not in keys and not k.startswith("hydra."))
    if len(jobs) <= 1:
        return keys
    return [k for k in keys if len({job.get(k) for job in jobs}) > 1]


def short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Each key by its last part (``loss.bins`` -> ``bins``) unless two keys share that part."""
    short = {k: k.rsplit(".", 1)[-1].rsplit("/", 1)[-1] for k in keys}
    counts = list(short.values())
    return {k: s if counts.count(s) == 1 else k for k, s in short.items()}


def value_key(value: str) -> tuple[int, float, str]:
    """Sort key of an override value: numbers numerically (``1e2`` = 100), before any text."""
    try:
        number = float(value)
    except ValueError:
        return (1, 0.0, value)
    return (0, number, "") if math.isfinite(number) else (1, 0.0, value)


def natural_key(name: str) -> tuple[tuple[int, float, str], ...]:
    """Sort key of a folder name with its numbers compared as numbers (job-2 < job-10)."""
    return tuple(value_key(part) for part in re.split(r"(\d+(?:\.\d+)?)", name) if part)


def label(values: Mapping[str, str], short: Mapping[str, str]) -> str:
    """``{"loss.bins": "100", "loss.sigma": "50"}`` -> ``"bins=100, sigma=50"``."""
    return ", ".join(f"{short.get(k, k)}={v}" for k, v in values.items())


# ----------------------------------------------------------------------------------------------
# Titles and axis labels from a job's resolved config (summary.json's "config")


def _get(config: Mapping[str, Any], *path: str) -> Any:
    node: Any = config
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def is_histogram_loss(config: Mapping[str, Any]) -> bool:
    """Whether the job trained on a soft-histogram loss (it has ``loss.bins``)."""
    return _get(config, "loss", "bins") is not None


def loss_name(config: Mapping[str, Any]) -> str:
    """``"l1"`` for the histogram loss's distance, ``"pixel L1"`` for a plain pixel loss."""
    if is_histogram_loss(config):
        return str(_get(config, "loss", "loss") or "?")
    target = str(_get(config, "loss", "_target_") or "")
    return {"torch.nn.L1Loss": "pixel L1", "torch.nn.MSELoss": "pixel MSE"}.get(
        target, target.rsplit(".", 1)[-1] or "?"
    )


def describe_config(config: Mapping[str, Any] | None) -> str:
    """A plot title from a job's config: ``"l1, bins 100, sigma 100, 48,000 inputs"``.

    Only what differs from the reference's pooled, raw-count setting is added
    (``per channel``, ``normalised``, the kernel); ``""`` for a missing config.
    """
    if not config:
        return ""
    parts = [loss_name(config)]
    if is_histogram_loss(config):
        parts += [
            f"bins {_number(_get(config, 'loss', 'bins'))}",
            f"sigma {_number(_get(config, 'loss', 'sigma'))}",
        ]
        if _get(config, "loss", "per_channel"):
            parts.append("per channel")
        normalize = _get(config, "loss", "normalize")
        if normalize:
            parts.append("normalised" if normalize is True else f"normalised (p={normalize})")
        kernel = _get(config, "loss", "kernel")
        if kernel and kernel != "sigmoid":
            parts.append(f"{kernel} kernel")
    inputs = _get(config, "trainer", "max_inputs")
    if isinstance(inputs, int):
        parts.append(f"{inputs:,} inputs")
    seed = _get(config, "trainer", "seed")
    if seed is not None:
        parts.append(f"seed {seed}")
    return ", ".join(parts)


def loss_axis_label(config: Mapping[str, Any] | None) -> str:
    """What a job's ``loss`` column is, for a y axis: ``"histogram l1 of raw soft counts"``."""
    if not config:
        return "loss"
    if not is_histogram_loss(config):
        return f"{loss_name(config)} loss"
    normalize = _get(config, "loss", "normalize")
    scale = "raw soft counts" if not normalize else "normalised histograms"
    pooled = "per channel" if _get(config, "loss", "per_channel") else "channels pooled"
    return f"histogram {loss_name(config)} loss ({scale}, {pooled})"


# ----------------------------------------------------------------------------------------------
# Folder names (the sweeper)

# Shown as they are in folder names; every other character is percent-encoded (%XX of its UTF-8
# bytes), so two different values can never map to one folder (-1 vs 1, a_b vs a-b).
_SAFE = re.compile(r"[A-Za-z0-9.,+\-]")


def folder_value(value: str) -> str:
    """A value as a folder name shows it: ``-0.5`` stays ``-0.5``, ``a_b`` becomes ``a%5Fb``."""
    encoded = "".join(
        ch
        if _SAFE.fullmatch(ch)
        else "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogateescape"))
        for ch in value
    )
    return encoded or "%00"  # an empty value (``key=``) differs from every other


def job_names(jobs: Sequence[Sequence[str]]) -> list[str]:
    """A folder name for each job from the overrides whose values differ between jobs.

    ``[["loss.bins=50", "loss.sigma=100"], ["loss.bins=100", "loss.sigma=100"]]`` gives
    ``["bins-50", "bins-100"]``: ``<key>-<value>`` joined by ``_``, keys shortened as in
    :func:`short_keys`. Distinct value lists give distinct names: values never contain ``_``.
    """
    parsed = [parse_overrides(job) for job in jobs]
    varying = varying_keys(parsed)
    labels = short_keys(varying)
    names = []
    for job in parsed:
        parts = [f"{labels[k]}-{folder_value(job[k])}" for k in varying if k in job]
        names.append("_".join(parts) or "default")
    return names
