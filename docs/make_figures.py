"""Make the README's contact sheets of tiles: ``python docs/make_figures.py`` (from the repo root).

The loss plot and reconstruction grid in docs/ are copied from a real default job
(``python -m histae``): ``cp outputs/runs/<date>/{loss,reconstructions}.png docs/``.
"""

from __future__ import annotations

from pathlib import Path

from histae.build import build_option
from histae.plots import save_png, tile_grid

DOCS = Path(__file__).resolve().parent


def main() -> None:
    procedural = build_option("data/procedural", count=6000, seed=0)
    save_png(
        tile_grid(procedural.train[:256], cols=32, scale=2, gap=2), DOCS / "procedural_tiles.png"
    )
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(DOCS.parent / "conf" / "data" / "rpg_tiles.yaml")
    cfg.shape = [3, 32, 32]
    real = instantiate(cfg)
    # Every 17th tile, for a view across all three sheets rather than the first rows of one.
    save_png(tile_grid(real.train[::17][:256], cols=32, scale=2, gap=2), DOCS / "rpg_tiles.png")


if __name__ == "__main__":
    main()
