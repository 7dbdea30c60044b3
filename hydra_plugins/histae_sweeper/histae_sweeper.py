"""Hydra's basic sweeper, plus two things a sweep of histae needs.

- Each job's folder is named from the values that vary across the sweep (``bins-100_sigma-50``),
  so folders are readable and stable across reruns of the same sweep (which resume relies on).
- The sweep report is written when the sweep ends, also when jobs failed: Hydra 1.3 skips
  ``on_multirun_end`` callbacks once a job has raised, so the report cannot hang on a callback.
"""

import copy
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional  # noqa: UP035  (OmegaConf needs typing forms)

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from histae.artifacts import error_line

log = logging.getLogger(__name__)


@dataclass
class HistaeSweeperConf:
    _target_: str = "hydra_plugins.histae_sweeper.histae_sweeper.HistaeSweeper"
    max_batch_size: Optional[int] = None  # noqa: UP045
    params: Optional[Dict[str, str]] = None  # noqa: UP006, UP045
    report: bool = True


ConfigStore.instance().store(
    group="hydra/sweeper", name="histae", node=HistaeSweeperConf, provider="histae"
)

_UNSAFE = re.compile(r"[^A-Za-z0-9.,+\-]+")


# Images per second of one job on a CPU (README, Performance: ~440 on 2 cores), for the notice.
CPU_IMAGES_PER_SECOND = 400.0


def _duration(seconds: float) -> str:
    """``20`` -> ``under a minute``, ``1250`` -> ``about 21 min``, ``11250`` -> ``about 3h08m``."""
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    return f"about {minutes} min" if minutes < 60 else f"about {minutes // 60}h{minutes % 60:02d}m"


def sweep_notice(
    name: str, budgets: Sequence[int], data: str, on_cpu: bool, rate: float = CPU_IMAGES_PER_SECOND
) -> str:
    """What a sweep is about to do, said before it starts.

    ``sweep_notice("histloss", [500_000] * 9, "rpg_tiles", True)`` ->
    ``"histloss: 9 jobs x 500,000 images on data=rpg_tiles; on a CPU about 3h08m
    (about 21 min a job at ~400 img/s)"``. ``budgets`` are the jobs' ``trainer.max_inputs``.
    """
    jobs = len(budgets)
    if len(set(budgets)) == 1:
        size = f"{jobs} job{'s' * (jobs != 1)} x {budgets[0]:,} images"
    else:
        size = f"{jobs} jobs, {sum(budgets):,} images in all"
    text = f"{name}: {size} on data={data}"
    if not on_cpu or not budgets:
        return text
    total = sum(budgets) / rate
    each = f"{_duration(total / jobs)} a job at ~{rate:,.0f} img/s"
    return f"{text}; on a CPU {_duration(total)} ({each})"


def job_budgets(jobs: Sequence[Sequence[str]], default: int) -> list[int]:
    """Each job's ``trainer.max_inputs``: its override if it has one, else ``default``."""
    budgets = []
    for job in jobs:
        values = dict(_split(o) for o in job)
        budgets.append(int(values.get("trainer.max_inputs", default)))
    return budgets


class SweepFailed(Exception):
    """Some jobs of the sweep failed; the message names each with its error's first line."""


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def job_names(jobs: Sequence[Sequence[str]]) -> list[str]:
    """A folder name for each job from the overrides whose values differ between jobs.

    ``[["loss.bins=50", "loss.sigma=100", "trainer.seed=0"], ["loss.bins=100", ...]]`` gives
    ``["bins-50_sigma-100", "bins-100_sigma-100"]``: keys shortened to their last part unless two
    swept keys share it. With nothing varying (one job) every override is named.
    """
    parsed = [dict(_split(o) for o in job) for job in jobs]
    keys: list[str] = []
    for job in parsed:
        keys.extend(k for k in job if k not in keys)
    varying = [k for k in keys if len({job.get(k) for job in parsed}) > 1] or keys
    short = [k.rsplit(".", 1)[-1].rsplit("/", 1)[-1] for k in varying]
    labels = [s if short.count(s) == 1 else k for k, s in zip(varying, short, strict=True)]
    names = []
    for job in parsed:
        parts = [
            f"{label}-{_UNSAFE.sub('-', job[k]).strip('-')}"
            for k, label in zip(varying, labels, strict=True)
            if k in job
        ]
        names.append("_".join(parts) or "default")
    return names


class HistaeSweeper(BasicSweeper):
    """BasicSweeper that names job folders from swept values and writes the sweep report."""

    def __init__(
        self,
        max_batch_size: int | None = None,
        params: dict[str, str] | None = None,
        report: bool = True,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.report = report

    def _subdir_is_set_by_user(self) -> bool:
        assert self.config is not None
        return any(
            o.lstrip("+").startswith("hydra.sweep.subdir=")
            for o in self.config.hydra.overrides.hydra
        )

    def split_arguments(  # type: ignore[override]
        self, overrides: list[Override], max_batch_size: int | None
    ) -> list[list[list[str]]]:
        batches = BasicSweeper.split_arguments(overrides, max_batch_size)
        if self._subdir_is_set_by_user():
            return batches
        names = iter(job_names([job for batch in batches for job in batch]))
        return [[[*job, f"hydra.sweep.subdir={next(names)}"] for job in batch] for batch in batches]

    def sweep(self, arguments: list[str]) -> Any:
        """BasicSweeper.sweep, but every job runs and the failures are reported together.

        The basic sweeper raises on the first failed job of a batch (after printing a line for
        it); this one finishes all batches, writes the report, then raises one error that names
        every failed job.
        """
        assert self.config is not None and self.launcher is not None
        assert self.hydra_context is not None
        sweep_dir = Path(self.config.hydra.sweep.dir)
        try:
            params = [f"{k}={v}" for k, v in self.params.items()] + list(arguments)
            parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
            self.overrides = self.split_arguments(
                parser.parse_overrides(params), self.max_batch_size
            )
            sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self._record(), sweep_dir / "multirun.yaml")
            log.info(self._notice())
            returns: list[Sequence[JobReturn]] = []
            failed: list[str] = []
            initial_job_idx = 0
            while not self.is_done():
                batch = self.get_job_batch()
                self.validate_batch_is_legal(batch)
                results = self.launcher.launch(batch, initial_job_idx=initial_job_idx)
                for result in results:
                    if result.status == JobStatus.FAILED:
                        name = Path(result.hydra_cfg.hydra.runtime.output_dir).name
                        failed.append(f"{name}: {error_line(result._return_value)}")
                initial_job_idx += len(batch)
                returns.append(results)
        finally:
            if self.report:
                self._write_report(sweep_dir)
        if failed:
            raise SweepFailed(
                f"{len(failed)} of {initial_job_idx} jobs failed ({'; '.join(failed)}); "
                f"see {sweep_dir}"
            )
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
        jobs = [job for batch in self.overrides for job in batch]
        return sweep_notice(
            str(choices.get("experiment") or "sweep"),
            job_budgets(jobs, int(trainer.max_inputs)),
            str(choices.get("data")),
            on_cpu=device == "cpu",
        )

    @staticmethod
    def _write_report(sweep_dir: Path) -> None:
        try:
            from histae.report import write_report
        except ImportError:
            return
        try:
            path = write_report(sweep_dir)
            log.info(f"Sweep report: {path}")
        except Exception as err:  # a broken report must not hide the sweep's own outcome
            log.error(f"Could not write the sweep report for {sweep_dir}: {err}")
