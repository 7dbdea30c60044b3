"""A real -m sweep in-process: one named folder per job, each a finished job."""

from __future__ import annotations

import json

import pytest

from histae.jobdir import read_metrics, read_status
from tests.helpers import job_config


@pytest.mark.slow
def test_two_by_two_sweep_makes_four_named_job_folders(real_sweep) -> None:
    jobs = sorted(p.name for p in real_sweep.iterdir() if (p / ".hydra").is_dir())
    assert jobs == [
        "loss-l1_lr-0.0003",
        "loss-l1_lr-0.001",
        "loss-mse_lr-0.0003",
        "loss-mse_lr-0.001",
    ]
    for job in jobs:
        summary = json.loads((real_sweep / job / "summary.json").read_text())
        loss, lr = (part.split("-", 1)[1] for part in job.split("_"))
        assert summary["config"]["loss"] == job_config(f"loss={loss}")["loss"]
        assert summary["config"]["optimizer"]["lr"] == float(lr)
        assert read_status(real_sweep / job)["status"] == "done"
        val = [
            r["inputs"]
            for r in read_metrics(real_sweep / job / "metrics.csv")
            if r["split"] == "val"
        ]
        assert val == [96, 192]
    # Hydra's record of what each job was asked for sits in the job folder.
    overrides = (real_sweep / "loss-mse_lr-0.001" / ".hydra" / "overrides.yaml").read_text()
    assert "loss=mse" in overrides and "optimizer.lr=0.001" in overrides


def test_job_names_from_swept_values() -> None:
    from histae.labels import job_names

    jobs = [["a.x=1", "b.x=2", "c=7"], ["a.x=3", "b.x=2", "c=7"], ["a.x=1", "b.x=5", "c=7"]]
    # Both swept keys end in "x", so they keep their full names; c never varies.
    assert job_names(jobs) == ["a.x-1_b.x-2", "a.x-3_b.x-2", "a.x-1_b.x-5"]
    assert job_names([["+experiment=smoke", "data.root=/a b/c"]]) == [
        "experiment-smoke_root-%2Fa%20b%2Fc"
    ]
    assert job_names([["loss=emd"], ["loss=l1"]]) == ["loss-emd", "loss-l1"]
