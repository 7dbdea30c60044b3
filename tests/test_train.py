"""A tiny real job end to end: artifacts, their contents, determinism."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from histae.build import build
from histae.checkpoint import load_checkpoint
from histae.jobdir import METRIC_COLUMNS, read_metrics, read_status
from histae.model import count_parameters
from histae.train import epoch_order, train


@pytest.fixture(scope="module")
def tiny_job(tmp_path_factory):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from tests.helpers import CONF, TINY

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, "loss.bins=20"])
    GlobalHydra.instance().clear()
    job_dir = tmp_path_factory.mktemp("job")
    summary = train(cfg, job_dir)
    return cfg, job_dir, summary


def test_metrics_csv_has_train_and_val_rows_with_finite_values(tiny_job) -> None:
    cfg, job_dir, _ = tiny_job
    rows = read_metrics(job_dir / "metrics.csv")
    header = (job_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header == METRIC_COLUMNS
    t = cfg.trainer
    train_rows = [r for r in rows if r["split"] == "train"]
    val_rows = [r for r in rows if r["split"] == "val"]
    assert [r["inputs"] for r in val_rows] == [96, 192]
    assert len(train_rows) == math.ceil(t.max_inputs / t.log_every_inputs)
    for row in rows:
        for key in ("loss", "loss_reconstruction", "pixel_l1", "pixel_mse", "psnr"):
            assert math.isfinite(row[key]), (key, row)
        if row["split"] == "val":
            assert 0 < row["hist_w1"] < 1
        # The total is the reconstruction plus the weighted code regulariser.
        expected = row["loss_reconstruction"] + t.code_reg_weight * (
            row["loss_batch_std"] + row["loss_batch_mean"]
        )
        assert row["loss"] == pytest.approx(expected, rel=1e-4)
        assert 0 <= row["pixel_l1"] <= 1
        # PSNR is averaged per image; by Jensen that is at least the PSNR of the mean MSE.
        assert row["psnr"] >= 10 * math.log10(1 / row["pixel_mse"]) - 1e-3
    assert all(r["lr"] > 0 for r in train_rows)


def test_pictures_are_real_images_of_the_right_size(tiny_job) -> None:
    _, job_dir, _ = tiny_job
    with Image.open(job_dir / "reconstructions.png") as grid:
        # 16 validation images: 2 pairs of rows (originals over reconstructions), 8 per row, 4x,
        # a labelled margin on the left and a gap of 8 px between the pairs.
        margin = grid.size[0] - 8 * 32 * 4
        assert 40 < margin < 200
        assert grid.size[1] == 4 * 32 * 4 + 8
        pixels = np.asarray(grid.convert("RGB"))
    samples = np.load(job_dir / "samples.npz")
    # The first row of the grid is the first 8 validation originals, upscaled with nearest.
    top_left = pixels[: 32 * 4 : 4, margin : margin + 32 * 4 : 4]  # (32, 32, 3): the first tile
    first = np.round(samples["originals"][0].transpose(1, 2, 0) * 255).astype(np.uint8)
    assert np.array_equal(top_left, first)
    with Image.open(job_dir / "loss.png") as plot:
        assert plot.size[0] > 400 and plot.size[1] > 200
        assert np.asarray(plot.convert("L")).std() > 10
    per_val = sorted((job_dir / "reconstructions").glob("inputs-*.png"))
    assert [p.name for p in per_val] == ["inputs-000000096.png", "inputs-000000192.png"]


def test_grid_shows_the_validation_tiles(tiny_job) -> None:
    from hydra.utils import instantiate

    cfg, job_dir, _ = tiny_job
    tiles = instantiate(cfg.data)
    with Image.open(job_dir / "reconstructions.png") as grid:
        pixels = np.asarray(grid.convert("RGB"))
    margin = pixels.shape[1] - 8 * 32 * 4  # the row labels on the left
    first = pixels[: 32 * 4 : 4, margin : margin + 32 * 4 : 4].transpose(2, 0, 1)
    np.testing.assert_array_equal(first, tiles.val[0])


def test_summary_status_and_checkpoint(tiny_job) -> None:
    cfg, job_dir, summary = tiny_job
    on_disk = json.loads((job_dir / "summary.json").read_text())
    assert on_disk["status"] == "done" == summary["status"]
    assert on_disk["parameters"] == count_parameters(build(cfg.model)) == 113_259  # smoke
    assert on_disk["inputs"] == cfg.trainer.max_inputs
    assert on_disk["images_per_second"] > 0 and on_disk["wall_time"] > 0
    assert on_disk["config"]["loss"]["bins"] == 20
    assert on_disk["final"]["val"]["inputs"] == cfg.trainer.max_inputs
    status = read_status(job_dir)
    assert status["status"] == "done" and status["inputs"] == cfg.trainer.max_inputs
    checkpoint = load_checkpoint(job_dir / "checkpoint.pt")
    # Finished: the weights, counters and config, not the optimizer or RNG states.
    assert set(checkpoint) == {"model", "state", "config", "weights_only", "threads"}
    assert checkpoint["threads"] == torch.get_num_threads()  # bitwise only at this count
    assert checkpoint["state"]["inputs"] == cfg.trainer.max_inputs
    samples = np.load(job_dir / "samples.npz")
    assert samples["originals"].shape == (16, 3, 32, 32)
    assert samples["hist_originals"].shape == (3, 256)
    # The colour histograms count every pixel of every validation tile.
    assert samples["hist_originals"].sum() == samples["hist_reconstructions"].sum()


def test_same_seed_gives_the_same_losses(compose_cfg, tmp_path) -> None:
    cfg = compose_cfg("loss=l1", "trainer.max_inputs=64", "trainer.save_checkpoint=false")
    a = train(cfg, tmp_path / "a")
    b = train(cfg, tmp_path / "b")
    assert a["final"]["train"] == b["final"]["train"]
    assert a["final"]["val"] == b["final"]["val"]
    other = train(compose_cfg("loss=l1", "trainer.max_inputs=64", "trainer.seed=2"), tmp_path / "c")
    assert other["final"]["val"]["loss"] != a["final"]["val"]["loss"]


def test_epoch_order_is_a_permutation_fixed_by_seed_and_epoch() -> None:
    a = epoch_order(100, seed=3, epoch=2)
    assert sorted(a.tolist()) == list(range(100))
    assert torch.equal(a, epoch_order(100, seed=3, epoch=2))
    assert not torch.equal(a, epoch_order(100, seed=3, epoch=3))


def test_a_finished_job_is_skipped_on_rerun(tiny_job, monkeypatch) -> None:
    cfg, job_dir, summary = tiny_job
    import histae.train as train_module

    def no_building(node):  # a skipped job must not even build its data or model
        raise AssertionError("a finished job was built again")

    monkeypatch.setattr(train_module, "build_job", no_building)
    again = train(cfg, job_dir)
    assert again["final"] == json.loads(json.dumps(summary["final"]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_a_job_runs_on_cuda(compose_cfg, tmp_path) -> None:
    summary = train(compose_cfg("trainer.device=cuda", "trainer.max_inputs=64"), tmp_path)
    assert summary["device"].startswith("cuda")
    assert math.isfinite(summary["final"]["val"]["loss"])


@pytest.mark.parametrize("cuda_devices", [0, 2])
def test_device_auto_takes_cuda_only_where_there_is_one(monkeypatch, cuda_devices: int) -> None:
    from histae.checks import resolve_device

    # The same answers on any machine: CUDA's presence is what the test sets.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda_devices > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda_devices)
    assert resolve_device("auto") == torch.device("cuda" if cuda_devices else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    if cuda_devices:
        assert resolve_device("cuda:1") == torch.device("cuda:1")
        with pytest.raises(ValueError, match=r"has 2 CUDA device\(s\): use cuda:0 to cuda:1$"):
            resolve_device("cuda:2")
    else:
        with pytest.raises(
            ValueError, match=r"^trainer\.device=cuda but no CUDA device is available"
        ):
            resolve_device("cuda")
    with pytest.raises(
        ValueError, match=r"^trainer\.device must be auto, cpu, cuda or cuda:N, got 'gpu'"
    ):
        resolve_device("gpu")


def test_a_finished_job_keeps_weights_only_unless_keep_state(compose_cfg, tmp_path) -> None:
    kept = tmp_path / "kept"
    train(compose_cfg("trainer.max_inputs=32", "trainer.keep_state=true"), kept)
    full = load_checkpoint(kept / "checkpoint.pt")
    assert {"model", "optimizer", "scheduler", "criterion", "state", "rng", "config"} <= set(full)
    assert "weights_only" not in full
    slim = tmp_path / "slim"
    train(compose_cfg("trainer.max_inputs=32"), slim)
    weights = load_checkpoint(slim / "checkpoint.pt")
    assert weights["weights_only"] is True and "optimizer" not in weights
    assert all(torch.equal(full["model"][k], weights["model"][k]) for k in full["model"])
    # AdamW's two moments are twice the weights: the finished file is about a third.
    size = (slim / "checkpoint.pt").stat().st_size / (kept / "checkpoint.pt").stat().st_size
    assert 0.25 < size < 0.45, size


def test_a_job_stopped_after_its_final_checkpoint_finishes_from_the_weights(
    compose_cfg, tmp_path
) -> None:
    cfg = compose_cfg("trainer.max_inputs=64", "trainer.val_every_inputs=32")
    first = train(cfg, tmp_path / "job")
    # As if killed between the final (weights-only) checkpoint and the summary.
    (tmp_path / "job" / "summary.json").unlink()
    again = train(cfg, tmp_path / "job")
    assert again["status"] == "done" and again["final"] == first["final"]
    assert again["inputs"] == first["inputs"] == 64
    assert read_status(tmp_path / "job")["status"] == "done"
