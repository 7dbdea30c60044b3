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


def run_histae(*args: str) -> int:
    """Run ``python -m histae ARGS`` in this process (Hydra's real command line); the exit status."""
    from histae.app import main

    GlobalHydra.instance().clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["histae", *args])
        try:
            main()
        except SystemExit as exit_:
            return int(exit_.code or 0)
        finally:
            GlobalHydra.instance().clear()
    return 0


@pytest.fixture
def run_cli() -> Callable[..., int]:
    """:func:`run_histae` as a fixture."""
    return run_histae


@pytest.fixture(scope="session")
def real_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real 2x2 ``-m`` sweep in-process (loss l1/mse x lr), shared by the tests that read it."""
    sweep_dir = tmp_path_factory.mktemp("real") / "sweep"
    code = run_histae(
        "-m", f"hydra.sweep.dir={sweep_dir}", *TINY, "loss=l1,mse", "optimizer.lr=0.001,0.0003"
    )
    assert code == 0
    return sweep_dir
