"""Make the pictures in README and docs/, and record where each came from in docs/figures.json.

From the repository's root::

    python docs/make_figures.py tiles                        # procedural_tiles.png, rpg_tiles.png
    python docs/make_figures.py default-job <job folder>     # the README's hero pictures

``default-job`` takes a finished job of the default command (``python -m histae``, no overrides)
and copies its ``reconstructions.png``, ``loss.png`` and ``histograms.png`` into docs/. It
records the command, the commit, the date, the thread count, the final validation metrics and
the first train rows of ``metrics.csv`` in ``docs/figures.json``: ``python -m histae.docs``
writes README's caption from that record, and ``tests/test_docs.py`` (slow tier) reruns the
first rows of the default job and fails when the code no longer produces them, so the pictures
cannot silently go stale. Pictures copied by hand from a report (sweeps.md, experiment.md) have
their command, commit and date in the same file.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
FIGURES = DOCS / "figures.json"
DEFAULT_JOB = "default-job"
HERO_FILES = ("reconstructions.png", "loss.png", "histograms.png")
CHECKED_ROWS = 3  # train rows the provenance test reruns: ~3,000 images, a few seconds


def _commit() -> str:
    """HEAD, with ``-dirty`` when the code (histae/, conf/) has uncommitted changes."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "histae", "conf", "hydra_plugins"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return head + ("-dirty" if dirty else "")


def _today() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


def load() -> dict:
    """docs/figures.json: ``{"jobs": {name: record}, "pictures": {file: record}}``."""
    return json.loads(FIGURES.read_text())


def save(figures: dict) -> None:
    tmp = FIGURES.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    tmp.replace(FIGURES)


def tiles(figures: dict) -> None:
    """Contact sheets of the procedural tiles and of Debian's tile sheets."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from histae.build import build_option
    from histae.plots import save_png, tile_grid

    procedural = build_option("data/procedural", count=6000, seed=0)
    save_png(
        tile_grid(procedural.train[:256], cols=32, scale=2, gap=2), DOCS / "procedural_tiles.png"
    )
    cfg = OmegaConf.load(ROOT / "conf" / "data" / "rpg_tiles.yaml")
    cfg.shape = [3, 32, 32]
    real = instantiate(cfg)
    # Every 17th tile, for a view across all three sheets rather than the first rows of one.
    save_png(tile_grid(real.train[::17][:256], cols=32, scale=2, gap=2), DOCS / "rpg_tiles.png")
    for name in ("procedural_tiles.png", "rpg_tiles.png"):
        figures["pictures"][name] = {
            "command": "python docs/make_figures.py tiles",
            "commit": _commit(),
            "date": _today(),
        }


def default_job(figures: dict, job: Path) -> None:
    """Copy a finished default job's pictures and record it (see the module docstring)."""
    summary = json.loads((job / "summary.json").read_text())
    overrides = (job / ".hydra" / "overrides.yaml").read_text().strip()
    if overrides not in ("[]", ""):
        sys.exit(f"make_figures: {job} was run with overrides {overrides}; run `python -m histae`")
    with open(job / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train"][:CHECKED_ROWS]
    final = summary["final"]["val"]
    figures["jobs"][DEFAULT_JOB] = {
        "command": "python -m histae",
        "commit": _commit(),
        "date": _today(),
        "threads": _threads(job),
        "final_val": {k: float(final[k]) for k in ("loss", "psnr", "hist_w1")},
        "train_rows": [{"inputs": int(r["inputs"]), "loss": float(r["loss"])} for r in rows],
    }
    for name in HERO_FILES:
        shutil.copyfile(job / name, DOCS / name)
        figures["pictures"][name] = {"job": DEFAULT_JOB, "file": name}


def _threads(job: Path) -> int:
    """The torch thread count the job logged (``..., N threads``) in its log's first line."""
    for line in (job / "histae.log").read_text().splitlines():
        if line.endswith(" threads"):
            return int(line.rsplit(" ", 2)[-2])
    sys.exit(f"make_figures: {job / 'histae.log'} does not say how many threads the job used")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("tiles", help="the tile contact sheets")
    hero = sub.add_parser("default-job", help="README's pictures from a finished default job")
    hero.add_argument("job", type=Path, help="the job folder of `python -m histae`")
    args = parser.parse_args(argv)
    figures = load()
    if args.what == "tiles":
        tiles(figures)
    else:
        default_job(figures, args.job)
    save(figures)


if __name__ == "__main__":
    main()
