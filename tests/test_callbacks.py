"""The report callback: histae's sweep report under another sweeper (Hydra's basic one)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from histae.callbacks import HISTAE_SWEEPER, SweepReport
from tests.helpers import TINY, run_histae, write_sweep


@pytest.mark.slow  # a real sweep of 2 jobs under Hydra's sweeper, and its report
def test_the_basic_sweeper_gets_the_report(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    code = run_histae(
        "-m", *TINY, "hydra/sweeper=basic", "loss.bins=50,100", f"hydra.sweep.dir={sweep}"
    )
    assert code == 0
    # The basic sweeper's folders (0, 1), not histae's (bins-50): it really ran the sweep.
    assert sorted(p.name for p in sweep.iterdir() if (p / "status.json").exists()) == ["0", "1"]
    assert (sweep / "report" / "index.html").is_file()
    with open(sweep / "report" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2


def test_under_histaes_sweeper_the_callback_leaves_the_report_to_it(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path / "sweep")
    config = OmegaConf.create(
        {"hydra": {"sweeper": {"_target_": HISTAE_SWEEPER}, "sweep": {"dir": str(sweep)}}}
    )
    SweepReport().on_multirun_end(config)
    assert not (sweep / "report").exists()
    config.hydra.sweeper._target_ = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
    SweepReport().on_multirun_end(config)
    assert (sweep / "report" / "index.html").is_file()


def test_a_report_that_fails_is_logged_not_raised(tmp_path: Path, caplog) -> None:
    config = OmegaConf.create({"hydra": {"sweeper": {}, "sweep": {"dir": str(tmp_path / "gone")}}})
    SweepReport().on_multirun_end(config)
    assert "Could not write the sweep report" in caplog.text
