"""reconstructions.png: every setting's last reconstruction grid in one picture.

Over two keys the grids sit on the heatmaps' grid (rows one key's values, columns the other's);
otherwise in rows of up to four. With seeds, a setting shows its first seed's grid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from histae.jobdir import SAMPLES, Unreadable, read_samples
from histae.plots import reconstruction_grid
from histae.report.comparisons import values_of
from histae.report.reading import Job
from histae.report.settings import Setting

Cell = tuple[str, np.ndarray | None]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or without FreeType: the small bitmap font
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    """``text`` shortened with an ellipsis until it is at most ``width`` pixels wide."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def job_grid(job: Job, scale: int = 2) -> np.ndarray | None:
    """The job's last reconstruction grid (labelled rows) at ``scale`` x, from samples.npz."""
    try:
        samples = read_samples(job.path / SAMPLES)
    except (Unreadable, FileNotFoundError):  # a failed or unstarted job has none
        return None
    if not len(samples["originals"]) or samples["originals"].ndim != 4:
        return None
    try:
        return reconstruction_grid(
            samples["originals"], samples["reconstructions"], scale=scale, labelled=True
        )
    except ValueError:
        return None


def compose_cells(
    cells: Sequence[Cell],
    cols: int,
    gap: int = 16,
    label_height: int = 26,
    empty_size: tuple[int, int] = (256, 256),
) -> np.ndarray:
    """Lay labelled (H, W, 3) uint8 images out in rows of ``cols`` on white, label above each.

    A cell whose image is None shows a grey box saying so; cells are as large as the largest
    image (``empty_size`` (H, W) if there is none).

    Returns:
        (rows * (label_height + H + gap) - gap, cols * (W + gap) - gap, 3) uint8.
    """
    images = [img for _, img in cells if img is not None]
    cell_h = max((img.shape[0] for img in images), default=empty_size[0])
    cell_w = max((img.shape[1] for img in images), default=empty_size[1])
    cols = max(1, min(cols, len(cells)))
    rows = max(1, -(-len(cells) // cols))
    step_y, step_x = label_height + cell_h + gap, cell_w + gap
    canvas = Image.new("RGB", (cols * step_x - gap, rows * step_y - gap), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font(max(10, label_height - 10))
    for i, (text, img) in enumerate(cells):
        r, c = divmod(i, cols)
        x, y = c * step_x, r * step_y
        draw.text((x + 2, y + 4), _fit(draw, text, font, cell_w - 4), fill="black", font=font)
        if img is None:
            box = [x, y + label_height, x + cell_w - 1, y + label_height + cell_h - 1]
            draw.rectangle(box, fill="#dddddd")
            draw.text((x + 12, y + label_height + 12), "no reconstructions", fill="#555", font=font)
        else:
            canvas.paste(Image.fromarray(img), (x, y + label_height))
    return np.asarray(canvas)


def mosaic_cells(
    settings: Sequence[Setting], keys: Sequence[str], short: Mapping[str, str]
) -> tuple[list[Cell], int]:
    """The mosaic's cells in reading order and its column count.

    Two keys: a full ``keys[0]`` x ``keys[1]`` grid (an empty cell where no setting is), else
    the settings in order, four per row.
    """
    grids = {s.label: job_grid(s.jobs[0]) for s in settings}

    def text(setting: Setting) -> str:
        seeds = (
            f" (seed {setting.jobs[0].seed} of {len(setting.jobs)})"
            if len(setting.jobs) > 1
            else ""
        )
        return f"{setting.label}{seeds}: {setting.jobs[0].state}"

    if len(keys) == 2:
        rows, cols = values_of(settings, keys[0]), values_of(settings, keys[1])
        at = {(s.values.get(keys[0], ""), s.values.get(keys[1], "")): s for s in settings}
        cells: list[Cell] = []
        for r in rows:
            for c in cols:
                setting = at.get((r, c))
                cells.append(
                    (text(setting), grids[setting.label]) if setting else ("(not run)", None)
                )
        return cells, len(cols)
    return [(text(s), grids[s.label]) for s in settings], min(4, len(settings)) or 1


def mosaic(
    settings: Sequence[Setting], keys: Sequence[str], short: Mapping[str, str]
) -> np.ndarray:
    """reconstructions.png's pixels (see :func:`mosaic_cells`)."""
    cells, cols = mosaic_cells(settings, keys, short)
    return compose_cells(cells, cols)
