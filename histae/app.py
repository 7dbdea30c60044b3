"""``python -m histae``: the Hydra entry point. All the work is in :func:`histae.train.train`.

Exit statuses: 0 done; 1 failed (bad input, an error); 3 diverged (a result, but a script should
know); 128 + signal when stopped by SIGTERM (143) or Ctrl-C (130), resumable by the same command.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
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
from histae.hydra_compat import MAIN_KWARGS, experiment_mode_args, one_line_errors
from histae.jobdir import (
    HYDRA,
    STATUS,
    JobDir,
    JobPruned,
    JobStopped,
    UnsafeFolder,
    check_writable,
    error_line,
)
from histae.progress import rerun_command

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


@hydra.main(config_path=CONFIG_DIR, config_name="config", **MAIN_KWARGS)
def _main(cfg: DictConfig) -> dict[str, Any]:
    """Train one job in Hydra's job folder; return its summary (sweepers read the status)."""
    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    # Hydra made the folder just now if it holds nothing but the job's log, still empty (Hydra
    # opened it; nothing is logged yet): only then may a failed start remove it.
    log_file = job_dir / f"{hydra_cfg.job.name}.log"
    made_here = job_dir.is_dir() and all(
        p == log_file and p.is_file() and not p.is_symlink() and p.stat().st_size == 0
        for p in job_dir.iterdir()
    )
    if cfg.trainer.threads == 0:
        cfg.trainer.threads = launcher_threads(hydra_cfg)
    started = (job_dir / STATUS).exists()
    single = hydra_cfg.mode == RunMode.RUN
    try:  # before anything is written or logged: no write may go through a link
        check_writable(job_dir, f"{hydra_cfg.job.name}.log")
    except UnsafeFolder as err:
        if not single:
            raise
        sys.stderr.write(f"histae: error: {err}\n")
        raise RunEnded(EXIT_FAILED, job_dir, fresh=made_here) from err

    def record_config() -> None:
        JobDir(job_dir).record_hydra(
            OmegaConf.to_yaml(cfg),
            OmegaConf.to_yaml({"hydra": hydra_cfg}),
            list(hydra_cfg.overrides.task),
        )

    from histae.train import train  # torch and the training stack: not for --help or --cfg

    try:
        summary = train(
            cfg,
            job_dir,
            on_start=record_config,
            record_failure=not single,
            overrides=list(hydra_cfg.overrides.task),
        )
    except KeyboardInterrupt as err:  # a second Ctrl-C: main() names the folder to resume
        err.job_dir = job_dir  # type: ignore[attr-defined]
        raise
    except JobPruned as err:  # the search's decision, not a failure: the sweeper says it
        log.info(f"[{job_dir.name}] {err}")
        raise
    except Exception as err:
        if not single or os.environ.get("HYDRA_FULL_ERROR") == "1":
            log.error(f"[{job_dir.name}] failed: {error_line(err)}")
            raise
        # Hydra would print a trimmed traceback; one line says it better (and only once).
        sys.stderr.write(f"histae: error: {condense(err)}\n")
        raise RunEnded(
            EXIT_FAILED,
            job_dir,
            fresh=made_here and not started and not (job_dir / STATUS).exists(),
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
    """Delete a run folder this run made (it was empty when the job began) after a bad start,
    if it still holds only the job's record and log; a folder that held anything before is
    never touched (the caller knows which: ``RunEnded.fresh``)."""
    if not job_dir.is_dir() or job_dir.is_symlink():
        return
    names = {p.name for p in job_dir.iterdir()}
    if names <= {HYDRA} | {n for n in names if n.endswith(".log")}:
        close_logs_in(job_dir)
        shutil.rmtree(job_dir, ignore_errors=True)


def close_logs_in(folder: Path) -> None:
    """Detach and close the log file handlers writing into ``folder``, before it is removed.

    Hydra leaves its job log's handler on the root logger after the app returns; a caller that
    goes on in this process (tests run many apps in one) would log into a removed folder, which
    on Hydra 1.4 (its handler reopens the file) raises FileNotFoundError at every log line.
    """
    folder = folder.resolve()
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in list(getattr(logger, "handlers", [])):
            if (
                isinstance(handler, logging.FileHandler)
                and Path(handler.baseFilename).parent == folder
            ):
                logger.removeHandler(handler)  # type: ignore[union-attr]
                handler.close()


# Hydra's launcher options that come from the `launchers` extra, by the package that adds them.
LAUNCHER_PLUGINS = {
    "joblib": "hydra-joblib-launcher",
    "submitit_local": "hydra-submitit-launcher",
    "submitit_slurm": "hydra-submitit-launcher",
}
INSTALL_LAUNCHERS = 'pip install -e ".[launchers]"'


def missing_launcher(text: str) -> str | None:
    """The line for ``hydra/launcher=<option>`` when the option's plugin is not installed
    (Hydra says only that it cannot find ``hydra/launcher/<option>``), else None."""
    match = re.search(r"Could not find 'hydra/launcher/([\w-]+)'", text)
    if match is None or match.group(1) not in LAUNCHER_PLUGINS:
        return None
    option = match.group(1)
    return (
        f"hydra/launcher={option} needs {LAUNCHER_PLUGINS[option]}, which is not installed: "
        f"{INSTALL_LAUNCHERS} (histae's launchers extra)"
    )


def unknown_key(err: BaseException) -> str | None:
    """The line for an override of a key the config does not have (``loss.binz=5``), else None.

    Hydra suggests ``+loss.binz=5``, which adds the key and then fails when the loss is built
    (an unexpected keyword argument); the likely intent is the close key that exists. Names
    the key as typed and either the closest keys, or the keys there are.
    """
    match = re.match(r"Could not override '([^']+)'", str(err))
    cause = err.__cause__
    node = getattr(cause, "parent_node", None)
    if match is None or node is None or not hasattr(node, "keys"):
        return None
    typed = match.group(1)
    value = re.search(r"To append to your config use \+\S+?=(.*)", str(err))
    wrong = str(getattr(cause, "full_key", None) or typed)  # the first part that does not exist
    parent, _, last = wrong.rpartition(".")
    rest = typed[len(wrong) :] if typed.startswith(wrong) else ""
    keys = [str(k) for k in node if str(k) != "hydra"]
    where = parent or "the config"
    close = difflib.get_close_matches(last, keys, n=3, cutoff=0.6)
    if not close:
        return f"{typed} is not a key of {where}; {where} has {', '.join(keys)}"
    assign = f"={value.group(1)}" if value else ""
    options = " or ".join(f"{parent + '.' if parent else ''}{k}{rest}{assign}" for k in close)
    return f"{typed} is not a key of {where}; did you mean {options}?"


def condense(err: BaseException) -> str:
    """One line for an error: Hydra's and OmegaConf's multi-line messages joined up.

    ``"Could not find 'loss/nope'\\nAvailable options in 'loss':\\n\\thistogram\\n\\tl1"`` becomes
    ``"Could not find 'loss/nope'; Available options in 'loss': histogram, l1"``. An unknown
    key gets the close valid key (:func:`unknown_key`), a launcher whose plugin is not
    installed the pip command (:func:`missing_launcher`).
    """
    special = unknown_key(err) or missing_launcher(str(err))
    if special is not None:
        return special
    if isinstance(err, FileExistsError | NotADirectoryError) and err.filename:
        # Hydra making the run or sweep folder where a file is (or a file is in the path)
        return (
            f"{err.filename} is a file, not a folder: choose another hydra.run.dir or "
            "hydra.sweep.dir"
        )
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


def version_line() -> str:
    """``--version``: histae's own version, and the Hydra it runs on."""
    from hydra import __version__ as hydra_version

    from histae import __version__

    return f"histae {__version__} (Hydra {hydra_version})"


# Hydra's flags that each choose what the command does; Hydra allows one of them.
_COMMANDS = {
    "-m": "--multirun",
    "--multirun": "--multirun",
    "-c": "--cfg",
    "--cfg": "--cfg",
    "-i": "--info",
    "--info": "--info",
    "-r": "--run",
    "--run": "--run",
    "--shell-completion": "--shell-completion",
    "-sc": "--shell-completion",
}


def command_clash(argv: list[str]) -> str | None:
    """The line for two of Hydra's command flags at once (``-m --cfg job``), else None.

    Hydra refuses them with a traceback, outside its error reporter; the common case is
    ``-m --cfg job``: --cfg shows one job's config, so the sweep's values must go.
    """
    given = list(dict.fromkeys(_COMMANDS[a] for a in argv if a in _COMMANDS))
    if len(given) < 2:
        return None
    if set(given) == {"--multirun", "--cfg"}:
        return (
            "-m and --cfg cannot be combined: --cfg shows one job's config; to see a job's, "
            "drop -m and give each key one value (loss.bins=50, not loss.bins=50,100)"
        )
    return f"{' and '.join(given)} cannot be combined: Hydra runs one of them at a time"


def main() -> None:
    """Console entry point: ``histae`` / ``python -m histae`` with Hydra's command line."""
    args = sys.argv[1:]
    if "--version" in args:
        print(version_line())
        sys.exit(0)
    if (clash := command_clash(args)) is not None:
        sys.stderr.write(f"histae: error: {clash}\n")
        sys.exit(EXIT_FAILED)
    register()  # the schemas the YAML files extend, before Hydra composes them
    sys.argv[1:] = experiment_mode_args(sys.argv[1:], CONFIG_DIR)  # Hydra 1.4: a sweep experiment
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
        sys.stderr.write(
            f"histae: stopped at {stopped.inputs:,} inputs after {time.time() - start:.0f} s; "
            f"to resume, run: {resume_command(stopped)}\n"
        )
        sys.exit(128 + stopped.signum)
    except KeyboardInterrupt as interrupted:
        if resume_command(interrupted) is None:
            sys.stderr.write("histae: interrupted\n")
        else:
            # A second Ctrl-C: the step was not checkpointed; the job goes on from its last
            # checkpoint (its last validation), or starts over if it had none.
            sys.stderr.write(
                "histae: interrupted before the step was checkpointed; to resume from the last "
                f"checkpoint, run: {resume_command(interrupted)}\n"
            )
        sys.exit(130)


def resume_command(stopped: BaseException) -> str | None:
    """The command that resumes what ``stopped`` (JobStopped, KeyboardInterrupt) interrupted:
    the sweep's folder when the sweeper named it, else the run's; None when neither was made."""
    sweep_dir = getattr(stopped, "sweep_dir", None)
    if sweep_dir is not None:
        return rerun_command("hydra.sweep.dir", sweep_dir)
    job_dir = getattr(stopped, "job_dir", None)
    return rerun_command("hydra.run.dir", job_dir) if job_dir is not None else None


if __name__ == "__main__":
    main()
