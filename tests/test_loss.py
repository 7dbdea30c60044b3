"""HistogramLoss: the reference's semantics, the new distances, gradients and errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from histae.histogram import soft_histogram_reference
from histae.loss import LOSS_NAMES, HistogramLoss, histogram_distance, histogram_loss, sorted_w1


def images(seed: int, b: int = 3, c: int = 3, s: int = 8, dtype=torch.float64) -> torch.Tensor:
    return torch.rand(b, c, s, s, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def dense(x: torch.Tensor, bins: int, sigma: float, per_channel: bool = False) -> torch.Tensor:
    flat = x.flatten(2 if per_channel else 1)
    return soft_histogram_reference(flat, bins, 0.0, 1.0, sigma)


@pytest.mark.parametrize("per_channel", [False, True])
def test_l1_on_raw_counts_is_the_reference(per_channel: bool) -> None:
    out, tgt = images(0), images(1)
    expected = F.l1_loss(dense(out, 20, 50.0, per_channel), dense(tgt, 20, 50.0, per_channel))
    got = HistogramLoss(20, 0.0, 1.0, sigma=50.0, per_channel=per_channel)(out, tgt)
    assert got.item() == pytest.approx(expected.item(), rel=1e-9)


def test_one_histogram_per_image_pools_the_channels() -> None:
    # Swapping channels within an image keeps the pooled histogram, not the per-channel ones.
    out = images(0)
    swapped = out[:, [2, 0, 1]]
    assert HistogramLoss(16)(swapped, out).item() == pytest.approx(0.0, abs=1e-9)
    assert HistogramLoss(16, per_channel=True)(swapped, out).item() > 1e-3


@pytest.mark.parametrize(("normalize", "scale"), [(True, "count"), (1, "p1"), (2, "p2")])
def test_normalize_semantics(normalize, scale: str) -> None:
    out, tgt = images(2), images(3)
    h_out, h_tgt = dense(out, 10, 100.0), dense(tgt, 10, 100.0)
    if scale == "count":
        div = 3 * 8 * 8
    else:
        div = torch.linalg.vector_norm(h_out, ord=int(scale[1]), dim=-1, keepdim=True) + 1e-7
    expected = F.l1_loss(h_out / div, h_tgt / div)
    got = histogram_loss(out, tgt, 10, sigma=100.0, normalize=normalize)
    assert got.item() == pytest.approx(expected.item(), rel=1e-9)


def test_mse_and_aliases() -> None:
    out, tgt = images(4), images(5)
    h_out, h_tgt = dense(out, 12, 80.0), dense(tgt, 12, 80.0)
    for name in ("l2", "mse"):
        assert histogram_loss(out, tgt, 12, sigma=80.0, loss=name).item() == pytest.approx(
            F.mse_loss(h_out, h_tgt).item(), rel=1e-9
        )
    assert histogram_loss(out, tgt, 12, sigma=80.0, loss="mae").item() == pytest.approx(
        histogram_loss(out, tgt, 12, sigma=80.0, loss="l1").item()
    )


def test_distribution_distances_known_values() -> None:
    p = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    q = torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    # All mass moves 3 bins of width 0.25.
    assert histogram_distance(p, q, "emd", 0.25).item() == pytest.approx(0.75, abs=1e-6)
    assert histogram_distance(p, q, "hellinger").item() == pytest.approx(1.0, abs=1e-3)
    assert histogram_distance(p, q, "chi2").item() == pytest.approx(1.0, abs=1e-6)
    same = torch.tensor([[0.25, 0.25, 0.5, 0.0]], dtype=torch.float64)
    for name in ("emd", "chi2", "kl_div"):
        assert histogram_distance(same, same * 7, name).item() == pytest.approx(0.0, abs=1e-6)
    assert histogram_distance(same, same, "hellinger").item() == pytest.approx(0.0, abs=1e-3)
    # KL(q || p) and cross entropy on a worked example.
    a = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    b = torch.tensor([[0.25, 0.75]], dtype=torch.float64)
    kl = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert histogram_distance(a, b, "kl_div").item() == pytest.approx(kl, abs=1e-5)
    assert histogram_distance(a, b, "ce").item() == pytest.approx(-math.log(0.5), abs=1e-5)


def test_sorted_w1_is_the_exact_1d_wasserstein() -> None:
    tgt = torch.tensor([0.0, 0.5, 1.0]).reshape(1, 1, 1, 3)
    out = torch.tensor([1.0, 0.0, 0.75]).reshape(1, 1, 1, 3)  # sorted: 0, 0.75, 1
    assert sorted_w1(out, tgt).item() == pytest.approx(0.25 / 3)
    # Positions do not matter, only the values.
    x = images(6)
    shuffled = x.flatten(1)[:, torch.randperm(3 * 64)].reshape(x.shape)
    assert histogram_loss(shuffled, x, 10, loss="sorted_w1").item() == pytest.approx(0.0)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_every_distance_has_finite_gradients_that_reach_the_input(name: str) -> None:
    out = images(7, b=2, s=6).requires_grad_(True)
    tgt = images(8, b=2, s=6)
    value = histogram_loss(out, tgt, 16, sigma=60.0, loss=name, normalize=name == "bce")
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(out.grad).all() and out.grad.abs().sum() > 0


def test_gradcheck_through_the_loss() -> None:
    out = images(9, b=2, c=1, s=3).requires_grad_(True)
    tgt = images(10, b=2, c=1, s=3)
    for name in ("l1", "emd", "hellinger"):
        assert torch.autograd.gradcheck(
            lambda o, n=name: histogram_loss(o, tgt, 7, sigma=20.0, loss=n), (out,)
        )


def test_gradient_descent_on_emd_moves_the_histogram() -> None:
    # The toy problem REFERENCE.md describes: distributions that start apart. EMD gets there.
    tgt = torch.full((1, 1, 8, 8), 0.8)
    out = torch.full((1, 1, 8, 8), 0.2, requires_grad=True)
    optimizer = torch.optim.SGD([out], lr=0.5)
    for _ in range(200):
        optimizer.zero_grad()
        histogram_loss(out, tgt, 20, sigma=100.0, loss="emd").backward()
        optimizer.step()
    assert abs(out.mean().item() - 0.8) < 0.05


def test_callable_loss() -> None:
    out, tgt = images(11), images(12)
    got = histogram_loss(out, tgt, 8, loss=lambda a, b: (a - b).abs().max())
    assert got.item() == pytest.approx(
        (dense(out, 8, 100.0) - dense(tgt, 8, 100.0)).abs().max().item()
    )


def test_module_equals_function() -> None:
    out, tgt = images(13), images(14)
    module = HistogramLoss(30, 0.0, 1.0, sigma=70.0, loss="chi2", per_channel=True)
    assert (
        module(out, tgt).item()
        == histogram_loss(out, tgt, 30, 0.0, 1.0, 70.0, "chi2", per_channel=True).item()
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bins": 0}, "loss.bins must be .*>= 1, got 0"),
        ({"sigma": 0.0}, "loss.sigma must be > 0"),
        ({"min": 1.0, "max": 0.0}, "loss.min must be < loss.max"),
        ({"loss": "wasserstein"}, "loss.loss must be one of .*emd"),
        ({"normalize": "yes"}, "loss.normalize must be false, true or a p-norm order > 0"),
        ({"normalize": -1}, "loss.normalize must be"),
        ({"kernel": "gauss"}, "loss.kernel must be one of"),
    ],
)
def test_bad_arguments_name_the_key(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        HistogramLoss(**kwargs)
