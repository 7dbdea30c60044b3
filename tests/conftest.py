"""Shared fixtures: configs composed in-process with tiny budgets, outputs under tmp_path.

Every shared function is in tests/helpers/ (one copy each); this file holds only fixtures."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

import histae.config  # noqa: F401  (schemas and resolvers)
from tests.helpers.paths import CONF
from tests.helpers.run import TINY, run_histae


def _share_the_cores() -> None:
    """Under pytest-xdist (``pytest -n N``) each worker takes cores // N threads, and so do the
    processes it starts: N workers that each started a thread per core (torch's default) would
    fight over the cores, and torch's threads then wait on each other (measured here: a search's
    job ran at a tenth of its speed beside a test run)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = max(1, len(os.sched_getaffinity(0)) // workers)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        torch.set_num_threads(threads)


_share_the_cores()


@pytest.fixture
def compose_cfg() -> Iterator[Callable[..., DictConfig]]:
    """``compose_cfg("loss.bins=50", ...)`` -> the root config with those overrides (+ TINY)."""

    def _compose(*overrides: str, tiny: bool = True) -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(str(CONF), version_base="1.3"):
            return compose("config", overrides=[*(TINY if tiny else []), *overrides])

    yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture(scope="package")
def smoke_cfg() -> DictConfig:
    """The root config with TINY, composed once for the package; read-only, so no test can
    change what the next one sees (``OmegaConf.to_container`` or ``compose_cfg`` for a copy)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(CONF), version_base="1.3"):
            cfg = compose("config", overrides=TINY)
    finally:
        GlobalHydra.instance().clear()
    OmegaConf.set_readonly(cfg, True)
    return cfg


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that asks for the local SLURM cluster is a ``cluster`` test (``-m "not cluster"``)."""
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)
