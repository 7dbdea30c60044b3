"""Hydra's basic sweeper, plus what a sweep of histae needs.

- Each job's folder is named from the values that vary across the sweep (``bins-100_sigma-50``),
  readable, stable across reruns of the same sweep (which resume relies on), and unique by
  construction: characters a folder name cannot show are percent-encoded, never merged.
- Before anything is written, every job's config is composed and checked, and every job folder
  that already exists must hold the same job: a typo in one value, or a rerun with a different
  fixed value into an old sweep folder, is refused whole, naming the value or the key.
- Before the first job, the sweep says how long it should take on a CPU (:func:`sweep_seconds`);
  as each job starts and ends, "job k of N" and the sweep's ETA from the jobs done so far.
- Every job runs; the report is written when the sweep ends, also when jobs failed (Hydra 1.3
  skips ``on_multirun_end`` callbacks once a job has raised). Ctrl-C stops the whole sweep. A
  sweep that leaves jobs failed or stopped ends with the command that reruns them.
- With ``hydra.sweeper.search`` set (``hparams_search=<name>``), a search on Optuna instead of a
  grid, its trials' jobs named, checked and reported the same way (:mod:`histae.search`).
"""

import copy
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional  # noqa: UP035  (OmegaConf needs typing forms)

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

# Hydra imports every plugin on every start (--help too): histae's own modules are imported
# inside the methods that use them; hydra_compat is light and gives the base class.
from histae.hydra_compat import basic_sweeper, job_error

log = logging.getLogger(__name__)


@dataclass
class SearchConf:
    """``hydra.sweeper.search``: a search instead of a grid (histae/search.py)."""

    params: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006  (the space)
    n_trials: int = 10  # trials in all, over every rerun of the command
    metric: Optional[str] = None  # noqa: UP045  (None: report_lead, else hist_w1)
    direction: Optional[str] = None  # noqa: UP045  (minimize / maximize; None: the metric's)
    sampler: str = "tpe"  # tpe or random
    seed: int = 0  # the sampler's seed
    pruner: Optional[str] = "median"  # noqa: UP045  (median or none; basic launcher only)
    pruner_startup_trials: int = 5  # trials that finish before the pruner judges any
    max_failures: int = 3  # failed trials the search tolerates before it stops


@dataclass
class HistaeSweeperConf:
    _target_: str = "hydra_plugins.histae_sweeper.histae_sweeper.HistaeSweeper"
    max_batch_size: Optional[int] = None  # noqa: UP045
    params: Optional[Dict[str, str]] = None  # noqa: UP006, UP045
    report: bool = True
    report_lead: Optional[str] = None  # noqa: UP045  (the metric the report sorts by; None: hist_w1)
    search: Optional[SearchConf] = None  # noqa: UP045  (None: a grid)


ConfigStore.instance().store(
    group="hydra/sweeper", name="histae", node=HistaeSweeperConf, provider="histae"
)


# Images per second of one job's training steps on 2 CPU cores by its loss's target, for the
# opening estimate; a loss not listed gets the default. Whole jobs at quiet moments: the colour
# losses from +experiment=colour_losses (README, "The answer, measured"); the histogram and pixel
# losses from the default job and `loss=l1` (48,000 images each: 505 and 526 img/s on 2026-11-29
# with the fused soft histogram, 511 and 520 before it; the machine's noise is as large as the
# difference). At 48,000 images a job's fixed costs below are a few percent of it; at 3,000
# images they are half of it, which the estimate once left out ("under a minute" for a sweep of
# nine 3,000-image jobs that took minutes).
CPU_IMAGES_PER_SECOND = 400.0
CPU_IMAGES_PER_SECOND_BY_LOSS = {
    "histae.loss.HistogramLoss": 505.0,
    "histae.colour.JointHistogramLoss": 120.0,
    "histae.colour.RGBuvHistogramLoss": 70.0,
    "histae.colour.SlicedWassersteinLoss": 335.0,
    "torch.nn.L1Loss": 525.0,
    "torch.nn.MSELoss": 525.0,
}

# A sweep's and a job's fixed costs on 2 CPU cores, from sweeps of the default job with
# trainer.max_inputs=64 and 3000 and of +experiment=smoke (2026-12-07; docs/sweeps.md):
# the process's start (Python, torch, Hydra's composition), every job's checks, the first job's
# imports of the training stack and the report at the end, once per sweep; per job, building its
# data, model and target histograms, its first steps and its summary; per validation, the
# validation tiles' metrics, the job's pictures and its checkpoint (the reference network's
# 296 validation tiles and 58 MB checkpoint; the smoke job's are quicker).
SWEEP_SECONDS = 8.0
JOB_SECONDS = 2.0
VALIDATION_SECONDS = 1.3


def cpu_rate(loss: Any) -> float:
    """A job's expected images per second on a CPU from its ``loss`` node: a composite loss
    goes at its slowest term's rate."""
    target = str(loss.get("_target_", ""))
    if target == "histae.loss.CompositeLoss":
        terms = [t.loss for t in loss.terms.values() if t.weight]
        return min((cpu_rate(term) for term in terms), default=CPU_IMAGES_PER_SECOND)
    return CPU_IMAGES_PER_SECOND_BY_LOSS.get(target, CPU_IMAGES_PER_SECOND)


@dataclass(frozen=True)
class JobEstimate:
    """What the opening estimate knows of one job: its budget, images its steps see, expected
    training rate on a CPU and validations."""

    budget: int  # trainer.max_inputs
    images: int  # whole batches up to the budget (histae.progress.total_images)
    rate: float  # images per second of its training steps on 2 CPU cores
    validations: int  # every trainer.val_every_inputs and at the end

    @classmethod
    def of(cls, cfg: Any) -> "JobEstimate":
        """The estimate's view of a composed job config."""
        from histae.progress import total_images

        t = cfg.trainer
        images = total_images(int(t.max_inputs), int(t.batch_size))
        validations = math.ceil(images / int(t.val_every_inputs))
        return cls(int(t.max_inputs), images, cpu_rate(cfg.loss), validations)

    def seconds(self) -> float:
        """The job's expected seconds on 2 CPU cores: fixed costs, validations, steps."""
        return JOB_SECONDS + self.validations * VALIDATION_SECONDS + self.images / self.rate


def sweep_seconds(jobs: Sequence[JobEstimate]) -> float:
    """The opening estimate: the sweep's own fixed cost plus each job's :meth:`~JobEstimate.seconds`.

    ``sweep_seconds([JobEstimate(3000, 3008, 505.0, 1)] * 9)`` is 8 + 9 x (2 + 1.3 + 3008/505),
    about 92 s.
    """
    return SWEEP_SECONDS + sum(job.seconds() for job in jobs) if jobs else 0.0


def _duration(seconds: float) -> str:
    """``20`` -> ``about 20 s``, ``1250`` -> ``about 21 min``, ``11250`` -> ``about 3h08m``."""
    if seconds < 60:
        return f"about {max(5, 5 * round(seconds / 5))} s"
    minutes = round(seconds / 60)
    return f"about {minutes} min" if minutes < 60 else f"about {minutes // 60}h{minutes % 60:02d}m"


def sweep_notice(name: str, jobs: Sequence[JobEstimate], data: str, on_cpu: bool) -> str:
    """What a sweep is about to do, said before it starts.

    ``sweep_notice("histloss", [JobEstimate(500_000, 500_032, 505.0, 42)] * 9, "rpg_tiles", True)``
    -> ``"histloss: 9 jobs x 500,000 images on data=rpg_tiles; on a CPU about 2h37m (about 17 min
    a job at ~505 img/s, with its setup and validations)"``. The time is :func:`sweep_seconds`.
    """
    budgets = [job.budget for job in jobs]
    n = len(jobs)
    if len(set(budgets)) == 1:
        size = f"{n} job{'s' * (n != 1)} x {budgets[0]:,} images"
    else:
        size = f"{n} jobs, {sum(budgets):,} images in all"
    text = f"{name}: {size} on data={data}"
    if not on_cpu or not jobs:
        return text
    rates = [job.rate for job in jobs]
    if len(set(rates)) == 1:
        each = sum(job.seconds() for job in jobs) / n
        how = f"{_duration(each)} a job at ~{rates[0]:,.0f} img/s, with its setup and validations"
    else:
        how = f"{min(rates):,.0f}-{max(rates):,.0f} img/s by loss, with each job's setup and validations"
    return f"{text}; on a CPU {_duration(sweep_seconds(jobs))} ({how})"


class SweepFailed(Exception):
    """Some jobs of the sweep failed, stopped or diverged; the message names each (a failed one
    with its error) and, unless all of them diverged, the command that reruns them."""

    def __init__(self, message: str, diverged_only: bool) -> None:
        super().__init__(message)
        self.diverged_only = diverged_only  # the app exits 3 for "diverged", 1 for "failed"


class SweepRefused(ValueError):
    """The sweep cannot start as given; nothing was written."""


BasicSweeper = basic_sweeper()


class _LaunchLines(logging.Filter):
    """Drops the basic launcher's own lines ("Launching 1 jobs locally", "#3 : overrides"):
    given one job at a time, it would say "1 jobs" for each, numbered from 0; the sweep's
    "job k of N" line names the job instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Launching ") or message.lstrip().startswith("#"))


class HistaeSweeper(BasicSweeper):  # type: ignore[misc,valid-type]
    """BasicSweeper that names job folders from swept values, checks first, reports at the end."""

    def __init__(
        self,
        max_batch_size: int | None = None,
        params: dict[str, str] | None = None,
        report: bool = True,
        report_lead: str | None = None,
        search: Any = None,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.report = report
        self.report_lead = report_lead
        self.search = search

    @staticmethod
    def launch_lines_filter() -> logging.Filter:
        """The filter that drops the basic launcher's own lines (the search uses it too)."""
        return _LaunchLines()

    def _subdir_is_set_by_user(self) -> bool:
        assert self.config is not None
        return any(
            o.lstrip("+").startswith("hydra.sweep.subdir=")
            for o in self.config.hydra.overrides.hydra
        )

    def split_arguments(  # type: ignore[override]
        self, overrides: list[Override], max_batch_size: int | None
    ) -> list[list[list[str]]]:
        from histae.labels import job_names

        batches = BasicSweeper.split_arguments(overrides, max_batch_size)
        if self._subdir_is_set_by_user():
            return batches
        jobs = [job for batch in batches for job in batch]
        names = job_names(jobs)
        seen: dict[str, list[str]] = {}
        for job, name in zip(jobs, names, strict=True):
            if name in seen:
                raise SweepRefused(
                    f"two jobs would share the folder {name}: {' '.join(seen[name])} and "
                    f"{' '.join(job)}; a swept value is repeated"
                )
            seen[name] = job
        it = iter(names)
        return [[[*job, f"hydra.sweep.subdir={next(it)}"] for job in batch] for batch in batches]

    def check_jobs(self, sweep_dir: Path) -> None:
        """Compose and check every job, and the folders they will write, before any write."""
        from histae.build import job_config
        from histae.checks import check_config, check_folder
        from histae.jobdir import UnsafeFolder, check_name_lengths, check_writable, error_line

        assert self.config is not None and self.hydra_context is not None
        if self.report_lead is not None:
            from histae.report.build import lead_metric

            try:
                lead_metric(self.report_lead)
            except ValueError as err:
                raise SweepRefused(f"hydra.sweeper.report_lead: {err}") from None
        loader = self.hydra_context.config_loader
        self.estimates: list[JobEstimate] = []
        self.folders: list[Path] = []  # each job's folder
        self.resumes: list[bool] = []  # each job's trainer.resume
        try:
            check_name_lengths(sweep_dir)
        except UnsafeFolder as err:
            raise SweepRefused(f"hydra.sweep.dir: {err}") from None
        for batch in self.overrides:
            for job in batch:
                shown = " ".join(o for o in job if not o.startswith("hydra.sweep.subdir="))
                try:
                    cfg = loader.load_sweep_config(self.config, list(job))
                    HydraConfig.instance().set_config(cfg)
                    subdir = cfg.hydra.sweep.subdir
                    job_name = str(cfg.hydra.job.name)
                    with open_dict(cfg):
                        del cfg["hydra"]
                    check_config(cfg)
                    config = job_config(cfg)
                    self.estimates.append(JobEstimate.of(cfg))
                except Exception as err:
                    raise SweepRefused(f"job {shown}: {error_line(err)}") from err
                self.folders.append(sweep_dir / str(subdir))
                self.resumes.append(bool(cfg.trainer.resume))
                try:  # before any write: no job may write through a link or fail on a long name
                    check_writable(sweep_dir / str(subdir), f"{job_name}.log")
                except UnsafeFolder as err:
                    raise SweepRefused(f"job {shown}: {err}") from None
                if not self._subdir_is_set_by_user():
                    check_folder(
                        sweep_dir / str(subdir),
                        config,
                        replace=not cfg.trainer.resume,
                        typed=[o for o in job if not o.startswith("hydra.")],
                    )

    def sweep(self, arguments: list[str]) -> Any:
        """BasicSweeper.sweep, but checked first, every job runs, and failures are reported
        together: one error naming every failed job, after the report. With
        ``hydra.sweeper.search`` set, a search instead (:mod:`.search`).

        Each job (or each batch a parallel launcher runs together) is announced as it starts
        and ends, with the sweep's ETA (:class:`histae.progress.SweepProgress`). A sweep that
        leaves jobs failed or stopped ends with the command that reruns them.
        """
        from histae.jobdir import MULTIRUN, FolderInUse, JobStopped, error_line
        from histae.progress import SweepProgress, rerun_command

        assert self.config is not None and self.launcher is not None
        assert self.hydra_context is not None
        if self.search is not None:  # hydra.sweeper.search: trials asked of Optuna, not a grid
            from histae.search import run_search

            return run_search(self, arguments)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        params = [f"{k}={v}" for k, v in self.params.items()] + list(arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        self.overrides = self.split_arguments(parser.parse_overrides(params), self.max_batch_size)
        self.check_jobs(sweep_dir)

        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self._record(), sweep_dir / MULTIRUN)
        log.info(self._notice())
        progress = SweepProgress(
            [folder.name for folder in self.folders],
            [job.seconds() for job in self.estimates],
            estimate=sweep_seconds(self.estimates) if self._on_cpu() else None,
        )
        # Hydra's basic launcher runs a batch's jobs one after another in this process: given
        # one job at a time, it lets each job's start and end be announced. Other launchers
        # run a batch's jobs together (joblib) or elsewhere (submitit) and get it whole.
        one_by_one = type(self.launcher).__name__ == "BasicLauncher"
        returns: list[Sequence[JobReturn]] = []
        failed: list[str] = []
        held: list[str] = []  # jobs another histae was running (the same sweep, twice)
        diverged: list[str] = []
        done = 0
        quiet = _LaunchLines()
        launcher_log = logging.getLogger(type(self.launcher).__module__)
        if one_by_one:
            launcher_log.addFilter(quiet)
        try:
            while not self.is_done():
                batch = self.get_job_batch()
                self.validate_batch_is_legal(batch)
                for group in [[job] for job in batch] if one_by_one else [batch]:
                    indices = list(range(done, done + len(group)))
                    skipped = [self._already_done(i) for i in indices]
                    log.info(progress.started(indices))
                    results = self.launcher.launch(group, initial_job_idx=done)
                    endings = []
                    for result, skip in zip(results, skipped, strict=True):
                        name = Path(result.hydra_cfg.hydra.runtime.output_dir).name
                        ending = "skipped" if skip else "done"
                        if result.status == JobStatus.FAILED:
                            error = job_error(result)
                            if isinstance(error, FolderInUse):
                                held.append(name)
                                endings.append("held")
                                continue
                            failed.append(f"{name}: {error_line(error) if error else 'failed'}")
                            ending = "failed"
                        elif isinstance(result.return_value, dict) and (
                            result.return_value.get("status") == "diverged"
                        ):
                            diverged.append(name)
                            ending = "skipped" if skip else "diverged"
                        endings.append(ending)
                    log.info(progress.finished(indices, endings))
                    done += len(group)
                    returns.append(results)
        except (JobStopped, KeyboardInterrupt) as stopped:
            # The app prints the rerun command (a second Ctrl-C ends as KeyboardInterrupt).
            stopped.sweep_dir = sweep_dir  # type: ignore[union-attr]
            raise
        finally:
            launcher_log.removeFilter(quiet)
            if self.report:
                self._write_report(sweep_dir, self.report_lead)
        if held:
            # Not this command's failures: another histae holds them and writes their ending.
            log.warning(
                f"{len(held)} of {done} jobs were held by another histae running in this sweep "
                f"folder ({', '.join(held)}); it finishes them. Rerun this command once it has "
                "ended to see them all (finished jobs are skipped)."
            )
        stopped_jobs = [j for j in self._stopped_jobs() if j not in held]
        if failed or diverged or stopped_jobs:
            parts = [f"{len(failed)} of {done} jobs failed ({'; '.join(failed)})"] if failed else []
            if stopped_jobs:
                parts.append(
                    f"{len(stopped_jobs)} of {done} jobs stopped before their end "
                    f"({', '.join(stopped_jobs)})"
                )
            if diverged:
                parts.append(f"{len(diverged)} diverged ({', '.join(diverged)})")
            # Diverged jobs are finished: a rerun skips them, so it helps only the others.
            rerun = bool(failed or stopped_jobs)
            hint = (
                f"; to rerun them (finished jobs are skipped): "
                f"{rerun_command('hydra.sweep.dir', sweep_dir)}"
                if rerun
                else ""
            )
            raise SweepFailed(f"{'; '.join(parts)}; see {sweep_dir}{hint}", diverged_only=not rerun)
        return returns

    def _already_done(self, index: int) -> bool:
        """Whether job ``index`` is finished in its folder, so the job will skip itself."""
        from histae.jobdir import read_status

        if not self.resumes[index]:
            return False
        status = read_status(self.folders[index])
        return status is not None and status.get("status") in ("done", "diverged")

    def _stopped_jobs(self) -> list[str]:
        """The jobs whose folders say they stopped before their end (a launcher's worker got
        SIGTERM, a cluster preempted it, its process died): a rerun resumes them."""
        from histae.jobdir import is_stopped, read_status

        stopped = []
        for folder in self.folders:
            status = read_status(folder)
            if status is not None and (status.get("status") == "stopped" or is_stopped(status)):
                stopped.append(folder.name)
        return stopped

    def _on_cpu(self) -> bool:
        """Whether the sweep's jobs run on this machine's CPU (the estimate is for 2 CPU cores)."""
        assert self.config is not None
        device = str(self.config.trainer.device)
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        return device == "cpu"

    def _record(self) -> DictConfig:
        """The config for multirun.yaml, with the sweep's params as they ran: an experiment
        interpolates them from its top-level ``sweep`` key, and readers of the file (the report)
        should not need to resolve that."""
        assert self.config is not None
        record = copy.deepcopy(self.config)
        with read_write(record), open_dict(record):
            record.hydra.sweeper.params = dict(self.params)
        return record

    def _notice(self) -> str:
        """:func:`sweep_notice` for this sweep: its experiment, jobs, budgets, data and device."""
        assert self.config is not None and self.overrides is not None
        choices = self.config.hydra.runtime.choices
        return sweep_notice(
            str(choices.get("experiment") or "sweep"),
            self.estimates,
            str(choices.get("data")),
            on_cpu=self._on_cpu(),
        )

    @staticmethod
    def _write_report(sweep_dir: Path, lead: str | None) -> None:
        try:
            from histae.report import write_report
        except ImportError:
            return
        try:
            path = write_report(sweep_dir, lead=lead)
            log.info(f"Sweep report: {path}")
        except Exception as err:  # a broken report must not hide the sweep's own outcome
            log.error(f"Could not write the sweep report for {sweep_dir}: {err}")
