"""Extra experiment loggers beside metrics.csv (which is always written):
``logger=csv|tensorboard|mlflow``.

``logger=tensorboard`` (``pip install "histae[tensorboard]"``) writes TensorBoard event files into
the job folder with the reference's own tag names, so ``tensorboard --logdir <sweep folder>``
shows what the reference showed: one run per job, ``train_loss``, ``validation_loss``, ... against
images seen, the validation reconstruction grid at each validation, and an HParams table of the
jobs' swept values and final metrics.

``logger=mlflow`` (``pip install -e ".[mlflow]"``) writes one MLflow run per job into a SQLite
database in the sweep (or single run) folder, ``mlflow.db``, with the artifacts beside it in
``mlartifacts/``: the job's resolved config as params, the same tags as metrics at step = images
seen, and each validation's reconstruction grid. A sweep is one MLflow experiment, so MLflow's
compare, group-by and parallel-coordinates views take its jobs side by side.

The config group ``conf/logger`` instantiates :func:`make_logger`, which checks that the logger can
run (before any training) and returns its class; the trainer then opens it on the job folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.util
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
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
MISSING_MLFLOW = 'logger=mlflow needs the mlflow package: pip install -e ".[mlflow]"'


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
    """``logger=csv``: nothing beyond metrics.csv, which the trainer always writes.

    Every logger takes the same arguments (see :class:`TensorBoardLogger`); ``config`` is the
    job's resolved config (``histae.build.job_config``), for loggers that record it.
    """

    def __init__(
        self,
        job_dir: str | Path,
        hparams: Mapping[str, Any] | None = None,
        resume_from: int = 0,
        optimizer: str = "",
        config: Mapping[str, Any] | None = None,
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
        config: Mapping[str, Any] | None = None,
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


MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlartifacts"
GRID_ARTIFACT = "reconstructions/inputs-{inputs:09d}.png"  # the job's own grid file names
# Tags that find a job's run again when it resumes (and say where it came from).
JOB_TAG, SWEEP_TAG = "histae.job_dir", "histae.sweep_dir"
_MAX_PARAMS_PER_BATCH = 100  # MLflow's log_batch limit


def flat_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as MLflow params: dotted keys, values as text (lists as written).

    ``{"loss": {"bins": 50, "kernel": None}, "model": {"channels": [8, 8]}}`` ->
    ``{"loss.bins": "50", "loss.kernel": "None", "model.channels": "[8, 8]"}``.

    >>> flat_params({"loss": {"bins": 50, "kernel": None}, "model": {"channels": [8, 8]}})
    {'loss.bins': '50', 'loss.kernel': 'None', 'model.channels': '[8, 8]'}
    """
    params: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            params |= flat_params(value, name + ".")
        else:
            params[name] = str(value)
    return params


def sweep_folder(job_dir: Path) -> Path | None:
    """The sweep folder of a Hydra multirun job in ``job_dir``; None for a single run or outside
    Hydra. Taken from the job folder and ``hydra.sweep.subdir`` (a launcher may run the job in
    another working directory, so ``hydra.sweep.dir``, often relative, is not used)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    # A job outside Hydra's (a test calling train after an app ran) is no sweep's; nor is the
    # sweep's own process (its config has no job folder).
    output_dir = OmegaConf.select(hydra_cfg, "runtime.output_dir", default=None)
    if hydra_cfg.mode != RunMode.MULTIRUN or output_dir is None:
        return None
    job_dir = job_dir.resolve()
    if Path(output_dir).resolve() != job_dir:
        return None
    depth = len(Path(str(hydra_cfg.sweep.subdir)).parts)
    return job_dir.parents[depth - 1] if depth else job_dir


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Hold ``<folder>/.mlflow.lock``: parallel jobs of a sweep (joblib) must not create the
    database's tables or the sweep's experiment at the same time."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".mlflow.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class MlflowLogger(NullLogger):
    """One MLflow run per job: the config as params, the scalars at step = images seen, the
    reconstruction grids as artifacts; a sweep's jobs share one experiment.

    Args:
        job_dir: the job folder.
        hparams: the job's swept values (:func:`job_hparams`), also set as tags.
        resume_from: images seen at the checkpoint this run resumes from (0: a fresh start).
            A resumed job reopens its own run (found by its folder's tag) and skips each
            (metric, step) the run already holds: a resume recomputes the same rows bitwise,
            so this is TensorBoard's purge-and-relog without deleting anything, and every step
            shows once. A fresh start (``resume_from=0``) replaces an earlier run of the folder.
        optimizer: the optimizer's class name, for the reference's learning-rate tag.
        config: the job's resolved config, logged as params (``loss.bins``, ...).
        tracking_uri: where runs go; None: ``sqlite:///<sweep or run folder>/mlflow.db`` with the
            artifacts in ``mlartifacts/`` beside it.
    """

    def __init__(
        self,
        job_dir: str | Path,
        hparams: Mapping[str, Any] | None = None,
        resume_from: int = 0,
        optimizer: str = "",
        config: Mapping[str, Any] | None = None,
        tracking_uri: str | None = None,
    ) -> None:
        from mlflow.tracking import MlflowClient

        job_dir = Path(job_dir).resolve()
        sweep = sweep_folder(job_dir)
        home = sweep or job_dir  # the folder the database lives in, and the experiment's name
        self.optimizer = optimizer
        # Only a sweep's jobs share a database, and may run at once (joblib).
        with _folder_lock(home) if sweep else contextlib.nullcontext():
            self.client = MlflowClient(tracking_uri or f"sqlite:///{home / MLFLOW_DB}")
            experiment = self._experiment(str(home), (home / MLFLOW_ARTIFACTS).as_uri())
            self.run_id = self._run(experiment, job_dir, sweep, resume_from)
        # (key, step) pairs the run holds already: a resumed run does not log them again.
        self.logged: set[tuple[str, int]] = set()
        if resume_from:
            run = self.client.get_run(self.run_id)
            for key in run.data.metrics:
                history = self.client.get_metric_history(self.run_id, key)
                self.logged |= {(key, m.step) for m in history}
        params = flat_params(config or {})
        have = self.client.get_run(self.run_id).data.params
        self._log_params({k: v for k, v in params.items() if k not in have})
        for key, value in (hparams or {}).items():
            self.client.set_tag(self.run_id, f"histae.{key}", str(value))

    def _experiment(self, name: str, artifacts: str) -> str:
        """The id of the experiment ``name``, created with its artifacts at ``artifacts``."""
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":  # deleted in MLflow's UI: its name is taken
                self.client.restore_experiment(found.experiment_id)
            return found.experiment_id
        return self.client.create_experiment(name, artifact_location=artifacts)

    def _run(self, experiment: str, job_dir: Path, sweep: Path | None, resume_from: int) -> str:
        """The job's run: its earlier one when resuming, else a new one (an earlier run of this
        folder is deleted: a fresh start replaces the job, as it replaces its metrics.csv)."""
        from mlflow.entities import RunStatus

        # Filtered here, not in a search string: a folder's name may hold quotes.
        runs = self.client.search_runs([experiment], max_results=50_000)
        found = [r for r in runs if r.data.tags.get(JOB_TAG) == str(job_dir)]
        if resume_from and found:
            run_id = found[0].info.run_id
            self.client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
            return run_id
        for old in found:
            self.client.delete_run(old.info.run_id)
        tags = {JOB_TAG: str(job_dir)} | ({SWEEP_TAG: str(sweep)} if sweep else {})
        run = self.client.create_run(experiment, tags=tags, run_name=job_dir.name)
        return run.info.run_id

    def _log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), _MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[start : start + _MAX_PARAMS_PER_BATCH])

    def log_row(self, row: Mapping[str, Any]) -> None:
        """One metrics.csv row as metrics at step = inputs seen, in one batch."""
        from mlflow.entities import Metric

        step, now = int(row["inputs"]), int(time.time() * 1000)
        metrics = [
            Metric(key, value, now, step)
            for key, value in row_tags(row, self.optimizer).items()
            if (key, step) not in self.logged
        ]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def log_image(self, inputs: int, grid: np.ndarray) -> None:
        """The (H, W, 3) uint8 reconstruction grid at ``inputs`` as an artifact,
        ``reconstructions/inputs-000000096.png`` (the job folder's own name: a resume
        overwrites the same file)."""
        self.client.log_image(self.run_id, grid, artifact_file=GRID_ARTIFACT.format(inputs=inputs))

    def close(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A stopped job (SIGTERM, Ctrl-C: not an Exception) will resume; anything else failed.
        if exc_type is None:
            self.close()
        else:
            self.close("FAILED" if issubclass(exc_type, Exception) else "KILLED")


LOGGERS: dict[str, type[NullLogger]] = {
    "csv": NullLogger,
    "tensorboard": TensorBoardLogger,
    "mlflow": MlflowLogger,
}
# The modules each logger needs, and the line that says how to install them. Found, not
# imported: mlflow takes seconds to import, which the job pays once, when it opens the logger.
NEEDS: dict[str, tuple[tuple[str, ...], str]] = {
    "tensorboard": (("tensorboard",), MISSING_TENSORBOARD),
    # mlflow-skinny has no SQL store: the default tracking URI needs sqlalchemy too.
    "mlflow": (("mlflow", "sqlalchemy"), MISSING_MLFLOW),
}


def make_logger(name: str, **options: Any) -> Callable[..., NullLogger]:
    """The logger class for ``logger=<name>`` (with its ``options``, e.g. mlflow's
    ``tracking_uri``), once its packages are known to be installed.

    Raises:
        ValueError: ``name`` is not a logger.
        MissingPackageError: its package is not installed (one line with the pip command).
    """
    if name not in LOGGERS:
        raise ValueError(f"logger must be one of {', '.join(LOGGERS)}, got {name!r}")
    modules, message = NEEDS.get(name, ((), ""))
    if any(_missing(module) for module in modules):
        raise MissingPackageError(message)
    return functools.partial(LOGGERS[name], **options) if options else LOGGERS[name]


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):  # a broken install, or a module set to None in sys.modules
        return True
