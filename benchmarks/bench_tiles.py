"""Tile cache: loading data=rpg_tiles from the .npz cache against cutting the sheets again.

The test suite checks that a warm load reads no sheet and gives the same tiles
(tests/test_sheets.py); how much time that saves is this script's figure, with the spread of
its timings and the machine's load. Needs Debian's angband-data and crawl-tiles-data.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _timing import LoadWatch, fmt_spread, timed
from hydra.utils import instantiate
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf" / "data" / "rpg_tiles.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed loads of each kind")
    args = parser.parse_args()
    watch = LoadWatch()
    with tempfile.TemporaryDirectory() as cache:
        cold_cfg = OmegaConf.load(CONF)
        cold_cfg.shape, cold_cfg.cache_dir = [3, 32, 32], None  # no cache: cut every time
        warm_cfg = cold_cfg.copy()
        warm_cfg.cache_dir = cache
        instantiate(warm_cfg)  # writes the cache
        cold, warm = [], []
        for _ in range(args.repeats):  # interleaved, so both share the machine's noise
            cold.append(timed(lambda: instantiate(cold_cfg)))
            warm.append(timed(lambda: instantiate(warm_cfg)))
    print("ms (min / median / max)")
    print(f"sheets {fmt_spread(cold)}")
    print(f"cache  {fmt_spread(warm)}")
    print(f"cache is {min(cold) / min(warm):.1f}x faster (by the minima)")
    print(watch.verdict())


if __name__ == "__main__":
    main()
