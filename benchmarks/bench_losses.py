"""Cost of every loss option on the training batch, as ratios to the pixel-L1 step.

    python benchmarks/bench_losses.py [--steps 8]

For each loss (the conf/loss options at their defaults, plus a few variants), on the reference
model with batch 64 (x = rand(64, 3, 32, 32)), AdamW, the threads torch uses by default:

- ``loss ms``: median time of the loss alone, forward + backward, on a (64, 3, 32, 32) output;
- ``step ms``: min / median / max time of a whole training step (model forward, loss,
  backward, AdamW);
- ``vs L1``: the step time over the pixel-L1 step's;
- ``loss MiB``: peak extra memory of the loss's forward + backward (high-water mark of torch's
  CPU allocator above its start, profiler memory events, as bench_histogram.py);
- ``step MiB`` and its ratio to the pixel-L1 step's peak.

All losses run interleaved in this process (rounds over all of them), so drift in machine load
hits every loss alike. The load average is printed before and after, with a plain line when it
exceeded the core count.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from _timing import LoadWatch
from bench_histogram import peak_allocated
from torch import nn

from histae.build import build_option
from histae.loss import CompositeLoss
from histae.objective import code_regularizer


def losses() -> dict[str, Callable[[], nn.Module]]:
    """Name -> a fresh criterion, in the order printed."""
    return {
        "pixel L1 (l1)": nn.L1Loss,
        "histogram pooled (reference)": lambda: build_option("loss/histogram"),
        "histogram per_channel": lambda: build_option("loss/histogram", per_channel=True),
        "histogram emd": lambda: build_option("loss/histogram", loss="emd"),
        "sorted_w1": lambda: build_option("loss/histogram", loss="sorted_w1"),
        "sliced_w directions=32": lambda: build_option("loss/sliced_w", directions=32),
        "sliced_w directions=128": lambda: build_option("loss/sliced_w", directions=128),
        "joint_histogram bins=8": lambda: build_option("loss/joint_histogram", bins=8),
        "joint_histogram bins=8 cdf": lambda: build_option(
            "loss/joint_histogram", bins=8, loss="cdf"
        ),
        "joint_histogram bins=16": lambda: build_option("loss/joint_histogram", bins=16),
        "rgbuv bins=64 (paper)": lambda: build_option("loss/rgbuv"),
        "rgbuv bins=32": lambda: build_option("loss/rgbuv", bins=32),
        "composite hist + 0.1 l1": lambda: CompositeLoss(
            {
                "histogram": {"weight": 1.0, "loss": build_option("loss/histogram")},
                "l1": {"weight": 0.1, "loss": nn.L1Loss()},
            }
        ),
    }


def loss_step(criterion: nn.Module, output: torch.Tensor, target: torch.Tensor) -> None:
    """The loss alone: forward + backward to the (64, 3, 32, 32) output."""
    out = output.detach().requires_grad_()
    criterion(out, target).backward()


def train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, criterion: nn.Module, x: torch.Tensor
) -> None:
    code = model.encoder(x)
    loss = criterion(model.decoder(code), x) + 1e-4 * sum(code_regularizer(code))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def timed(fn: Callable[..., None], *args: object) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="timed steps per loss (2 rounds)")
    args = parser.parse_args()
    watch = LoadWatch()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 64 x 3 x 32 x 32")

    torch.manual_seed(0)
    x = torch.rand(64, 3, 32, 32)
    output = torch.rand(64, 3, 32, 32)
    made = {name: make() for name, make in losses().items()}
    model = build_option("model/conv_ae")
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    for criterion in made.values():  # warm up every code path once
        loss_step(criterion, output, x)
        train_step(model, optimizer, criterion, x)

    loss_times: dict[str, list[float]] = {name: [] for name in made}
    step_times: dict[str, list[float]] = {name: [] for name in made}
    for _ in range(2):
        for name, criterion in made.items():
            for _ in range(max(1, args.steps // 2)):
                loss_times[name].append(timed(loss_step, criterion, output, x))
                step_times[name].append(timed(train_step, model, optimizer, criterion, x))
    loss_mib = {name: peak_allocated(loss_step, c, output, x) for name, c in made.items()}
    step_mib = {
        name: peak_allocated(train_step, model, optimizer, c, x) for name, c in made.items()
    }

    l1 = "pixel L1 (l1)"
    l1_step, l1_mib = statistics.median(step_times[l1]), step_mib[l1]
    print(
        f"\n{'loss':<30}{'loss ms':>9}{'step ms min/median/max':>24}{'vs L1':>7}"
        f"{'loss MiB':>10}{'step MiB':>10}{'vs L1':>7}"
    )
    for name in made:
        loss_ms = statistics.median(loss_times[name]) * 1e3
        step = sorted(step_times[name])
        step_ms = statistics.median(step) * 1e3
        spread = f"{step[0] * 1e3:.1f}/{step_ms:.1f}/{step[-1] * 1e3:.1f}"
        print(
            f"{name:<30}{loss_ms:>9.1f}{spread:>24}{step_ms / (l1_step * 1e3):>6.2f}x"
            f"{loss_mib[name]:>10.1f}{step_mib[name]:>10.1f}{step_mib[name] / l1_mib:>6.2f}x"
        )
    print(f"\n{watch.verdict()}")


if __name__ == "__main__":
    main()
