"""Tile sheets and image folders: slicing, filters, dedup, split, cache, errors, real Debian tiles."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from histae.build import option_config
from histae.data import sheets
from histae.data.sheets import (
    Grid,
    composite_on_black,
    read_rgba,
    resize_tiles,
    slice_grid,
)
from histae.data.tileset import split_by_hash

CONF = Path(__file__).resolve().parent.parent / "conf" / "data"
OPAQUE = 255


def pattern(seed: int, size: int = 8, alpha: int = OPAQUE) -> np.ndarray:
    """A tile no other seed repeats: (size, size, 4) uint8 random RGB, uniform alpha."""
    rgb = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return np.dstack([rgb, np.full((size, size), alpha, np.uint8)])


def chw(tile: np.ndarray) -> np.ndarray:
    """(h, w, 4) opaque RGBA -> (3, h, w) RGB, what the loader returns for it."""
    return np.ascontiguousarray(tile[:, :, :3].transpose(2, 0, 1))


def make_sheet(cells: list[list[np.ndarray]]) -> np.ndarray:
    """Rows of (h, w, 4) cells -> one (rows*h, cols*w, 4) sheet."""
    return np.concatenate([np.concatenate(row, axis=1) for row in cells], axis=0)


def save(path: Path, pixels: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return str(path)


def alternatives(path) -> list[str]:
    """A source's path as a list of alternatives."""
    return [path] if isinstance(path, str) else list(path)


def yaml_values(option: str) -> dict:
    """An option's YAML values as keyword arguments of its target, the tile cache off."""
    values = OmegaConf.to_container(option_config(option))
    del values["_target_"]
    return {**values, "cache_dir": None}


def tile_sheets(sources: list, shape=None, **values):
    """``data=rpg_tiles``'s loader, called directly, with its YAML values and ``values``."""
    shape_value = {} if shape is None else {"shape": shape}
    return sheets.load_tile_sheets(
        **{**yaml_values("data/rpg_tiles"), "sources": sources, **shape_value, **values}
    )


def image_folder(root: str, **values):
    """``data=image_folder``'s loader, called directly, with its YAML values and ``values``."""
    return sheets.load_image_folder(**{**yaml_values("data/image_folder"), "root": root, **values})


def all_tiles(tiles) -> set[bytes]:
    return {t.tobytes() for t in np.concatenate([tiles.train, tiles.val])}


@pytest.fixture
def known_sheet(tmp_path: Path) -> tuple[str, np.ndarray]:
    """An RGBA sheet of 3x4 cells of 8 px and the 7 tiles the loader must keep, in sheet order.

    Row 0: A, B, fully transparent, A again.
    Row 1: constant red, C, one opaque pixel (coverage 1/64 < 0.05), D at half alpha.
    Row 2: E, B again, a speck of 8 opaque pixels (coverage 1/8), F.
    """
    a, b, c, e, f = (pattern(seed) for seed in (1, 2, 3, 5, 6))
    d = pattern(4, alpha=128)
    clear = np.zeros((8, 8, 4), np.uint8)
    red = np.zeros((8, 8, 4), np.uint8)
    red[:, :] = (255, 0, 0, OPAQUE)
    dot = clear.copy()
    dot[3, 3] = (255, 255, 255, OPAQUE)
    speck = clear.copy()
    speck[0, :] = (10, 20, 30, OPAQUE)
    sheet = make_sheet([[a, b, clear, a], [red, c, dot, d], [e, b, speck, f]])
    path = save(tmp_path / "sheet.png", sheet)
    # D over black: round(c * 128 / 255); 255 is odd, so there are no ties to break.
    d_on_black = np.floor(d[:, :, :3].astype(float) * 128 / 255 + 0.5).astype(np.uint8)
    expected = [chw(a), chw(b), chw(c), d_on_black.transpose(2, 0, 1), chw(e), chw(speck), chw(f)]
    return path, np.stack(expected)


# --- the pieces


def test_composite_on_black_known_values() -> None:
    rgba = np.array([[200, 128], [255, 255], [77, 0], [1, 128], [1, 127]], np.uint8)  # (c, a)
    tiles = np.zeros((len(rgba), 4, 1, 1), np.uint8)
    tiles[:, :3, 0, 0] = rgba[:, :1]
    tiles[:, 3, 0, 0] = rgba[:, 1]
    # 200*128/255 = 100.4 -> 100; 1*128/255 = 0.502 -> 1; 1*127/255 = 0.498 -> 0.
    assert composite_on_black(tiles)[:, 0, 0, 0].tolist() == [100, 255, 0, 1, 0]


def test_slice_grid_row_major_with_offset_and_stride() -> None:
    cells = [[pattern(10 * r + c) for c in range(3)] for r in range(2)]
    # A 1-px magenta margin and 1-px spacing: any misalignment would pull magenta into a tile.
    sheet = np.zeros((1 + 2 * 9, 1 + 3 * 9, 4), np.uint8)
    sheet[:] = (255, 0, 255, OPAQUE)
    for r in range(2):
        for c in range(3):
            sheet[1 + 9 * r : 9 + 9 * r, 1 + 9 * c : 9 + 9 * c] = cells[r][c]
    out = slice_grid(sheet, Grid(size=(8, 8), offset=(1, 1), stride=(9, 9)), "sheet")
    assert out.shape == (6, 4, 8, 8)
    for index in range(6):
        np.testing.assert_array_equal(out[index], cells[index // 3][index % 3].transpose(2, 0, 1))


def test_slice_grid_accepts_a_trailing_gap_narrower_than_the_spacing() -> None:
    sheet = np.zeros((8, 8 + 1 + 8 + 1, 4), np.uint8)  # two 8-px cells, each followed by 1 px
    assert len(slice_grid(sheet, Grid(size=(8, 8), stride=(9, 8)), "s")) == 2
    with pytest.raises(ValueError, match=r"tile_size=8 does not divide s \(19x8\)"):
        slice_grid(np.zeros((8, 19, 4), np.uint8), Grid(size=(8, 8), stride=(9, 8)), "s")


def test_slice_grid_non_square_cells() -> None:
    sheet = np.arange(4 * 12 * 1, dtype=np.uint8).reshape(4, 12, 1)
    out = slice_grid(sheet, Grid(size=(6, 2)), "s")  # [width, height]
    assert out.shape == (4, 1, 2, 6)
    np.testing.assert_array_equal(out[1, 0], sheet[0:2, 6:12, 0])
    np.testing.assert_array_equal(out[2, 0], sheet[2:4, 0:6, 0])


def test_resize_nearest_doubles_pixels_and_matches_pil() -> None:
    tile = chw(pattern(7, size=16))[None]
    up = resize_tiles(tile, (32, 32))
    np.testing.assert_array_equal(up[0], tile[0].repeat(2, axis=1).repeat(2, axis=2))
    big = chw(pattern(8, size=64))[None]
    np.testing.assert_array_equal(resize_tiles(big, (32, 32))[0], big[0][:, 1::2, 1::2])
    for size in (24, 48, 40):  # non-whole factors: the sampling PIL's NEAREST uses
        odd = pattern(size, size=size)[:, :, :3]
        pil = np.asarray(Image.fromarray(odd).resize((32, 32), Image.Resampling.NEAREST))
        np.testing.assert_array_equal(resize_tiles(chw(odd)[None], (32, 32))[0], chw(pil))


def test_resize_box_averages_whole_blocks() -> None:
    tile = np.array(
        [[[0, 1, 10, 10], [2, 2, 10, 10], [255, 255, 0, 0], [255, 254, 0, 0]]], np.uint8
    )
    # Blocks sum to 5, 40, 1019, 0 over 4 pixels -> 1.25, 10, 254.75, 0 -> 1, 10, 255, 0.
    out = resize_tiles(tile[None], (2, 2), "box")
    assert out[0, 0].tolist() == [[1, 10], [255, 0]]
    with pytest.raises(ValueError, match=r"data.resample=box needs tiles a whole multiple of 3x3"):
        resize_tiles(tile[None], (3, 3), "box")


# --- load_tile_sheets on sheets made here


def test_sheet_keeps_known_tiles_drops_empty_constant_duplicates(known_sheet) -> None:
    path, expected = known_sheet
    tiles = tile_sheets([{"path": path, "tile_size": 8}], shape=(3, 8, 8), min_coverage=0.05)
    reference = split_by_hash(expected, 20)
    assert len(tiles.train) + len(tiles.val) == 7
    np.testing.assert_array_equal(tiles.train, reference.train)
    np.testing.assert_array_equal(tiles.val, reference.val)
    assert tiles.train.dtype == np.uint8 and tiles.shape == (3, 8, 8)


def test_min_coverage_decides_what_is_empty(known_sheet) -> None:
    path, _ = known_sheet
    source = [{"path": path, "tile_size": 8}]
    # At 0 the lone pixel (1/64) is kept; the transparent cell is then black, so constant.
    assert len(all_tiles(tile_sheets(source, (3, 8, 8), min_coverage=0.0))) == 8
    assert len(all_tiles(tile_sheets(source, (3, 8, 8), min_coverage=0.2))) == 6


def test_tiles_resized_to_the_model_shape(known_sheet) -> None:
    path, expected = known_sheet
    tiles = tile_sheets([{"path": path, "tile_size": 8}], shape=(3, 32, 32), min_coverage=0.05)
    assert tiles.shape == (3, 32, 32)
    grown = expected.repeat(4, axis=2).repeat(4, axis=3)
    assert all_tiles(tiles) == {t.tobytes() for t in grown}


def test_duplicates_dropped_across_sources(tmp_path: Path, known_sheet) -> None:
    path, expected = known_sheet
    other = save(tmp_path / "other.png", make_sheet([[pattern(2), pattern(99)]]))  # B and new
    tiles = tile_sheets(
        [{"path": path, "tile_size": 8}, {"path": other, "tile_size": [8, 8]}],
        shape=(3, 8, 8),
        min_coverage=0.05,
    )
    assert all_tiles(tiles) == {t.tobytes() for t in expected} | {chw(pattern(99)).tobytes()}


def test_first_existing_alternative_path_wins(tmp_path: Path, known_sheet) -> None:
    path, expected = known_sheet
    source = {"path": [str(tmp_path / "nope.png"), path], "tile_size": 8}
    tiles = tile_sheets([source], shape=(3, 8, 8), min_coverage=0.05)
    assert len(all_tiles(tiles)) == len(expected)


def test_palette_sheet_with_transparent_index(tmp_path: Path) -> None:
    indices = np.zeros((4, 8), np.uint8)
    indices[:, 4:] = np.array([[1, 2, 1, 2], [2, 1, 2, 1]] * 2)  # right cell: a 2-colour checker
    image = Image.fromarray(indices, mode="P")
    image.putpalette([0, 0, 0, 250, 10, 10, 10, 250, 10] + [0] * (253 * 3))
    image.info["transparency"] = 0
    path = tmp_path / "palette.png"
    image.save(path, transparency=0)
    assert read_rgba(str(path))[0, 0].tolist() == [0, 0, 0, 0]
    tiles = tile_sheets([{"path": str(path), "tile_size": 4}], shape=(3, 4, 4))
    (tile,) = np.concatenate([tiles.train, tiles.val])
    assert tile[:, 0, 0].tolist() == [250, 10, 10] and tile[:, 0, 1].tolist() == [10, 250, 10]


# --- load_image_folder


def test_image_folder_one_tile_per_image(tmp_path: Path) -> None:
    small, same, big = pattern(1, size=8), pattern(2, size=16), pattern(3, size=32)
    save(tmp_path / "a" / "small.png", small)
    save(tmp_path / "a" / "b" / "big.BMP", big[:, :, :3])  # no alpha: fully opaque
    save(tmp_path / "same.png", same)
    (tmp_path / "notes.txt").write_text("not an image")
    tiles = image_folder(str(tmp_path), shape=(3, 16, 16))
    expected = [chw(small).repeat(2, axis=1).repeat(2, axis=2), chw(same), chw(big)[:, 1::2, 1::2]]
    assert all_tiles(tiles) == {t.tobytes() for t in expected}


def test_image_folder_of_sheets(tmp_path: Path, known_sheet) -> None:
    _, expected = known_sheet  # sheet.png is in tmp_path
    save(tmp_path / "more" / "two.png", make_sheet([[pattern(50), pattern(51)]]))
    tiles = image_folder(str(tmp_path), shape=(3, 8, 8), tile_size=8, min_coverage=0.05)
    assert len(all_tiles(tiles)) == len(expected) + 2


def test_image_folder_yaml_instantiates(tmp_path: Path, known_sheet) -> None:
    cfg = OmegaConf.load(CONF / "image_folder.yaml")
    cfg.shape, cfg.root, cfg.tile_size, cfg.cache_dir = [3, 8, 8], str(tmp_path), 8, None
    # The YAML's min_coverage 0.01 also keeps the lone opaque pixel (1/64 = 0.016).
    assert len(all_tiles(instantiate(cfg))) == 8
    cfg.tile_size = None  # the whole 32x24 sheet as one tile, shrunk to 8x8
    assert len(all_tiles(instantiate(cfg))) == 1
    cfg.offset = [1, 0]
    with pytest.raises(ValueError, match=r"^data.offset and data.stride need data.tile_size"):
        instantiate(cfg, _partial_=True)()


# --- the cache


def sources_of(path: str) -> list[dict]:
    return [{"path": path, "tile_size": 8}]


def test_cache_gives_identical_tiles_without_reading_sheets(
    tmp_path: Path, known_sheet, monkeypatch
) -> None:
    path, _ = known_sheet
    cache = tmp_path / "cache"
    first = tile_sheets(sources_of(path), (3, 8, 8), cache_dir=str(cache))
    assert len(list(cache.glob("tiles-*.npz"))) == 1 and not list(cache.glob(".tiles-*"))

    def no_reading(path: str) -> np.ndarray:
        raise AssertionError(f"read {path} despite the cache")

    monkeypatch.setattr(sheets, "read_rgba", no_reading)
    second = tile_sheets(sources_of(path), (3, 8, 8), cache_dir=str(cache))
    np.testing.assert_array_equal(second.train, first.train)
    np.testing.assert_array_equal(second.val, first.val)
    # A newer sheet or other settings are a different key: the sheet is read again.
    with pytest.raises(AssertionError, match="despite the cache"):
        tile_sheets(sources_of(path), (3, 16, 16), cache_dir=str(cache))
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="despite the cache"):
        tile_sheets(sources_of(path), (3, 8, 8), cache_dir=str(cache))


def test_cache_dir_expands_user_and_none_disables(tmp_path: Path, known_sheet, monkeypatch) -> None:
    path, _ = known_sheet
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    tile_sheets(sources_of(path), (3, 8, 8), cache_dir="~/cache")
    assert len(list((tmp_path / "home" / "cache").glob("tiles-*.npz"))) == 1
    before = sorted(p.name for p in tmp_path.rglob("*"))
    tile_sheets(sources_of(path), (3, 8, 8), cache_dir=None)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_unreadable_cache_is_rebuilt(tmp_path: Path, known_sheet, caplog) -> None:
    path, _ = known_sheet
    first = tile_sheets(sources_of(path), (3, 8, 8), cache_dir=str(tmp_path / "c"))
    (cached,) = (tmp_path / "c").glob("tiles-*.npz")
    cached.write_bytes(b"half a zip file")
    with caplog.at_level(logging.WARNING, logger="histae.data.sheets"):
        again = tile_sheets(sources_of(path), (3, 8, 8), cache_dir=str(tmp_path / "c"))
    assert "ignoring unreadable tile cache" in caplog.text
    np.testing.assert_array_equal(again.train, first.train)
    with np.load(cached) as data:  # and written back whole
        np.testing.assert_array_equal(data["train"], first.train)


def test_two_jobs_building_the_cache_at_once(tmp_path: Path, known_sheet) -> None:
    path, _ = known_sheet
    barrier, results = threading.Barrier(2), []

    def job() -> None:
        barrier.wait()
        results.append(tile_sheets(sources_of(path), (3, 8, 8), cache_dir=str(tmp_path / "c")))

    threads = [threading.Thread(target=job) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2
    np.testing.assert_array_equal(results[0].train, results[1].train)
    names = [p.name for p in (tmp_path / "c").iterdir()]
    assert len(names) == 1 and names[0].startswith("tiles-")  # no temporary file left behind


def test_yaml_cache_dir_defaults_to_env(monkeypatch) -> None:
    monkeypatch.setenv("HISTAE_CACHE_DIR", "/somewhere/else")
    assert OmegaConf.load(CONF / "rpg_tiles.yaml").cache_dir == "/somewhere/else"
    monkeypatch.delenv("HISTAE_CACHE_DIR")
    assert OmegaConf.load(CONF / "image_folder.yaml").cache_dir == "~/.cache/histae"


# --- errors: one line naming the file or the config key


def test_tile_size_not_dividing_names_key_and_file(tmp_path: Path) -> None:
    path = save(tmp_path / "sheet.png", np.zeros((64, 100, 4), np.uint8))
    with pytest.raises(
        ValueError, match=r"^data.sources\[0\].tile_size=24 does not divide .*sheet.png \(100x64\)$"
    ):
        tile_sheets([{"path": path, "tile_size": 24}])
    with pytest.raises(
        ValueError,
        match=r"^data.tile_size=\[30, 16\] does not divide .*sheet.png \(100x64\) "
        r"from data.offset=\[0, 2\] with data.stride=\[35, 16\]$",
    ):
        image_folder(str(tmp_path), tile_size=[30, 16], offset=[0, 2], stride=[35, 16])


def test_missing_sheet_names_every_path_and_the_way_out(tmp_path: Path) -> None:
    cfg = OmegaConf.load(CONF / "rpg_tiles.yaml")
    cfg.shape, cfg.cache_dir = [3, 32, 32], None
    cfg.sources[0].path = [str(tmp_path / "deb13.png"), str(tmp_path / "deb12.png")]
    cfg.sources[1].path = str(tmp_path / "floor.png")
    with pytest.raises(
        FileNotFoundError,
        match=r"^tile sheet not found: data.sources\[0\].path .*deb13.png or .*deb12.png; "
        r"data.sources\[1\].path .*floor.png; .*'sudo apt-get install angband-data "
        r"crawl-tiles-data', or use data=procedural",
    ):
        instantiate(cfg, _partial_=True)()  # the partial lets the loader's own error through


def test_corrupt_and_truncated_images(tmp_path: Path) -> None:
    (tmp_path / "garbage.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match=r"garbage.png is not a readable image"):
        tile_sheets([{"path": str(tmp_path / "garbage.png"), "tile_size": 8}])
    whole = Path(save(tmp_path / "whole.png", pattern(1, size=64))).read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"cut.png is not a readable image"):
        tile_sheets([{"path": str(tmp_path / "cut.png"), "tile_size": 8}])


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"^data.root=.*nowhere: .*nowhere does not exist$"):
        image_folder(str(tmp_path / "nowhere"))
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"^data.root=.*: no images \(.png, .gif.*\) under "):
        image_folder(str(tmp_path))
    with pytest.raises(ValueError, match=r"^data.sources\[0\].path .* is a folder; use data=image"):
        tile_sheets([{"path": str(tmp_path), "tile_size": 8}])


def test_all_cells_filtered_out(tmp_path: Path) -> None:
    path = save(tmp_path / "blank.png", np.zeros((16, 16, 4), np.uint8))
    with pytest.raises(ValueError, match=r"^no tiles left in .*blank.png after dropping empty"):
        tile_sheets([{"path": path, "tile_size": 8}])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shape": [1, 32, 32]}, r"^data.shape must be \[3, height, width\] .*got \[1, 32, 32\]$"),
        ({"val_every": 1}, r"^data.val_every must be an int >= 2, got 1$"),
        ({"min_coverage": 1.5}, r"^data.min_coverage must be in \[0, 1\], got 1.5$"),
        ({"resample": "bicubic"}, r"^data.resample must be one of nearest, box, got 'bicubic'$"),
        ({"sources": []}, r"^data.sources is empty"),
        ({"sources": [{"path": "x.png", "tilesize": 8}]}, r"unknown key 'tilesize'; valid: path"),
        ({"sources": [{"path": "x.png"}]}, r"^data.sources\[0\].tile_size is required$"),
        (
            {"sources": [{"path": "x.png", "tile_size": 0}]},
            r"^data.sources\[0\].tile_size must be an int >= 1 or \[x, y\] of them, got 0$",
        ),
        (
            {"sources": [{"path": "x.png", "tile_size": 8, "offset": [-1, 0]}]},
            r"^data.sources\[0\].offset must be an int >= 0 .*got \[-1, 0\]$",
        ),
        (
            {"sources": [{"path": "x.png", "tile_size": 8, "stride": 4}]},
            r"^data.sources\[0\].stride=4 must be >= data.sources\[0\].tile_size=8$",
        ),
    ],
)
def test_bad_settings(kwargs: dict, message: str) -> None:
    arguments = {"sources": [{"path": "x.png", "tile_size": 8}], **kwargs}
    with pytest.raises(ValueError, match=message):
        tile_sheets(**arguments)


def test_box_resample_names_the_source(tmp_path: Path) -> None:
    path = save(tmp_path / "s.png", make_sheet([[pattern(1, size=24)]]))
    with pytest.raises(ValueError, match=r"box needs .* 32x32, got 24x24 from data.sources\[0\]"):
        tile_sheets([{"path": path, "tile_size": 24}], resample="box")


# --- the real thing: data=rpg_tiles from Debian's angband-data and crawl-tiles-data


@pytest.fixture(scope="module")
def rpg_cfg():
    """The rpg_tiles YAML as shipped; skips when the packages are missing, fails in CI."""
    cfg = OmegaConf.load(CONF / "rpg_tiles.yaml")
    cfg.shape, cfg.cache_dir = [3, 32, 32], None
    missing = [
        str(source.path)
        for source in cfg.sources
        if not any(os.path.exists(p) for p in alternatives(source.path))
    ]
    if missing and not os.environ.get("CI"):
        pytest.skip(f"needs 'apt-get install angband-data crawl-tiles-data': {missing}")
    return cfg


@pytest.fixture(scope="module")
def rpg_tiles(rpg_cfg):
    return instantiate(rpg_cfg)


def test_rpg_tiles_real(rpg_cfg, rpg_tiles) -> None:
    count = len(rpg_tiles.train) + len(rpg_tiles.val)
    assert count >= 4500
    assert len(all_tiles(rpg_tiles)) == count  # distinct
    assert rpg_tiles.train.shape[1:] == rpg_tiles.val.shape[1:] == (3, 32, 32)
    assert rpg_tiles.train.dtype == np.uint8
    values = rpg_tiles.train.astype(np.float32) / 255
    assert values.min() == 0.0 and values.max() == 1.0
    assert 0.04 <= len(rpg_tiles.val) / count <= 0.06
    again = instantiate(rpg_cfg)
    np.testing.assert_array_equal(again.train, rpg_tiles.train)
    np.testing.assert_array_equal(again.val, rpg_tiles.val)


def test_rpg_tiles_split_stable_when_adding_a_source(tmp_path: Path, rpg_cfg, rpg_tiles) -> None:
    extra = save(tmp_path / "mine.png", make_sheet([[pattern(s, size=16) for s in range(40)]]))
    cfg = rpg_cfg.copy()
    cfg.sources.append({"path": extra, "tile_size": 16})
    more = instantiate(cfg)
    old_train, old_val = (
        {t.tobytes() for t in rpg_tiles.train},
        {t.tobytes() for t in rpg_tiles.val},
    )
    new_train, new_val = {t.tobytes() for t in more.train}, {t.tobytes() for t in more.val}
    assert old_train <= new_train and old_val <= new_val
    assert len(new_train | new_val) == len(old_train | old_val) + 40


def test_rpg_tiles_cache_reads_no_sheet_and_gives_the_same_tiles(
    tmp_path: Path, rpg_cfg, monkeypatch
) -> None:
    # How much faster the cache is belongs in benchmarks/; here, that it replaces the sheets.
    cfg = rpg_cfg.copy()
    cfg.cache_dir = str(tmp_path / "cache")
    cold = instantiate(cfg)

    def no_reading(path: str) -> np.ndarray:
        raise AssertionError(f"read {path} despite the cache")

    monkeypatch.setattr(sheets, "read_rgba", no_reading)
    warm = instantiate(cfg)
    np.testing.assert_array_equal(warm.train, cold.train)
    np.testing.assert_array_equal(warm.val, cold.val)
