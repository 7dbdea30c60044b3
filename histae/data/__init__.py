"""Data sources: each returns a :class:`TileSet` of uint8 (N, 3, H, W) tiles."""

from histae.data.procedural import procedural_tiles
from histae.data.sheets import load_image_folder, load_tile_sheets
from histae.data.tileset import TileSet, is_validation, split_by_hash

__all__ = [
    "TileSet",
    "is_validation",
    "load_image_folder",
    "load_tile_sheets",
    "procedural_tiles",
    "split_by_hash",
]
