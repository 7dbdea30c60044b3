"""``python -m histae``: the Hydra entry point. All the work is in :func:`histae.train.train`.

Exit statuses: 0 done; 1 failed (bad input, an error); 3 diverged (a result, but a script should
know); 128 + signal when stopped by SIGTERM (143) or Ctrl-C (130), resumable by the same command.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from histae.config import CONFIG_DIR, register
from histae.hydra_compat import one_line_errors
from histae.jobdir import HYDRA, STATUS, JobDir, JobStopped, error_line

log = logging.getLogger("histae")

EXIT_FAILED, EXIT_DIVERGED = 1, 3


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


class RunEnded(SystemExit):
    """A single run ended other than done: its exit status, and whether its folder is unused."""

    def __init__(self, code: int, job_dir: Path, fresh: bool) -> None:
        super().__init__(code)
        self.job_dir = job_dir
        self.fresh = fresh  # failed before training started: the folder holds only Hydra's record


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _main(cfg: DictConfig) -> dict[str, Any]:
    """Train one job in Hydra's job folder; return its summary (sweepers read the status)."""
    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    if cfg.trainer.threads == 0:
        cfg.trainer.threads = launcher_threads(hydra_cfg)
    started = (job_dir / STATUS).exists()

    def record_config() -> None:
        JobDir(job_dir).record_hydra(
            OmegaConf.to_yaml(cfg),
            OmegaConf.to_yaml({"hydra": hydra_cfg}),
            list(hydra_cfg.overrides.task),
        )

    single = hydra_cfg.mode == RunMode.RUN
    from histae.train import train  # torch and the training stack: not for --help or --cfg

    try:
        summary = train(cfg, job_dir, on_start=record_config, record_failure=not single)
    except Exception as err:
        if not single or os.environ.get("HYDRA_FULL_ERROR") == "1":
            log.error(f"[{job_dir.name}] failed: {error_line(err)}")
            raise
        # Hydra would print a trimmed traceback; one line says it better (and only once).
        sys.stderr.write(f"histae: error: {condense(err)}\n")
        raise RunEnded(
            EXIT_FAILED, job_dir, fresh=not started and not (job_dir / STATUS).exists()
        ) from err
    if single:
        from histae.report import outputs_index_of, write_job_page

        page = write_job_page(job_dir)  # a sweep's job pages are part of its report
        log.info(result_paths(job_dir, page, outputs_index_of(job_dir)))
        if summary.get("status") == "diverged":
            sys.stderr.write(f"histae: diverged: see {job_dir / STATUS}\n")
            raise RunEnded(EXIT_DIVERGED, job_dir, fresh=False)
    return summary


def result_paths(job_dir: Path, page: Path, index: Path | None) -> str:
    """The last line of a single run: its page and ``outputs/index.html`` (when the run is in
    the default layout)."""
    line = f"[{job_dir.name}] results: {page}"
    return line + (f"; all runs: {index}" if index is not None else "")


def remove_unstarted_run(job_dir: Path) -> None:
    """Delete a run folder that holds only what Hydra made before a bad start (and its log)."""
    if not job_dir.is_dir():
        return
    names = {p.name for p in job_dir.iterdir()}
    if names <= {HYDRA} | {n for n in names if n.endswith(".log")}:
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
        ("hydra", "omegaconf", "hydra_plugins")
    ):
        return text
    return f"{type(err).__name__}: {text} (set HYDRA_FULL_ERROR=1 for the traceback)"


def exit_status(err: BaseException) -> int:
    """The exit status for an error that ended a sweep: diverged jobs get their own."""
    return EXIT_DIVERGED if getattr(err, "diverged_only", False) else EXIT_FAILED


def safe_log_records() -> None:
    """Make every log record's text printable: an undecodable file name (surrogates, from a
    non-UTF-8 name on disk) is shown backslash-escaped instead of breaking the log handler."""
    make = logging.getLogRecordFactory()
    if getattr(make, "histae_safe", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it as it always has
            return record
        safe = message.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        if safe != message:
            record.msg, record.args = safe, None
        return record

    factory.histae_safe = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def main() -> None:
    """Console entry point: ``histae`` / ``python -m histae`` with Hydra's command line."""
    register()  # the schemas the YAML files extend, before Hydra composes them
    safe_log_records()
    for stream in (sys.stdout, sys.stderr):  # a non-UTF-8 file name must not crash a print
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    start = time.time()
    try:
        with one_line_errors(condense, exit_status):
            _main()
    except RunEnded as ended:
        if ended.fresh:
            remove_unstarted_run(ended.job_dir)
        raise
    except JobStopped as stopped:
        where = getattr(stopped, "sweep_dir", None)
        how = f"hydra.sweep.dir={where}" if where else f"hydra.run.dir={stopped.job_dir}"
        sys.stderr.write(
            f"histae: stopped at {stopped.inputs:,} inputs after {time.time() - start:.0f} s; "
            f"rerun the same command with {how} to resume\n"
        )
        sys.exit(128 + stopped.signum)
    except KeyboardInterrupt:
        sys.stderr.write("histae: interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
