"""The colour loss options in the config tree, in a training step, in a sweep and across a resume."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from histae import train as train_module
from histae.checkpoint import load_checkpoint
from histae.jobdir import METRIC_COLUMNS, read_metrics
from histae.loss import CompositeLoss
from histae.metrics import INPUT_DEPENDENCE_KEYS
from histae.objective import Objective
from tests.helpers import CONF

# The loss options beyond the reference: colour losses and the weighted sum.
NEW_LOSSES = sorted(
    p.stem
    for p in (CONF / "loss").glob("*.yaml")
    if OmegaConf.load(p)
    .get("_target_", "")
    .startswith(("histae.colour.", "histae.loss.CompositeLoss"))
)
ARMS = sorted(p.stem for p in (CONF / "colour_arm").glob("*.yaml"))


@pytest.mark.parametrize("option", NEW_LOSSES)
def test_every_new_loss_option_trains_one_step(compose_cfg, option: str) -> None:
    cfg = compose_cfg(f"loss={option}")
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    criterion = instantiate(cfg.loss)
    optimizer = instantiate(cfg.optimizer)(model.parameters())
    x = torch.rand(4, 3, 32, 32)
    before = [p.detach().clone() for p in model.parameters()]
    output, code = model.reconstruct(x)
    parts = Objective(criterion, cfg.trainer.code_reg_weight)(output, code, x)
    assert parts["loss"].ndim == 0 and torch.isfinite(parts["loss"])
    optimizer.zero_grad()
    parts["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    optimizer.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


def test_composite_weights_sweep_from_the_command_line(compose_cfg) -> None:
    for weight in (0, 0.01, 1):
        criterion = instantiate(
            compose_cfg("loss=composite", f"loss.terms.l1.weight={weight}").loss
        )
        assert isinstance(criterion, CompositeLoss)
        assert ("l1" in criterion.terms) is (weight != 0)  # weight 0: not even built
        assert criterion.weights["histogram"] == 1.0
    # A term's own options and a new term, from the command line too.
    cfg = compose_cfg(
        "loss=composite",
        "loss.terms.histogram.loss.per_channel=true",
        "+loss@loss.terms.sw.loss=sliced_w",
        "loss.terms.sw.weight=2",
    )
    criterion = instantiate(cfg.loss)
    assert criterion.terms["histogram"].per_channel is True
    assert criterion.weights["sw"] == 2.0


def test_colour_losses_experiment_composes_every_arm() -> None:
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        full = compose("config", overrides=["+experiment=colour_losses"], return_hydra_config=True)
        params = full.hydra.sweeper.params
        assert sorted(params["+colour_arm"].split(",")) == ARMS  # every arm, none twice
        assert len(params["trainer.seed"].split(",")) == 3
        assert str(full.hydra.mode) == "RunMode.MULTIRUN"
        built = {}
        for arm in ARMS:
            cfg = compose("config", overrides=["+experiment=colour_losses", f"+colour_arm={arm}"])
            assert cfg.data._target_ == "histae.data.sheets.load_tile_sheets"
            built[arm] = instantiate(cfg.loss)
    GlobalHydra.instance().clear()
    assert type(built["joint"]).__name__ == "JointHistogramLoss"
    assert type(built["rgbuv"]).__name__ == "RGBuvHistogramLoss"
    assert type(built["sliced_w"]).__name__ == "SlicedWassersteinLoss"
    assert built["per_channel"].per_channel and not built["pooled"].per_channel
    assert [built[f"composite_{w}"].weights["l1"] for w in ("0.01", "0.1", "1")] == [0.01, 0.1, 1.0]


class Interrupted(Exception):
    pass


def test_sliced_w_job_resumes_bitwise(compose_cfg, monkeypatch, tmp_path) -> None:
    # keep_state: the finished checkpoints keep the loss's generator state, to compare.
    job = ["loss=sliced_w", "trainer.max_inputs=64", "trainer.val_every_inputs=32"]
    job.append("trainer.keep_state=true")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train_module.train(compose_cfg(*job), straight)

    real_save = train_module.save_checkpoint

    def save_then_die(path, checkpoint):  # the job is killed right after its first checkpoint
        real_save(path, checkpoint)
        raise Interrupted

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_die)
    with pytest.raises(Interrupted):
        train_module.train(compose_cfg(*job), resumed)
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    saved = load_checkpoint(resumed / "checkpoint.pt")
    assert saved["state"]["inputs"] == 32
    assert saved["criterion"]["_extra_state"]["generator"] is not None
    train_module.train(compose_cfg(*job), resumed)

    a = load_checkpoint(straight / "checkpoint.pt")
    b = load_checkpoint(resumed / "checkpoint.pt")
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    assert torch.equal(
        a["criterion"]["_extra_state"]["generator"], b["criterion"]["_extra_state"]["generator"]
    )
    assert (straight / "metrics.csv").read_text() == (resumed / "metrics.csv").read_text()

    # Every validation row carries the input-dependence scores.
    assert set(INPUT_DEPENDENCE_KEYS) <= set(METRIC_COLUMNS)
    val = [r for r in read_metrics(straight / "metrics.csv") if r["split"] == "val"]
    assert len(val) == 2
    for row in val:
        assert 0.0 <= row["retrieval_top1_joint"] <= 1.0
        assert row["retrieval_rank_channel"] >= 1.0
        assert row["spread_ratio"] >= 0.0
