"""The container every data source returns, and the hash split shared by all of them."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TileSet:
    """Train and validation tiles as uint8 arrays.

    Attributes:
        train: (N, C, H, W) uint8 in [0, 255].
        val: (M, C, H, W) uint8 in [0, 255].
    """

    train: np.ndarray
    val: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one tile."""
        return tuple(self.train.shape[1:])  # type: ignore[return-value]


def check_val_every(val_every: object) -> int:
    """``data.val_every`` as an int >= 2 (every loader's one check, one wording)."""
    if isinstance(val_every, bool) or not isinstance(val_every, int) or val_every < 2:
        raise ValueError(f"data.val_every must be an int >= 2, got {val_every!r}")
    return val_every


def check_shape(shape: object) -> tuple[int, int, int]:
    """``data.shape`` as ``(3, height, width)`` of positive ints (every loader's one check)."""
    dims = list(shape) if isinstance(shape, Sequence) and not isinstance(shape, str) else None
    if (
        dims is None
        or len(dims) != 3
        or dims[0] != 3
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims)
    ):
        shown = list(shape) if isinstance(shape, Sequence) and not isinstance(shape, str) else shape
        raise ValueError(f"data.shape must be [3, height, width] (RGB tiles), got {shown!r}")
    return (dims[0], dims[1], dims[2])


def is_validation(tiles: np.ndarray, every: int = 20) -> np.ndarray:
    """Which tiles belong to validation, decided by a hash of each tile's pixels.

    A tile's side never depends on its position or on the other tiles, so adding a source
    keeps every earlier tile where it was.

    Args:
        tiles: (N, C, H, W) uint8.
        every: about 1 in ``every`` tiles goes to validation.

    Returns:
        (N,) bool.
    """
    check_val_every(every)
    flat = np.ascontiguousarray(tiles).reshape(len(tiles), -1)
    digests = np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "little")
            for row in flat
        ),
        dtype=np.uint64,
        count=len(flat),
    )
    return digests % np.uint64(every) == 0


def split_by_hash(tiles: np.ndarray, every: int = 20) -> TileSet:
    """Split (N, C, H, W) uint8 tiles into a TileSet, about 1 in ``every`` to validation."""
    val = is_validation(tiles, every)
    return TileSet(train=tiles[~val], val=tiles[val])
