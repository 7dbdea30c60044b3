"""The training loop: config -> instantiate -> train -> artifacts in the job folder.

``train(cfg, job_dir)`` is a plain function (tests call it directly); ``histae.app`` wraps it in
``@hydra.main``. Read it top to bottom: setup, resume, then the loop in a fixed order (batch, step,
log, validate + checkpoint, stop), then the final artifacts.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from histae.artifacts import (
    atomic_write,
    format_metric_rows,
    read_json,
    read_status,
    write_json,
    write_status,
    write_text,
)
from histae.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from histae.data import TileSet
from histae.metrics import image_metrics
from histae.model import count_parameters
from histae.plots import plot_loss, reconstruction_grid, save_png

log = logging.getLogger("histae")

# Config keys that change where or how fast a job runs, not what it computes.
RUNTIME_KEYS = ("trainer.resume", "trainer.device", "trainer.threads")


def build(node: DictConfig) -> Any:
    """``instantiate(node)``, but a ValueError or OSError from the target surfaces as itself.

    Hydra wraps every error of a target in an InstantiationException whose message repeats the
    target's path; the user's problem is the wrapped one-line message, so that is what we raise.
    """
    try:
        return instantiate(node)
    except InstantiationException as err:
        if isinstance(err.__cause__, ValueError | OSError):
            raise err.__cause__ from None
        raise


def check_config(cfg: DictConfig) -> None:
    """Reject values the schemas' types cannot: one ValueError naming the key."""
    t = cfg.trainer
    for key in ("batch_size", "max_inputs", "val_every_inputs", "log_every_inputs"):
        if t[key] < 1:
            raise ValueError(f"trainer.{key} must be >= 1, got {t[key]}")
    if t.val_images < 0:
        raise ValueError(f"trainer.val_images must be >= 0, got {t.val_images}")
    if t.threads < 0:
        raise ValueError(f"trainer.threads must be >= 0 (0 = torch's default), got {t.threads}")
    if t.code_reg_weight < 0:
        raise ValueError(f"trainer.code_reg_weight must be >= 0, got {t.code_reg_weight}")
    lr = cfg.optimizer.get("lr")
    if lr is not None and not lr > 0:
        raise ValueError(f"optimizer.lr must be > 0, got {lr}")
    resolve_device(t.device)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda if available else cpu; ``cpu``, ``cuda``, ``cuda:N`` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"trainer.device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"trainer.device={name} but no CUDA device is available; use auto or cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_order(n: int, seed: int, epoch: int) -> Tensor:
    """The shuffled order of ``n`` training tiles in ``epoch``: (n,) int64.

    Derived from (seed, epoch) alone, so a resumed job needs only the epoch and the position.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


def to_float(tiles: Tensor, device: torch.device) -> Tensor:
    """(B, C, H, W) uint8 -> float32 in [0, 1] on ``device``."""
    return tiles.to(device, non_blocking=True).float().div_(255.0)


def job_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config without its runtime-only keys: what defines a job's results."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    for key in RUNTIME_KEYS:
        group, name = key.split(".")
        resolved.get(group, {}).pop(name, None)
    return resolved


def code_regularizer(code: Tensor) -> tuple[Tensor, Tensor]:
    """The reference's pull on the (B, code_size) code: |0.5 - mean std| and |mean|, both scalars."""
    return (0.5 - code.std(dim=0).mean()).abs(), code.mean().abs()


def loss_parts(
    model: nn.Module, criterion: Callable[[Tensor, Tensor], Tensor], x: Tensor, weight: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """One forward pass on (B, C, H, W) ``x``: the reconstruction and the named loss parts."""
    code = model.encoder(x)
    output = model.decoder(code)
    reconstruction = criterion(output, x)
    batch_std, batch_mean = code_regularizer(code)
    loss = reconstruction + weight * (batch_std + batch_mean)
    parts = {
        "loss": loss,
        "loss_reconstruction": reconstruction,
        "loss_batch_std": batch_std,
        "loss_batch_mean": batch_mean,
    }
    return output, parts


@torch.no_grad()
def validate(
    model: nn.Module,
    criterion: Callable[[Tensor, Tensor], Tensor],
    val: Tensor,
    weight: float,
    batch_size: int,
    device: torch.device,
) -> tuple[dict[str, float], Tensor]:
    """Loss parts and image metrics averaged over all (M, C, H, W) uint8 validation tiles.

    Returns the averages and the (M, C, H, W) float reconstructions on the CPU.
    """
    model.eval()
    sums: dict[str, float] = {}
    outputs = []
    for start in range(0, len(val), batch_size):
        x = to_float(val[start : start + batch_size], device)
        output, parts = loss_parts(model, criterion, x, weight)
        per_image = {k: v.sum().item() for k, v in image_metrics(output, x).items()}
        for key, value in parts.items():
            sums[key] = sums.get(key, 0.0) + value.item() * len(x)
        for key, value in per_image.items():
            sums[key] = sums.get(key, 0.0) + value
        outputs.append(output.cpu())
    model.train()
    return {k: v / len(val) for k, v in sums.items()}, torch.cat(outputs)


def save_samples(
    job_dir: Path, inputs: int, originals: Tensor, reconstructions: Tensor, count: int
) -> None:
    """reconstructions.png (and a copy named by inputs seen) and samples.npz for the report.

    samples.npz holds the first ``count`` validation images and their reconstructions, and the
    per-channel 256-bin colour histograms of all validation images and reconstructions (clamped).
    """
    if count:
        grid = reconstruction_grid(originals[:count].numpy(), reconstructions[:count].numpy())
        save_png(grid, job_dir / "reconstructions" / f"inputs-{inputs:09d}.png")
        save_png(grid, job_dir / "reconstructions.png")
    edges = np.linspace(0.0, 1.0, 257)

    def channel_histograms(images: Tensor) -> np.ndarray:  # (N, C, H, W) -> (C, 256)
        values = images.clamp(0, 1).transpose(0, 1).flatten(1).numpy()
        return np.stack([np.histogram(v, bins=edges)[0] for v in values])

    def write(f: Any) -> None:
        np.savez_compressed(
            f,
            inputs=inputs,
            originals=originals[:count].numpy(),
            reconstructions=reconstructions[:count].numpy(),
            hist_edges=edges,
            hist_originals=channel_histograms(originals),
            hist_reconstructions=channel_histograms(reconstructions),
        )

    atomic_write(job_dir / "samples.npz", write)


def finished_summary(job_dir: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """The summary of a finished job with this same config, if the folder holds one."""
    status = read_status(job_dir)
    summary = read_json(job_dir / "summary.json")
    if status and summary and status.get("status") == "done" and summary.get("config") == config:
        return summary
    return None


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: tree}


def check_resumable(checkpoint: dict[str, Any], config: dict[str, Any], path: Path) -> None:
    """A checkpoint resumes only the job it was made for; name the first key that differs."""
    old, new = _flatten(checkpoint.get("config", {})), _flatten(config)
    # Model keys first: a different network is the likeliest and least recoverable mismatch.
    for key in sorted(set(old) | set(new), key=lambda k: (not k.startswith("model."), k)):
        if old.get(key) != new.get(key):
            raise ValueError(
                f"{path} was made with {key}={old.get(key)}, the config says {key}={new.get(key)}; "
                "use trainer.resume=false to start over, or another output folder"
            )


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


def train(
    cfg: DictConfig, job_dir: str | Path, on_start: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Train one job: :func:`run_job` with ``trainer.threads`` CPU threads."""
    with torch_threads(cfg.trainer.threads):
        return run_job(cfg, job_dir, on_start)


def run_job(
    cfg: DictConfig, job_dir: str | Path, on_start: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Train one job as ``cfg`` says, writing its artifacts to ``job_dir``.

    Nothing is written before every check has passed; then ``on_start()`` is called (the app
    records Hydra's config there), so bad input leaves an existing job folder as it was.

    Returns the summary (also written to summary.json): final train and validation metrics,
    parameter count, wall time, images per second and the status.
    """
    job_dir = Path(job_dir)
    t = cfg.trainer
    check_config(cfg)
    config = job_config(cfg)
    name = job_dir.name

    # --- skip a finished job, or set up to resume an interrupted one
    if t.resume and (summary := finished_summary(job_dir, config)) is not None:
        log.info(f"[{name}] already done ({summary['inputs']} inputs); skipping")
        return summary

    device = resolve_device(t.device)
    seed_everything(t.seed)
    tiles: TileSet = build(cfg.data)
    model: nn.Module = build(cfg.model)
    if tuple(tiles.shape) != tuple(model.shape):
        raise ValueError(
            f"data tiles have shape {list(tiles.shape)} but model.shape is {list(model.shape)}; "
            "set model.shape to the data's shape"
        )
    if len(tiles.train) < t.batch_size:
        raise ValueError(
            f"trainer.batch_size={t.batch_size} is larger than the {len(tiles.train)} training "
            "tiles; lower it"
        )
    if len(tiles.val) == 0:
        raise ValueError("the data has no validation tiles; add tiles or lower data.val_every")
    model.to(device)
    criterion = build(cfg.loss).to(device)
    optimizer = build(cfg.optimizer)(model.parameters())
    scheduler = build(cfg.scheduler)(optimizer)
    train_tiles = torch.from_numpy(tiles.train)
    val_tiles = torch.from_numpy(tiles.val)
    steps_per_epoch = len(train_tiles) // t.batch_size  # the last incomplete batch is dropped

    state: dict[str, Any] = {
        "inputs": 0,
        "step": 0,
        "epoch": 0,
        "position": 0,  # batches of the current epoch already taken
        "window": {},  # running sums of the current train-average row
        "window_inputs": 0,
        "next_log": t.log_every_inputs,
        "next_val": t.val_every_inputs,
        "rows": [],
        "wall_time": 0.0,
        "last_finite_loss": None,
    }
    checkpoint_path = job_dir / "checkpoint.pt"
    if t.resume and checkpoint_path.exists():
        checkpoint = load_checkpoint(checkpoint_path)
        check_resumable(checkpoint, config, checkpoint_path)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        state = checkpoint["state"]
        set_rng_state(checkpoint["rng"])
        log.info(f"[{name}] resuming from {checkpoint_path} at {state['inputs']} inputs")
    if on_start is not None:
        on_start()
    write_text(job_dir / "metrics.csv", format_metric_rows(state["rows"]))

    parameters = count_parameters(model)
    log.info(
        f"[{name}] {parameters:,} parameters, {len(train_tiles)} train / {len(val_tiles)} "
        f"validation tiles, {t.max_inputs} inputs on {device}, "
        f"{torch.get_num_threads()} CPU threads"
    )
    progress = Progress(t.max_inputs, state["inputs"], name)
    start = time.perf_counter()
    wall_before = state["wall_time"]
    write_status(job_dir, "running", state["inputs"], wall_before)
    order = epoch_order(len(train_tiles), t.seed, state["epoch"])
    model.train()

    def checkpoint_now() -> None:
        state["wall_time"] = wall_before + time.perf_counter() - start
        if t.save_checkpoint:
            save_checkpoint(
                checkpoint_path,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "state": state,
                    "rng": rng_state(),
                    "config": config,
                },
            )
        write_status(job_dir, "running", state["inputs"], state["wall_time"])

    diverged: str | None = None
    while state["inputs"] < t.max_inputs:
        # --- batch: the next slice of this epoch's order
        if state["position"] >= steps_per_epoch:
            state["epoch"] += 1
            state["position"] = 0
            order = epoch_order(len(train_tiles), t.seed, state["epoch"])
        index = order[state["position"] * t.batch_size : (state["position"] + 1) * t.batch_size]
        x = to_float(train_tiles[index], device)

        # --- step
        lr = optimizer.param_groups[0]["lr"]
        output, parts = loss_parts(model, criterion, x, t.code_reg_weight)
        if not torch.isfinite(parts["loss"]):
            diverged = (
                f"loss became {parts['loss'].item()} at step {state['step'] + 1} "
                f"({state['inputs']} inputs); last finite loss {state['last_finite_loss']}"
            )
            break
        optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        optimizer.step()
        scheduler.step()
        state["inputs"] += len(x)
        state["step"] += 1
        state["position"] += 1
        state["last_finite_loss"] = parts["loss"].item()
        progress.update(len(x))

        # --- log: train scalars averaged over about log_every_inputs images
        with torch.no_grad():  # hist_w1 sorts every pixel: validation-only, to keep steps cheap
            metrics = {k: v.mean().item() for k, v in image_metrics(output, x, False).items()}
        window = state["window"]
        for key, value in (*((k, v.item()) for k, v in parts.items()), *metrics.items()):
            window[key] = window.get(key, 0.0) + value * len(x)
        state["window_inputs"] += len(x)
        if state["inputs"] >= state["next_log"] or state["inputs"] >= t.max_inputs:
            row = {k: v / state["window_inputs"] for k, v in window.items()}
            state["rows"].append({"inputs": state["inputs"], "split": "train", "lr": lr, **row})
            state["window"], state["window_inputs"] = {}, 0
            state["next_log"] += t.log_every_inputs
            write_text(job_dir / "metrics.csv", format_metric_rows(state["rows"]))
            if not progress.interactive:
                log.info(
                    f"[{name}] {state['inputs']}/{t.max_inputs} inputs, loss {row['loss']:.4g}"
                )

        # --- validate and checkpoint every val_every_inputs and at the end
        if state["inputs"] >= state["next_val"] or state["inputs"] >= t.max_inputs:
            val_metrics, reconstructions = validate(
                model, criterion, val_tiles, t.code_reg_weight, 256, device
            )
            state["rows"].append({"inputs": state["inputs"], "split": "val", **val_metrics})
            state["next_val"] += t.val_every_inputs
            write_text(job_dir / "metrics.csv", format_metric_rows(state["rows"]))
            save_samples(
                job_dir,
                state["inputs"],
                val_tiles.float() / 255.0,
                reconstructions,
                min(t.val_images, len(val_tiles)),
            )
            plot_loss(state["rows"], job_dir / "loss.png", title=name)
            checkpoint_now()
            log.info(
                f"[{name}] validation at {state['inputs']} inputs: loss {val_metrics['loss']:.4g}, "
                f"pixel L1 {val_metrics['pixel_l1']:.4f}, PSNR {val_metrics['psnr']:.2f} dB"
            )
    progress.close()

    # --- final artifacts
    wall_time = wall_before + time.perf_counter() - start
    trained_now = time.perf_counter() - start
    rows = state["rows"]
    summary = {
        "status": "diverged" if diverged else "done",
        "inputs": state["inputs"],
        "steps": state["step"],
        "parameters": parameters,
        "wall_time": round(wall_time, 3),
        "images_per_second": round(state["inputs"] / wall_time, 2) if wall_time > 0 else None,
        "final": {
            "train": next((r for r in reversed(rows) if r["split"] == "train"), None),
            "val": next((r for r in reversed(rows) if r["split"] == "val"), None),
        },
        "device": str(device),
        "config": config,
    }
    write_json(job_dir / "summary.json", summary)
    if diverged:
        log.error(f"[{name}] diverged: {diverged}")
        write_status(job_dir, "diverged", state["inputs"], wall_time, error=diverged)
    else:
        write_status(job_dir, "done", state["inputs"], wall_time)
        log.info(f"[{name}] done in {trained_now:.1f} s; results in {job_dir}")
    return summary


class Progress:
    """A tqdm bar on a terminal; nothing (the loop logs lines instead) otherwise."""

    def __init__(self, total: int, initial: int, name: str) -> None:
        self.interactive = sys.stdout.isatty()
        self.bar = None
        if self.interactive:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="img", desc=name, leave=False)

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


__all__ = ["train"]
