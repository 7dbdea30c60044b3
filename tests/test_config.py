"""The config tree: every option composes and builds; typos and wrong types fail at composition."""

from __future__ import annotations

import functools
import inspect

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from histae.build import build, build_option, option_config
from histae.checks import check_config
from histae.model import count_parameters
from tests.helpers import CONF, NO_COUNT, job_config

FOLDERS = sorted(p.name for p in CONF.iterdir() if p.is_dir())  # every group, none left out


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_the_option_list_sees_every_folder() -> None:
    # The parametrisation below lists conf/ itself; a folder without options would hide a group.
    assert {"colour_arm", "data", "experiment", "logger", "loss", "model"} <= set(FOLDERS)
    assert all(options(group) for group in FOLDERS)


@functools.cache
def built_model(node: str) -> torch.nn.Module:
    # One build per model config: most options leave the model as it is, and the tests below
    # only read it (an optimizer that takes its parameters does not step).
    return build(OmegaConf.create(node))


def build_all(cfg, tmp_path) -> None:
    """Build what a job builds from ``cfg`` and run each piece once on a tiny batch."""
    check_config(cfg)  # the trainer node: every value within its range
    model = built_model(OmegaConf.to_yaml(cfg.model, resolve=True))
    assert isinstance(model, torch.nn.Module)
    optimizer = build(cfg.optimizer)(model.parameters())
    assert isinstance(optimizer, torch.optim.Optimizer)
    scheduler = build(cfg.scheduler)(optimizer)
    assert isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler)
    x = torch.rand(2, *model.shape)
    with torch.no_grad():
        value = build(cfg.loss)(model(x), x)
    assert value.ndim == 0 and torch.isfinite(value)
    with build(cfg.logger)(tmp_path) as logger:
        logger.log_row({"inputs": 1, "split": "train", "loss": value.item()})
    # Data: every YAML key is an argument of the loader (a required ??? such as
    # data.root is left to the user), and its tiles fit the model.
    loader = instantiate(cfg.data, _partial_=True)
    inspect.signature(loader.func).bind_partial(**loader.keywords)
    assert tuple(cfg.data.shape) == tuple(model.shape)


# Groups of the root defaults list take one option each per composition, so one composition
# covers an option of each (ten cover them all); experiment and colour_arm ("+group=...") each
# compose alone. Composing costs ~0.25 s, the rest of a case a fraction of that.
ROOT_GROUPS = sorted(
    group
    for entry in OmegaConf.load(CONF / "config.yaml").defaults
    if isinstance(entry, DictConfig)
    for group in entry
    if group in FOLDERS
)
CASES = [
    [f"{g}={options(g)[i % len(options(g))]}" for g in ROOT_GROUPS]
    for i in range(max(len(options(g)) for g in ROOT_GROUPS))
] + [[f"+{g}={o}"] for g in FOLDERS if g not in ROOT_GROUPS for o in options(g)]


def test_the_cases_hold_every_option_of_every_folder() -> None:
    chosen = {o.lstrip("+") for case in CASES for o in case}
    assert chosen == {f"{g}={o}" for g in FOLDERS for o in options(g)}


@pytest.mark.parametrize("overrides", CASES, ids=",".join)
def test_every_option_instantiates(compose_cfg, tmp_path, overrides: list[str]) -> None:
    tiny = not overrides[0].startswith("+experiment=")
    other_data = (
        tiny and "data=procedural" not in overrides and any("data=" in o for o in overrides)
    )
    cfg = compose_cfg(*overrides, *([NO_COUNT] if other_data else []), tiny=tiny)
    build_all(cfg, tmp_path)
    if "data=procedural" in overrides:  # the one loader that needs no files
        with open_dict(cfg):
            cfg.data.count = 40
        tiles = build(cfg.data)
        assert tiles.train.shape[1:] == tuple(cfg.model.shape)


def test_build_option_takes_the_yaml_values_and_names_a_wrong_key() -> None:
    loss = build_option("loss/histogram", bins=7)
    yaml = OmegaConf.load(CONF / "loss" / "histogram.yaml")
    assert (loss.bins, loss.sigma, loss.min) == (7, yaml.sigma, yaml.min)
    assert option_config("data/procedural", "model.shape=[3,16,16]").shape == [3, 16, 16]
    with pytest.raises(ValueError, match=r"loss/histogram has no key 'bnis'; valid: .*bins"):
        build_option("loss/histogram", bnis=7)
    # Inside an initialize() block (or a Hydra app) it refuses rather than clear Hydra's state.
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        with pytest.raises(RuntimeError, match="cannot run inside a Hydra app"):
            build_option("model/conv_ae", code_size=3)
        assert GlobalHydra.instance().is_initialized()


def test_the_default_job_is_the_reference(compose_cfg) -> None:
    cfg = compose_cfg(tiny=False)
    model = build(cfg.model)
    assert count_parameters(model) == 5_053_491  # the reference network
    # The loss compares colour distributions, not positions: shuffling the pixels costs nothing.
    x = torch.rand(2, 3, 32, 32)
    shuffled = x.flatten(2)[..., torch.randperm(32 * 32)].view_as(x)
    criterion = build(cfg.loss)
    assert criterion(shuffled, x).item() == pytest.approx(0.0, abs=1e-3)
    assert criterion(torch.rand(2, 3, 32, 32) * 0.5, x).item() > 0.1
    # Cosine annealing over the whole budget, stepped per batch: zero exactly at the last step.
    optimizer = build(cfg.optimizer)([torch.zeros(1, requires_grad=True)])  # the lr is the point
    scheduler = build(cfg.scheduler)(optimizer)
    steps = cfg.trainer.max_inputs // cfg.trainer.batch_size
    lrs = []
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    assert lrs[steps // 2 - 1] == pytest.approx(optimizer.defaults["lr"] / 2)
    assert lrs[-2] > 0 and lrs[-1] == pytest.approx(0.0, abs=1e-12)


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


@pytest.mark.parametrize("experiment", ["histloss", "histloss_norm", "histloss_losses"])
def test_reference_experiments_sweep_real_keys_on_the_real_tiles(experiment: str) -> None:
    from histae.config import CONFIG_DIR

    assert str(CONF) == CONFIG_DIR
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        full = compose("config", overrides=[f"+experiment={experiment}"], return_hydra_config=True)
    assert str(full.hydra.mode) == "RunMode.MULTIRUN"
    assert full.trainer.max_inputs == 500_000  # the reference's budget
    # Each swept key is a key of the config, or a group whose every swept value is an option.
    params = dict(full.hydra.sweeper.params)
    assert params
    for key, values in params.items():
        if (CONF / key).is_dir():
            assert set(values.split(",")) <= set(options(key)), (key, values)
        else:
            assert OmegaConf.select(full, key) is not None, key
    # On the real tiles, as data=rpg_tiles has them.
    assert (
        OmegaConf.to_container(full.data, resolve=True)
        == job_config("data=rpg_tiles", NO_COUNT)["data"]
    )


def test_only_normalize_tells_the_two_histloss_matrices_apart(compose_cfg) -> None:
    raw = OmegaConf.to_container(compose_cfg("+experiment=histloss", tiny=False))
    norm = OmegaConf.to_container(compose_cfg("+experiment=histloss_norm", tiny=False))
    assert raw["loss"].pop("normalize") is False and norm["loss"].pop("normalize") is True
    assert raw == norm


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
