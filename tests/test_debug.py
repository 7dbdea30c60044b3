"""debug=fdr|overfit|profile: real tiny jobs through the command line, and their checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from histae.debug import PROFILE, apply_debug, debug_node
from histae.jobdir import CHECKPOINT, read_metrics
from tests.helpers import TINY, run_histae

# Overfitting one batch of 16 smoke tiles: with the pixel L1 loss and a 10x learning rate the
# train loss falls to ~0.52 of its first row within 40 steps (seeded: the same on every CPU);
# the histogram loss learns far slower (~0.91 after 300 steps), so it is not the one tested.
OVERFIT = ["debug=overfit", "debug.steps=20", "loss=l1", "optimizer.lr=0.01"]
OVERFIT_FRACTION = 0.6  # the last train loss must be under this fraction of the first


def test_fdr_is_one_step_one_validation_nothing_kept(tmp_path: Path) -> None:
    run_dir = tmp_path / "fdr"
    assert run_histae(*TINY, "debug=fdr", f"hydra.run.dir={run_dir}") == 0
    rows = read_metrics(run_dir / "metrics.csv")
    assert [(r["split"], r["inputs"]) for r in rows] == [("train", 16), ("val", 16)]  # batch 16
    assert not (run_dir / CHECKPOINT).exists()
    assert json.loads((run_dir / "status.json").read_text())["status"] == "done"


def test_overfit_one_batch_drives_the_loss_down(tmp_path: Path) -> None:
    run_dir = tmp_path / "overfit"
    assert run_histae(*TINY, *OVERFIT, f"hydra.run.dir={run_dir}") == 0
    train = [r for r in read_metrics(run_dir / "metrics.csv") if r["split"] == "train"]
    assert train[-1]["inputs"] == 20 * 16
    assert train[-1]["loss"] < OVERFIT_FRACTION * train[0]["loss"], (train[0], train[-1])


def test_profile_writes_a_chrome_trace_of_its_steps(tmp_path: Path) -> None:
    run_dir = tmp_path / "profile"
    assert run_histae(*TINY, "debug=profile", f"hydra.run.dir={run_dir}") == 0
    trace = json.loads((run_dir / PROFILE).read_text())
    events = trace["traceEvents"]
    assert len(events) > 100
    steps = sorted({e["name"] for e in events if str(e.get("name")).startswith("ProfilerStep#")})
    assert len(steps) == 4  # debug.profile_steps, after the skipped and the warm-up step
    assert not list(run_dir.glob(".*.tmp"))


def test_steps_set_the_budget_in_place() -> None:
    cfg = OmegaConf.create(
        {
            "trainer": {"batch_size": 64, "max_inputs": 48000, "val_every_inputs": 12000},
            "debug": {"steps": 2, "overfit_batches": 0, "profile_steps": None},
        }
    )
    cfg.trainer.log_every_inputs = 1000
    apply_debug(cfg)
    assert dict(cfg.trainer) == {
        "batch_size": 64,
        "max_inputs": 128,
        "val_every_inputs": 128,
        "log_every_inputs": 128,
    }
    cfg.debug = {"profile_steps": 4}  # two more steps than it records
    apply_debug(cfg)
    assert cfg.trainer.max_inputs == 6 * 64


@pytest.mark.parametrize(
    ("override", "line"),
    [
        ("+debug.stepz=1", "debug.stepz is not a debug key; valid: steps, overfit_batches, "),
        ("debug.steps=-1", "debug.steps must be an integer >= 0, got -1"),
        ("debug.overfit_batches=99", "debug.overfit_batches=99 needs 1584 training tiles, "),
    ],
)
def test_a_bad_debug_value_is_one_line(tmp_path: Path, capsys, override: str, line: str) -> None:
    run_dir = tmp_path / "bad"
    code = run_histae(*TINY, "debug=overfit", override, f"hydra.run.dir={run_dir}")
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"histae: error: {line}") and err.count("\n") == 1, err


def test_without_debug_nothing_changes() -> None:
    assert debug_node(OmegaConf.create({"trainer": {}})) == {
        "steps": 0,
        "overfit_batches": 0,
        "profile_steps": 0,
    }
