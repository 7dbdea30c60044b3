"""The training loop: config -> instantiate -> train -> the job folder.

``train(cfg, job_dir)`` is a plain function (tests call it directly); ``histae.app`` wraps it in
``@hydra.main``. :func:`run_job` reads top to bottom: setup, resume, then the loop in a fixed
order (batch, step, log, validate + checkpoint, stop), then the ending. Everything it writes goes
through :class:`histae.jobdir.JobDir`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import Tensor

from histae import pruning
from histae.build import Setup, build_job, job_config, seed_everything
from histae.checkpoint import (
    CheckpointError,
    check_resumable,
    load_checkpoint,
    refuse,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from histae.checks import check_config, check_folder, typed_in
from histae.debug import apply_debug, overfit_tiles, step_profiler
from histae.jobdir import CHECKPOINT, JobDir, JobStopped
from histae.loggers import final_rows, job_hparams
from histae.metrics import image_metrics, input_dependence
from histae.model import count_parameters
from histae.perf import deterministic_mode, prepare_batch
from histae.progress import Progress, total_images
from histae.signals import stop_signals
from histae.validation import draw_validation, to_float, validate

log = logging.getLogger("histae")


# ----------------------------------------------------------------------------------------------
# The training state and its pieces


@dataclass
class TrainState:
    """Everything of the loop's progress a resume needs besides weights and RNG states."""

    inputs: int = 0  # images seen
    step: int = 0
    epoch: int = 0
    position: int = 0  # batches of the current epoch already taken
    next_log: int = 0
    next_val: int = 0
    wall_time: float = 0.0  # seconds of training over every run of this job
    rows: list[dict[str, Any]] = field(default_factory=list)  # metrics.csv
    window: dict[str, Tensor] = field(default_factory=dict)  # sums of the open train row
    window_inputs: int = 0


@functools.lru_cache(maxsize=2)
def epoch_order(n: int, seed: int, epoch: int) -> Tensor:
    """The shuffled order of ``n`` training tiles in ``epoch``: (n,) int64, read-only (cached:
    every step of the epoch slices it).

    Derived from (seed, epoch) alone, so a resumed job needs only the epoch and the position.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


def accumulate(state: TrainState, parts: dict[str, Tensor], n: int) -> None:
    """Add a step's scalars, weighted by its ``n`` images, to the open row, on the device.

    Nothing reaches the host here: a GPU runs ahead until a row is written (:func:`close_row`).
    """
    for key, value in parts.items():
        weighted = value.detach().double() * n
        state.window[key] = state.window[key] + weighted if key in state.window else weighted
    state.window_inputs += n


def close_row(state: TrainState, lr: float) -> dict[str, Any]:
    """The open row's averages as a metrics row (one host sync), and a fresh window."""
    keys = list(state.window)
    values = (torch.stack([state.window[k] for k in keys]) / state.window_inputs).tolist()
    row = {
        "inputs": state.inputs,
        "split": "train",
        "lr": lr,
        **dict(zip(keys, values, strict=True)),
    }
    state.window, state.window_inputs = {}, 0
    return row


def log_train_row(
    job: JobDir, state: TrainState, lr: float, log_every: int, logger: Any
) -> str | None:
    """Close the open row and write it to metrics.csv and the logger; if its loss is not
    finite, write nothing and return what happened (the job has diverged)."""
    row = close_row(state, lr)
    if not math.isfinite(row["loss"]):
        last = next((r["loss"] for r in reversed(state.rows) if "lr" in r), None)
        return (
            f"loss became {row['loss']} by step {state.step} ({state.inputs} inputs); "
            f"last finite loss {last}"
        )
    state.rows.append(row)
    state.next_log += log_every * (state.inputs >= state.next_log)
    job.write_metrics(state.rows)
    logger.log_row(row)
    return None


def save_job_checkpoint(
    job: JobDir, setup: Setup, state: TrainState, config: dict[str, Any], finished: bool = False
) -> None:
    """checkpoint.pt: weights, optimizer, scheduler, state, RNG states and config; once
    ``finished``, the weights, state and config only (histae.checkpoint, ``weights_only``)."""
    cpu_state = asdict(state)
    cpu_state["window"] = {k: v.cpu() for k, v in state.window.items()}
    checkpoint: dict[str, Any] = {"model": setup.model.state_dict(), "state": cpu_state}
    # CPU results are bitwise only at a fixed thread count: a resume compares it (restore).
    checkpoint["threads"] = torch.get_num_threads()
    if finished:
        checkpoint["weights_only"] = True
    else:
        checkpoint |= {
            "optimizer": setup.optimizer.state_dict(),
            "scheduler": setup.scheduler.state_dict(),
            "criterion": setup.objective.criterion.state_dict(),  # sliced_w's generator
            "rng": rng_state(),
        }
    save_checkpoint(job.path / CHECKPOINT, checkpoint | {"config": config})


def restore(setup: Setup, checkpoint: dict[str, Any], path: Path) -> TrainState:
    """Load a checkpoint's weights, optimizer, scheduler and RNG states; return its state.

    A finished job's (``weights_only``) has no steps left: its weights and state are enough.
    Every part is checked as it is loaded: a part that does not fit (a digest-valid file whose
    inside was edited, another network) is refused naming ``path`` and the part.

    Raises:
        CheckpointError: one line naming the file and the part that is wrong.
    """
    state = _state_of(checkpoint.get("state"), path)
    parts = [("model", setup.model)]
    if not checkpoint.get("weights_only"):
        parts += [("optimizer", setup.optimizer), ("scheduler", setup.scheduler)]
        if "criterion" in checkpoint:  # a loss's own state: sliced_w's direction generator
            parts.append(("criterion", setup.objective.criterion))
    for key, target in parts:
        try:
            target.load_state_dict(checkpoint[key])
        except Exception as err:
            article = "an" if key[0] in "aeiou" else "a"
            why = f"has {article} {key} part that does not fit ({_first(err)})"
            raise refuse(path, why) from None
    if not checkpoint.get("weights_only"):
        try:
            set_rng_state(checkpoint["rng"])
        except Exception as err:
            raise refuse(path, f"has unusable random generator states ({_first(err)})") from None
    threads = checkpoint.get("threads")
    if isinstance(threads, int) and threads != torch.get_num_threads():
        log.warning(
            f"{path} was written with {threads} CPU threads, this run uses "
            f"{torch.get_num_threads()}: it goes on, but will not match an uninterrupted run "
            f"bitwise (trainer.threads={threads} keeps it exact)"
        )
    state.window = {k: v.to(setup.device) for k, v in state.window.items()}
    return state


def _first(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return f"{type(err).__name__}: {lines[0][:100]}" if lines else type(err).__name__


_STATE_TYPES = {f.name: f.type for f in dataclasses.fields(TrainState)}


def _state_of(raw: Any, path: Path) -> TrainState:
    """A checkpoint's training state, checked key by key (no silent defaults)."""
    if not isinstance(raw, dict):
        raise refuse(path, "has a state part that is not a mapping")
    missing = sorted(set(_STATE_TYPES) - set(raw))
    extra = sorted(set(raw) - set(_STATE_TYPES))
    if missing or extra:
        what = f"lacks {', '.join(missing)}" if missing else f"has unknown {', '.join(extra)}"
        raise refuse(path, f"has a state part that {what}")
    for key in ("inputs", "step", "epoch", "position", "next_log", "next_val", "window_inputs"):
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise refuse(path, f"has state.{key} = {str(value)[:40]}, not a count")
    if not isinstance(raw["rows"], list) or not all(isinstance(r, dict) for r in raw["rows"]):
        raise refuse(path, "has state.rows that is not a list of metrics rows")
    window = raw["window"]
    if not isinstance(window, dict) or not all(isinstance(v, Tensor) for v in window.values()):
        raise refuse(path, "has state.window that is not a mapping of tensors")
    if not isinstance(raw["wall_time"], int | float) or isinstance(raw["wall_time"], bool):
        raise refuse(path, "has state.wall_time that is not a number")
    return TrainState(**raw)


def finished_summary(job: JobDir, config: dict[str, Any]) -> dict[str, Any] | None:
    """The summary of a finished job with this same config, if the folder holds one."""
    status, summary = job.read_status(), job.read_summary()
    if status and summary and status.get("status") == "done" and summary.get("config") == config:
        return summary
    return None


def rebuild_metrics(job: JobDir, summary: dict[str, Any]) -> None:
    """Rewrite a finished job's lost, cut or damaged metrics.csv from its checkpoint (else the
    summary's final rows)."""
    try:
        rows = load_checkpoint(job.path / CHECKPOINT)["state"]["rows"]
        source = CHECKPOINT
    except (OSError, ValueError, KeyError):
        final = summary.get("final") or {}
        rows = [r for r in (final.get("train"), final.get("val")) if isinstance(r, dict)]
        source = "summary.json (final rows only)"
    job.acquire()
    try:
        job.write_metrics(rows)
    finally:
        job.release()
    log.warning(f"[{job.path.name}] metrics.csv was missing or damaged; rebuilt it from {source}")


# ----------------------------------------------------------------------------------------------
# The job


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Use ``count`` CPU threads inside the block (0: leave torch's setting), then restore it."""
    previous = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def setup_failures(
    job: JobDir, on_start: Callable[[], None] | None, record: bool
) -> Iterator[None]:
    """Leave the folder untouched when setting a job up fails, unless ``record``: a sweep's job
    then records ``failed`` with the reason, so the report lists it with its error."""
    try:
        yield
    except Exception as err:
        if not record or isinstance(err, CheckpointError):  # the job's status stays as it was
            raise
        with job.recording():
            if on_start is not None:
                on_start()
            raise


def train(
    cfg: DictConfig,
    job_dir: str | Path,
    on_start: Callable[[], None] | None = None,
    record_failure: bool = False,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Check ``cfg``, then train one job (:func:`run_job`) with ``trainer.threads`` threads.

    ``record_failure``: a job that fails while being set up (its data, its model) still writes
    its folder's status (sweeps); otherwise it leaves the folder as it was (single runs).
    A ``debug`` option (``debug=fdr``) sets the trainer's budget first (histae.debug).
    ``overrides``: the command line's, so a refused folder names the key the user typed.
    """
    apply_debug(cfg)
    check_config(cfg)
    with torch_threads(cfg.trainer.threads), deterministic_mode(cfg.trainer.deterministic):
        return run_job(cfg, job_dir, on_start, record_failure, overrides)


def next_batch(state: TrainState, tiles: Tensor, cfg: DictConfig, device: torch.device) -> Tensor:
    """The next (B, C, H, W) float batch of this epoch's order; a new epoch when one is used up.

    Derived from (seed, epoch, position) alone, so a resumed job picks up the same batch.
    """
    batch = cfg.trainer.batch_size
    if state.position >= len(tiles) // batch:  # the last incomplete batch is dropped
        state.epoch, state.position = state.epoch + 1, 0
    order = epoch_order(len(tiles), cfg.trainer.seed, state.epoch)
    index = order[state.position * batch : (state.position + 1) * batch]
    state.position += 1
    return prepare_batch(to_float(tiles[index], device), cfg.trainer.channels_last), index


def train_step(setup: Setup, x: Tensor, index: Tensor) -> dict[str, Tensor]:
    """One optimizer and scheduler step on (B, C, H, W) ``x``, the tiles ``index``; the loss
    parts and pixel metrics."""
    output, code = setup.model.reconstruct(x)
    parts = setup.objective(output, code, x, criterion=setup.criterion_for(index))
    setup.optimizer.zero_grad(set_to_none=True)
    parts["loss"].backward()
    setup.optimizer.step()
    setup.scheduler.step()
    with torch.no_grad():  # hist_w1 sorts every pixel: validation-only, to keep steps cheap
        parts.update(image_metrics(output, x, histogram=False))
    return {k: v.detach().mean() for k, v in parts.items()}


def validation(
    job: JobDir,
    setup: Setup,
    state: TrainState,
    val: Tensor,
    cfg: DictConfig,
    config: dict,
    logger: Any,
) -> dict[str, float]:
    """Validate, draw the job's pictures, log them, checkpoint; the validation metrics row."""
    metrics, recon = validate(setup, val)
    metrics.update(input_dependence(val.float() / 255.0, recon))
    state.rows.append({"inputs": state.inputs, "split": "val", **metrics})
    state.next_val += cfg.trainer.val_every_inputs
    job.write_metrics(state.rows)
    logger.log_row(state.rows[-1])
    count = min(cfg.trainer.val_images, len(val))
    grid = draw_validation(job, state.inputs, state.rows, val, recon, count, config)
    if grid is not None:
        logger.log_image(state.inputs, grid)
    if cfg.trainer.save_checkpoint:
        finished = state.inputs >= cfg.trainer.max_inputs and not cfg.trainer.keep_state
        save_job_checkpoint(job, setup, state, config, finished)
    job.write_status("running")
    log.info(
        f"[{job.path.name}] validation at {state.inputs} inputs: loss {metrics['loss']:.4g}, "
        f"pixel L1 {metrics['pixel_l1']:.4f}, PSNR {metrics['psnr']:.2f} dB"
    )
    return metrics


def summarize(
    state: TrainState, setup: Setup, config: dict[str, Any], diverged: str | None
) -> dict[str, Any]:
    """summary.json's content: status, counters, speed, final rows, device, config."""
    return {
        "status": "diverged" if diverged else "done",
        "inputs": state.inputs,
        "steps": state.step,
        "parameters": count_parameters(setup.model),
        "wall_time": round(state.wall_time, 3),
        "images_per_second": round(state.inputs / state.wall_time, 2) if state.wall_time else None,
        "final": final_rows(state.rows),
        "device": str(setup.device),
        "config": config,
    }


def run_job(
    cfg: DictConfig,
    job_dir: str | Path,
    on_start: Callable[[], None] | None = None,
    record_failure: bool = False,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Train one job as ``cfg`` says, writing its folder ``job_dir``.

    Nothing is written before every check has passed; then ``on_start()`` is called (the app
    records Hydra's config there). Returns the summary (also in summary.json). ``overrides``
    (the command line's) pick the key a refused folder or checkpoint is named by.

    Raises:
        JobStopped: SIGTERM or Ctrl-C; the job checkpointed the step it had reached.
    """
    t, job, name = cfg.trainer, JobDir(job_dir), Path(job_dir).name
    config = job_config(cfg)
    check_folder(job.path, config, replace=not t.resume, typed=overrides)
    if t.resume and (done := finished_summary(job, config)) is not None:
        if not job.metrics_agree(done):
            rebuild_metrics(job, done)
        log.info(f"[{name}] already done ({done['inputs']} inputs); skipping")
        return done

    # --- setup: everything that can fail on bad input, before anything is written
    with setup_failures(job, on_start, record_failure):
        seed_everything(t.seed)
        setup = build_job(cfg)
        resume_from = (
            job.path / CHECKPOINT if t.resume and (job.path / CHECKPOINT).exists() else None
        )
        checkpoint = load_checkpoint(resume_from) if resume_from else None
        restored = None
        if checkpoint is not None:
            check_resumable(
                checkpoint, config, job.path / CHECKPOINT, typed_in(job.path, overrides)
            )
            # Restored here, before the folder is recorded: a checkpoint that does not fit
            # leaves the job's status as it was.
            restored = restore(setup, checkpoint, job.path / CHECKPOINT)
            if checkpoint.get("weights_only") and restored.inputs < t.max_inputs:
                raise refuse(
                    job.path / CHECKPOINT,
                    "holds only the weights of a finished job, not the state to train on",
                )
    train_tiles, val_tiles = torch.from_numpy(setup.tiles.train), torch.from_numpy(setup.tiles.val)
    train_tiles = overfit_tiles(train_tiles, cfg)  # debug=overfit: the first batch only

    with job.recording(), stop_signals() as stop:
        # --- resume, or start
        state = TrainState(next_log=t.log_every_inputs, next_val=t.val_every_inputs)
        if restored is not None:
            state = restored
            log.info(f"[{name}] resuming at {state.inputs} inputs")
        if on_start is not None:
            on_start()
        job.inputs, job.wall_time = state.inputs, state.wall_time
        job.write_metrics(state.rows)
        job.write_status("running")
        log.info(
            f"[{name}] {count_parameters(setup.model):,} parameters, {len(train_tiles)} train / "
            f"{len(val_tiles)} validation tiles, {t.max_inputs} inputs on {setup.device}, "
            f"{torch.get_num_threads()} threads"
        )
        start, wall_before, diverged = time.perf_counter(), state.wall_time, None
        total = total_images(t.max_inputs, t.batch_size)
        setup.model.train()
        with (
            Progress(total, state.inputs, name) as progress,
            setup.open_logger(
                job.path,
                hparams=job_hparams(cfg),
                resume_from=state.inputs,
                optimizer=type(setup.optimizer).__name__,
                config=config,
            ) as logger,
            step_profiler(cfg, job.path, setup.device) as profiler,
        ):
            while state.inputs < t.max_inputs:
                # --- batch, step
                x, index = next_batch(state, train_tiles, cfg, setup.device)
                lr = setup.optimizer.param_groups[0]["lr"]
                accumulate(state, train_step(setup, x, index), len(x))
                profiler.step()  # debug=profile: the trace's step boundaries
                state.inputs, state.step = state.inputs + len(x), state.step + 1
                state.wall_time = job.wall_time = wall_before + time.perf_counter() - start
                job.inputs, end = state.inputs, state.inputs >= t.max_inputs

                # --- log: a row per ~log_every_inputs images; the loop's only host sync
                if state.inputs >= min(state.next_log, state.next_val) or end:
                    if diverged := log_train_row(job, state, lr, t.log_every_inputs, logger):
                        break
                    progress.update(0, loss=state.rows[-1]["loss"])
                progress.update(len(x))

                # --- validate and checkpoint every val_every_inputs and at the end
                if state.inputs >= state.next_val or end:
                    metrics = validation(job, setup, state, val_tiles, cfg, config, logger)
                    if not end:  # a search may prune here; at the end the job is done anyway
                        pruning.validated(job.path, state.inputs, metrics)

                # --- stop: SIGTERM / Ctrl-C checkpoint the step reached, then leave
                if stop and not end:
                    save_job_checkpoint(job, setup, state, config)
                    raise JobStopped(stop[0], job.path, state.inputs)
            logger.log_final(final_rows(state.rows))

        # --- the ending
        summary = summarize(state, setup, config, diverged)
        job.write_summary(summary)
        if diverged:
            log.error(f"[{name}] diverged: {diverged}")
        else:
            log.info(f"[{name}] done in {time.perf_counter() - start:.1f} s; results in {job.path}")
        job.write_status(summary["status"], error=diverged)
    return summary


__all__ = ["train"]
