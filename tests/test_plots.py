"""A job's own pictures (histae.plots): the data each figure draws, and the grid's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from histae.plots import binned_w1, plot_histograms, plot_loss, reconstruction_grid


def shuffled_samples(n: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    """samples.npz arrays whose reconstructions are the originals' pixels shuffled within each
    image and channel: the same colour histograms, a different picture (the experiment's point)."""
    rng = np.random.default_rng(seed)
    originals = rng.integers(0, 256, (n, 3, 32, 32)).astype(np.float32) / 255
    flat = originals.reshape(n, 3, -1)
    order = rng.permuted(np.tile(np.arange(1024), (n, 3, 1)), axis=-1)
    reconstructions = np.take_along_axis(flat, order, -1).reshape(originals.shape)
    edges = np.linspace(0.0, 1.0, 257)

    def hist(images: np.ndarray) -> np.ndarray:
        return np.stack([np.histogram(images[:, c], bins=edges)[0] for c in range(3)])

    return {
        "inputs": np.array(256),
        "originals": originals,
        "reconstructions": reconstructions,
        "hist_edges": edges,
        "hist_originals": hist(originals),
        "hist_reconstructions": hist(reconstructions),
    }


def test_histogram_w1_known_answers() -> None:
    edges = np.linspace(0.0, 1.0, 257)
    first, last, second = np.zeros((1, 256)), np.zeros((1, 256)), np.zeros((1, 256))
    first[0, 0], last[0, -1], second[0, 1] = 5, 7, 1
    assert binned_w1(edges, first, first) == pytest.approx([0.0])
    assert binned_w1(edges, first, last) == pytest.approx([255 / 256])
    assert binned_w1(edges, first, second) == pytest.approx([1 / 256])
    half = first.copy()
    half[0, 128] = 5  # half the mass moved by 128 bins: half of 0.5
    assert binned_w1(edges, first, half) == pytest.approx([0.25])


def test_plot_histograms_draws_normalised_channels_of_equal_colours(tmp_path: Path) -> None:
    drawn = plot_histograms(shuffled_samples(), tmp_path / "h.png", title="t")
    assert drawn["originals"].shape == drawn["reconstructions"].shape == (3, 64)
    np.testing.assert_allclose(drawn["originals"].sum(axis=1), 1.0)
    np.testing.assert_allclose(drawn["w1"], 0.0, atol=1e-12)  # same colours, other places


def test_plot_histograms_names_mismatched_shapes(tmp_path: Path) -> None:
    samples = shuffled_samples() | {"hist_reconstructions": np.zeros((3, 100))}
    with pytest.raises(ValueError, match=r"histograms must be \(C, bins\)"):
        plot_histograms(samples, tmp_path / "h.png")


def test_labelled_grid_leaves_a_gap_between_pairs_and_names_the_rows() -> None:
    samples = shuffled_samples()
    plain = reconstruction_grid(samples["originals"], samples["reconstructions"], scale=2)
    assert plain.shape == (2 * 2 * 64, 8 * 64, 3)  # 2 pairs of rows of 8 tiles, 64 px each
    grid = reconstruction_grid(
        samples["originals"], samples["reconstructions"], scale=2, labelled=True
    )
    margin = grid.shape[1] - 8 * 64
    assert grid.shape[0] == 2 * 2 * 64 + 4 and margin > 40
    np.testing.assert_array_equal(grid[:128, margin:], plain[:128])  # the first pair
    np.testing.assert_array_equal(grid[132:, margin:], plain[128:])  # after a 4-px gap
    assert (grid[128:132, margin:] == 0x9E).all()
    assert grid[:128, :margin].min() < 100  # text on the label column


def test_plot_loss_puts_train_and_validation_on_one_axis(tmp_path: Path) -> None:
    rows = [{"inputs": i, "split": "train", "loss": 5.0 / i, "psnr": 8.0} for i in (1, 2, 3)]
    rows += [{"inputs": 3, "split": "val", "loss": 1.0, "psnr": 9.0}]
    plot_loss(rows, tmp_path / "loss.png", title="l1, bins 50", ylabel="histogram l1 loss")
    with Image.open(tmp_path / "loss.png") as image:
        assert image.size == (1100, 400)
