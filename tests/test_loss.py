"""HistogramLoss: the reference's semantics, the new distances, gradients and errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from histae.build import build_option
from histae.histogram import soft_histogram_reference
from histae.loss import (
    LOSS_NAMES,
    histogram_distance,
    histogram_loss,
    sorted_w1,
)


def images(seed: int, b: int = 3, c: int = 3, s: int = 8, lo=0.0, hi=1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(b, c, s, s, generator=g, dtype=torch.float64)


def dense(x: torch.Tensor, bins: int, sigma: float, per_channel: bool = False) -> torch.Tensor:
    return soft_histogram_reference(x.flatten(2 if per_channel else 1), bins, 0.0, 1.0, sigma)


@pytest.mark.parametrize("per_channel", [False, True])
def test_l1_on_raw_counts_is_the_reference(per_channel: bool) -> None:
    out, tgt = images(0), images(1)
    expected = F.l1_loss(dense(out, 20, 50.0, per_channel), dense(tgt, 20, 50.0, per_channel))
    got = build_option(
        "loss/histogram", bins=20, min=0.0, max=1.0, sigma=50.0, per_channel=per_channel
    )(out, tgt)
    assert got.item() == pytest.approx(expected.item(), rel=1e-9)


def test_histogram_shapes_per_image_and_per_channel() -> None:
    seen = []
    record = lambda a, b: seen.append((a.shape, b.shape)) or (a - b).sum()  # noqa: E731
    histogram_loss(images(0), images(1), 12, 0.0, 1.0, 50.0, loss=record)
    histogram_loss(images(0), images(1), 12, 0.0, 1.0, 50.0, loss=record, per_channel=True)
    assert seen == [((3, 12), (3, 12)), ((3, 3, 12), (3, 3, 12))]


def test_one_histogram_per_image_pools_the_channels() -> None:
    # Swapping channels within an image keeps the pooled histogram, not the per-channel ones.
    out = images(0)
    swapped = out[:, [2, 0, 1]]
    assert build_option("loss/histogram", bins=16)(swapped, out).item() == pytest.approx(
        0.0, abs=1e-9
    )
    assert build_option("loss/histogram", bins=16, per_channel=True)(swapped, out).item() > 1e-3


@pytest.mark.parametrize(
    ("normalize", "per_channel"), [(True, False), (True, True), (1, False), (2.0, True)]
)
def test_normalize_semantics(normalize, per_channel: bool) -> None:
    # Values partly outside [0, 1], so the output histogram's 1-norm is not the pixel count.
    out, tgt = images(2, lo=-0.3, hi=1.2), images(3)
    h_out, h_tgt = dense(out, 10, 100.0, per_channel), dense(tgt, 10, 100.0, per_channel)
    if normalize is True:
        div = 64 if per_channel else 3 * 64
    else:
        div = torch.linalg.vector_norm(h_out, ord=normalize, dim=-1, keepdim=True) + 1e-7
    expected = F.l1_loss(h_out / div, h_tgt / div)
    got = histogram_loss(
        out, tgt, 10, 0.0, 1.0, 100.0, normalize=normalize, per_channel=per_channel
    )
    assert got.item() == pytest.approx(expected.item(), rel=1e-9)
    # YAML may hand over 1 for 1.0: same loss; True is not 1 here.
    if normalize is not True and normalize == 1:
        assert got.item() == histogram_loss(out, tgt, 10, 0.0, 1.0, 100.0, normalize=1.0).item()
        assert got.item() != pytest.approx(
            histogram_loss(out, tgt, 10, 0.0, 1.0, 100.0, normalize=True).item(), rel=1e-3
        )


def test_mse_and_aliases() -> None:
    out, tgt = images(4), images(5)
    h_out, h_tgt = dense(out, 12, 80.0), dense(tgt, 12, 80.0)
    for name in ("l2", "mse"):
        assert histogram_loss(out, tgt, 12, 0.0, 1.0, 80.0, loss=name).item() == pytest.approx(
            F.mse_loss(h_out, h_tgt).item(), rel=1e-9
        )
    mae = histogram_loss(out, tgt, 12, 0.0, 1.0, 80.0, loss="mae")
    assert mae.item() == histogram_loss(out, tgt, 12, 0.0, 1.0, 80.0, loss="l1").item()


def test_reference_formulas_of_kl_div_bce_and_ce() -> None:
    # As the reference called them: F.kl_div gets the output histogram where it expects
    # log-probabilities (batchmean: / B), F.cross_entropy takes it as logits over the bins.
    a = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.2, 0.7]], dtype=torch.float64)
    b = torch.tensor([[0.25, 0.75, 0.0], [0.3, 0.3, 0.4]], dtype=torch.float64)
    pairs = zip(a.flatten().tolist(), b.flatten().tolist(), strict=True)
    kl = sum(t * (math.log(t) - o) for o, t in pairs if t) / 2  # 0 log 0 = 0
    assert histogram_distance(a, b, "kl_div").item() == pytest.approx(kl, rel=1e-12)
    ce = -(b * a.log_softmax(-1)).sum(-1).mean()
    assert histogram_distance(a, b, "ce").item() == pytest.approx(ce.item(), rel=1e-12)
    bce = -(b * a.log() + (1 - b) * (1 - a).log()).mean()
    assert histogram_distance(a, b, "bce").item() == pytest.approx(bce.item(), rel=1e-12)


def test_distribution_distances_known_values() -> None:
    p = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    q = torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    # All the mass moves 3 bins of width 0.25.
    assert histogram_distance(p, q, "emd", 0.25).item() == pytest.approx(0.75, rel=1e-6)
    assert histogram_distance(p, q, "hellinger").item() == pytest.approx(1.0, abs=1e-3)
    assert histogram_distance(p, q, "chi2").item() == pytest.approx(1.0, rel=1e-6)
    # Half the mass moves one bin: emd 0.5 * 0.25; chi2 and hellinger on a worked example.
    r = torch.tensor([[0.5, 0.5, 0.0, 0.0]], dtype=torch.float64)
    assert histogram_distance(p, r, "emd", 0.25).item() == pytest.approx(0.125, rel=1e-6)
    assert histogram_distance(p, r, "chi2").item() == pytest.approx(
        0.5 * (0.25 / 1.5 + 0.25 / 0.5), rel=1e-6
    )
    hellinger = math.sqrt(0.5 * ((1 - math.sqrt(0.5)) ** 2 + 0.5))
    assert histogram_distance(p, r, "hellinger").item() == pytest.approx(hellinger, abs=1e-4)
    # The distances compare distributions: scaling a histogram changes nothing.
    same = torch.tensor([[0.25, 0.25, 0.5, 0.0]], dtype=torch.float64)
    for name in ("emd", "chi2", "hellinger"):
        assert histogram_distance(same, same * 7, name).item() == pytest.approx(0.0, abs=1e-6)


def test_emd_tends_to_the_sorted_w1() -> None:
    out, tgt = images(15, lo=0.1, hi=0.6), images(16, lo=0.3, hi=0.9)
    emd = histogram_loss(out, tgt, 500, 0.0, 1.0, 5e3, loss="emd")
    w1 = histogram_loss(out, tgt, 500, 0.0, 1.0, 5e3, loss="sorted_w1")
    assert emd.item() == pytest.approx(w1.item(), abs=2e-3)


def test_sorted_w1_is_the_exact_1d_wasserstein() -> None:
    tgt = torch.tensor([0.0, 0.5, 1.0]).reshape(1, 1, 1, 3)
    out = torch.tensor([1.0, 0.0, 0.75]).reshape(1, 1, 1, 3)  # sorted: 0, 0.75, 1
    assert histogram_loss(out, tgt, 4, 0.0, 1.0, 100.0, loss="sorted_w1").item() == pytest.approx(
        0.25 / 3
    )
    assert sorted_w1(tgt.flatten(1) + 0.1, tgt.flatten(1)).item() == pytest.approx(0.1)
    # Positions do not matter, only the values; per channel they stay apart.
    x = images(6)
    shuffled = x.flatten(1)[:, torch.randperm(3 * 64)].reshape(x.shape)
    assert histogram_loss(shuffled, x, 10, 0.0, 1.0, 100.0, loss="sorted_w1").item() == 0.0
    swapped = x[:, [1, 2, 0]]
    per_channel = histogram_loss(
        swapped, x, 10, 0.0, 1.0, 100.0, loss="sorted_w1", per_channel=True
    )
    assert per_channel.item() > 1e-3


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_every_distance_has_finite_gradients_that_reach_the_input(name: str) -> None:
    out = images(7, b=2, s=6).requires_grad_(True)
    tgt = images(8, b=2, s=6)
    value = histogram_loss(out, tgt, 16, 0.0, 1.0, 60.0, loss=name, normalize=name == "bce")
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(out.grad).all() and out.grad.abs().sum() > 0


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_gradcheck_through_the_loss(name: str) -> None:
    out = images(9, b=2, c=1, s=3).requires_grad_(True)
    tgt = images(10, b=2, c=1, s=3)
    normalize = name == "bce"
    fn = lambda o: histogram_loss(o, tgt, 7, 0.0, 1.0, 20.0, loss=name, normalize=normalize)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (out,))


def test_emd_converges_where_l1_stalls() -> None:
    # The toy problem of REFERENCE.md: two distributions that start apart.
    def descend(name: str) -> float:
        tgt = torch.full((1, 1, 8, 8), 0.8)
        out = torch.full((1, 1, 8, 8), 0.2, requires_grad=True)
        optimizer = torch.optim.SGD([out], lr=0.5)
        for _ in range(200):
            optimizer.zero_grad()
            histogram_loss(out, tgt, 20, 0.0, 1.0, 100.0, loss=name, normalize=True).backward()
            optimizer.step()
        return out.mean().item()

    assert descend("emd") == pytest.approx(0.8, abs=0.05)
    assert descend("l1") == pytest.approx(0.2, abs=0.01)


def test_callable_loss() -> None:
    out, tgt = images(11), images(12)
    got = histogram_loss(out, tgt, 8, 0.0, 1.0, 100.0, loss=lambda a, b: (a - b).abs().max())
    expected = (dense(out, 8, 100.0) - dense(tgt, 8, 100.0)).abs().max()
    assert got.item() == pytest.approx(expected.item(), rel=1e-9)


def test_triangular_kernel_through_the_loss() -> None:
    out, tgt = images(13).requires_grad_(True), images(14)
    value = build_option("loss/histogram", bins=10, kernel="triangular", loss="emd")(out, tgt)
    value.backward()
    assert value.item() > 0 and out.grad.abs().sum() > 0


def test_module_equals_function_and_reads_like_the_config() -> None:
    out, tgt = images(13), images(14)
    module = build_option(
        "loss/histogram", bins=30, min=0, max=1, sigma=70, loss="chi2", per_channel=True
    )
    assert (
        module(out, tgt).item()
        == histogram_loss(out, tgt, 30, 0.0, 1.0, 70.0, "chi2", per_channel=True).item()
    )
    assert "bins=30, min=0.0, max=1.0, sigma=70.0, loss='chi2'" in repr(module)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bins": 0}, r"^loss\.bins must be an integer >= 1, got 0$"),
        ({"sigma": 0.0}, r"^loss\.sigma must be > 0, got 0\.0$"),
        ({"min": 1.0, "max": 0.0}, r"^loss\.min must be < loss\.max, got min=1\.0, max=0\.0$"),
        ({"loss": "wasserstein"}, r"^loss\.loss must be one of l1, mae, .*, sorted_w1 or a callable; got 'wasserstein'$"),
        ({"normalize": "yes"}, r"^loss\.normalize must be true, false or a p-norm order > 0, got 'yes'$"),
        ({"normalize": -1}, r"^loss\.normalize must be .* got -1$"),
        ({"normalize": 0}, r"^loss\.normalize must be .* got 0$"),
        ({"loss": "bce"}, r"^loss\.loss 'bce' needs histograms in \[0, 1\]: set loss\.normalize"),
        ({"kernel": "gauss"}, r"^loss\.kernel must be one of sigmoid, triangular; got 'gauss'$"),
    ],
)  # fmt: skip
def test_bad_arguments_name_the_key(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_option("loss/histogram", **kwargs)
    with pytest.raises(ValueError, match=match):
        histogram_loss(
            images(0), images(1), **({"bins": 10, "min": 0.0, "max": 1.0, "sigma": 50.0} | kwargs)
        )


def test_the_module_checks_its_arguments_once_not_every_step(monkeypatch) -> None:
    # __init__ checks; forward and target_histogram run unchecked inner functions.
    criterion = build_option("loss/histogram", bins=12, sigma=60.0, loss="emd")
    out, tgt = images(17), images(18)
    expected = criterion(out, tgt)

    def refuse(*args, **kwargs):
        raise AssertionError("argument check called per step")

    monkeypatch.setattr("histae.loss.check_loss_args", refuse)
    monkeypatch.setattr("histae.loss.check_histogram_args", refuse)
    monkeypatch.setattr("histae.histogram.check_histogram_args", refuse)
    assert torch.equal(criterion(out, tgt, criterion.target_histogram(tgt)), expected)
    with pytest.raises(AssertionError, match="per step"):  # the public function still checks
        histogram_loss(out, tgt, 12, 0.0, 1.0, 60.0, "emd")


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"output and target shapes differ"):
        build_option("loss/histogram")(images(0), images(1, s=4))


@pytest.mark.parametrize("per_channel", [False, True])
def test_a_precomputed_target_histogram_gives_the_same_loss(per_channel: bool) -> None:
    out, tgt = images(15).requires_grad_(True), images(16)
    criterion = build_option("loss/histogram", bins=24, sigma=80.0, per_channel=per_channel)
    target_hist = criterion.target_histogram(tgt)
    assert target_hist.shape == ((3, 3, 24) if per_channel else (3, 24))
    assert target_hist.grad_fn is None and not target_hist.requires_grad
    cached = criterion(out, tgt, target_hist=target_hist)
    assert torch.equal(cached, criterion(out, tgt))
    (grad,) = torch.autograd.grad(cached, out)
    assert torch.equal(grad, torch.autograd.grad(criterion(out, tgt), out)[0])


def test_a_target_histogram_of_the_wrong_shape_is_refused() -> None:
    criterion = build_option("loss/histogram", bins=24)
    with pytest.raises(ValueError, match=r"^target_hist has shape \(3, 12\), expected \(3, 24\)$"):
        criterion(images(0), images(1), target_hist=torch.zeros(3, 12, dtype=torch.float64))
    with pytest.raises(ValueError, match="sorted_w1' compares sorted values"):
        build_option("loss/histogram", bins=24, loss="sorted_w1").target_histogram(images(0))


@pytest.mark.parametrize("per_channel", [False, True])
def test_a_channels_last_batch_gives_the_same_loss_and_a_pooled_one_keeps_its_layout(
    per_channel: bool,
) -> None:
    g = torch.Generator().manual_seed(11)
    plain = torch.rand(4, 3, 8, 8, generator=g)
    target = torch.rand(4, 3, 8, 8, generator=g)
    criterion = build_option("loss/histogram", bins=20, per_channel=per_channel)
    leaf = plain.contiguous(memory_format=torch.channels_last).requires_grad_()
    out = leaf * 1.0  # a non-leaf in channels-last layout, as the decoder's output is
    seen = []
    out.register_hook(seen.append)
    loss = criterion(out, target.contiguous(memory_format=torch.channels_last))
    loss.backward()
    expected = criterion(plain, target)
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=0)
    (grad,) = seen
    ref = plain.clone().requires_grad_()
    criterion(ref, target).backward()
    torch.testing.assert_close(grad, ref.grad, rtol=1e-5, atol=1e-7)
    # Pooled, the values are read in memory order: the gradient comes back channels-last,
    # with no transposing copy on either side. Per channel, one copy into the plain layout
    # (reading each channel's strided values in place measured no faster).
    assert grad.is_contiguous(memory_format=torch.channels_last) != per_channel
