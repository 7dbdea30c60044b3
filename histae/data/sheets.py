"""Real pixel-art tiles: sheets and image folders cut on a grid, filtered, deduplicated, cached.

The pipeline for each source (one image file) is::

    read RGBA (H, W, 4) -> cut grid cells (N, 4, h, w) -> drop empty cells (mean alpha too low)
    -> composite on black (N, 3, h, w) -> resize to the model's (H, W) -> drop constant tiles

then all sources are concatenated, exact duplicates are dropped (the first copy wins) and the tiles
are split with :func:`split_by_hash`, so adding a source never moves an existing tile between train
and validation. The result is cached as a uint8 ``.npz`` keyed by the sources (path, size, mtime)
and every setting, so the jobs of a sweep do not each re-slice the sheets.

Two Hydra targets: :func:`load_tile_sheets` (``data=rpg_tiles``, a list of sheets) and
:func:`load_image_folder` (``data=image_folder``, every image under a folder).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from histae.data.tileset import TileSet, check_shape, check_val_every, split_by_hash

log = logging.getLogger(__name__)

RESAMPLE_CHOICES = ("nearest", "box")
SOURCE_KEYS = ("path", "tile_size", "offset", "stride")
# Part of every cache key: bump it when a change here alters the tiles a source yields.
CACHE_FORMAT = 1


@dataclass(frozen=True)
class Grid:
    """Where the cells of a sheet are, in pixels; ``size=None`` means the whole image is one tile.

    ``key`` is the config prefix the user wrote (``data`` or ``data.sources[2]``), for messages.
    """

    size: tuple[int, int] | None  # (width, height)
    offset: tuple[int, int] = (0, 0)  # (x, y) of the first cell's top-left corner
    stride: tuple[int, int] | None = None  # (x, y) between cell starts; None = size
    key: str = "data"


MAX_PIXELS = 64 * 2**20
"""The largest image decoded (64 megapixels, 256 MiB as RGBA); tile sheets are far smaller."""


def read_rgba(path: str) -> np.ndarray:
    """Decode an image file of any mode (palette, grey, RGB, RGBA) to RGBA.

    Returns:
        (H, W, 4) uint8; images without alpha are fully opaque.

    Raises:
        ValueError: not an image, or larger than ``MAX_PIXELS`` (checked before decoding).
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    try:
        with Image.open(path) as image:
            width, height = image.size  # from the header: nothing is decoded yet
            if width * height > MAX_PIXELS:
                raise ValueError(
                    f"{path} is {width}x{height} pixels, larger than the {MAX_PIXELS // 2**20} "
                    "megapixels histae decodes; crop it into sheets or leave it out"
                )
            return np.asarray(image.convert("RGBA"))
    except ValueError as err:
        if str(err).startswith(f"{path} is "):
            raise
        raise ValueError(f"{path} is not a readable image: {err}") from err
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:
        # PIL reports unknown formats, truncated data and bad chunks with these types.
        raise ValueError(f"{path} is not a readable image: {err}") from err


def grid_origins(length: int, tile: int, offset: int, stride: int) -> np.ndarray | None:
    """Start coordinates of the cells along one axis, or None when the grid does not fit.

    The grid fits when the cells, ``stride`` apart from ``offset``, end exactly at the image edge,
    or leave only a trailing gap narrower than the spacing between cells (``stride - tile``).
    """
    usable = length - offset
    if usable < tile:
        return None
    count = (usable - tile) // stride + 1
    leftover = usable - (count - 1) * stride - tile
    if leftover > stride - tile:
        return None
    return offset + stride * np.arange(count)


def slice_grid(image: np.ndarray, grid: Grid, name: str) -> np.ndarray:
    """Cut an image into its grid cells, row by row.

    Args:
        image: (H, W, C) array.
        grid: cell size, offset and stride; ``grid.size=None`` returns the whole image.
        name: the file, for messages.

    Returns:
        (N, C, h, w), a copy.
    """
    height, width = image.shape[:2]
    if grid.size is None:
        return np.ascontiguousarray(image.transpose(2, 0, 1)[None])
    tile_w, tile_h = grid.size
    stride_x, stride_y = grid.stride or grid.size
    xs = grid_origins(width, tile_w, grid.offset[0], stride_x)
    ys = grid_origins(height, tile_h, grid.offset[1], stride_y)
    if xs is None or ys is None:
        layout = "" if grid.offset == (0, 0) else f" from {grid.key}.offset={_show(grid.offset)}"
        if grid.stride is not None and grid.stride != grid.size:
            layout += f" with {grid.key}.stride={_show_pair(grid.stride)}"
        raise ValueError(
            f"{grid.key}.tile_size={_show_pair(grid.size)} does not divide {name} "
            f"({width}x{height}){layout}"
        )
    # Every (h, w) window as a view, then every stride-th one from the offset: one copy at the end.
    windows = sliding_window_view(image, (tile_h, tile_w), axis=(0, 1))  # (H-h+1, W-w+1, C, h, w)
    cells = windows[ys[0] :: stride_y, xs[0] :: stride_x][: len(ys), : len(xs)]
    return np.ascontiguousarray(cells).reshape(-1, image.shape[2], tile_h, tile_w)


def alpha_coverage(tiles: np.ndarray) -> np.ndarray:
    """How much of each RGBA tile is there: the mean alpha, 0 (transparent) to 1 (opaque).

    Args:
        tiles: (N, 4, h, w) uint8.

    Returns:
        (N,) float64.
    """
    return tiles[:, 3].mean(axis=(1, 2)) / 255.0


def composite_on_black(tiles: np.ndarray) -> np.ndarray:
    """Premultiply RGB by alpha, which is compositing over black, rounded to nearest.

    Args:
        tiles: (N, 4, h, w) uint8.

    Returns:
        (N, 3, h, w) uint8. Example: RGB 200 at alpha 128 gives round(200 * 128 / 255) = 100.
    """
    rgb = tiles[:, :3].astype(np.uint16)
    alpha = tiles[:, 3:4].astype(np.uint16)
    # 255 is odd, so c * a / 255 is never exactly halfway and + 127 rounds to nearest.
    return ((rgb * alpha + 127) // 255).astype(np.uint8)


def is_constant(tiles: np.ndarray) -> np.ndarray:
    """Whether every pixel of a tile has the same colour.

    Args:
        tiles: (N, C, h, w).

    Returns:
        (N,) bool.
    """
    n, c, h, w = tiles.shape
    flat = tiles.reshape(n, c, h * w)  # not -1: a sheet may have no tiles left
    return (flat == flat[:, :, :1]).all(axis=(1, 2))


def resize_tiles(tiles: np.ndarray, size: tuple[int, int], resample: str = "nearest") -> np.ndarray:
    """Resize tiles to (height, width).

    ``nearest`` samples each output pixel's centre, as PIL's NEAREST does: shrinking 64 -> 32 keeps
    source pixels 1, 3, 5, ...; growing 16 -> 32 doubles every pixel. ``box`` averages whole
    blocks (rounded to nearest) and needs the tile to be a whole multiple of ``size``.

    Args:
        tiles: (N, C, h, w) uint8.
        size: (height, width) of the output.
        resample: "nearest" or "box".

    Returns:
        (N, C, height, width) uint8.
    """
    out_h, out_w = size
    in_h, in_w = tiles.shape[2:]
    if (in_h, in_w) == (out_h, out_w):
        return tiles
    if resample == "nearest":
        rows = ((np.arange(out_h) + 0.5) * in_h / out_h).astype(np.intp)
        cols = ((np.arange(out_w) + 0.5) * in_w / out_w).astype(np.intp)
        return np.ascontiguousarray(tiles[:, :, rows[:, None], cols[None, :]])
    if resample == "box":
        if in_h % out_h or in_w % out_w:
            raise ValueError(
                f"data.resample=box needs tiles a whole multiple of {out_w}x{out_h}, "
                f"got {in_w}x{in_h}; use data.resample=nearest"
            )
        fy, fx = in_h // out_h, in_w // out_w
        blocks = tiles.reshape(*tiles.shape[:2], out_h, fy, out_w, fx).astype(np.uint32)
        return ((blocks.sum(axis=(3, 5)) + fy * fx // 2) // (fy * fx)).astype(np.uint8)
    raise ValueError(
        f"data.resample must be one of {', '.join(RESAMPLE_CHOICES)}, got {resample!r}"
    )


def drop_duplicates(tiles: np.ndarray) -> np.ndarray:
    """Keep the first copy of every exactly repeated tile, in the original order.

    Args:
        tiles: (N, C, H, W).

    Returns:
        (M, C, H, W), M <= N.
    """
    first: dict[bytes, int] = {}
    for index, tile in enumerate(tiles):
        first.setdefault(tile.tobytes(), index)
    return tiles[np.fromiter(first.values(), dtype=np.intp, count=len(first))]


def sheet_tiles(
    path: str,
    grid: Grid,
    size: tuple[int, int],
    min_coverage: float = 0.01,
    resample: str = "nearest",
) -> np.ndarray:
    """The usable tiles of one image: cut, without empty cells, on black, resized, not constant.

    Duplicates are kept; :func:`drop_duplicates` runs once over all sources.

    Args:
        path: image file.
        grid: how to cut it.
        size: (height, width) of the model's input.
        min_coverage: cells whose mean alpha (0..1) is below this are empty.
        resample: "nearest" or "box", see :func:`resize_tiles`.

    Returns:
        (N, 3, height, width) uint8.
    """
    cells = slice_grid(read_rgba(path), grid, path)  # (N, 4, h, w)
    h, w = cells.shape[2:]
    if resample == "box" and (h % size[0] or w % size[1]):
        cut = (
            path if grid.size is None else f"{grid.key}.tile_size={_show_pair(grid.size)} of {path}"
        )
        raise ValueError(
            f"data.resample=box needs tiles a whole multiple of {size[1]}x{size[0]}, got "
            f"{w}x{h} from {cut}; use data.resample=nearest"
        )
    solid = cells[alpha_coverage(cells) >= min_coverage]
    tiles = resize_tiles(composite_on_black(solid), size, resample)
    kept = tiles[~is_constant(tiles)]
    log.info("%s: %d cells, %d not empty, %d not constant", path, len(cells), len(solid), len(kept))
    return kept


# conf/data/rpg_tiles.yaml's sheets (tests/test_defaults.py keeps the two the same): real 32x32
# RPG tiles from the Debian packages angband-data and crawl-tiles-data.
RPG_TILE_SHEETS: tuple[dict, ...] = (
    {
        "path": [
            "/usr/share/angband/tiles/gervais/32x32.png",  # Debian 13
            "/usr/share/angband/xtra/graf/32x32.png",  # Debian 12
        ],
        "tile_size": 32,
        "offset": [0, 0],
        "stride": None,
    },
    {"path": "/usr/share/crawl/dat/tiles/floor.png", "tile_size": 32},
    {"path": "/usr/share/crawl/dat/tiles/wall.png", "tile_size": 32},
)
RPG_TILES_HINT = (
    "install them with 'sudo apt-get install angband-data crawl-tiles-data', or use "
    "data=procedural (built-in tiles, no files needed)"
)
CACHE_DIR = "~/.cache/histae"  # the YAML's default when HISTAE_CACHE_DIR is not set
IMAGE_EXTENSIONS = ("png", "gif", "bmp", "jpg", "jpeg", "webp", "tga")


def load_tile_sheets(
    sources: Sequence[Mapping] = RPG_TILE_SHEETS,
    shape: Sequence[int] = (3, 32, 32),
    val_every: int = 20,
    cache_dir: str | None = CACHE_DIR,
    min_coverage: float = 0.01,
    resample: str = "nearest",
    missing_hint: str = RPG_TILES_HINT,
) -> TileSet:
    """Tiles cut from a list of tile sheets (the ``data=rpg_tiles`` target).

    Args:
        sources: entries ``{path, tile_size, offset=[0, 0], stride=null}``; ``path`` is a file or
            a list of alternatives (the first that exists wins); ``tile_size``, ``offset`` and
            ``stride`` are pixels, an int or ``[x, y]``; ``stride`` defaults to ``tile_size``.
        shape: (C, H, W) of the model; C must be 3.
        val_every: about 1 in ``val_every`` distinct tiles goes to validation.
        cache_dir: folder for the ``.npz`` cache, ``~`` expanded; None or "" disables it.
        min_coverage: cells whose mean alpha (0..1) is below this are dropped as empty.
        resample: "nearest" (pixel art stays crisp) or "box" (shrinking by a whole factor only).
        missing_hint: appended to the error when a sheet is missing (how to install it).

    Returns:
        TileSet of uint8 (N, 3, H, W) train and (M, 3, H, W) validation tiles.
    """
    size = _check_settings(shape, val_every, min_coverage, resample)
    if isinstance(sources, (str, Mapping)) or not isinstance(sources, Sequence):
        raise ValueError(f"data.sources must be a list of sheets, got {type(sources).__name__}")
    if len(sources) == 0:
        raise ValueError("data.sources is empty: list at least one tile sheet")
    jobs: list[tuple[str, Grid]] = []
    missing: list[str] = []
    for index, source in enumerate(sources):
        key = f"data.sources[{index}]"
        path, grid = _parse_source(source, key)
        found = next((p for p in path if os.path.exists(p)), None)
        if found is None:
            missing.append(f"{key}.path {' or '.join(path)}")
            continue
        if os.path.isdir(found):
            raise ValueError(f"{key}.path {found} is a folder; use data=image_folder for folders")
        jobs.append((found, grid))
    if missing:
        raise FileNotFoundError(f"tile sheet not found: {'; '.join(missing)}; {missing_hint}")
    return _load_cached(jobs, size, val_every, cache_dir, min_coverage, resample)


def load_image_folder(
    root: str,
    shape: Sequence[int] = (3, 32, 32),
    tile_size: int | Sequence[int] | None = None,
    offset: int | Sequence[int] = (0, 0),
    stride: int | Sequence[int] | None = None,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    val_every: int = 20,
    cache_dir: str | None = CACHE_DIR,
    min_coverage: float = 0.01,
    resample: str = "nearest",
) -> TileSet:
    """Tiles from every image under a folder, searched recursively (``data=image_folder``).

    Args:
        root: the folder, ``~`` expanded.
        shape: (C, H, W) of the model; C must be 3.
        tile_size: None: every image is one tile; pixels (int or ``[width, height]``): every
            image is a sheet cut on this grid.
        offset: pixels (int or ``[x, y]``) of the first cell's top-left corner.
        stride: pixels (int or ``[x, y]``) between cell starts; None = ``tile_size``.
        extensions: file name endings that count as images, case-insensitive, without the dot.
        val_every, cache_dir, min_coverage, resample: as in :func:`load_tile_sheets`.

    Returns:
        TileSet of uint8 (N, 3, H, W) train and (M, 3, H, W) validation tiles.
    """
    size = _check_settings(shape, val_every, min_coverage, resample)
    if tile_size is None:
        if _pair(offset or 0, "data.offset", minimum=0) != (0, 0) or stride is not None:
            raise ValueError("data.offset and data.stride need data.tile_size, which is null")
        grid = Grid(size=None)
    else:
        grid = _parse_grid(tile_size, offset, stride, "data")
    folder = os.path.expanduser(str(root))
    if not os.path.exists(folder):
        raise FileNotFoundError(f"data.root={root}: {folder} does not exist")
    if not os.path.isdir(folder):
        raise ValueError(f"data.root={root}: {folder} is not a folder")
    endings = tuple("." + str(ext).lower().lstrip(".") for ext in extensions)
    files = []
    for directory, subdirs, names in os.walk(folder):
        subdirs.sort()  # os.walk follows this list: a fixed order on every file system
        files += [os.path.join(directory, n) for n in sorted(names) if n.lower().endswith(endings)]
    if not files:
        raise ValueError(f"data.root={root}: no images ({', '.join(endings)}) under {folder}")
    return _load_cached(
        [(f, grid) for f in files], size, val_every, cache_dir, min_coverage, resample
    )


def _load_cached(
    jobs: list[tuple[str, Grid]],
    size: tuple[int, int],
    val_every: int,
    cache_dir: str | None,
    min_coverage: float,
    resample: str,
) -> TileSet:
    """Load the tiles of ``jobs`` (file, grid), from the cache when its key matches."""
    path = None
    if cache_dir:
        key = _cache_key(jobs, size, val_every, min_coverage, resample)
        path = os.path.join(os.path.expanduser(str(cache_dir)), f"tiles-{key}.npz")
        cached = _read_cache(path)
        if cached is not None:
            log.info("loaded %d tiles from cache %s", len(cached.train) + len(cached.val), path)
            return cached
    parts = [sheet_tiles(file, grid, size, min_coverage, resample) for file, grid in jobs]
    tiles = drop_duplicates(np.concatenate(parts))
    if len(tiles) == 0:
        raise ValueError(
            f"no tiles left in {', '.join(f for f, _ in jobs[:3])}{' ...' * (len(jobs) > 3)} "
            f"after dropping empty (data.min_coverage={min_coverage}) and constant cells"
        )
    tileset = split_by_hash(tiles, val_every)
    log.info(
        "%d distinct tiles (%d train, %d validation) from %d files",
        len(tiles),
        len(tileset.train),
        len(tileset.val),
        len(jobs),
    )
    if len(tileset.val) == 0:
        log.warning(
            "no validation tiles: %d tiles are too few for val_every=%d", len(tiles), val_every
        )
    if path is not None:
        _write_cache(path, tileset)
    return tileset


def _cache_key(
    jobs: list[tuple[str, Grid]],
    size: tuple[int, int],
    val_every: int,
    min_coverage: float,
    resample: str,
) -> str:
    """A digest of everything the tiles depend on: the files as they are now and the settings."""
    files = []
    for file, grid in jobs:
        stat = os.stat(file)
        files.append(
            [
                os.path.realpath(file),
                stat.st_size,
                stat.st_mtime_ns,
                grid.size,
                grid.offset,
                grid.stride,
            ]
        )
    settings = [CACHE_FORMAT, files, size, val_every, float(min_coverage), resample]
    return hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:24]


def _read_cache(path: str) -> TileSet | None:
    """The cached TileSet, or None when there is none or it is unreadable (then it is rebuilt)."""
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return TileSet(train=data["train"], val=data["val"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        log.warning("ignoring unreadable tile cache %s (%s); rebuilding it", path, err)
        return None


def _write_cache(path: str, tileset: TileSet) -> None:
    """Write atomically: a temporary file in the same folder, then os.replace.

    Jobs that build the same cache at once each write their own temporary file; readers only
    ever see a complete file. A cache that cannot be written costs time, not the run.
    """
    folder = os.path.dirname(path)
    temp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=folder, prefix=".tiles-", suffix=".tmp")
        with os.fdopen(fd, "wb") as file:
            np.savez(file, train=tileset.train, val=tileset.val)
        os.chmod(temp, 0o644)  # mkstemp makes it private; other users may share the cache
        os.replace(temp, path)
        temp = None
    except OSError as err:
        log.warning("could not write tile cache %s: %s", path, err)
    finally:
        if temp is not None and os.path.exists(temp):
            os.remove(temp)


def _check_settings(
    shape: Sequence[int], val_every: int, min_coverage: float, resample: str
) -> tuple[int, int]:
    """Validate the settings shared by both loaders; returns the model's (height, width)."""
    dims = check_shape(
        list(shape) if isinstance(shape, Sequence) and not isinstance(shape, str) else shape
    )
    check_val_every(val_every)
    if (
        isinstance(min_coverage, bool)
        or not isinstance(min_coverage, (int, float))
        or not (0.0 <= min_coverage <= 1.0)
    ):
        raise ValueError(f"data.min_coverage must be in [0, 1], got {min_coverage}")
    if resample not in RESAMPLE_CHOICES:
        raise ValueError(
            f"data.resample must be one of {', '.join(RESAMPLE_CHOICES)}, got {resample!r}"
        )
    return int(dims[1]), int(dims[2])


def _parse_source(source: Mapping, key: str) -> tuple[list[str], Grid]:
    """One ``data.sources`` entry -> (alternative paths, grid)."""
    if not isinstance(source, Mapping):
        raise ValueError(f"{key} must be a mapping with path and tile_size, got {source!r}")
    unknown = sorted(set(source) - set(SOURCE_KEYS))
    if unknown:
        raise ValueError(f"{key} has unknown key {unknown[0]!r}; valid: {', '.join(SOURCE_KEYS)}")
    for required in ("path", "tile_size"):
        if source.get(required) is None:
            raise ValueError(f"{key}.{required} is required")
    raw = source["path"]
    paths = [raw] if isinstance(raw, str) else list(raw)
    if not paths or not all(isinstance(p, str) and p for p in paths):
        raise ValueError(f"{key}.path must be a file or a list of files, got {_show(raw)}")
    grid = _parse_grid(source["tile_size"], source.get("offset", 0), source.get("stride"), key)
    return [os.path.expanduser(p) for p in paths], grid


def _parse_grid(tile_size: object, offset: object, stride: object, key: str) -> Grid:
    """tile_size, offset, stride as the user wrote them (int or [x, y]) -> Grid."""
    size = _pair(tile_size, f"{key}.tile_size", minimum=1)
    steps = None if stride is None else _pair(stride, f"{key}.stride", minimum=1)
    if steps is not None and (steps[0] < size[0] or steps[1] < size[1]):
        raise ValueError(
            f"{key}.stride={_show(stride)} must be >= {key}.tile_size={_show(tile_size)}"
        )
    return Grid(
        size=size, offset=_pair(offset or 0, f"{key}.offset", minimum=0), stride=steps, key=key
    )


def _pair(value: object, name: str, minimum: int) -> tuple[int, int]:
    """An int or a two-element list of ints -> (x, y), each >= minimum."""
    if _is_int(value):
        pair = (value, value)
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        pair = tuple(value)
    else:
        pair = None
    if pair is None or not all(_is_int(v) and v >= minimum for v in pair):
        raise ValueError(
            f"{name} must be an int >= {minimum} or [x, y] of them, got {_show(value)}"
        )
    return int(pair[0]), int(pair[1])


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _show_pair(pair: tuple[int, int]) -> str:
    """A parsed (x, y) as the user most likely wrote it: 32 for (32, 32), else [32, 16]."""
    return str(pair[0]) if pair[0] == pair[1] else _show(pair)


def _show(value: object) -> str:
    """A value as the user would write it in YAML or on the command line: [32, 16], not (32, 16)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)
