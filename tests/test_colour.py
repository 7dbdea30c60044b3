"""The colour losses (histae.colour) and the composite loss against independent dense references."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from histae import colour
from histae.build import build_option
from histae.colour import (
    SlicedWassersteinLoss,
    chunked_sum,
    joint_histogram_loss,
    random_directions,
    rgbuv_histogram,
    rgbuv_loss,
    sliced_wasserstein,
    soft_joint_histogram,
)
from histae.loss import CompositeLoss, composite_loss


def images(*shape: int, seed: int = 0, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=torch.float64)


# ------------------------------------------------------------------------ sliced Wasserstein


def sliced_dense64(x: torch.Tensor, y: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """One image and one direction at a time, in float64."""
    x, y, d = x.double().flatten(2), y.double().flatten(2), directions.double()
    total, count = 0.0, 0
    for b in range(len(x)):
        for k in range(len(d)):
            px = (d[k, 0] * x[b, 0] + d[k, 1] * x[b, 1] + d[k, 2] * x[b, 2]).sort().values
            py = (d[k, 0] * y[b, 0] + d[k, 1] * y[b, 1] + d[k, 2] * y[b, 2]).sort().values
            total += ((px - py) ** 2).sum()
            count += len(px)
    return total / count


def test_sliced_wasserstein_equals_the_dense_reference_and_its_chunks() -> None:
    x, y = images(3, 3, 5, 4, seed=1), images(3, 3, 5, 4, seed=2)
    d = random_directions(7, torch.Generator().manual_seed(0), torch.float64)
    expected = sliced_dense64(x, y, d)
    torch.testing.assert_close(sliced_wasserstein(x, y, d), expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(sliced_wasserstein(x, y, d, chunk=2), expected, rtol=1e-12, atol=0)


def test_sliced_wasserstein_shapes_and_known_answers() -> None:
    x, y = images(2, 4, 3, 6, 6, seed=1), images(2, 4, 3, 6, 6, seed=2)  # batched leading dims
    d = random_directions(5, torch.Generator().manual_seed(0), torch.float64)
    value = sliced_wasserstein(x, y, d)
    assert value.shape == ()
    torch.testing.assert_close(value, sliced_dense64(x.flatten(0, 1), y.flatten(0, 1), d))
    # The three axes: the mean per-channel squared 1-D W2.
    axes = torch.eye(3, dtype=torch.float64)
    per_channel = (x.flatten(3).sort(-1).values - y.flatten(3).sort(-1).values).pow(2).mean()
    torch.testing.assert_close(sliced_wasserstein(x, y, axes), per_channel)
    # Positions do not matter: shuffled pixels are the same colour distribution.
    shuffled = x.flatten(3)[..., torch.randperm(36)].unflatten(-1, (6, 6))
    assert sliced_wasserstein(shuffled, x, d).item() == pytest.approx(0.0, abs=1e-15)
    # A (B, 3, N) tensor of colours works too.
    colours = sliced_wasserstein(x[0].flatten(2), y[0].flatten(2), d)
    torch.testing.assert_close(colours, sliced_dense64(x[0], y[0], d))


def test_sliced_wasserstein_gradcheck() -> None:
    x = images(2, 3, 3, 3, seed=3).requires_grad_()
    y = images(2, 3, 3, 3, seed=4)
    d = random_directions(4, torch.Generator().manual_seed(1), torch.float64)
    assert torch.autograd.gradcheck(lambda a: sliced_wasserstein(a, y, d, chunk=3), (x,))


def test_sliced_wasserstein_refuses_bad_input() -> None:
    x = torch.rand(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"shapes differ"):
        sliced_wasserstein(x, x[:1], torch.eye(3))
    with pytest.raises(ValueError, match=r"must be \(\.\.\., 3, H, W\) RGB images"):
        sliced_wasserstein(x[:, :2], x[:, :2], torch.eye(3))
    with pytest.raises(ValueError, match=r"directions must be \(K, 3\)"):
        sliced_wasserstein(x, x, torch.ones(4, 2))
    with pytest.raises(ValueError, match=r"loss\.directions must be an integer >= 1, got 0"):
        build_option("loss/sliced_w", directions=0)
    with pytest.raises(ValueError, match=r"loss\.seed must be an integer in \[0, 2\*\*31\)"):
        build_option("loss/sliced_w", seed=-1)


def test_sliced_module_draws_new_directions_each_step_from_its_seed() -> None:
    x, y = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    a, b = SlicedWassersteinLoss(8, seed=3), SlicedWassersteinLoss(8, seed=3)
    first, second = a.draw(x.device, x.dtype), a.draw(x.device, x.dtype)
    assert not torch.equal(first, second)  # new directions every training step
    assert torch.equal(b.draw(x.device, x.dtype), first)  # same seed, same sequence
    assert not torch.equal(SlicedWassersteinLoss(8, seed=4).draw(x.device, x.dtype), first)
    # Module equals function with the directions of the step.
    b.draw(x.device, x.dtype)  # b now at a's step
    expected = sliced_wasserstein(x, y, b.draw(x.device, x.dtype))
    assert torch.equal(a(x, y), expected)
    # Without gradients (validation): fixed directions, the step does not move.
    with torch.no_grad():
        v1, v2 = a(x, y), a(x, y)
    assert torch.equal(v1, v2)
    # The generator is in state_dict: a restored module continues the same sequence.
    restored = SlicedWassersteinLoss(8, seed=3)
    restored.load_state_dict(a.state_dict())
    assert torch.equal(restored.draw(x.device, x.dtype), a.draw(x.device, x.dtype))


# ------------------------------------------------------------------------ joint histogram


def joint_dense64(x: torch.Tensor, bins: int, lo: float, hi: float, sigma: float) -> torch.Tensor:
    """The (N, bins**3) tensor of per-pixel cell weights, summed, in float64."""
    edges = lo + (hi - lo) / bins * torch.arange(bins + 1, dtype=torch.float64)
    v = x.double().flatten(-2)  # (B, 3, N)
    s = torch.sigmoid(sigma * (v.unsqueeze(-1) - edges))  # (B, 3, N, bins + 1)
    w = s[..., :-1] - s[..., 1:]
    r, g, b = w[:, 0], w[:, 1], w[:, 2]  # (B, N, bins)
    cells = r[..., :, None, None] * g[..., None, :, None] * b[..., None, None, :]
    return cells.sum(1)  # (B, bins, bins, bins)


@pytest.mark.parametrize(("bins", "sigma"), [(4, 20.0), (8, 100.0), (3, 1000.0)])
def test_joint_histogram_equals_the_dense_reference(bins: int, sigma: float) -> None:
    x = images(2, 3, 5, 5, seed=bins, lo=-0.2, hi=1.2)
    expected = joint_dense64(x, bins, 0.0, 1.0, sigma)
    got = soft_joint_histogram(x, bins, 0.0, 1.0, sigma)
    assert got.shape == (2, bins, bins, bins)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(soft_joint_histogram(x, bins, 0.0, 1.0, sigma, chunk=4), expected)


def test_joint_histogram_known_answer_batches_and_marginals() -> None:
    pixel = torch.tensor([[[0.25], [0.75], [0.25]]])  # one pixel (R, G, B) = (lo, hi, lo)
    h = soft_joint_histogram(pixel, 2, 0.0, 1.0, sigma=1e4)
    assert h[0, 0, 1, 0].item() == 1.0 and h.sum().item() == 1.0
    x = images(2, 3, 3, 4, 4, seed=5)
    batched = soft_joint_histogram(x, 4, 0.0, 1.0, 50.0)
    assert batched.shape == (2, 3, 4, 4, 4)
    torch.testing.assert_close(batched[1], soft_joint_histogram(x[1], 4, 0.0, 1.0, 50.0))
    # With a steep kernel and values inside the range, each marginal is a channel's histogram.
    from histae.histogram import soft_histogram_reference

    v = images(1, 3, 4, 4, seed=6, lo=0.05, hi=0.95)
    joint = soft_joint_histogram(v, 4, 0.0, 1.0, 1e4)[0]
    red = soft_histogram_reference(v[0, 0].flatten(), 4, 0.0, 1.0, 1e4)
    torch.testing.assert_close(joint.sum((1, 2)), red)


def test_joint_histogram_loss_cdf_known_answer_and_distances() -> None:
    black, white = torch.full((1, 3, 1, 1), 0.25), torch.full((1, 3, 1, 1), 0.75)
    # All mass in cell (0, 0, 0) against all in (1, 1, 1): the CDFs differ in 7 of 8 cells.
    value = joint_histogram_loss(black, white, 2, 0.0, 1.0, 1e4, loss="cdf")
    assert value.item() == pytest.approx(7 / 8)
    x, y = images(2, 3, 4, 4, seed=7), images(2, 3, 4, 4, seed=8)
    for name in colour.JOINT_DISTANCES:
        criterion = build_option("loss/joint_histogram", bins=4, loss=name, normalize=name == "bce")
        got = criterion(x, y)
        assert got.shape == () and torch.isfinite(got)
        if name not in ("kl_div", "ce", "bce"):  # the reference's formulas are not 0 at x = y
            assert criterion(x, x).item() == pytest.approx(0.0, abs=1e-6)
    h = joint_dense64(x, 4, 0.0, 1.0, 100.0).flatten(1)
    hy = joint_dense64(y, 4, 0.0, 1.0, 100.0).flatten(1)
    torch.testing.assert_close(
        build_option("loss/joint_histogram", bins=4)(x, y), (h - hy).abs().mean()
    )
    torch.testing.assert_close(
        build_option("loss/joint_histogram", bins=4, normalize=True)(x, y),
        (h - hy).abs().mean() / 16,
    )


def test_joint_histogram_gradcheck_through_chunks() -> None:
    x = images(1, 3, 3, 3, seed=9).requires_grad_()
    y = images(1, 3, 3, 3, seed=10)

    def f(a: torch.Tensor) -> torch.Tensor:
        return ((soft_joint_histogram(a, 3, 0.0, 1.0, 10.0, chunk=4) - 0.1) ** 2).sum()

    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradcheck(
        lambda a: joint_histogram_loss(a, y, 3, sigma=10.0, loss="cdf"), (x,)
    )


def test_joint_histogram_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"loss\.bins must be an integer >= 1, got 0"):
        build_option("loss/joint_histogram", bins=0)
    with pytest.raises(ValueError, match=r"loss\.loss must be one of l1, .*cdf; got 'emd'"):
        build_option("loss/joint_histogram", loss="emd")
    with pytest.raises(ValueError, match=r"loss\.normalize must be true, false or a p-norm order"):
        build_option("loss/joint_histogram", normalize=-1)
    with pytest.raises(ValueError, match=r"shapes differ"):
        joint_histogram_loss(torch.rand(2, 3, 2, 2), torch.rand(1, 3, 2, 2))


# ------------------------------------------------------------------------ RGB-uv histogram


def rgbuv_dense64(x: torch.Tensor, bins: int, lo: float, hi: float, tau: float) -> torch.Tensor:
    """HistoGAN's formulas written out channel by channel, with the (N, bins, bins) tensor."""
    eps = 1e-6
    v = x.double().clamp(0, 1).flatten(-2)  # (B, 3, N)
    r, g, b = v[:, 0], v[:, 1], v[:, 2]
    iy = torch.sqrt(r**2 + g**2 + b**2 + eps)
    lr, lg, lb = torch.log(r + eps), torch.log(g + eps), torch.log(b + eps)
    c = torch.linspace(lo, hi, bins, dtype=torch.float64)

    def k(d: torch.Tensor) -> torch.Tensor:
        return 1.0 / (1.0 + (d / tau) ** 2)

    hists = []
    for u, w in ((lr - lg, lr - lb), (lg - lr, lg - lb), (lb - lr, lb - lg)):
        cells = iy[..., None, None] * k(u[..., None, None] - c[:, None]) * k(w[..., None, None] - c)
        hists.append(cells.sum(1))  # (B, bins, bins)
    h = torch.stack(hists, 1)
    return h / (h.sum((1, 2, 3), keepdim=True) + eps)


def test_rgbuv_histogram_equals_the_dense_reference() -> None:
    x = images(2, 3, 4, 5, seed=11, lo=-0.1, hi=1.1)
    expected = rgbuv_dense64(x, 16, -3.0, 3.0, 0.02)
    got = rgbuv_histogram(x, 16)
    assert got.shape == (2, 3, 16, 16)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(rgbuv_histogram(x, 16, chunk=3), expected, rtol=1e-12, atol=1e-15)
    # Unit mass, up to HistoGAN's 1e-6 in the denominator.
    torch.testing.assert_close(
        got.sum((1, 2, 3)), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-5
    )


def test_rgbuv_known_answers_and_hellinger() -> None:
    grey = torch.full((1, 3, 2, 2), 0.5, dtype=torch.float64)  # u = v = 0 in every channel
    h = rgbuv_histogram(grey, bins=7)  # centres -3, -2, ..., 3: cell 3 is 0
    peak = h[0].flatten(1).argmax(1)
    assert peak.tolist() == [3 * 7 + 3] * 3
    x, y = images(2, 3, 4, 4, seed=12), images(2, 3, 4, 4, seed=13)
    hx, hy = rgbuv_dense64(x, 8, -3.0, 3.0, 0.02), rgbuv_dense64(y, 8, -3.0, 3.0, 0.02)
    hellinger = (hx.flatten(1).sqrt() - hy.flatten(1).sqrt()).norm(dim=1).mean() / 2**0.5
    torch.testing.assert_close(rgbuv_loss(x, y, bins=8), hellinger, rtol=1e-12, atol=0)
    assert 0.0 < rgbuv_loss(x, y, bins=8).item() <= 1.0
    assert rgbuv_loss(x, x, bins=8).item() == pytest.approx(0.0, abs=1e-6)
    module = build_option("loss/rgbuv", bins=8, tau=0.05, loss="l1")
    assert torch.equal(module(x, y), rgbuv_loss(x, y, 8, tau=0.05, loss="l1"))


def test_rgbuv_gradcheck() -> None:
    x = images(1, 3, 2, 2, seed=14, lo=0.1, hi=0.9).requires_grad_()
    y = images(1, 3, 2, 2, seed=15, lo=0.1, hi=0.9)
    # A wide kernel keeps the finite differences well conditioned.
    assert torch.autograd.gradcheck(lambda a: rgbuv_loss(a, y, bins=5, tau=0.5), (x,))
    assert torch.autograd.gradcheck(lambda a: rgbuv_histogram(a, 5, tau=0.5, chunk=3), (x,))


def test_rgbuv_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"loss\.bins must be an integer >= 2, got 1"):
        build_option("loss/rgbuv", bins=1)
    with pytest.raises(ValueError, match=r"loss\.tau must be > 0, got 0"):
        build_option("loss/rgbuv", tau=0)
    with pytest.raises(ValueError, match=r"loss\.min must be < loss\.max"):
        build_option("loss/rgbuv", min=3.0, max=-3.0)
    with pytest.raises(ValueError, match=r"loss\.loss must be one of hellinger, l1, l2, chi2"):
        build_option("loss/rgbuv", loss="emd")


# ------------------------------------------------------------------------ memory: the chunk path


def test_chunks_recompute_in_backward_instead_of_keeping_intermediates() -> None:
    calls = []

    def part(v: torch.Tensor) -> torch.Tensor:
        calls.append(v.shape[-1])
        return (v.exp() * 2).sum(-1)

    x = images(2, 10, seed=16).requires_grad_()
    total = chunked_sum(part, (x,), chunk=4)
    assert calls == [4, 4, 2]
    total.sum().backward()
    # Each chunk ran again in the backward pass: its intermediates were not kept alive.
    assert sorted(calls[3:]) == [2, 4, 4]
    torch.testing.assert_close(x.grad, 2 * x.detach().exp())
    with torch.no_grad():
        calls.clear()
        chunked_sum(part, (x,), chunk=4)
    assert calls == [4, 4, 2]
    # A gradient through a tensor every chunk gets whole also recomputes the chunks.
    calls.clear()
    scale = torch.ones(2, 1, dtype=torch.float64, requires_grad=True)
    chunked_sum(lambda v, s: part(v * s), (x.detach(),), 4, whole=(scale,)).sum().backward()
    assert len(calls) == 6
    torch.testing.assert_close(scale.grad.squeeze(1), (2 * x * x.exp()).sum(1).detach())


def test_chunk_sizes_follow_the_element_budget(monkeypatch) -> None:
    sizes = []
    real = colour.chunked_sum

    def spy(fn, inputs, chunk, whole=()):
        sizes.append(chunk)
        return real(fn, inputs, chunk, whole)

    monkeypatch.setattr(colour, "chunked_sum", spy)
    monkeypatch.setattr(colour, "CHUNK_ELEMENTS", 2**12)
    x = images(2, 3, 8, 8, seed=17)
    soft_joint_histogram(x, 8, 0.0, 1.0, 100.0)  # rows of 2 * 8**2 elements per value
    rgbuv_histogram(x, 8)  # 2 * 3 * 8
    sliced_wasserstein(x, x, torch.eye(3, dtype=torch.float64))  # 2 * 64 per direction
    assert sizes == [2**12 // 128, 2**12 // 48, 2**12 // 128]


# ------------------------------------------------------------------------ composite


def test_composite_is_the_weighted_sum_and_skips_zero_weights() -> None:
    x, y = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)

    def never(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise AssertionError("a term of weight 0 was computed")

    expected = 0.5 * nn.functional.l1_loss(x, y) + 2.0 * nn.functional.mse_loss(x, y)
    terms = [(0.5, nn.functional.l1_loss), (2.0, nn.functional.mse_loss), (0.0, never)]
    torch.testing.assert_close(composite_loss(x, y, terms), expected)
    module = CompositeLoss(
        {
            "l1": {"weight": 0.5, "loss": nn.L1Loss()},
            "mse": {"weight": 2.0, "loss": nn.MSELoss()},
            "off": {"weight": 0, "loss": never},
            "sw": {"weight": 1.0, "loss": build_option("loss/sliced_w", directions=4)},
        }
    )
    assert list(module.terms) == ["l1", "mse", "sw"]
    assert "terms.sw._extra_state" in module.state_dict()  # a term's state travels in checkpoints
    with torch.no_grad():
        sw = build_option("loss/sliced_w", directions=4)(x, y)
        torch.testing.assert_close(module(x, y), expected + sw)


def test_composite_refuses_bad_terms() -> None:
    with pytest.raises(ValueError, match=r"loss\.terms must name at least one term"):
        CompositeLoss({})
    with pytest.raises(ValueError, match=r"loss\.terms\.l1\.weight must be >= 0, got -1"):
        CompositeLoss({"l1": {"weight": -1, "loss": nn.L1Loss()}})
    with pytest.raises(ValueError, match=r"loss\.terms\.l1\.loss must be a loss module"):
        CompositeLoss({"l1": {"weight": 1, "loss": None}})
    with pytest.raises(ValueError, match=r"every weight is 0"):
        CompositeLoss({"l1": {"weight": 0, "loss": nn.L1Loss()}})
