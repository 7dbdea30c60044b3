"""histae.metrics on cases with known answers: image metrics, colour retrieval, spread ratio."""

from __future__ import annotations

import math

import pytest
import torch

from histae.metrics import (
    INPUT_DEPENDENCE_KEYS,
    TIE_TOLERANCE,
    histogram_w1,
    image_metrics,
    input_dependence,
    profile_distances,
    psnr,
    retrieval_ranks,
    sorted_colour_profiles,
    spread_ratio,
)


def tiles(m: int, seed: int = 0, size: int = 4) -> torch.Tensor:
    """(m, 3, size, size) images on the uint8 grid, as validation tiles are."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (m, 3, size, size), generator=g).float() / 255.0


def test_identity_scores_perfectly() -> None:
    x = tiles(12)
    result = input_dependence(x, x)
    assert list(result) == list(INPUT_DEPENDENCE_KEYS)
    assert result == {
        "retrieval_top1_channel": 1.0,
        "retrieval_rank_channel": 1.0,
        "retrieval_top1_joint": 1.0,
        "retrieval_rank_joint": 1.0,
        "spread_ratio": 1.0,
    }


def test_one_output_for_every_input_scores_chance() -> None:
    m = 10
    x = tiles(m, seed=1)
    constant = tiles(1, seed=2).expand(m, -1, -1, -1)
    result = input_dependence(x, constant)
    for kind in ("channel", "joint"):
        assert result[f"retrieval_top1_{kind}"] == pytest.approx(1 / m)
        assert result[f"retrieval_rank_{kind}"] == pytest.approx((m + 1) / 2)
    assert result["spread_ratio"] == 0.0


def test_a_permutation_misses_exactly_the_moved_images() -> None:
    x = tiles(8, seed=3)
    perm = torch.tensor([1, 0, 2, 3, 5, 6, 4, 7])  # 2, 3 and 7 stay in place
    ranks, top1 = retrieval_ranks(
        profile_distances(sorted_colour_profiles(x[perm], True), sorted_colour_profiles(x, True)),
        TIE_TOLERANCE,
    )
    assert top1.tolist() == [0, 0, 1, 1, 0, 0, 0, 1]
    moved = [i for i, p in enumerate(perm.tolist()) if p != i]
    assert all(ranks[i] >= 2 for i in moved)  # the original it was moved to is closer
    result = input_dependence(x, x[perm])
    assert result["retrieval_top1_joint"] == pytest.approx(3 / 8)
    assert result["spread_ratio"] == pytest.approx(1.0)


def test_ties_share_the_places() -> None:
    x = tiles(5, seed=4)
    x[1] = x[0].flatten(1)[:, torch.randperm(16)].view(3, 4, 4)  # same colours, other places
    ranks, top1 = retrieval_ranks(
        profile_distances(sorted_colour_profiles(x, False), sorted_colour_profiles(x, False)),
        TIE_TOLERANCE,
    )
    assert top1.tolist() == [0.5, 0.5, 1, 1, 1]
    assert ranks.tolist() == [1.5, 1.5, 1, 1, 1]


def test_joint_sees_what_per_channel_cannot() -> None:
    # a: yellow and black; b: red and green. Each channel's values are the same in both.
    a = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 2)
    b = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).T.reshape(1, 3, 1, 2)
    x = torch.cat([a, b])
    result = input_dependence(x, x)
    assert result["retrieval_top1_channel"] == 0.5  # a tie: per channel they are one image
    assert result["retrieval_top1_joint"] == 1.0


def test_profile_distances_are_the_mean_squared_sorted_differences() -> None:
    x, y = tiles(4, seed=5), tiles(3, seed=6)
    a, b = sorted_colour_profiles(x, True), sorted_colour_profiles(y, True)
    assert a.shape == (4, 13 * 16) and a.dtype == torch.float64
    brute = ((a[:, None] - b[None]) ** 2).mean(-1)
    torch.testing.assert_close(profile_distances(a, b), brute, rtol=1e-10, atol=1e-14)
    # Per channel, one image against itself with shuffled pixels: distance 0.
    shuffled = x[:1].flatten(2)[..., torch.randperm(16)].view(1, 3, 4, 4)
    p = sorted_colour_profiles(shuffled, False)
    assert profile_distances(p, sorted_colour_profiles(x[:1], False)).item() == 0.0


def test_spread_ratio_known_values_and_clamping() -> None:
    x = tiles(6, seed=7)
    mean = x.mean(0, keepdim=True)
    assert spread_ratio(x, mean + 0.5 * (x - mean)) == pytest.approx(0.5)
    assert spread_ratio(x, x + 5.0) == 0.0  # clamped to all-white: one output for all
    # Originals that are all one image have no spread to compare against.
    assert math.isnan(spread_ratio(x[:1].expand(3, -1, -1, -1), x[:3]))


def test_bad_shapes_are_refused() -> None:
    x = tiles(4)
    with pytest.raises(ValueError, match=r"shapes differ"):
        input_dependence(x, x[:3])
    with pytest.raises(ValueError, match=r"M >= 2"):
        input_dependence(x[:1], x[:1])
    with pytest.raises(ValueError, match=r"\(M, 3, H, W\)"):
        input_dependence(x[:, :2], x[:, :2])


# ----------------------------------------------------------------------------------------------
# image_metrics, psnr, histogram_w1: the per-image numbers in metrics.csv


def test_psnr_known_values() -> None:
    torch.testing.assert_close(
        psnr(torch.tensor([0.01, 0.1, 1.0])), torch.tensor([20.0, 10.0, 0.0])
    )
    assert psnr(torch.tensor(255.0**2 / 100), peak=255.0).item() == pytest.approx(20.0)
    assert psnr(torch.tensor(0.0)).item() == pytest.approx(120.0)  # a perfect copy stays finite


def test_histogram_w1_sees_colours_not_places() -> None:
    x = tiles(3, seed=8)
    shuffled = x.flatten(2)[..., torch.randperm(16)].view_as(x)
    assert histogram_w1(shuffled, x).tolist() == [0.0, 0.0, 0.0]
    grey = torch.full((2, 3, 4, 4), 0.25)
    assert histogram_w1(grey + 0.5, grey).tolist() == pytest.approx([0.5, 0.5])
    # Half the pixels moved by 0.4 in one channel of three: 0.4 * 1/2 * 1/3.
    moved = grey.clone()
    moved[1, 0, :2] += 0.4
    assert histogram_w1(moved, grey).tolist() == pytest.approx([0.0, 0.4 / 6])
    # The output is clamped to [0, 1] first, as shown.
    assert histogram_w1(torch.full((1, 3, 2, 2), 5.0), torch.ones(1, 3, 2, 2)).item() == 0.0


def test_image_metrics_known_values_per_image() -> None:
    target = torch.zeros(2, 3, 4, 4)
    output = torch.stack([torch.full((3, 4, 4), 0.5), torch.full((3, 4, 4), -1.0)])
    metrics = image_metrics(output, target)
    assert list(metrics) == ["pixel_l1", "pixel_mse", "psnr", "hist_w1"]
    assert metrics["pixel_l1"].tolist() == [0.5, 0.0]  # -1 is clamped to 0: the target itself
    assert metrics["pixel_mse"].tolist() == [0.25, 0.0]
    assert metrics["psnr"].tolist() == pytest.approx([10 * math.log10(4), 120.0])
    assert metrics["hist_w1"].tolist() == [0.5, 0.0]
    assert "hist_w1" not in image_metrics(output, target, histogram=False)
