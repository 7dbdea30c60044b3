"""Shared fixtures: configs composed in-process with tiny budgets, outputs under tmp_path."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

import histae.config  # noqa: F401  (schemas and resolvers)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# A few-second job on a small slice of the embedded data (conf/experiment/smoke.yaml).
TINY = ["+experiment=smoke"]


@pytest.fixture
def compose_cfg() -> Iterator[Callable[..., DictConfig]]:
    """``compose_cfg("loss.bins=50", ...)`` -> the root config with those overrides (+ TINY)."""

    def _compose(*overrides: str, tiny: bool = True) -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(str(CONF), version_base="1.3"):
            return compose("config", overrides=[*(TINY if tiny else []), *overrides])

    yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., int]:
    """Run ``python -m histae ARGS`` in this process; returns the exit status."""
    from histae.app import main

    def _run(*args: str) -> int:
        GlobalHydra.instance().clear()
        monkeypatch.setattr(sys, "argv", ["histae", *args])
        try:
            main()
        except SystemExit as exit_:
            return int(exit_.code or 0)
        finally:
            GlobalHydra.instance().clear()
        return 0

    return _run
