"""Training-step cost of the histogram loss, and the trainer's overhead over a bare loop.

    python benchmarks/bench_train.py [--steps 15]

Prints (1) the median time of a full training step of the reference model (batch 64, AdamW) with
the soft-histogram loss at bins 50/100/200 (sigma 100) against the same step with plain pixel L1,
as ratios; (2) histae's trainer (``train()``: data order, logging, metrics) in images/s against a
bare PyTorch loop over the same model, data and loss, as a ratio. Both sides run in this process,
interleaved, so machine noise hits them alike. Targets: histogram step <= 1.10x the L1 step at
bins=200; trainer >= 0.95x the bare loop.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import histae.config  # noqa: F401
from histae.loss import HistogramLoss
from histae.model import ConvAutoencoder
from histae.train import code_regularizer, train

CONF = Path(__file__).resolve().parents[1] / "conf"


def step_time(criterion: torch.nn.Module, steps: int, seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    model = ConvAutoencoder()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    x = torch.rand(64, 3, 32, 32)
    times = []
    for _ in range(steps + 2):
        start = time.perf_counter()
        code = model.encoder(x)
        loss = criterion(model.decoder(code), x) + 1e-4 * sum(code_regularizer(code))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return times[2:]  # the first steps warm up the allocator and kernels


def bare_loop(tiles: torch.Tensor, inputs: int, batch: int) -> float:
    """Images/s of the plainest loop over the same model, data and loss."""
    torch.manual_seed(0)
    model = ConvAutoencoder()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    criterion = HistogramLoss(bins=100, sigma=100.0)
    start = time.perf_counter()
    seen = 0
    while seen < inputs:
        for i in range(0, len(tiles) - batch + 1, batch):
            x = tiles[i : i + batch].float() / 255
            code = model.encoder(x)
            loss = criterion(model.decoder(code), x) + 1e-4 * sum(code_regularizer(code))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(x)
            if seen >= inputs:
                break
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15, help="timed steps per configuration")
    parser.add_argument("--inputs", type=int, default=12800, help="images per trainer run")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    print("\n(1) full training step, reference model, batch 64 (median ms)")
    print(f"{'loss':<28}{'step ms':>10}{'vs L1':>8}")
    losses = {"pixel L1": torch.nn.L1Loss()}
    for bins in (50, 100, 200):
        losses[f"histogram bins={bins}"] = HistogramLoss(bins=bins, sigma=100.0)
    medians: dict[str, list[float]] = {name: [] for name in losses}
    for _ in range(3):  # interleave rounds so drift in machine load hits every loss alike
        for name, criterion in losses.items():
            medians[name].extend(step_time(criterion, args.steps // 3 + 1))
    l1 = statistics.median(medians["pixel L1"])
    for name, times in medians.items():
        ms = statistics.median(times)
        print(f"{name:<28}{ms * 1e3:>10.1f}{ms / l1:>7.2f}x")

    print("\n(2) histae trainer vs a bare PyTorch loop (histogram loss bins=100, batch 64)")
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                f"trainer.max_inputs={args.inputs}",
                f"trainer.val_every_inputs={10 * args.inputs}",
                "trainer.save_checkpoint=false",
            ],
        )
    tiles = torch.from_numpy(instantiate(cfg.data).train)
    rates_trainer, rates_bare = [], []
    for _ in range(2):
        with tempfile.TemporaryDirectory() as job_dir:
            start = time.perf_counter()
            summary = train(cfg, job_dir)
            loop_rate = summary["inputs"] / summary["wall_time"]
            total = summary["inputs"] / (time.perf_counter() - start)
        rates_trainer.append(loop_rate)
        rates_bare.append(bare_loop(tiles, args.inputs, 64))
    trainer, bare = max(rates_trainer), max(rates_bare)
    print(f"{'bare loop':<28}{bare:>10.1f} img/s")
    print(f"{'histae trainer':<28}{trainer:>10.1f} img/s{trainer / bare:>7.2f}x")
    print(f"{'  incl. data+model setup':<28}{total:>10.1f} img/s (last run)")


if __name__ == "__main__":
    main()
