"""Procedural tiles: shape, exact distinct count, determinism, split, kinds, palettes, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from histae.build import build_option
from histae.data import procedural
from histae.data.procedural import KINDS, generate_tiles
from histae.data.tileset import TileSet

CONF = Path(__file__).resolve().parent.parent / "conf" / "data" / "procedural.yaml"


@pytest.fixture(scope="module")
def made() -> tuple[np.ndarray, np.ndarray]:
    """600 tiles of 3x32x32 and their kinds, shared by the read-only tests."""
    return generate_tiles(600, seed=0)


def rows(tiles: np.ndarray) -> set[bytes]:
    return {t.tobytes() for t in tiles}


def both(ts: TileSet) -> np.ndarray:
    return np.concatenate([ts.train, ts.val])


def test_shape_dtype_and_range() -> None:
    ts = build_option("data/procedural", count=300, seed=1)
    assert isinstance(ts, TileSet)
    assert ts.shape == (3, 32, 32)
    assert ts.train.dtype == np.uint8 and ts.val.dtype == np.uint8
    assert ts.train.shape[1:] == ts.val.shape[1:] == (3, 32, 32)
    tiles = both(ts)
    # uint8 holds any value; this checks the colours are neither crushed nor blown out.
    assert 40 < tiles.mean() < 200
    assert tiles.min() < 30 and tiles.max() > 220


@pytest.mark.parametrize("count", [1, 7, 600])
def test_exactly_count_distinct_tiles(count: int) -> None:
    ts = build_option("data/procedural", count=count, seed=2)
    tiles = both(ts)
    assert len(tiles) == count
    assert len(rows(tiles)) == count
    assert not rows(ts.train) & rows(ts.val)


def test_duplicates_are_replaced_by_drawing_more(monkeypatch: pytest.MonkeyPatch) -> None:
    # A drawer with only 16 possible tiles forces duplicates and extra rounds.
    def tiny(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        idx = np.zeros((n, 16, 16), dtype=np.int64)
        idx[:, 0, 0] = rng.integers(0, 16, n)
        pal = np.broadcast_to(np.linspace(0, 255, 16)[None, :, None], (n, 16, 3)).copy()
        return idx, pal

    monkeypatch.setattr(procedural, "_DRAW", (tiny,) * len(KINDS))
    tiles, kinds = generate_tiles(16, seed=0, shape=(3, 16, 16))
    assert len(rows(tiles)) == 16
    assert len(kinds) == 16
    with pytest.raises(RuntimeError, match="could not make 17 distinct tiles"):
        generate_tiles(17, seed=0, shape=(3, 16, 16))


def test_same_seed_same_arrays_other_seed_other_tiles() -> None:
    a = build_option("data/procedural", count=200, seed=5)
    b = build_option("data/procedural", count=200, seed=5)
    np.testing.assert_array_equal(a.train, b.train)
    np.testing.assert_array_equal(a.val, b.val)
    c = build_option("data/procedural", count=200, seed=6)
    assert not rows(both(a)) & rows(both(c))


@pytest.mark.parametrize("every", [20, 10])
def test_split_fraction(every: int) -> None:
    # Binomial(2000, 1/every): the bounds are over 3 standard deviations out, and the seed is
    # fixed, so this is a check on the split, not a coin toss.
    ts = build_option("data/procedural", count=2000, seed=0, val_every=every)
    fraction = len(ts.val) / 2000
    assert abs(fraction - 1 / every) < 3.5 * np.sqrt((1 / every) * (1 - 1 / every) / 2000)


def test_every_kind_present_in_equal_shares(made: tuple[np.ndarray, np.ndarray]) -> None:
    _, kinds = made
    counts = np.bincount(kinds, minlength=len(KINDS))
    assert len(counts) == len(KINDS)
    assert counts.min() >= 90 and counts.max() <= 110  # 600 / 6 = 100 each


def test_kinds_look_like_their_names(made: tuple[np.ndarray, np.ndarray]) -> None:
    tiles, kinds = made
    mean = tiles.reshape(len(tiles), 3, -1).mean(axis=2)  # (N, 3) mean R, G, B
    red, green, blue = mean.T
    grass = kinds == KINDS.index("grass")
    assert np.mean(green[grass] > blue[grass]) > 0.95
    assert np.mean(green[grass] > red[grass] * 0.9) > 0.95
    water = kinds == KINDS.index("water")
    # Water is blue or teal, unless it is lava (red) or swamp (green): blue wins most tiles.
    assert np.mean(blue[water] > red[water]) > 0.5
    # Sprites are outlined: a dark colour around a body, so more contrast than a plain floor.
    spread = tiles.reshape(len(tiles), -1).std(axis=1)
    floor = kinds == KINDS.index("floor")
    sprite = kinds == KINDS.index("sprite")
    assert np.median(spread[sprite]) > np.median(spread[floor])


def test_small_palettes(made: tuple[np.ndarray, np.ndarray]) -> None:
    tiles, _ = made
    rgb = tiles.astype(np.int32).reshape(len(tiles), 3, -1)
    codes = np.sort(rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2], axis=1)  # (N, H*W)
    colours = 1 + (np.diff(codes, axis=1) != 0).sum(axis=1)
    assert colours.max() <= 16
    assert colours.min() >= 3  # no flat tiles: the reference dropped constant tiles


def test_coarse_pixel_grid(made: tuple[np.ndarray, np.ndarray]) -> None:
    tiles, _ = made
    logical = tiles[:, :, ::2, ::2]  # (N, 3, 16, 16)
    np.testing.assert_array_equal(logical.repeat(2, axis=2).repeat(2, axis=3), tiles)
    # ...and the 16x16 logical tiles are detailed, not 2x2 blocks of an 8x8 picture.
    assert (logical[:, :, ::2, ::2].repeat(2, axis=2).repeat(2, axis=3) != logical).any()


@pytest.mark.parametrize("size", [16, 48, 64])
def test_other_square_sizes_scale_the_same_drawing(size: int) -> None:
    small, kinds16 = generate_tiles(30, seed=3, shape=(3, 16, 16))
    tiles, kinds = generate_tiles(30, seed=3, shape=(3, size, size))
    assert tiles.shape == (30, 3, size, size)
    np.testing.assert_array_equal(kinds, kinds16)
    scale = size // 16
    np.testing.assert_array_equal(tiles, small.repeat(scale, axis=2).repeat(scale, axis=3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": 0}, r"^data\.count must be >= 1, got 0$"),
        ({"val_every": 1}, r"^data\.val_every must be an int >= 2, got 1$"),
        ({"shape": (1, 32, 32)}, r"^data\.shape must be \[3, height, width\] .*got \[1, 32, 32\]$"),
        ({"shape": (3, 32)}, r"^data\.shape must be \[3, height, width\] .*got \[3, 32\]$"),
        ({"shape": (3, 32, 48)}, r"data\.shape .*square.*got \[3, 32, 48\]"),
        ({"shape": (3, 24, 24)}, r"data\.shape .*multiple of 16.*got \[3, 24, 24\]"),
        ({"shape": (3, 8, 8)}, r"data\.shape .*multiple of 16.*got \[3, 8, 8\]"),
    ],
)
def test_bad_arguments_name_the_config_key(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_option("data/procedural", **{"count": 20, **kwargs})


def test_yaml_instantiates_with_the_model_shape() -> None:
    data = OmegaConf.load(CONF)
    cfg = OmegaConf.create({"model": {"shape": [3, 16, 16]}, "data": data})
    ts = instantiate(cfg.data, count=120)
    assert ts.shape == (3, 16, 16)
    assert len(ts.train) + len(ts.val) == 120
