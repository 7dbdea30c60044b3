"""``python -m histae``: the Hydra entry point. All the work is in :func:`histae.train.train`."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

import histae.config  # noqa: F401  (registers the schemas and resolvers before composition)
from histae.artifacts import error_line, read_status, write_status, write_text
from histae.train import train

log = logging.getLogger("histae")

# conf/ sits beside the package in a checkout; an installed wheel carries it as histae/conf.
_HERE = Path(__file__).resolve().parent
CONFIG_DIR = str(_HERE.parent / "conf" if (_HERE.parent / "conf").is_dir() else _HERE / "conf")


def launcher_threads(hydra_cfg: DictConfig, env: Mapping[str, str] = os.environ) -> int:
    """CPU threads per job when a parallel launcher runs several jobs on this machine (0: default).

    Under joblib each of ``n_jobs`` workers gets ``cores // n_jobs`` threads, so parallel jobs
    share the cores instead of each spawning one thread per core and thrashing. Under submitit,
    a job gets the ``cpus_per_task`` it asked for, when it asked; a SLURM job that did not ask
    gets the CPUs SLURM allotted it (``SLURM_CPUS_ON_NODE``), not every core of the node.
    """
    launcher = hydra_cfg.launcher
    target = str(launcher.get("_target_", "")).lower()
    if "submitit" in target:
        return int(launcher.get("cpus_per_task") or env.get("SLURM_CPUS_ON_NODE") or 0)
    if "joblib" not in target:
        return 0
    cores = os.cpu_count() or 1
    n_jobs = int(launcher.get("n_jobs", -1))
    if n_jobs < 1:
        n_jobs = cores
    return max(1, cores // n_jobs)


class JobFailed(SystemExit):
    """A single run failed: its one-line message is printed, the process exits with status 1."""

    def __init__(self, job_dir: Path, fresh: bool) -> None:
        super().__init__(1)
        self.job_dir = job_dir
        self.fresh = fresh  # failed before training started: the folder holds only Hydra's record


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _main(cfg: DictConfig) -> float | None:
    """Train one job in Hydra's job folder; return the final validation loss (for sweepers)."""
    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    if cfg.trainer.threads == 0:
        cfg.trainer.threads = launcher_threads(hydra_cfg)
    start = time.perf_counter()
    before = read_status(job_dir)

    def record_config() -> None:
        save_hydra_record(cfg, hydra_cfg, job_dir)

    try:
        summary = train(cfg, job_dir, on_start=record_config)
    except Exception as err:
        status = read_status(job_dir)
        if before is None or status != before:  # this run started the job: record its failure
            if before is None:
                record_config()
            status = status or {}
            wall = float(status.get("wall_time", 0.0)) + time.perf_counter() - start
            write_status(job_dir, "failed", status.get("inputs", 0), wall, error=error_line(err))
        log.error(f"[{job_dir.name}] failed: {error_line(err)}")
        if hydra_cfg.mode == RunMode.RUN and os.environ.get("HYDRA_FULL_ERROR") != "1":
            # Hydra would print a trimmed traceback; one line says it better.
            sys.stderr.write(f"histae: error: {condense(err)}\n")
            raise JobFailed(
                job_dir, fresh=before is None and not (job_dir / "metrics.csv").exists()
            ) from err
        raise
    if hydra_cfg.mode == RunMode.RUN:
        # A sweep's jobs get these from the sweep report; a single run makes its own.
        from histae.report import plot_histograms, refresh_outputs_index

        if (job_dir / "samples.npz").is_file():
            plot_histograms(job_dir / "samples.npz", job_dir / "histograms.png", title=job_dir.name)
        refresh_outputs_index(job_dir)
    final = summary.get("final", {}).get("val") or {}
    return final.get("loss")


def save_hydra_record(cfg: DictConfig, hydra_cfg: DictConfig, job_dir: Path) -> None:
    """Hydra's ``.hydra/`` record (config, hydra config, overrides), written once a job starts.

    ``hydra.output_subdir`` is null in conf/config.yaml, so Hydra does not write it before the job
    has checked its input: rerunning a finished folder with a bad value must leave it untouched.
    """
    record = job_dir / ".hydra"
    write_text(record / "config.yaml", OmegaConf.to_yaml(cfg))
    write_text(record / "hydra.yaml", OmegaConf.to_yaml({"hydra": hydra_cfg}))
    write_text(record / "overrides.yaml", OmegaConf.to_yaml(list(hydra_cfg.overrides.task)))


def remove_unstarted_run(job_dir: Path) -> None:
    """Delete a run folder that holds only Hydra's record and the failed status of a bad start."""
    if not job_dir.is_dir():
        return
    names = {p.name for p in job_dir.iterdir()}
    if names <= {".hydra", "status.json"} | {p for p in names if p.endswith(".log")}:
        shutil.rmtree(job_dir, ignore_errors=True)


def condense(err: BaseException) -> str:
    """One line for an error: Hydra's and OmegaConf's multi-line messages joined up.

    ``"Could not find 'loss/nope'\\nAvailable options in 'loss':\\n\\thistogram\\n\\tl1"`` becomes
    ``"Could not find 'loss/nope'; Available options in 'loss': histogram, l1"``.
    """
    parts: list[str] = []
    listing = False
    for e in (err, err.__cause__):
        if e is None:
            continue
        for raw in str(e).splitlines():
            line = raw.strip()
            if line.startswith("Config search path"):
                break
            if not line or line.startswith(("object_type", "reference_type")):
                continue
            if listing and not line.endswith(":"):
                sep = " " if parts[-1].endswith(":") else ", "
                parts[-1] += sep + line
                continue
            listing = line.endswith(":")
            if line not in parts:
                parts.append(line)
    text = "; ".join(parts) or type(err).__name__
    if isinstance(err, ValueError | OSError | KeyError) or type(err).__module__.startswith(
        ("hydra", "omegaconf")
    ):
        return text
    return f"{type(err).__name__}: {text} (set HYDRA_FULL_ERROR=1 for the traceback)"


def _run_and_report(func: Callable[[], Any]) -> Any:
    """Hydra's error reporter, one line: ``histae: error: <what is wrong>`` and exit status 1."""
    try:
        return func()
    except Exception as err:
        sys.stderr.write(f"histae: error: {condense(err)}\n")
        sys.exit(1)


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """Swap Hydra 1.3's reporter (a trimmed traceback or several lines) for ours.

    ``HYDRA_FULL_ERROR=1`` keeps Hydra's own, with the full traceback.
    """
    import hydra._internal.utils as hydra_utils

    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        yield
        return
    original = hydra_utils.run_and_report
    hydra_utils.run_and_report = _run_and_report
    try:
        yield
    finally:
        hydra_utils.run_and_report = original


def main() -> None:
    """Console entry point: ``histae`` / ``python -m histae`` with Hydra's command line."""
    try:
        with _one_line_errors():
            _main()
    except JobFailed as failed:
        if failed.fresh:
            remove_unstarted_run(failed.job_dir)
        raise


if __name__ == "__main__":
    main()
