"""Procedural pixel-art RPG tiles: the embedded default data set, made in about a second.

Every tile is drawn on a 16x16 grid of logical pixels and scaled up by whole pixels, so a
32x32 tile shows 2x2 blocks the way real pixel art does. Each tile indexes into its own
palette of 16 slots (ramps of 5 shades plus accents), so it never has more than 16 colours.

Kinds (see :data:`KINDS`): floors (planks, flagstones, dirt, checker), brick walls (running
bond), stone walls (irregular stones), grass (blades, tufts, flowers), water (waves,
sparkles, sometimes a shoreline; some are lava) and left-right mirrored outlined sprites
standing on a floor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from histae.data.tileset import TileSet, check_shape, check_val_every, split_by_hash

KINDS: tuple[str, ...] = ("floor", "brick", "stone", "grass", "water", "sprite")
LOGICAL = 16  # logical pixels per side; the tile size must be a multiple of it

# Palette slots of every tile: three 5-shade ramps (darkest first) and one outline colour.
_A, _B, _C, _OUT = 0, 5, 10, 15
_SLOTS = 16

# Colour families as (hue_lo, hue_hi) degrees, (sat_lo, sat_hi), (val_lo, val_hi) of the
# middle shade of a ramp.
_FAMILIES: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "grey": ((200, 240), (0.04, 0.14), (0.45, 0.62)),
    "dungeon": ((225, 265), (0.12, 0.25), (0.32, 0.45)),
    "slate": ((205, 225), (0.18, 0.30), (0.40, 0.55)),
    "dirt": ((22, 34), (0.40, 0.58), (0.38, 0.52)),
    "mud": ((30, 45), (0.35, 0.50), (0.28, 0.40)),
    "wood": ((20, 32), (0.50, 0.68), (0.48, 0.64)),
    "dark_wood": ((12, 24), (0.45, 0.62), (0.32, 0.44)),
    "sand": ((36, 48), (0.32, 0.48), (0.70, 0.84)),
    "brick": ((2, 14), (0.50, 0.68), (0.50, 0.64)),
    "brown_stone": ((20, 35), (0.22, 0.36), (0.42, 0.56)),
    "moss_stone": ((70, 95), (0.18, 0.32), (0.38, 0.50)),
    "purple": ((265, 295), (0.25, 0.45), (0.36, 0.52)),
    "grass": ((88, 120), (0.52, 0.72), (0.50, 0.66)),
    "dark_grass": ((110, 140), (0.45, 0.65), (0.34, 0.46)),
    "dry_grass": ((55, 75), (0.45, 0.62), (0.55, 0.70)),
    "water": ((200, 222), (0.58, 0.78), (0.62, 0.78)),
    "deep_water": ((215, 235), (0.60, 0.80), (0.40, 0.52)),
    "teal": ((172, 190), (0.50, 0.70), (0.55, 0.70)),
    "swamp": ((80, 110), (0.35, 0.50), (0.32, 0.42)),
    "lava": ((6, 22), (0.85, 0.98), (0.80, 0.92)),
    "marble": ((30, 60), (0.04, 0.12), (0.74, 0.86)),
    "red": ((350, 365), (0.60, 0.80), (0.60, 0.78)),
    "orange": ((22, 36), (0.70, 0.88), (0.72, 0.88)),
    "yellow": ((48, 58), (0.60, 0.80), (0.78, 0.90)),
    "green": ((95, 140), (0.55, 0.75), (0.55, 0.72)),
    "blue": ((205, 235), (0.55, 0.75), (0.60, 0.78)),
    "violet": ((270, 300), (0.45, 0.65), (0.55, 0.72)),
    "pink": ((320, 340), (0.35, 0.55), (0.78, 0.90)),
    "white": ((40, 60), (0.02, 0.10), (0.86, 0.94)),
}

_Y, _X = np.mgrid[0:LOGICAL, 0:LOGICAL]  # (16, 16) row and column of every logical pixel


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Hue in degrees, saturation and value in [0, 1], any equal shapes (...) -> (..., 3)."""
    h6 = (h % 360.0) / 60.0
    c = v * s
    x = c * (1 - np.abs(h6 % 2 - 1))
    zero = np.zeros_like(c)
    sector = np.floor(h6).astype(int) % 6
    choices = [
        np.stack(parts, axis=-1)
        for parts in (
            (c, x, zero),
            (x, c, zero),
            (zero, c, x),
            (zero, x, c),
            (x, zero, c),
            (c, zero, x),
        )
    ]
    rgb = np.choose(sector[..., None], choices)
    return (rgb + (v - c)[..., None]) * 255.0


def _ramp(rng: np.random.Generator, n: int, families: Sequence[str]) -> np.ndarray:
    """Five shades, darkest first, of one colour drawn per tile from ``families``: (n, 5, 3).

    Shades shift hue the way pixel artists do: lights towards yellow, darks towards blue,
    which keeps the ramp lively instead of a plain brightness scale.
    """
    ranges = np.array([_FAMILIES[f] for f in families])  # (F, 3, 2)
    pick = ranges[rng.integers(0, len(families), n)]  # (n, 3, 2)
    lo, hi = pick[..., 0], pick[..., 1]
    h0, s0, v0 = (lo + (hi - lo) * rng.random((n, 3))).T  # (n,) each
    t = np.arange(-2, 3, dtype=float)  # (5,)
    to_yellow = ((60.0 - h0 + 180.0) % 360.0) - 180.0  # signed way to yellow, (n,)
    to_blue = ((240.0 - h0 + 180.0) % 360.0) - 180.0
    step = np.where(t > 0, np.sign(to_yellow)[:, None], np.sign(to_blue)[:, None])
    hue = h0[:, None] + step * np.abs(t) * 7.0 * s0[:, None].clip(0.3, 1.0)
    sat = np.clip(s0[:, None] - 0.06 * t + 0.04 * (t < 0), 0.0, 1.0)
    val = np.clip(v0[:, None] + t * (0.09 + 0.06 * v0[:, None]), 0.04, 1.0)
    return _hsv_to_rgb(hue, sat, val)


def _dark(rgb: np.ndarray, factor: float = 0.28) -> np.ndarray:
    """A near-black tint of each colour, for outlines and deep mortar: (..., 3) -> (..., 3)."""
    return rgb * factor + np.array([4.0, 2.0, 10.0])


def _value_noise(rng: np.random.Generator, n: int, cells: int = 4) -> np.ndarray:
    """Smooth tileable noise in [0, 1], bilinear between ``cells`` x ``cells`` knots: (n, 16, 16)."""
    knots = rng.random((n, cells, cells))
    u = (np.arange(LOGICAL) + 0.5) * cells / LOGICAL - 0.5
    i0 = np.floor(u).astype(int)
    t = u - i0
    i0, i1 = i0 % cells, (i0 + 1) % cells
    rows = knots[:, i0, :] * (1 - t)[None, :, None] + knots[:, i1, :] * t[None, :, None]
    return rows[:, :, i0] * (1 - t) + rows[:, :, i1] * t


def _stamp(seeds: np.ndarray, offsets: Sequence[tuple[int, int]]) -> np.ndarray:
    """Draw a small pattern at every seed, wrapping around: (n, 16, 16) bool -> same."""
    out = np.zeros_like(seeds)
    for dy, dx in offsets:
        out |= np.roll(seeds, (dy, dx), axis=(1, 2))
    return out


def _neighbour(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``mask`` seen from each pixel's (dy, dx) neighbour, False off the edge: (n, H, W)."""
    out = np.zeros_like(mask)
    h, w = mask.shape[1:]
    out[:, max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)] = mask[
        :, max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)
    ]
    return out


def _per_tile(values: Sequence[int], rng: np.random.Generator, n: int) -> np.ndarray:
    """One of ``values`` per tile, broadcastable against (n, 16, 16): (n, 1, 1)."""
    return np.asarray(values)[rng.integers(0, len(values), n)][:, None, None]


def _gather(table: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Per-tile lookup ``table[i, index[i]]``: (n, K) and (n, 16, 16) -> (n, 16, 16)."""
    flat = np.clip(index, 0, table.shape[1] - 1).reshape(len(index), -1)
    return np.take_along_axis(table, flat, axis=1).reshape(index.shape)


def _new_palette(n: int) -> np.ndarray:
    return np.zeros((n, _SLOTS, 3))


# ----------------------------------------------------------------------------- floors


def _planks(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    pal = _new_palette(n)
    pal[:, _A : _A + 5] = _ramp(rng, n, ["wood", "wood", "dark_wood", "brown_stone"])
    board_h = _per_tile([3, 4, 4, 5], rng, n)
    y = _Y + rng.integers(0, 5, n)[:, None, None]
    board, yy = y // board_h, y % board_h
    shade = _gather(rng.choice([2, 2, 3, 1], (n, 12)), board)
    plank_len = _per_tile([8, 16, 16], rng, n)
    joint = (_X - _gather(rng.integers(0, 16, (n, 12)), board)) % plank_len == 0
    grain = rng.random((n, LOGICAL, LOGICAL)) < 0.07
    grain |= np.roll(grain, 1, axis=2)  # streaks along the board, like wood grain
    idx = shade.copy()
    idx = np.where(grain, shade - 1, idx)
    idx = np.where(yy == 0, np.minimum(shade + 1, 4), idx)
    idx = np.where(joint, 1, idx)
    idx = np.where(yy == board_h - 1, 0, idx)
    vertical = rng.random(n) < 0.4
    idx[vertical] = idx[vertical].transpose(0, 2, 1)
    return idx, pal


def _masonry_cells(
    rng: np.random.Generator, n: int, cell_w: np.ndarray, cell_h: np.ndarray, shift: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of cells, each row shifted by ``shift[i, row]``: cell id, y and x inside the cell.

    Args:
        cell_w, cell_h: (n, 1, 1) cell size in logical pixels.
        shift: (n, R) horizontal offset of each row.

    Returns:
        Three (n, 16, 16) int arrays.
    """
    y = _Y + rng.integers(0, 8, n)[:, None, None]
    row, yy = y // cell_h, y % cell_h
    x = _X + rng.integers(0, 8, n)[:, None, None] + _gather(shift, row)
    col, xx = x // cell_w, x % cell_w
    return row * 64 + col, yy, xx


def _flagstones(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    pal = _new_palette(n)
    pal[:, _A : _A + 5] = _ramp(rng, n, ["grey", "sand", "slate", "marble", "brown_stone"])
    size = _per_tile([5, 6, 8], rng, n)
    shift = rng.integers(0, 8, (n, 24))
    cell, yy, xx = _masonry_cells(rng, n, size, size, shift)
    shade = _gather(rng.choice([2, 3, 3], (n, 24 * 64)), cell)
    specks = rng.random((n, LOGICAL, LOGICAL)) < 0.05
    idx = np.where(specks, shade - 1, shade)
    idx = np.where((yy == 0) | (xx == 0), np.minimum(shade + 1, 4), idx)
    idx = np.where((yy == size - 1) | (xx == size - 1), 1, idx)
    crack_seed = rng.random((n, LOGICAL, LOGICAL)) < 0.012
    crack = _stamp(crack_seed, [(0, 0), (1, 1), (2, 1), (3, 2)])
    idx = np.where(crack, 1, idx)
    return idx, pal


def _dirt(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    pal = _new_palette(n)
    pal[:, _A : _A + 5] = _ramp(rng, n, ["dirt", "mud", "sand", "dirt"])
    pal[:, _B : _B + 5] = _ramp(rng, n, ["grey", "brown_stone"])
    noise = _value_noise(rng, n, cells=4)
    idx = np.where(noise > 0.68, 3, np.where(noise < 0.32, 1, 2))
    r = rng.random((n, LOGICAL, LOGICAL))
    idx = np.where(r < 0.06, 0, np.where(r > 0.95, 4, idx))
    pebble = rng.random((n, LOGICAL, LOGICAL)) < rng.uniform(0.005, 0.03, (n, 1, 1))
    idx = np.where(_stamp(pebble, [(0, 0), (0, 1)]), _B + 3, idx)
    idx = np.where(_stamp(pebble, [(1, 0), (1, 1)]), _B + 1, idx)
    idx = np.where(_stamp(pebble, [(0, 1)]), _B + 4, idx)
    return idx, pal


def _checker(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    pal = _new_palette(n)
    pal[:, _A : _A + 5] = _ramp(rng, n, ["marble", "grey", "sand", "brick", "dungeon"])
    pal[:, _B : _B + 5] = _ramp(rng, n, ["dungeon", "slate", "purple", "dark_wood", "grey"])
    size = _per_tile([4, 8, 8], rng, n)
    y = _Y + rng.integers(0, 8, n)[:, None, None]
    x = _X + rng.integers(0, 8, n)[:, None, None]
    yy, xx = y % size, x % size
    light = (y // size + x // size) % 2 == 0
    base = np.where(light, _A + 3, _B + 2)
    specks = rng.random((n, LOGICAL, LOGICAL)) < 0.04
    idx = np.where(specks, base - 1, base)
    idx = np.where((yy == 0) | (xx == 0), base + 1, idx)
    idx = np.where((yy == size - 1) | (xx == size - 1), base - 1, idx)
    return idx, pal


_FLOORS: tuple[Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]], ...] = (
    _planks,
    _flagstones,
    _dirt,
    _checker,
)


def _by_variant(
    rng: np.random.Generator,
    n: int,
    variants: Sequence[Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]],
) -> tuple[np.ndarray, np.ndarray]:
    """Draw each tile with one of ``variants``, chosen uniformly: (n, 16, 16) idx, (n, 16, 3)."""
    which = rng.integers(0, len(variants), n)
    idx = np.zeros((n, LOGICAL, LOGICAL), dtype=np.int64)
    pal = _new_palette(n)
    for v, draw in enumerate(variants):
        sel = which == v
        if sel.any():
            idx[sel], pal[sel] = draw(rng, int(sel.sum()))
    return idx, pal


def _floor(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return _by_variant(rng, n, _FLOORS)


# ------------------------------------------------------------------------------ walls


def _brick(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    pal = _new_palette(n)
    pal[:, _A : _A + 5] = _ramp(rng, n, ["brick", "grey", "sand", "dungeon", "purple", "slate"])
    pal[:, _B : _B + 5] = _ramp(rng, n, ["grey", "sand", "dungeon"])
    pal[:, _OUT] = _dark(pal[:, _A + 1], 0.45)
    sizes = np.array([(8, 4), (6, 4), (8, 5), (4, 4), (6, 3), (8, 3)])
    pick = sizes[rng.integers(0, len(sizes), n)]
    w, h = pick[:, 0, None, None], pick[:, 1, None, None]
    shift = (np.arange(24)[None, :] % 2) * (w[:, 0] // 2)  # running bond
    cell, yy, xx = _masonry_cells(rng, n, w, h, shift)
    shade = _gather(rng.choice([2, 2, 2, 3, 1], (n, 24 * 64)), cell)
    specks = rng.random((n, LOGICAL, LOGICAL)) < 0.07
    idx = np.where(specks, shade - 1, shade)
    idx = np.where((yy == 0) | (xx == 0), shade + 1, idx)
    idx = np.where((yy == h - 2) | (xx == w - 2), shade - 1, idx)
    # Mortar is either a dark gap or light lime mortar, as both show up in tilesets.
    mortar = np.where(rng.random(n) < 0.6, _OUT, _B + 3)[:, None, None]
    idx = np.where((yy == h - 1) | (xx == w - 1), mortar, idx)
    return idx, pal


def _stone(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    pal = _new_palette(n)
    families = ["grey", "dungeon", "brown_stone", "moss_stone", "sand", "slate", "purple"]
    pal[:, _A : _A + 5] = _ramp(rng, n, families)
    pal[:, _OUT] = _dark(pal[:, _A + 1], 0.4)
    # Jittered grid of 2x2 to 4x3 stone centres on a torus, so stones wrap across the edge.
    grid = np.array([(2, 2), (3, 2), (3, 3), (4, 3)])[rng.integers(0, 4, n)]  # rows, columns
    gy, gx = grid[:, 0, None, None], grid[:, 1, None, None]
    r, c = np.arange(4)[:, None], np.arange(3)[None, :]
    cy = (r + 0.5) * LOGICAL / gy + rng.uniform(-1.0, 1.0, (n, 4, 3))
    cx = (c + 0.5 + (r % 2) * rng.uniform(0.3, 0.7, (n, 1, 1))) * LOGICAL / gx
    cx = cx + rng.uniform(-1.0, 1.0, (n, 4, 3))
    unused = ((r >= gy) | (c >= gx)).reshape(n, 12, 1, 1)
    cy, cx = cy.reshape(n, 12, 1, 1), cx.reshape(n, 12, 1, 1)
    # Wrapping the centres first keeps every distance below 16 without a per-pixel modulo.
    dy = np.abs(_Y.astype(np.float32) - (cy % LOGICAL).astype(np.float32))  # (n, 12, 16, 16)
    dx = np.abs(_X.astype(np.float32) - (cx % LOGICAL).astype(np.float32))
    dy = np.minimum(dy, LOGICAL - dy) * rng.uniform(1.0, 1.3, (n, 1, 1, 1)).astype(np.float32)
    dx = np.minimum(dx, LOGICAL - dx)
    wobble = rng.random((n, 12, LOGICAL, LOGICAL), dtype=np.float32) * 2  # ragged joints
    # A cubic norm gives squarish stones with rounded corners rather than Voronoi shards.
    dist = dy * dy * dy + dx * dx * dx + wobble
    dist[np.broadcast_to(unused, dist.shape)] = np.inf
    cell = dist.argmin(axis=1)  # (n, 16, 16)
    right = np.roll(cell, -1, axis=2)
    down = np.roll(cell, -1, axis=1)
    mortar = (cell != right) | (cell != down)
    lit = ~mortar & (np.roll(mortar, 1, axis=1) | np.roll(mortar, 1, axis=2))
    shadow = ~mortar & ~lit & (np.roll(mortar, -1, axis=1) | np.roll(mortar, -1, axis=2))
    shade = _gather(rng.choice([2, 2, 3, 1], (n, 12)), cell)
    specks = rng.random((n, LOGICAL, LOGICAL)) < 0.06
    idx = np.where(specks, shade - 1, shade)
    idx = np.where(lit, shade + 1, idx)
    idx = np.where(shadow, shade - 1, idx)
    idx = np.where(mortar, _OUT, idx)
    return idx, pal


# ----------------------------------------------------------------------- grass, water


def _grass(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    pal = _new_palette(n)
    pal[:, _A : _A + 5] = _ramp(rng, n, ["grass", "grass", "dark_grass", "dry_grass"])
    centre = _ramp(rng, n, ["yellow", "white", "orange"])[:, 3]
    petals = _ramp(rng, n, ["red", "white", "violet", "blue", "pink", "yellow"])
    pal[:, _C] = centre
    pal[:, _C + 1 : _C + 3] = petals[:, 2:4]
    noise = _value_noise(rng, n, cells=4)
    idx = np.where(noise > 0.66, 3, np.where(noise < 0.3, 1, 2))
    density = rng.uniform(0.02, 0.07, (n, 1, 1))
    tuft = rng.random((n, LOGICAL, LOGICAL)) < density
    idx = np.where(_stamp(tuft, [(0, -1), (0, 1), (-1, -1), (-1, 1)]), 1, idx)
    idx = np.where(_stamp(tuft, [(0, 0), (-1, 0)]), 4, idx)
    blade = rng.random((n, LOGICAL, LOGICAL)) < density * 0.8
    idx = np.where(_stamp(blade, [(0, 0), (1, 0)]), 0, idx)
    idx = np.where(_stamp(blade, [(-1, 0)]), 3, idx)
    flowers = (
        rng.random((n, LOGICAL, LOGICAL))
        < np.where(rng.random(n) < 0.45, 0.018, 0.0)[:, None, None]
    )
    idx = np.where(_stamp(flowers, [(-1, 0), (0, -1), (0, 1)]), _C + 2, idx)
    idx = np.where(_stamp(flowers, [(1, 0)]), _C + 1, idx)
    idx = np.where(flowers, _C, idx)
    return idx, pal


def _water(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    pal = _new_palette(n)
    lava = rng.random(n) < 0.2
    families = ["water", "water", "water", "deep_water", "teal", "swamp"]
    pal[:, _A : _A + 5] = _ramp(rng, n, families)
    pal[lava, _A : _A + 5] = _ramp(rng, int(lava.sum()), ["lava"])
    pal[:, _B : _B + 5] = _ramp(rng, n, ["sand", "sand", "dirt", "grass"])
    pal[lava, _B : _B + 5] = _ramp(rng, int(lava.sum()), ["dungeon", "grey"])
    pal[:, _OUT] = np.where(lava[:, None], pal[:, _A + 4], 235.0)  # foam, or glowing rim
    # Calm water: broad darker swells, sparse light ripples, a few sparkles.
    noise = _value_noise(rng, n, cells=int(rng.choice([2, 4])))
    idx = np.where(noise < 0.38, 1, 2)
    idx = np.where(noise > 0.75, 3, idx)
    waves = rng.random((n, LOGICAL, LOGICAL)) < rng.uniform(0.008, 0.025, (n, 1, 1))
    idx = np.where(_stamp(waves, [(0, -1), (0, 0), (0, 1), (-1, -2), (-1, 2)]), 3, idx)
    idx = np.where(_stamp(waves, [(0, 0)]) & (rng.random((n, 1, 1)) < 0.5), 4, idx)
    idx = np.where(rng.random((n, LOGICAL, LOGICAL)) < 0.006, 4, idx)
    # A shoreline along one side for some tiles: ground, a foam line, then water.
    side = rng.integers(0, 4, (n, 1, 1))
    depth = np.where(side % 2 == 0, _Y, _X)
    depth = np.where(side >= 2, LOGICAL - 1 - depth, depth)
    along = np.where(side % 2 == 0, _X, _Y)
    edge = rng.uniform(2.5, 6.0, (n, 1, 1)) + 1.3 * np.sin(
        along * rng.uniform(0.3, 0.8, (n, 1, 1)) + rng.uniform(0, 6.3, (n, 1, 1))
    )
    edge = np.round(np.where(rng.random((n, 1, 1)) < 0.3, edge, -9.0))
    ground = np.where(rng.random((n, LOGICAL, LOGICAL)) < 0.1, _B + 1, _B + 3)
    ground = np.where(depth == edge - 1, _B + 2, ground)
    idx = np.where(depth == edge, _OUT, idx)
    idx = np.where(depth == edge + 1, np.maximum(idx, 3), idx)
    idx = np.where(depth < edge, ground, idx)
    return idx, pal


# ---------------------------------------------------------------------------- sprites


def _smooth(mask: np.ndarray, steps: int) -> np.ndarray:
    """Cave-style cellular automaton on (n, H, W) bool: rounds blobs, drops lone pixels."""
    h, w = mask.shape[1:]
    for _ in range(steps):
        padded = np.pad(mask, ((0, 0), (1, 1), (1, 1))).astype(np.int8)
        count = sum(
            padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
        )
        mask = (count >= 5) | (mask & (count >= 4))
    return mask


def _blob_masks(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Items and slimes: smoothed random half-masks around a core, as (n, 16, 8) half masks.

    Returns:
        half masks (n, 16, 8) bool, column 0 on the mirror axis; eye rows (n,) int.
    """
    y = np.arange(LOGICAL)[:, None]
    x = np.arange(LOGICAL // 2)[None, :] + 0.5  # distance from the mirror axis, (1, 8)
    cy = rng.uniform(7.0, 9.0, (n, 1, 1))
    ry = rng.uniform(3.0, 5.5, (n, 1, 1))
    rx = rng.uniform(2.5, 5.5, (n, 1, 1))
    falloff = ((y - cy) / ry) ** 2 + (x / rx) ** 2  # (n, 16, 8)
    p = np.clip(1.25 - falloff, 0.0, 1.0) * rng.uniform(0.75, 1.0, (n, 1, 1))
    half = (rng.random((n, LOGICAL, LOGICAL // 2)) < p) | (falloff < 0.35)
    full = _smooth(np.concatenate([half[:, :, ::-1], half], axis=2), 2)
    eye_row = np.round(cy[:, 0, 0] - ry[:, 0, 0] * 0.3).astype(int)
    return full[:, :, LOGICAL // 2 :], eye_row


def _creature_masks(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Creatures: body, head, legs, arms, horns and ragged fur, as (n, 16, 8) half masks.

    Returns:
        half masks (n, 16, 8) bool, column 0 on the mirror axis; eye rows (n,) int.
    """
    y = np.arange(LOGICAL)[None, :, None]  # (1, 16, 1)
    col = np.arange(LOGICAL // 2)[None, None, :]  # pixel columns from the axis, (1, 1, 8)
    x = col + 0.5

    def param(lo: float, hi: float) -> np.ndarray:
        return rng.uniform(lo, hi, (n, 1, 1))

    def chance(p: float) -> np.ndarray:
        return rng.random((n, 1, 1)) < p

    by, bry, brx = param(7.5, 9.5), param(1.8, 3.4), param(1.6, 4.2)
    body = ((y - by) / bry) ** 2 + (x / brx) ** 2 < 1
    hry, hrx = param(1.4, 2.6), param(1.3, 3.2)
    hy = by - bry - hry + param(0.4, 1.4)
    head = chance(0.85) & (((y - hy) / hry) ** 2 + (x / hrx) ** 2 < 1)
    mask = body | head
    # Legs: a mirrored pair (or a single middle one) down from the belly, feet turned out.
    leg_x = rng.integers(0, 4, (n, 1, 1)).clip(0, np.floor(brx).astype(int))
    leg_end = np.minimum(by + bry + rng.integers(1, 4, (n, 1, 1)), 13)
    legs = chance(0.8) & (y > by) & (y <= leg_end)
    mask |= legs & (col == leg_x)
    mask |= legs & (y == leg_end) & (col == leg_x + 1) & chance(0.6)
    # Arms: straight out from the body, the hands raised or lowered.
    arm_y = np.round(by - bry * param(0.0, 0.6))
    arm_end = np.minimum(np.round(brx + param(1.0, 3.0)), 6)
    arms = chance(0.65)
    mask |= arms & (y == arm_y) & (col <= arm_end)
    hand_dir = np.where(chance(0.5), -1, 1)
    hand_len = rng.integers(1, 3, (n, 1, 1))
    hand = (y - arm_y) * hand_dir
    mask |= arms & (col == arm_end) & (hand > 0) & (hand <= hand_len)
    # Horns or ears on top of the head.
    horn_x = np.round(hrx * param(0.4, 0.9))
    head_top = np.round(hy - hry)
    mask |= (
        head.any(axis=(1, 2), keepdims=True)
        & chance(0.45)
        & (col == horn_x)
        & ((y == head_top) | (y == head_top - 1))
    )
    # Ragged fur: random pixels that touch the silhouette.
    touching = mask | np.roll(mask, 1, axis=1) | np.roll(mask, -1, axis=1)
    touching |= np.roll(mask, 1, axis=2)
    mask |= touching & (rng.random(mask.shape) < param(0.0, 0.25))
    eye_row = np.where(
        head.any(axis=(1, 2)), np.round(hy[:, 0, 0]), np.round(by - bry * 0.4)[:, 0, 0]
    )
    return mask, eye_row.astype(int)


def _sprite(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    idx, pal = _floor(rng, n)
    families = ["red", "orange", "yellow", "green", "blue", "violet", "pink", "white", "grey"]
    body = _ramp(rng, n, families)
    pal[:, _C : _C + 4] = body[:, 1:]
    pal[:, _OUT] = _dark(body[:, 0], 0.3)
    eyes = _ramp(rng, n, ["white", "yellow", "red"])[:, 4]
    pale = body[:, 2] @ np.array([0.3, 0.59, 0.11]) > 150
    pal[:, _C + 4] = np.where(pale[:, None], pal[:, _OUT], eyes)  # eyes that stand out

    half = np.zeros((n, LOGICAL, LOGICAL // 2), dtype=bool)
    eye_row = np.zeros(n, dtype=int)
    blob = rng.random(n) < 0.3
    half[blob], eye_row[blob] = _blob_masks(rng, int(blob.sum()))
    half[~blob], eye_row[~blob] = _creature_masks(rng, int((~blob).sum()))
    half[:, :, 6:] = False  # leave room for the outline and a 1-pixel nudge
    half[:, :2] = half[:, -2:] = False
    mask = np.concatenate([half[:, :, ::-1], half], axis=2)  # mirror: left = right

    shift = rng.integers(-1, 2, (n, 2))
    for i, (dy, dx) in enumerate(shift):
        mask[i] = np.roll(mask[i], (dy, dx), axis=(0, 1))
    eye_row += shift[:, 0]
    near = _neighbour(mask, -1, 0) | _neighbour(mask, 1, 0)
    outline = ~mask & (near | _neighbour(mask, 0, -1) | _neighbour(mask, 0, 1))

    # A drop shadow on the floor: one shade darker within the floor's own ramp.
    rows = np.arange(LOGICAL)
    bottom = np.where(mask.any(axis=2), rows, -1).max(axis=1)[:, None, None]
    centre = 7.5 + shift[:, 1, None, None]
    shadow = ((_Y - bottom) / 1.6) ** 2 + ((_X - centre) / 5.5) ** 2 < 1
    idx = np.where(shadow & (idx % 5 > 0) & (idx < _C), idx - 1, idx)

    # Light from above: top edges bright, bottom edges dark; symmetric so the mirror holds.
    pattern = _value_noise(rng, n, cells=4)
    pattern = (pattern + pattern[:, :, ::-1]) / 2
    body_idx = np.where(pattern > 0.62, _C + 2, _C + 1)
    body_idx = np.where(~_neighbour(mask, -1, 0), _C + 3, body_idx)
    body_idx = np.where(~_neighbour(mask, 1, 0), _C, body_idx)
    idx = np.where(mask, body_idx, idx)
    idx = np.where(outline, _OUT, idx)

    # Eyes on most sprites: a mirrored pair, only where they sit inside the silhouette.
    gap = rng.choice([0, 1, 1, 2], n)
    has_eyes = rng.random(n) < 0.8
    tiles = np.arange(n)
    ey = np.clip(eye_row, 0, LOGICAL - 1)
    for eye_x in (7 + shift[:, 1] - gap, 8 + shift[:, 1] + gap):
        ex = np.clip(eye_x, 0, LOGICAL - 1)
        ok = has_eyes & mask[tiles, ey, ex]
        idx[tiles[ok], ey[ok], ex[ok]] = _C + 4
    return idx, pal


_DRAW: tuple[Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]], ...] = (
    _floor,
    _brick,
    _stone,
    _grass,
    _water,
    _sprite,
)


# ------------------------------------------------------------------------------ public


def _check_shape(shape: Sequence[int]) -> int:
    """Validate a (3, S, S) tile shape and return S."""
    dims = check_shape(list(shape))
    size = dims[1]
    if dims[2] != size or size < LOGICAL or size % LOGICAL:
        raise ValueError(
            f"data.shape (from model.shape) must be square with a side that is a multiple of "
            f"{LOGICAL} (16, 32, 48, 64, ...), got {list(dims)}"
        )
    return size


def generate_tiles(
    count: int = 6000, seed: int = 0, shape: Sequence[int] = (3, 32, 32)
) -> tuple[np.ndarray, np.ndarray]:
    """Make ``count`` distinct procedural tiles and say which kind each one is.

    Kinds are drawn in equal shares and shuffled, so any prefix is balanced; duplicates are
    dropped and more tiles drawn until exactly ``count`` distinct ones exist.

    Args:
        count: number of distinct tiles, >= 1.
        seed: the same seed gives identical arrays.
        shape: (3, S, S) with S a multiple of 16.

    Returns:
        tiles: (count, 3, S, S) uint8 in [0, 255].
        kinds: (count,) int64 index into :data:`KINDS`.
    """
    if count < 1:
        raise ValueError(f"data.count must be >= 1, got {count}")
    size = _check_shape(shape)
    rng = np.random.default_rng(seed)
    keys: set[bytes] = set()
    chunks: list[np.ndarray] = []
    kind_chunks: list[np.ndarray] = []
    have = 0
    for _ in range(100):
        want = count - have
        m = want + want // 20 + len(KINDS)  # a little extra covers the rare duplicates
        kinds = rng.permutation(np.arange(m) % len(KINDS))
        rgb = np.zeros((m, LOGICAL, LOGICAL, 3), dtype=np.uint8)
        for k, draw in enumerate(_DRAW):
            sel = kinds == k
            idx, pal = draw(rng, int(sel.sum()))
            pal = np.clip(np.round(pal), 0, 255).astype(np.uint8)
            rgb[sel] = np.take_along_axis(pal[:, None], idx[..., None], axis=2)
        keep = np.zeros(m, dtype=bool)
        for i, tile in enumerate(rgb):
            key = tile.tobytes()
            if key not in keys and have < count:
                keys.add(key)
                keep[i] = True
                have += 1
        chunks.append(rgb[keep])
        kind_chunks.append(kinds[keep])
        if have == count:
            break
    else:  # the generators have far more variety than this; a bug would end up here
        raise RuntimeError(f"could not make {count} distinct tiles in 100 rounds")
    logical = np.concatenate(chunks).transpose(0, 3, 1, 2)  # (N, 3, 16, 16)
    scale = size // LOGICAL
    tiles = logical.repeat(scale, axis=2).repeat(scale, axis=3)
    return np.ascontiguousarray(tiles), np.concatenate(kind_chunks)


def procedural_tiles(
    count: int = 6000, seed: int = 0, val_every: int = 20, shape: Sequence[int] = (3, 32, 32)
) -> TileSet:
    """The embedded default data: ``count`` distinct pixel-art RPG tiles, split by hash.

    Args:
        count: distinct tiles across train and validation together.
        seed: the same seed gives identical arrays, another seed other tiles.
        val_every: about 1 in ``val_every`` tiles goes to validation.
        shape: (3, S, S), S a multiple of 16; drawn on a 16x16 logical grid scaled by S/16.

    Returns:
        TileSet of (N, 3, S, S) and (M, 3, S, S) uint8 with N + M == count. A small count
        can leave validation empty (about 0.95**count at val_every=20); the trainer says so.
    """
    check_val_every(val_every)
    tiles, _ = generate_tiles(count, seed, shape)
    return split_by_hash(tiles, val_every)
