"""Job and sweep folders written by the job's own writer (:class:`histae.jobdir.JobDir`), never by
hand, for the report's and the readers' tests."""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

import histae.config  # noqa: F401  (schemas and resolvers)
from histae.atomic import write_text
from histae.jobdir import JobDir
from tests.helpers.paths import CONF
from tests.helpers.run import TINY


def job_config(*overrides: str) -> dict:
    """The resolved job config of ``python -m histae +experiment=smoke OVERRIDES`` (a copy)."""
    return copy.deepcopy(_job_config(overrides))


@functools.cache
def _job_config(overrides: tuple[str, ...]) -> dict:
    # Composing costs ~0.25 s; the job-folder fakes ask for the same few configs many times.
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(CONF), version_base="1.3"):
            cfg = compose("config", overrides=[*TINY, *overrides])
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    finally:
        GlobalHydra.instance().clear()


def metric_rows(w1: float, inputs: int = 192, loss: float = 20.0) -> list[dict]:
    """metrics.csv rows of a job whose final validation has hist_w1 ``w1``, pixel L1 2*w1,
    PSNR 10/w1 and loss ``loss``; earlier rows are twice as bad."""
    rows = []
    for i, at in enumerate((inputs // 2, inputs)):
        f = 2.0 if i == 0 else 1.0
        common = {"loss": loss * f, "loss_reconstruction": loss * f * 0.99}
        common |= {"loss_batch_std": 0.1, "loss_batch_mean": 0.0}
        rows.append({"inputs": at, "split": "train", "lr": 3e-4, **common})
        pixel = {"pixel_l1": 2 * w1 * f, "pixel_mse": 0.1, "psnr": 10 / (w1 * f), "hist_w1": w1 * f}
        rows.append({"inputs": at, "split": "val", **common, **pixel})
    return rows


def samples(collapsed: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    """samples.npz arrays: 16 random tiles and reconstructions (all below 0 when collapsed)."""
    rng = np.random.default_rng(seed)
    originals = rng.random((16, 3, 32, 32)).astype(np.float32)
    recon = -rng.random(originals.shape).astype(np.float32) if collapsed else originals[::-1]
    edges = np.linspace(0.0, 1.0, 257)
    hist = np.stack([np.histogram(originals[:, c], edges)[0] for c in range(3)])
    return {
        "inputs": np.array(192),
        "originals": originals,
        "reconstructions": recon,
        "hist_edges": edges,
        "hist_originals": hist,
        "hist_reconstructions": hist,
    }


def write_job(
    job_dir: Path,
    overrides: Sequence[str],
    status: str | None = "done",
    w1: float = 0.1,
    loss: float = 20.0,
    collapsed: bool = False,
    error: str | None = None,
) -> Path:
    """A job folder as a job writes it through JobDir (``status`` None: Hydra's record only)."""
    config = job_config(*overrides)
    job = JobDir(job_dir)
    job.record_hydra(yaml.safe_dump(config), "{}\n", list(overrides))
    if status is None:
        return job_dir
    rows = metric_rows(w1, loss=loss) if status != "failed" else []
    job.inputs, job.wall_time = (rows[-1]["inputs"] if rows else 0), 2.0
    if rows:
        job.write_metrics(rows)
        job.write_samples(samples(collapsed))
    if status == "done":
        final = {s: [r for r in rows if r["split"] == s][-1] for s in ("train", "val")}
        job.write_summary({"status": "done", "final": final, "config": config})
    job.write_status(status, error=error)
    return job_dir


SEEDS = {1: (0.10, 0.30), 2: (0.20, 0.40), 3: (0.30, 0.50)}  # seed -> w1 at bins 50 / 200


def write_sweep(sweep_dir: Path, seeds: Sequence[int] = (1,)) -> Path:
    """A bins x sigma sweep (50, 200 x 50, 100) over ``seeds``; bins 200 has the lower raw
    loss (it scales as 1/bins) but the worse hist_w1; sigma 100 adds 0.05 to w1."""
    task = ["loss.bins=50,200", "loss.sigma=50,100"]
    task += [f"trainer.seed={','.join(map(str, seeds))}"] if len(seeds) > 1 else []
    write_text(
        sweep_dir / "multirun.yaml", yaml.safe_dump({"hydra": {"overrides": {"task": task}}})
    )
    for bins in (50, 200):
        for sigma in (50, 100):
            for seed in seeds:
                w1 = SEEDS[seed][bins == 200] + (0.05 if sigma == 100 else 0.0)
                overrides = [f"loss.bins={bins}", f"loss.sigma={sigma}", f"trainer.seed={seed}"]
                name = f"bins-{bins}_sigma-{sigma}" + (f"_seed-{seed}" if len(seeds) > 1 else "")
                write_job(sweep_dir / name, overrides, w1=w1, loss=3072 / bins * 0.5)
    return sweep_dir


def finished_job(tmp_path: Path, name: str = "job") -> Path:
    """A small done job folder written by the real writer: two metrics rows, summary, samples."""
    job = JobDir(tmp_path / name)
    with job.recording():
        job.inputs, job.wall_time = 64, 1.5
        job.write_metrics(
            [
                {"inputs": 64, "split": "train", "loss": 2.0, "lr": 1e-3},
                {"inputs": 64, "split": "val", "loss": 1.5, "psnr": 9.0},
            ]
        )
        job.write_summary({"status": "done", "inputs": 64, "images_per_second": 42.0})
        job.write_samples(
            {
                "inputs": 64,
                "originals": np.zeros((2, 3, 4, 4), np.float32),
                "reconstructions": np.zeros((2, 3, 4, 4), np.float32),
                "hist_edges": np.linspace(0, 1, 5),
                "hist_originals": np.ones((3, 4)),
                "hist_reconstructions": np.ones((3, 4)),
            }
        )
        job.record_hydra("a: 1\n", "hydra: {}\n", ["loss.bins=50"])
        job.write_status("done")
    return job.path
