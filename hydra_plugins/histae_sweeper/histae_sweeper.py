"""Hydra's basic sweeper, plus what a sweep of histae needs.

- Each job's folder is named from the values that vary across the sweep (``bins-100_sigma-50``),
  readable, stable across reruns of the same sweep (which resume relies on), and unique by
  construction: characters a folder name cannot show are percent-encoded, never merged.
- Before anything is written, every job's config is composed and checked, and every job folder
  that already exists must hold the same job: a typo in one value, or a rerun with a different
  fixed value into an old sweep folder, is refused whole, naming the value or the key.
- Every job runs; the report is written when the sweep ends, also when jobs failed (Hydra 1.3
  skips ``on_multirun_end`` callbacks once a job has raised). Ctrl-C stops the whole sweep.
"""

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
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
class HistaeSweeperConf:
    _target_: str = "hydra_plugins.histae_sweeper.histae_sweeper.HistaeSweeper"
    max_batch_size: Optional[int] = None  # noqa: UP045
    params: Optional[Dict[str, str]] = None  # noqa: UP006, UP045
    report: bool = True
    report_lead: Optional[str] = None  # noqa: UP045  (the metric the report sorts by; None: hist_w1)


ConfigStore.instance().store(
    group="hydra/sweeper", name="histae", node=HistaeSweeperConf, provider="histae"
)


# Images per second of one job on 2 CPU cores by its loss's target, for the notice; a loss not
# listed gets the default. Whole jobs at quiet moments (validation and logging included): the
# colour losses from +experiment=colour_losses (README, "The answer, measured"); the histogram
# and pixel losses from the default job and `loss=l1` (48,000 images each: 505 and 526 img/s
# on 2026-11-29 with the fused soft histogram, 511 and 520 before it; the machine's noise is
# as large as the difference).
CPU_IMAGES_PER_SECOND = 400.0
CPU_IMAGES_PER_SECOND_BY_LOSS = {
    "histae.loss.HistogramLoss": 505.0,
    "histae.colour.JointHistogramLoss": 120.0,
    "histae.colour.RGBuvHistogramLoss": 70.0,
    "histae.colour.SlicedWassersteinLoss": 335.0,
    "torch.nn.L1Loss": 525.0,
    "torch.nn.MSELoss": 525.0,
}


def cpu_rate(loss: Any) -> float:
    """A job's expected images per second on a CPU from its ``loss`` node: a composite loss
    goes at its slowest term's rate."""
    target = str(loss.get("_target_", ""))
    if target == "histae.loss.CompositeLoss":
        terms = [t.loss for t in loss.terms.values() if t.weight]
        return min((cpu_rate(term) for term in terms), default=CPU_IMAGES_PER_SECOND)
    return CPU_IMAGES_PER_SECOND_BY_LOSS.get(target, CPU_IMAGES_PER_SECOND)


def _duration(seconds: float) -> str:
    """``20`` -> ``under a minute``, ``1250`` -> ``about 21 min``, ``11250`` -> ``about 3h08m``."""
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    return f"about {minutes} min" if minutes < 60 else f"about {minutes // 60}h{minutes % 60:02d}m"


def sweep_notice(
    name: str,
    budgets: Sequence[int],
    data: str,
    on_cpu: bool,
    rates: Sequence[float] | None = None,
) -> str:
    """What a sweep is about to do, said before it starts.

    ``sweep_notice("histloss", [500_000] * 9, "rpg_tiles", True)`` ->
    ``"histloss: 9 jobs x 500,000 images on data=rpg_tiles; on a CPU about 3h08m
    (about 21 min a job at ~400 img/s)"``. ``budgets`` are the jobs' ``trainer.max_inputs``,
    ``rates`` their expected images per second on a CPU (:func:`cpu_rate`).
    """
    jobs = len(budgets)
    if len(set(budgets)) == 1:
        size = f"{jobs} job{'s' * (jobs != 1)} x {budgets[0]:,} images"
    else:
        size = f"{jobs} jobs, {sum(budgets):,} images in all"
    text = f"{name}: {size} on data={data}"
    if not on_cpu or not budgets:
        return text
    rates = list(rates or [CPU_IMAGES_PER_SECOND] * jobs)
    total = sum(b / r for b, r in zip(budgets, rates, strict=True))
    if len(set(rates)) == 1:
        each = f"{_duration(total / jobs)} a job at ~{rates[0]:,.0f} img/s"
    else:
        each = f"{min(rates):,.0f}-{max(rates):,.0f} img/s by loss"
    return f"{text}; on a CPU {_duration(total)} ({each})"


class SweepFailed(Exception):
    """Some jobs of the sweep failed or diverged; the message names each with its error."""

    def __init__(self, message: str, diverged_only: bool) -> None:
        super().__init__(message)
        self.diverged_only = diverged_only  # the app exits 3 for "diverged", 1 for "failed"


class SweepRefused(ValueError):
    """The sweep cannot start as given; nothing was written."""


BasicSweeper = basic_sweeper()


class HistaeSweeper(BasicSweeper):  # type: ignore[misc,valid-type]
    """BasicSweeper that names job folders from swept values, checks first, reports at the end."""

    def __init__(
        self,
        max_batch_size: int | None = None,
        params: dict[str, str] | None = None,
        report: bool = True,
        report_lead: str | None = None,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.report = report
        self.report_lead = report_lead

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
        from histae.jobdir import error_line

        assert self.config is not None and self.hydra_context is not None
        if self.report_lead is not None:
            from histae.report.build import lead_metric

            try:
                lead_metric(self.report_lead)
            except ValueError as err:
                raise SweepRefused(f"hydra.sweeper.report_lead: {err}") from None
        loader = self.hydra_context.config_loader
        self.estimates: list[tuple[int, float]] = []  # (budget, CPU images/s) per job
        for batch in self.overrides:
            for job in batch:
                shown = " ".join(o for o in job if not o.startswith("hydra.sweep.subdir="))
                try:
                    cfg = loader.load_sweep_config(self.config, list(job))
                    HydraConfig.instance().set_config(cfg)
                    subdir = cfg.hydra.sweep.subdir
                    with open_dict(cfg):
                        del cfg["hydra"]
                    check_config(cfg)
                    config = job_config(cfg)
                    self.estimates.append((int(cfg.trainer.max_inputs), cpu_rate(cfg.loss)))
                except Exception as err:
                    raise SweepRefused(f"job {shown}: {error_line(err)}") from err
                if not self._subdir_is_set_by_user():
                    check_folder(sweep_dir / str(subdir), config, replace=not cfg.trainer.resume)

    def sweep(self, arguments: list[str]) -> Any:
        """BasicSweeper.sweep, but checked first, every job runs, and failures are reported
        together: one error naming every failed job, after the report."""
        from histae.jobdir import MULTIRUN, JobStopped, error_line

        assert self.config is not None and self.launcher is not None
        assert self.hydra_context is not None
        sweep_dir = Path(self.config.hydra.sweep.dir)
        params = [f"{k}={v}" for k, v in self.params.items()] + list(arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        self.overrides = self.split_arguments(parser.parse_overrides(params), self.max_batch_size)
        self.check_jobs(sweep_dir)

        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self._record(), sweep_dir / MULTIRUN)
        log.info(self._notice())
        returns: list[Sequence[JobReturn]] = []
        failed: list[str] = []
        diverged: list[str] = []
        done = 0
        try:
            while not self.is_done():
                batch = self.get_job_batch()
                self.validate_batch_is_legal(batch)
                results = self.launcher.launch(batch, initial_job_idx=done)
                for result in results:
                    name = Path(result.hydra_cfg.hydra.runtime.output_dir).name
                    if result.status == JobStatus.FAILED:
                        error = job_error(result)
                        failed.append(f"{name}: {error_line(error) if error else 'failed'}")
                    elif isinstance(result.return_value, dict) and (
                        result.return_value.get("status") == "diverged"
                    ):
                        diverged.append(name)
                done += len(batch)
                returns.append(results)
        except JobStopped as stopped:
            stopped.sweep_dir = sweep_dir  # type: ignore[attr-defined]  (the app's rerun hint)
            raise
        finally:
            if self.report:
                self._write_report(sweep_dir, self.report_lead)
        if failed or diverged:
            parts = [f"{len(failed)} of {done} jobs failed ({'; '.join(failed)})"] if failed else []
            if diverged:
                parts.append(f"{len(diverged)} diverged ({', '.join(diverged)})")
            raise SweepFailed(f"{'; '.join(parts)}; see {sweep_dir}", diverged_only=not failed)
        return returns

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
        trainer = self.config.trainer
        device = str(trainer.device)
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        return sweep_notice(
            str(choices.get("experiment") or "sweep"),
            [budget for budget, _ in self.estimates],
            str(choices.get("data")),
            on_cpu=device == "cpu",
            rates=[rate for _, rate in self.estimates],
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
