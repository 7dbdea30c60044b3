"""``debug=fdr|overfit|profile``: short runs that check a setup, in lightning-hydra-template's
convention (``conf/debug/``).

A debug option adds a top-level ``debug`` node to the config (and turns the checkpoint and the
extra loggers off). A node of its own, rather than trainer values, because an experiment given
as ``+experiment=...`` is merged after the ``debug`` option and would overwrite its trainer
values; the keys below are read here and applied to the trainer when the job starts:

- ``steps``: train this many steps, then validate once and stop (``max_inputs`` becomes
  ``steps * batch_size``; logging and validation intervals are capped at it).
- ``overfit_batches``: train on only the first this many batches of training tiles, over and
  over; a model that can learn at all drives the loss down on them.
- ``profile_steps``: record this many steps (after one skipped and one warm-up step) with
  ``torch.profiler`` into the job folder's ``profile.json``, a Chrome trace
  (``chrome://tracing``, https://ui.perfetto.dev).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import torch
from omegaconf import DictConfig
from torch import Tensor

PROFILE = "profile.json"
KEYS = ("steps", "overfit_batches", "profile_steps")
# The profiler skips the first step (allocations, the first call's one-off costs) and warms up
# on the second; the trace holds the steps after that.
PROFILE_SKIP, PROFILE_WARMUP = 1, 1


class Stepper(Protocol):
    def step(self) -> None: ...


def debug_node(cfg: DictConfig) -> dict[str, int]:
    """The ``debug`` node's values (all 0 without a debug option), checked.

    Raises:
        ValueError: an unknown key, or a value that is not an integer >= 0 (``debug.<key>``).
    """
    node = cfg.get("debug") or {}
    values = {key: 0 for key in KEYS}
    for key, value in node.items():
        if key not in KEYS:
            raise ValueError(f"debug.{key} is not a debug key; valid: {', '.join(KEYS)}")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"debug.{key} must be an integer >= 0, got {value!r}")
        values[str(key)] = value
    return values


def apply_debug(cfg: DictConfig) -> None:
    """Turn ``debug.steps`` into the trainer's budget, in place (no-op without ``debug``).

    ``steps=1`` at batch 64 gives ``max_inputs=64`` and ``val_every_inputs=64``: one step, one
    validation. ``profile_steps`` needs the skipped and warm-up steps too, so ``steps`` is
    raised to ``profile_steps + 2`` when it is lower.
    """
    debug = debug_node(cfg)
    steps = debug["steps"]
    if debug["profile_steps"]:
        steps = max(steps, debug["profile_steps"] + PROFILE_SKIP + PROFILE_WARMUP)
    if not steps:
        return
    t = cfg.trainer
    t.max_inputs = steps * t.batch_size
    t.val_every_inputs = min(t.val_every_inputs, t.max_inputs)
    t.log_every_inputs = min(t.log_every_inputs, t.max_inputs)


def overfit_tiles(tiles: Tensor, cfg: DictConfig) -> Tensor:
    """The (N, C, H, W) training tiles, or only the first ``debug.overfit_batches`` batches of
    them. The first ones, so the loss's cached per-tile targets (indexed by tile) still match."""
    batches = debug_node(cfg)["overfit_batches"]
    if not batches:
        return tiles
    count = batches * cfg.trainer.batch_size
    if count > len(tiles):
        raise ValueError(
            f"debug.overfit_batches={batches} needs {count} training tiles, the data has "
            f"{len(tiles)}; lower it"
        )
    return tiles[:count]


class _NoProfiler:
    def step(self) -> None:
        pass


@contextlib.contextmanager
def step_profiler(cfg: DictConfig, job_dir: Path, device: torch.device) -> Iterator[Stepper]:
    """A profiler whose ``step()`` the loop calls after each training step; with
    ``debug.profile_steps`` it writes ``<job_dir>/profile.json`` once those steps are recorded.
    Without, ``step()`` does nothing."""
    active = debug_node(cfg)["profile_steps"]
    if not active:
        yield _NoProfiler()
        return
    from torch.profiler import ProfilerActivity, profile, schedule

    def export(prof: Any) -> None:
        # Whole or nothing, like every job file: a temp file, then a rename.
        tmp = job_dir / f".{PROFILE}.tmp"
        prof.export_chrome_trace(str(tmp))
        os.replace(tmp, job_dir / PROFILE)

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(
        activities=activities,
        schedule=schedule(wait=PROFILE_SKIP, warmup=PROFILE_WARMUP, active=active, repeat=1),
        on_trace_ready=export,
    ) as prof:
        yield prof
