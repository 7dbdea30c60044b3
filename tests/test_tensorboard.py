"""logger=tensorboard: the event files read back with TensorBoard's own reader."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from histae.build import build
from histae.jobdir import read_metrics
from histae.loggers import (
    MISSING_TENSORBOARD,
    MissingPackageError,
    TensorBoardLogger,
    make_logger,
    row_tags,
)


def read_events(run_dir: Path) -> Any:
    """TensorBoard's EventAccumulator on ``run_dir`` with every scalar and image (it keeps a
    sample by default). Skips the test without the tensorboard package."""
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = ea.EventAccumulator(str(run_dir), size_guidance={ea.SCALARS: 0, ea.IMAGES: 0})
    events.Reload()
    return events


def hparams_data(events: Any) -> dict[str, Any]:
    """The run's HParams summaries by tag, parsed."""
    plugin_data_pb2 = pytest.importorskip("tensorboard.plugins.hparams.plugin_data_pb2")
    content = events.PluginTagToContent("hparams")
    return {
        tag: plugin_data_pb2.HParamsPluginData.FromString(data) for tag, data in content.items()
    }


def test_row_tags_are_the_references() -> None:
    train = {"inputs": 1000, "split": "train", "loss": 24.3, "loss_batch_std": 0.5, "lr": 3e-4}
    assert row_tags(train, "AdamW") == {
        "train_loss": 24.3,
        "train_loss_batch_std": 0.5,
        "train_learnrate_1_AdamW": 3e-4,
    }
    val = {"inputs": 1000, "split": "val", "loss": 20.0, "loss_reconstruction": 19.9, "psnr": None}
    assert row_tags(val) == {"validation_loss": 20.0, "validation_loss_reconstruction": 19.9}


def test_a_job_writes_the_references_view(tmp_path: Path, run_cli) -> None:
    pytest.importorskip("tensorboard")
    run_dir = tmp_path / "run"
    code = run_cli(
        "+experiment=smoke", "logger=tensorboard", "loss.bins=50", f"hydra.run.dir={run_dir}"
    )
    assert code == 0
    # One run: every event file straight in the job folder (no timestamped hparams run).
    files = list(run_dir.rglob("events.out.tfevents.*"))
    assert files and all(f.parent == run_dir for f in files)

    events = read_events(run_dir)
    rows = read_metrics(run_dir / "metrics.csv")
    expected: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        for tag, value in row_tags(row, "AdamW").items():
            expected.setdefault(tag, []).append((int(row["inputs"]), value))
    assert {"train_loss", "train_learnrate_1_AdamW", "validation_loss_batch_std"} <= set(expected)
    assert set(events.Tags()["scalars"]) == set(expected)
    for tag, points in expected.items():
        got = [(e.step, e.value) for e in events.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in points], tag
        # metrics.csv keeps 6 significant digits, TensorBoard a float32
        np.testing.assert_allclose([v for _, v in got], [v for _, v in points], rtol=1e-5)

    # The reconstruction grid at every validation, as the PNG the job saved.
    val_steps = [int(r["inputs"]) for r in rows if r["split"] == "val"]
    images = events.Images("validation_reconstruction")
    assert [i.step for i in images] == val_steps == [96, 192]
    from PIL import Image

    saved = Image.open(run_dir / "reconstructions.png")
    assert (images[-1].width, images[-1].height) == saved.size

    # HParams in the same run: the job's command-line values and its final metrics' tags.
    data = hparams_data(events)
    start = data["_hparams_/session_start_info"].session_start_info
    assert start.hparams["loss.bins"].number_value == 50
    assert start.hparams["experiment"].string_value == "smoke"
    assert "logger" not in start.hparams
    metrics = [m.name.tag for m in data["_hparams_/experiment"].experiment.metric_infos]
    assert {"train_loss", "validation_loss", "validation_psnr"} <= set(metrics)
    assert set(metrics) <= set(expected)  # each metric's value is its scalar in this run


def test_resume_purges_the_steps_after_the_checkpoint(tmp_path: Path) -> None:
    """A resumed job appends to the same folder; the steps its first run logged after the
    checkpoint are dropped, so each step shows once, with the resumed run's value."""
    pytest.importorskip("tensorboard")
    first = TensorBoardLogger(tmp_path, {"loss.bins": 50}, optimizer="AdamW")
    for inputs in (32, 64, 96):
        first.log_row({"inputs": inputs, "split": "train", "loss": float(inputs)})
    first.log_row({"inputs": 64, "split": "val", "loss": 1.0})
    first.close()  # killed after 96 inputs; the checkpoint is from 64
    with TensorBoardLogger(tmp_path, {"loss.bins": 50}, resume_from=64) as second:
        for inputs in (96, 128):
            second.log_row({"inputs": inputs, "split": "train", "loss": inputs + 0.5})
    events = read_events(tmp_path)
    assert [(e.step, e.value) for e in events.Scalars("train_loss")] == [
        (32, 32.0),
        (64, 64.0),
        (96, 96.5),
        (128, 128.5),
    ]
    assert [e.step for e in events.Scalars("validation_loss")] == [64]


def test_a_fresh_start_purges_an_earlier_run(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    with TensorBoardLogger(tmp_path) as old:
        old.log_row({"inputs": 32, "split": "train", "loss": 9.0})
    with TensorBoardLogger(tmp_path, resume_from=0) as new:
        new.log_row({"inputs": 16, "split": "train", "loss": 1.0})
    assert [(e.step, e.value) for e in read_events(tmp_path).Scalars("train_loss")] == [(16, 1.0)]


def test_the_default_logger_adds_nothing(smoke_cfg, tmp_path: Path) -> None:
    # Used as a job uses it: metrics.csv (the trainer's own) is all there is.
    with build(smoke_cfg.logger)(tmp_path, hparams={"loss.bins": 50}) as logger:
        logger.log_row({"inputs": 16, "split": "train", "loss": 1.0})
        logger.log_image(16, np.zeros((8, 8, 3), np.uint8))
        logger.log_final({"train": {"inputs": 16, "split": "train", "loss": 1.0}, "val": None})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(
        ValueError, match=r"logger must be one of csv, tensorboard, mlflow, got 'nope'"
    ):
        make_logger("nope")


def test_without_tensorboard_one_line_before_training(
    tmp_path: Path, run_cli, capsys, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard -> ImportError
    with pytest.raises(MissingPackageError, match=r'pip install "histae\[tensorboard\]"'):
        make_logger("tensorboard")

    run_dir = tmp_path / "run"
    code = run_cli("+experiment=smoke", "logger=tensorboard", f"hydra.run.dir={run_dir}")
    assert code == 1
    captured = capsys.readouterr()
    assert captured.err == f"histae: error: {MISSING_TENSORBOARD}\n"
    assert MISSING_TENSORBOARD not in captured.out  # printed once, not also as a log line
    assert not run_dir.exists()  # nothing trained, nothing left


@pytest.mark.slow
def test_a_killed_and_resumed_job_shows_each_step_once(tmp_path: Path) -> None:
    """SIGKILL past the first checkpoint, rerun: the events match metrics.csv step for step."""
    pytest.importorskip("tensorboard")
    from tests.helpers import kill_past_then_rerun
    from tests.test_resume import JOB

    run_dir = tmp_path / "killed"
    # The checkpoint is at 320 inputs: the kill comes after it, the rerun resumes from it.
    kill_past_then_rerun([*JOB, "logger=tensorboard", f"hydra.run.dir={run_dir}"], run_dir, 320)

    events = read_events(run_dir)
    rows = read_metrics(run_dir / "metrics.csv")
    for split, tag in (("train", "train_loss"), ("val", "validation_loss")):
        expected = [(r["inputs"], r["loss"]) for r in rows if r["split"] == split]
        got = [(e.step, e.value) for e in events.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in expected]
        np.testing.assert_allclose([v for _, v in got], [v for _, v in expected], rtol=1e-5)
    assert [i.step for i in events.Images("validation_reconstruction")] == [320, 640]
