"""Speed and reproducibility settings of a training job, kept out of the loop.

Three things, each one call from ``train.py``:

* :func:`per_tile_criterion`: a histogram loss's target histogram is a fixed function of the
  tile, so it is computed once per training tile (no autograd) and looked up by index, instead
  of once per step.
* :func:`prepare_model`: ``trainer.channels_last`` puts the model's weights (and
  :func:`prepare_batch` the batches) in the channels-last layout; ``trainer.compile`` compiles
  the encoder and decoder.
* :func:`deterministic_mode`: ``trainer.deterministic`` asks torch for deterministic kernels.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

Criterion = Callable[[Tensor, Tensor], Tensor]

# Largest table of cached target histograms (bytes); a bigger tile set computes them per step.
MAX_TARGET_CACHE_BYTES = 256 * 2**20
# Tiles per chunk when filling the cache; fixed, so every run (and every resume) fills it with
# the same float rounding.
TARGET_CHUNK = 256

# Operations on the training path whose CUDA kernels add in a varying order (torch 2.x), so the
# same seed can give different low bits from run to run: soft_histogram's scatter_add_ (moments
# method) and index_put_(accumulate=True) (window method) into float64 tables, the triangular
# kernel's scatter_add, and cuDNN's convolution / transposed-convolution backward (its algorithm
# is picked by benchmark, some use atomics). On the CPU every one of them is deterministic.
# torch documents a deterministic CUDA scatter_add_ (torch.use_deterministic_algorithms,
# torch 2.13); not yet run on a GPU (tests/test_perf.py has the CUDA test).
CUDA_NONDETERMINISTIC = (
    "scatter_add_ (soft_histogram moments method, triangular kernel)",
    "index_put_(accumulate=True) (soft_histogram window method)",
    "cuDNN convolution and transposed-convolution backward",
)


def per_tile_criterion(
    criterion: Criterion, tiles: Tensor, device: torch.device
) -> Callable[[Tensor], Criterion]:
    """``criterion_for(index)``: the criterion for the batch of ``tiles[index]``.

    When ``criterion`` compares histograms (a :class:`histae.loss.HistogramLoss` with
    ``has_target_histogram``), every tile's target histogram is computed here, once, in chunks
    of :data:`TARGET_CHUNK` tiles (the same way every run, so a resumed job stays bitwise on
    the CPU), and ``criterion_for(index)`` passes the batch's rows as ``target_hist``. Other
    criteria, and tile sets whose table would exceed :data:`MAX_TARGET_CACHE_BYTES`, get the
    criterion unchanged (targets computed per step, without autograd).

    Args:
        criterion: the loss module, ``criterion(output, target)``.
        tiles: (M, C, H, W) uint8 training tiles, in the order ``index`` refers to.
        device: where the batches live.

    Returns:
        A function of an (B,) int64 index tensor to a ``criterion(output, target)``.
    """
    target_histogram = getattr(criterion, "target_histogram", None)
    if target_histogram is None or not getattr(criterion, "has_target_histogram", False):
        return lambda index: criterion
    per_tile = criterion.bins * (tiles.shape[1] if criterion.per_channel else 1)
    if len(tiles) * per_tile * 4 > MAX_TARGET_CACHE_BYTES:
        return lambda index: criterion
    # The float batch exactly as train.to_float makes it, so a cached row is that batch's row.
    table = torch.cat(
        [
            target_histogram(tiles[i : i + TARGET_CHUNK].to(device).float().div_(255.0))
            for i in range(0, len(tiles), TARGET_CHUNK)
        ]
    )  # (M, bins) or (M, C, bins)

    def criterion_for(index: Tensor) -> Criterion:
        return functools.partial(criterion, target_hist=table[index.to(table.device)])

    return criterion_for


def prepare_model(model: nn.Module, channels_last: bool, compile: bool = False) -> nn.Module:
    """The model in the layout the trainer config asks for (in place; returned for chaining).

    ``channels_last``: 4-D weights stored NHWC, which oneDNN's CPU convolutions and cuDNN's
    tensor-core kernels prefer; the numbers agree with the default layout to float tolerance,
    not bitwise (another summation order).

    ``compile``: ``torch.compile`` each child module in place (``nn.Module.compile``), so the
    state dict keeps its keys and a checkpoint loads with or without it. The first step (and
    the first validation, which runs without autograd) pays the compile time; the numbers agree
    to float tolerance.
    """
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile:
        for child in model.children():
            child.compile()
    return model


def prepare_batch(x: Tensor, channels_last: bool) -> Tensor:
    """(B, C, H, W) batch in the layout :func:`prepare_model` chose."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@contextlib.contextmanager
def deterministic_mode(deterministic: bool) -> Iterator[None]:
    """``trainer.deterministic``: inside the block torch uses deterministic kernels or raises.

    On the CPU histae is bitwise reproducible either way (same seed, same losses). On CUDA the
    operations in :data:`CUDA_NONDETERMINISTIC` add in a varying order; with ``True`` torch
    uses deterministic variants (slower: scatter_add_ serialises) or raises naming the op,
    cuDNN stops benchmarking algorithms, and cuBLAS gets the ``CUBLAS_WORKSPACE_CONFIG`` it
    needs (set here if unset). The previous settings come back at the end of the block.
    """
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous[1:]


__all__ = [
    "CUDA_NONDETERMINISTIC",
    "deterministic_mode",
    "per_tile_criterion",
    "prepare_batch",
    "prepare_model",
]
