"""Checks of a job's config and folder that run before anything is built or written.

Each raises one ``ValueError`` naming the key or folder, what is valid, and what arrived.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from histae.checkpoint import first_difference, typed_keys
from histae.jobdir import MULTIRUN, read_overrides, recorded_config


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def check_config(cfg: DictConfig) -> None:
    """Reject values the schemas' types cannot: one ValueError naming the key and what is valid."""
    t = cfg.trainer
    for key in ("batch_size", "max_inputs", "val_every_inputs", "log_every_inputs"):
        if t[key] < 1:
            raise ValueError(f"trainer.{key} must be >= 1, got {t[key]}")
    if t.val_images < 0:
        raise ValueError(f"trainer.val_images must be >= 0, got {t.val_images}")
    if t.threads < 0:
        raise ValueError(f"trainer.threads must be >= 0 (0 = torch's default), got {t.threads}")
    if not (_finite(t.code_reg_weight) and t.code_reg_weight >= 0):
        raise ValueError(
            f"trainer.code_reg_weight must be a finite number >= 0, got {t.code_reg_weight}"
        )
    lr = cfg.optimizer.get("lr")
    if lr is not None and not (_finite(lr) and lr > 0):
        raise ValueError(f"optimizer.lr must be a finite number > 0, got {lr}")
    check_optimizer(cfg)
    check_scheduler(cfg)
    check_histogram_memory(cfg)
    resolve_device(t.device)


def check_optimizer(cfg: DictConfig) -> None:
    """Refuse optimizer values torch would reject mid-setup with a message naming no key."""
    opt = cfg.optimizer
    for key, low in (("weight_decay", 0.0), ("momentum", 0.0), ("eps", None)):
        value = opt.get(key)
        if value is None:
            continue
        if not _finite(value) or (low is not None and value < low) or (low is None and value <= 0):
            bound = f">= {low:g}" if low is not None else "> 0"
            raise ValueError(f"optimizer.{key} must be a finite number {bound}, got {value}")
    betas = opt.get("betas")
    if betas is not None:
        values = list(betas) if not isinstance(betas, str | int | float) else [betas]
        if len(values) != 2 or not all(_finite(b) and 0 <= b < 1 for b in values):
            raise ValueError(
                f"optimizer.betas must be two numbers in [0, 1), e.g. [0.9, 0.999], got {betas}"
            )


def check_scheduler(cfg: DictConfig) -> None:
    """Refuse scheduler values that would train on a NaN or negative learning rate."""
    eta_min = cfg.scheduler.get("eta_min") if cfg.get("scheduler") is not None else None
    if eta_min is not None and not (_finite(eta_min) and eta_min >= 0):
        raise ValueError(f"scheduler.eta_min must be a finite number >= 0, got {eta_min}")


# Measured peak memory of one histogram-loss step (fwd + bwd) per image and bin: about 2 KB at
# 10,000 and 30,000 bins (1.4 and 3.7 GB at batch 64). Allow half of this machine's memory.
_BYTES_PER_IMAGE_BIN = 2048


def check_histogram_memory(cfg: DictConfig) -> None:
    """Refuse a ``loss.bins`` whose per-step histograms would not fit in memory, before training."""
    bins = cfg.loss.get("bins")
    if not isinstance(bins, int) or bins < 1:
        return
    groups = cfg.model.shape[0] if cfg.loss.get("per_channel") else 1
    per_bin = cfg.trainer.batch_size * groups * _BYTES_PER_IMAGE_BIN
    budget = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    if bins * per_bin > budget:
        need = f"{bins * per_bin / 2**30:.0f} GiB per step"
        batch = cfg.trainer.batch_size
        # These bins fit at the reference's batch of 64: the batch is what the user raised.
        if batch > 64 and bins * 64 * groups * _BYTES_PER_IMAGE_BIN <= budget:
            largest = max(1, budget // (bins * groups * _BYTES_PER_IMAGE_BIN))
            raise ValueError(
                f"trainer.batch_size={batch} needs about {need} with loss.bins={bins}, over half "
                f"this machine's memory; use trainer.batch_size of at most {largest}"
            )
        raise ValueError(
            f"loss.bins={bins} needs about {need} at trainer.batch_size={batch}, over half this "
            f"machine's memory; use at most {budget // per_bin} bins"
        )


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda if available else cpu; ``cpu``, ``cuda``, ``cuda:N`` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"trainer.device must be auto, cpu, cuda or cuda:N, got {name!r}")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(
            f"trainer.device must be auto, cpu, cuda or cuda:N, got {name!r}"
        ) from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(
                f"trainer.device={name} but no CUDA device is available; use auto or cpu"
            )
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"trainer.device={name} but this machine has {count} CUDA device(s): "
                f"use cuda:0 to cuda:{count - 1}"
            )
    return device


def typed_in(job_dir: Path, overrides: Sequence[str]) -> set[str]:
    """The keys typed on this command line (``overrides``) or on the one that made the job in
    ``job_dir`` (its ``.hydra/overrides.yaml``): where a difference between the two is named."""
    try:
        before = read_overrides(job_dir)
    except (OSError, ValueError):  # an unreadable record: this command's keys alone
        before = []
    return typed_keys([*overrides, *before])


def check_folder(
    job_dir: Path, config: dict[str, Any], replace: bool = False, typed: Sequence[str] = ()
) -> None:
    """Refuse a folder that holds a sweep, or another job (a different config), before any write.

    ``replace`` (``trainer.resume=false``) lets a job start over in another job's folder.
    ``typed``: this command's overrides; with the folder's own, they say which differing key
    to name (the one the user typed, not a key derived from it).
    """
    if (job_dir / MULTIRUN).is_file():
        raise ValueError(
            f"{job_dir} is a sweep folder (it holds {MULTIRUN} and job folders), not a job's; "
            "choose another hydra.run.dir"
        )
    recorded = None if replace else recorded_config(job_dir)
    if recorded is None:
        return
    difference = first_difference(recorded, config, typed_in(job_dir, typed))
    if difference is not None:
        key, old, new = difference
        raise ValueError(
            f"{job_dir} holds another job (made with {key}={old}, the config says {key}={new}); "
            "choose another folder, or use trainer.resume=false to replace it"
        )
