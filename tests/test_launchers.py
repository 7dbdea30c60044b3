"""Scale-out launchers: joblib in parallel locally, submitit (local here, slurm on a cluster)."""

from __future__ import annotations

import json
import os

import pytest
from omegaconf import OmegaConf

from histae.app import launcher_threads
from histae.jobdir import read_status
from tests.helpers import TINY

pytest.importorskip("hydra_plugins.hydra_joblib_launcher")

SWEEP = [*TINY, "loss.bins=10", "trainer.max_inputs=64", "trainer.seed=0,1"]


def finals(sweep) -> dict[str, dict]:
    return {
        job.name: json.loads((job / "summary.json").read_text())["final"]
        for job in sorted(sweep.iterdir())
        if (job / "summary.json").exists()
    }


def test_joblib_threads_share_the_cores() -> None:
    cores = os.cpu_count() or 1
    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    assert launcher_threads(
        OmegaConf.create({"launcher": {"_target_": joblib, "n_jobs": 2}})
    ) == max(1, cores // 2)
    assert launcher_threads(OmegaConf.create({"launcher": {"_target_": joblib, "n_jobs": -1}})) == 1
    submitit = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
    assert (
        launcher_threads(OmegaConf.create({"launcher": {"_target_": submitit, "cpus_per_task": 3}}))
        == 3
    )
    assert (
        launcher_threads(
            OmegaConf.create({"launcher": {"_target_": submitit, "cpus_per_task": None}})
        )
        == 0
    )
    # Inside a SLURM job that did not ask for cpus_per_task: what SLURM allotted it.
    unset = OmegaConf.create({"launcher": {"_target_": submitit, "cpus_per_task": None}})
    assert launcher_threads(unset, env={"SLURM_CPUS_ON_NODE": "4"}) == 4
    basic = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
    assert launcher_threads(OmegaConf.create({"launcher": {"_target_": basic}})) == 0


@pytest.mark.slow
def test_joblib_gives_the_same_metrics_as_the_basic_launcher(run_cli, tmp_path) -> None:
    # One thread each, so both launchers run the same kernels in the same order.
    basic, joblib = tmp_path / "basic", tmp_path / "joblib"
    assert run_cli("-m", *SWEEP, "trainer.threads=1", f"hydra.sweep.dir={basic}") == 0
    assert (
        run_cli(
            "-m",
            *SWEEP,
            "trainer.threads=1",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            f"hydra.sweep.dir={joblib}",
        )
        == 0
    )
    a, b = finals(basic), finals(joblib)
    assert sorted(a) == ["seed-0", "seed-1"]
    assert a == b
    log = (joblib / "seed-1" / "histae.log").read_text()
    assert "[seed-1]" in log  # every line of a parallel job names its job


@pytest.mark.slow
def test_submitit_local_runs_a_two_job_sweep(run_cli, tmp_path) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    assert run_cli("-m", *SWEEP, "hydra/launcher=submitit_local", f"hydra.sweep.dir={sweep}") == 0
    assert {j: read_status(sweep / j)["status"] for j in ("seed-0", "seed-1")} == {
        "seed-0": "done",
        "seed-1": "done",
    }
    assert (sweep / "report" / "results.csv").read_text().count("\n") == 3  # header + 2 jobs
