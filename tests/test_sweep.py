"""A real -m sweep in-process: one named folder per job, each a finished job."""

from __future__ import annotations

import json

from histae.artifacts import read_metrics, read_status
from tests.conftest import TINY


def test_two_by_two_sweep_makes_four_named_job_folders(run_cli, tmp_path) -> None:
    sweep = tmp_path / "sweep"
    code = run_cli(
        "-m",
        *TINY,
        "trainer.max_inputs=32",
        "trainer.val_images=8",
        "loss.bins=10,20",
        "loss.sigma=50,100",
        f"hydra.sweep.dir={sweep}",
    )
    assert code == 0
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert jobs == [
        "bins-10_sigma-100",
        "bins-10_sigma-50",
        "bins-20_sigma-100",
        "bins-20_sigma-50",
    ]
    for job in jobs:
        summary = json.loads((sweep / job / "summary.json").read_text())
        bins, sigma = (int(part.split("-")[1]) for part in job.split("_"))
        assert summary["config"]["loss"]["bins"] == bins
        assert summary["config"]["loss"]["sigma"] == sigma
        assert read_status(sweep / job)["status"] == "done"
        assert [
            r["inputs"] for r in read_metrics(sweep / job / "metrics.csv") if r["split"] == "val"
        ] == [32]
    # Hydra's record of what each job was asked for sits in the job folder.
    overrides = (sweep / "bins-20_sigma-50" / ".hydra" / "overrides.yaml").read_text()
    assert "loss.bins=20" in overrides and "loss.sigma=50" in overrides


def test_job_names_from_swept_values() -> None:
    from hydra_plugins.histae_sweeper.histae_sweeper import job_names

    jobs = [["a.x=1", "b.x=2", "c=7"], ["a.x=3", "b.x=2", "c=7"], ["a.x=1", "b.x=5", "c=7"]]
    # Both swept keys end in "x", so they keep their full names; c never varies.
    assert job_names(jobs) == ["a.x-1_b.x-2", "a.x-3_b.x-2", "a.x-1_b.x-5"]
    assert job_names([["+experiment=smoke", "data.root=/a b/c"]]) == ["experiment-smoke_root-a-b-c"]
    assert job_names([["loss=emd"], ["loss=l1"]]) == ["loss-emd", "loss-l1"]
