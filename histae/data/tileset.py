"""The container every data source returns, and the hash split shared by all of them."""

from __future__ import annotations

import hashlib
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
    if every < 2:
        raise ValueError(f"data.val_every must be >= 2, got {every}")
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
