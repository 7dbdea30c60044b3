"""From a composed config to the objects a job trains with: data, model, objective, optimizer."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from histae.checkpoint import RUNTIME_KEYS
from histae.checks import resolve_device
from histae.data import TileSet
from histae.hydra_compat import trusted_targets
from histae.objective import Objective
from histae.perf import per_tile_criterion, prepare_model


def build(node: DictConfig) -> Any:
    """``instantiate(node)``, but a ValueError or OSError from the target surfaces as itself.

    Hydra wraps every error of a target in an InstantiationException whose message repeats the
    target's path; the user's problem is the wrapped one-line message, so that is what we raise.
    """
    try:
        with trusted_targets():  # Hydra 1.4's execution whitelist: histae's and torch's targets
            return instantiate(node)
    except InstantiationException as err:
        if isinstance(err.__cause__, ValueError | OSError):
            raise err.__cause__ from None
        raise


def option_config(option: str, *overrides: str) -> DictConfig:
    """The resolved node of one config option, e.g. ``option_config("loss/histogram")``.

    ``option`` is ``group/name`` as on the command line (``loss=histogram``); ``overrides`` are
    command-line overrides of the whole config (``"model.shape=[3,64,64]"``). The option is
    composed into the root config, so its interpolations (``data.shape`` follows ``model.shape``)
    resolve as in a job; environment variables are read at each call. Not for use inside a
    running Hydra app.
    """
    group, _, name = option.partition("/")
    if not name:
        raise ValueError(f"option must be group/name (e.g. loss/histogram), got {option!r}")
    root = OmegaConf.create(_composed(f"{group}={name}", *overrides))
    node = OmegaConf.create(OmegaConf.to_container(root[group], resolve=True))
    assert isinstance(node, DictConfig)
    return node


@functools.cache
def _composed(*overrides: str) -> dict[str, Any]:
    """The root config composed with ``overrides``, unresolved; composing costs ~0.1 s."""
    from hydra import compose, initialize_config_dir  # a job never needs these
    from hydra.core.global_hydra import GlobalHydra

    from histae.config import CONFIG_DIR, register
    from histae.hydra_compat import VERSION_BASE

    if GlobalHydra.instance().is_initialized():  # clearing it would break the running app
        raise RuntimeError(
            "build_option composes its own config and cannot run inside a Hydra app or "
            "initialize() block; there, compose the option and call hydra.utils.instantiate"
        )
    register()
    try:
        with initialize_config_dir(CONFIG_DIR, **VERSION_BASE):
            cfg = compose("config", overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()
    container = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(container, dict)
    return container


def build_option(option: str, **values: Any) -> Any:
    """One config option built with its YAML values, any of them replaced by ``values``.

    ``build_option("loss/histogram", bins=50)`` is ``HistogramLoss`` with bins 50 and every other
    argument from ``conf/loss/histogram.yaml``, environment variables and interpolations
    (``data.shape`` follows ``model.shape``) resolved as in a job. The constructors' own
    defaults are the same values (``HistogramLoss(bins=50)``; tests/test_defaults.py).
    """
    node = option_config(option)
    unknown = sorted(set(values) - set(node))
    if unknown:
        raise ValueError(f"{option} has no key {unknown[0]!r}; valid: {', '.join(sorted(node))}")
    return build(OmegaConf.merge(node, values))


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def job_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config without its runtime-only keys: what defines a job's results."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    for key in RUNTIME_KEYS:
        group, _, name = key.partition(".")
        if name:
            resolved.get(group, {}).pop(name, None)
        else:  # a whole top-level node (logger, sweep): how the job runs or was launched
            resolved.pop(group, None)
    return resolved


@dataclass
class Setup:
    """What a job trains with, built from its config."""

    tiles: TileSet
    model: nn.Module
    objective: Objective
    optimizer: torch.optim.Optimizer
    scheduler: Any
    device: torch.device
    open_logger: Callable[..., Any]  # histae.loggers: the job's extra logger (csv: none)
    criterion_for: Callable[[Any], Any]  # (B,) tile index -> the loss with cached targets


def build_job(cfg: DictConfig) -> Setup:
    """Instantiate data, model, loss, optimizer and scheduler; check they fit together."""
    t = cfg.trainer
    device = resolve_device(t.device)
    tiles: TileSet = build(cfg.data)
    model: nn.Module = build(cfg.model)
    if tuple(tiles.shape) != tuple(model.shape):
        raise ValueError(
            f"data tiles have shape {list(tiles.shape)} but model.shape is {list(model.shape)}; "
            "set model.shape to the data's shape"
        )
    if len(tiles.train) < t.batch_size:
        raise ValueError(
            f"trainer.batch_size={t.batch_size} is larger than the {len(tiles.train)} training "
            "tiles; lower it"
        )
    if len(tiles.val) == 0:
        raise ValueError("the data has no validation tiles; add tiles or lower data.val_every")
    prepare_model(model.to(device), t.channels_last, t.compile)
    objective = Objective(build(cfg.loss), t.code_reg_weight).to(device)
    optimizer = build(cfg.optimizer)(model.parameters())
    scheduler = build(cfg.scheduler)(optimizer)
    open_logger = build(cfg.logger)  # a missing package fails here, before training
    # Each training tile's target histogram, once: a tile's histogram never changes.
    criterion_for = per_tile_criterion(objective.criterion, torch.from_numpy(tiles.train), device)
    return Setup(tiles, model, objective, optimizer, scheduler, device, open_logger, criterion_for)
