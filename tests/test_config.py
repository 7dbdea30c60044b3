"""The config tree: every option composes and builds; typos and wrong types fail at composition."""

from __future__ import annotations

import pytest
import torch
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from tests.conftest import CONF

GROUPS = ["model", "loss", "optimizer", "scheduler"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g in GROUPS for o in options(g)], ids=lambda v: str(v)
)
def test_every_option_instantiates(compose_cfg, group: str, option: str) -> None:
    cfg = compose_cfg(f"{group}={option}")
    model = instantiate(cfg.model)
    built = instantiate(cfg[group])
    if group == "optimizer":
        optimizer = built(model.parameters())
        assert isinstance(optimizer, torch.optim.Optimizer)
    elif group == "scheduler":
        optimizer = instantiate(cfg.optimizer)(model.parameters())
        scheduler = built(optimizer)
        assert isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler)
    elif group == "loss":
        x = torch.rand(2, 3, 32, 32)
        value = built(model(x), x)
        assert value.ndim == 0 and torch.isfinite(value)
    else:
        assert isinstance(built, torch.nn.Module)


def test_every_data_option_composes(compose_cfg) -> None:
    for option in options("data"):
        cfg = compose_cfg(f"data={option}")
        assert cfg.data._target_.startswith("histae.data")
        assert list(cfg.data.shape) == [3, 32, 32]  # follows model.shape


def test_defaults_are_the_reference(compose_cfg) -> None:
    cfg = compose_cfg(tiny=False)
    assert cfg.optimizer._target_ == "torch.optim.AdamW"
    assert cfg.optimizer.lr == pytest.approx(3e-4)
    assert cfg.optimizer.weight_decay == pytest.approx(0.01)
    assert cfg.trainer.batch_size == 64
    assert cfg.trainer.code_reg_weight == pytest.approx(1e-4)
    assert cfg.loss.normalize is False and cfg.loss.loss == "l1" and not cfg.loss.per_channel
    # Cosine annealing over the whole budget, stepped per batch.
    assert cfg.scheduler.T_max == cfg.trainer.max_inputs // cfg.trainer.batch_size


def test_wrong_type_is_rejected_at_composition(compose_cfg) -> None:
    with pytest.raises(ConfigCompositionException) as info:
        compose_cfg("loss.bins=abc")
    assert isinstance(info.value.__cause__, ValidationError)
    assert "loss.bins" in str(info.value.__cause__)


def test_misspelled_key_is_rejected_at_composition(compose_cfg) -> None:
    with pytest.raises(ConfigCompositionException) as info:
        compose_cfg("loss.binz=10")
    assert isinstance(info.value.__cause__, ConfigAttributeError | ConfigKeyError)
    assert "binz" in str(info.value.__cause__)


def test_unknown_option_lists_the_valid_ones(compose_cfg) -> None:
    with pytest.raises(Exception, match="Could not find 'loss/nope'"):
        compose_cfg("loss=nope")


@pytest.mark.parametrize(
    ("experiment", "params"),
    [
        ("histloss", {"loss.bins": "100,200,50", "loss.sigma": "100,200,50"}),
        ("histloss_norm", {"loss.bins": "100,200,50", "loss.sigma": "100,200,50"}),
        ("histloss_losses", {"loss": "histogram,emd,hellinger,sorted_w1,l1"}),
    ],
)
def test_experiments_hold_the_reference_matrix(compose_cfg, experiment: str, params: dict) -> None:
    from hydra import compose

    from histae.config import CONFIG_DIR

    assert str(CONF) == CONFIG_DIR
    cfg = compose_cfg(f"+experiment={experiment}", tiny=False)
    assert cfg.trainer.max_inputs == 500_000
    assert cfg.trainer.batch_size == 64
    if experiment != "histloss_losses":
        assert cfg.loss.normalize is (experiment == "histloss_norm")
    # The sweep itself lives in the hydra node, which compose() returns on request.
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        full = compose("config", overrides=[f"+experiment={experiment}"], return_hydra_config=True)
    assert dict(full.hydra.sweeper.params) == params
    assert str(full.hydra.mode) == "RunMode.MULTIRUN"


def test_reference_matrix_runs_on_the_real_tiles(compose_cfg) -> None:
    cfg = compose_cfg("+experiment=histloss", tiny=False)
    assert cfg.data._target_ == "histae.data.sheets.load_tile_sheets"
    # ... and the embedded tiles are one override away.
    assert compose_cfg("+experiment=histloss", "data=procedural", tiny=False).data.count > 0


def test_help_lists_the_groups_to_pick_and_the_distances_not_the_schemas(run_cli, capsys) -> None:
    from histae.loss import LOSS_NAMES

    assert run_cli("--help") == 0
    out = capsys.readouterr().out
    groups = out.split("== Configuration groups ==", 1)[1].split("== Config ==", 1)[0]
    assert "schema" not in groups
    for folder in sorted(p for p in CONF.iterdir() if p.is_dir()):
        options = ", ".join(sorted(f.stem for f in folder.glob("*.yaml")))
        assert f"{folder.name}: {options}\n" in groups
    assert f"takes: {', '.join(LOSS_NAMES)}\n" in groups
