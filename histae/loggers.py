"""Extra experiment loggers beside metrics.csv (which is always written): ``logger=csv|tensorboard``.

``logger=tensorboard`` (``pip install "histae[tensorboard]"``) writes TensorBoard event files into
the job folder with the reference's own tag names, so ``tensorboard --logdir <sweep folder>``
shows what the reference showed: one run per job, ``train_loss``, ``validation_loss``, ... against
images seen, the validation reconstruction grid at each validation, and an HParams table of the
jobs' swept values and final metrics.

The config group ``conf/logger`` instantiates :func:`make_logger`, which checks that the logger can
run (before any training) and returns its class; the trainer then opens it on the job folder.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

# The reference's Trainer logs f"train_{key}" for each averaged loss part and f"validation_{key}"
# for each validation loss part, at step = inputs seen; its reconstruction grid is
# "validation_reconstruction" and its learning rate "learnrate_1_<Optimizer>", averaged as a
# train scalar.
SPLIT_PREFIX = {"train": "train_", "val": "validation_"}
IMAGE_TAG = "validation_reconstruction"
NOT_SCALARS = ("inputs", "split")

MISSING_TENSORBOARD = (
    'logger=tensorboard needs the tensorboard package: pip install "histae[tensorboard]"'
)


class MissingPackageError(ValueError):
    """A chosen logger needs a package that is not installed.

    A ValueError, so histae reports it like any other bad config value: one line, before training.
    """


def row_tags(row: Mapping[str, Any], optimizer: str = "") -> dict[str, float]:
    """A metrics.csv row as the reference's scalar tags.

    ``{"inputs": 1000, "split": "train", "loss": 24.3, "lr": 3e-4}`` ->
    ``{"train_loss": 24.3, "train_learnrate_1_AdamW": 3e-4}`` (``optimizer="AdamW"``);
    a ``val`` row's keys get ``validation_``. Empty (None) values are left out.
    """
    prefix = SPLIT_PREFIX[row["split"]]
    tags = {}
    for key, value in row.items():
        if key in NOT_SCALARS or value is None:
            continue
        if key == "lr":
            key = f"learnrate_1_{optimizer}" if optimizer else "learnrate"
        tags[prefix + key] = float(value)
    return tags


def final_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any] | None]:
    """The last train and the last validation row: a job's final metrics."""
    return {
        split: next((r for r in reversed(rows) if r["split"] == split), None)
        for split in ("train", "val")
    }


def job_hparams(cfg: DictConfig) -> dict[str, Any]:
    """The job's values of the keys set on its command line (a sweep job's swept values).

    ``loss.bins=50`` gives ``{"loss.bins": 50}`` (typed, from the config); a group choice like
    ``loss=emd`` gives ``{"loss": "emd"}``. Empty outside a Hydra app (tests calling ``train``).
    """
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    hparams: dict[str, Any] = {}
    for override in HydraConfig.get().overrides.task:
        key, _, text = override.lstrip("+~").partition("=")
        if key.startswith("hydra.") or key == "logger":  # not the job's values: how it runs
            continue
        value = OmegaConf.select(cfg, key, default=text)
        if OmegaConf.is_config(value) or value is None:
            value = text  # a group choice or a null: the override as written
        hparams[key] = value
    return hparams


class NullLogger:
    """``logger=csv``: nothing beyond metrics.csv, which the trainer always writes."""

    def __init__(
        self,
        job_dir: str | Path,
        hparams: Mapping[str, Any] | None = None,
        resume_from: int = 0,
        optimizer: str = "",
    ) -> None:
        pass

    def log_row(self, row: Mapping[str, Any]) -> None:
        pass

    def log_image(self, inputs: int, grid: np.ndarray) -> None:
        pass

    def log_final(self, final: Mapping[str, Mapping[str, Any] | None]) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> NullLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class TensorBoardLogger(NullLogger):
    """TensorBoard events in the job folder: the reference's scalars, the reconstruction grid at
    each validation, and the job's hparams with its final metrics, all in one run.

    Args:
        job_dir: the job folder; the event files go straight into it (one TensorBoard run per job).
        hparams: the job's swept values (:func:`job_hparams`) for the HParams table.
        resume_from: images seen at the checkpoint this run resumes from (0: a fresh start).
            TensorBoard drops the steps an earlier run logged after that checkpoint (purge_step),
            so a resumed job shows each step once.
        optimizer: the optimizer's class name, for the reference's learning-rate tag.
    """

    def __init__(
        self,
        job_dir: str | Path,
        hparams: Mapping[str, Any] | None = None,
        resume_from: int = 0,
        optimizer: str = "",
    ) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.hparams = dict(hparams or {})
        self.optimizer = optimizer
        # Purge from the step after the checkpoint: its own rows and grid (logged and flushed
        # before it was written) stay. A fresh start purges everything an earlier run left.
        purge_step = resume_from + 1 if resume_from else 0
        self.writer = SummaryWriter(log_dir=str(job_dir), purge_step=purge_step)

    def log_row(self, row: Mapping[str, Any]) -> None:
        """One metrics.csv row as scalars at step = inputs seen."""
        for tag, value in row_tags(row, self.optimizer).items():
            self.writer.add_scalar(tag, value, global_step=int(row["inputs"]))
        if row["split"] == "val":
            # A validation is when a checkpoint is written: make the events on disk match it.
            self.writer.flush()

    def log_image(self, inputs: int, grid: np.ndarray) -> None:
        """The (H, W, 3) uint8 reconstruction grid at step ``inputs``."""
        self.writer.add_image(IMAGE_TAG, grid, global_step=inputs, dataformats="HWC")
        self.writer.flush()

    def log_final(self, final: Mapping[str, Mapping[str, Any] | None]) -> None:
        """The HParams session of this run: the hparams, and the final rows' tags as metrics.

        ``SummaryWriter.add_hparams`` would open a second, timestamped run for them; the three
        hparams summaries written here go into this run, whose scalars already hold the metrics'
        values (TensorBoard's HParams table reads each metric's last value in the run).
        """
        from torch.utils.tensorboard.summary import hparams

        metrics: dict[str, float] = {}
        for row in final.values():
            if row is not None:
                metrics.update(row_tags(row, self.optimizer))
        values = {k: v for k, v in metrics.items() if math.isfinite(v)}
        for summary in hparams(_hparam_values(self.hparams), values):
            self.writer.file_writer.add_summary(summary)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _hparam_values(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """HParams take bool, int, float or str: anything else (a list) as its text."""
    return {k: v if isinstance(v, bool | int | float | str) else str(v) for k, v in hparams.items()}


LOGGERS: dict[str, type[NullLogger]] = {"csv": NullLogger, "tensorboard": TensorBoardLogger}
NEEDS: dict[str, tuple[str, str]] = {"tensorboard": ("tensorboard", MISSING_TENSORBOARD)}


def make_logger(name: str) -> Callable[..., NullLogger]:
    """The logger class for ``logger=<name>``, once its package is known to be importable.

    Raises:
        ValueError: ``name`` is not a logger.
        MissingPackageError: its package is not installed (one line with the pip command).
    """
    if name not in LOGGERS:
        raise ValueError(f"logger must be one of {', '.join(LOGGERS)}, got {name!r}")
    if name in NEEDS:
        module, message = NEEDS[name]
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingPackageError(message) from None
    return LOGGERS[name]
