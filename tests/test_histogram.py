"""soft_histogram against the dense reference formula: values, accuracy, bounds, gradients."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from histae import _histogram_engine as engine
from histae._histogram_engine import (
    EPS_DEFAULT,
    StreamingHistogram,
    bin_kernel,
    build_plan,
    chebyshev_error_bound,
)
from histae.histogram import soft_histogram, soft_histogram_reference

ROOT = Path(__file__).resolve().parents[1]


def values(shape: tuple[int, ...], lo: float, hi: float, seed: int = 0) -> torch.Tensor:
    """Random float64 values over [lo, hi] widened by a fifth on each side, plus edge cases."""
    g = torch.Generator().manual_seed(seed)
    span = hi - lo
    x = lo - 0.2 * span + 1.4 * span * torch.rand(shape, generator=g, dtype=torch.float64)
    flat = x.view(-1)
    special = [lo, hi, (lo + hi) / 2, lo + span / 3, lo - 1e3 * span, hi + 1e3 * span]
    flat[: len(special)] = torch.tensor(special, dtype=torch.float64)
    return x


def dense64(x: torch.Tensor, bins: int, lo: float, hi: float, sigma: float) -> torch.Tensor:
    """An independent float64 evaluation: sigmoid differences at the edges, one value at a time."""
    edges = lo + (hi - lo) / bins * torch.arange(bins + 1, dtype=torch.float64)
    s = torch.sigmoid(sigma * (x.double().unsqueeze(-1) - edges))  # (..., N, bins + 1)
    return (s[..., :-1] - s[..., 1:]).sum(-2)


@pytest.fixture(autouse=True, params=["fused", "eager"])
def backend(request, monkeypatch) -> str:
    """Every test here runs twice: with the fused CPU loops of the moments method
    (histae._histogram_cpu) and with the eager PyTorch path that CUDA takes."""
    monkeypatch.setattr(engine, "FUSED_CPU", request.param == "fused")
    return request.param


GRID = list(
    itertools.product(
        [1, 7, 50, 200],  # bins
        [0.5, 10.0, 100.0, 2e3, 1e6],  # sigma: kernel far wider than the range .. a step
        [(0.0, 1.0), (-3.0, 2.0), (10.0, 10.25)],  # range
    )
)


@pytest.mark.parametrize("method", ["auto", "moments", "window"])
@pytest.mark.parametrize(("bins", "sigma", "span"), GRID)
def test_float64_equals_the_reference(bins: int, sigma: float, span, method: str) -> None:
    lo, hi = span
    if method == "moments" and sigma * (hi - lo) / bins > 100:
        pytest.skip("moments would need > 200 groups per bin; auto never picks it there")
    x = values((2, 150), lo, hi)
    # Values exactly on edges, where the reference counts half on each side.
    x[1, : bins + 1] = torch.linspace(lo, hi, bins + 1, dtype=torch.float64)[:150]
    got = soft_histogram(x, bins, lo, hi, sigma, method=method, block_size=37)
    expected = soft_histogram_reference(x, bins, lo, hi, sigma)
    # Both evaluate sigmoid(sigma * (x - e)) after rounding sigma * x: ~1e-16 * sigma * |x|.
    tol = 1e-9 * max(1.0, sigma * max(abs(lo), abs(hi)) * 1e-6)
    assert torch.allclose(got, expected, rtol=0, atol=tol)
    assert torch.allclose(got, dense64(x, bins, lo, hi, sigma), rtol=0, atol=tol)


@pytest.mark.parametrize(("bins", "sigma"), [(50, 50.0), (100, 100.0), (200, 200.0), (7, 1e4)])
def test_float32_is_at_least_as_accurate_as_the_reference(bins: int, sigma: float) -> None:
    x64 = values((4, 3072), 0.0, 1.0, seed=1)
    x64[1] = torch.round(x64[1] * 255) / 255  # 8-bit pixel values: many exact repeats
    truth = soft_histogram_reference(x64, bins, 0.0, 1.0, sigma)
    ours = soft_histogram(x64.float(), bins, 0.0, 1.0, sigma)
    ref = soft_histogram_reference(x64.float(), bins, 0.0, 1.0, sigma)
    assert ours.dtype == torch.float32
    ours_err = (ours.double() - truth).abs().max().item()
    ref_err = (ref.double() - truth).abs().max().item()
    assert ours_err <= ref_err


@pytest.mark.parametrize("method", ["moments", "window"])
@pytest.mark.parametrize("sd", [0.05, 0.5, 2.0, 20.0])
def test_the_stated_error_bound_holds_per_value_and_bin(method: str, sd: float) -> None:
    # The float32 plan (eps = 2**-30) run in float64 arithmetic, so only the bound's
    # truncations (Chebyshev, saturation window) remain. Each column is one value, placed
    # over a fine sweep of positions, including the window's far edge (~ T / sigma away).
    bins, sigma = 20, sd * 20
    plan = build_plan(bins, 0.0, 1.0, sigma, EPS_DEFAULT, method, "cpu")
    reach = math.log(1 / EPS_DEFAULT) / sigma  # in value units
    x = torch.linspace(-reach - 0.01, 1 + reach + 0.01, 4001, dtype=torch.float64)
    got = StreamingHistogram.apply(x[:, None], plan, None)  # (values, bins)
    err = (got - soft_histogram_reference(x[:, None], bins, 0.0, 1.0, sigma)).abs().max()
    assert err.item() <= EPS_DEFAULT
    # The bound is not vacuous: a looser plan misses it, within its own looser bound (unless
    # its window spans every bin: the dense edge form truncates nothing).
    loose = build_plan(bins, 0.0, 1.0, sigma, 2.0**-10, method, "cpu")
    loose_err = (StreamingHistogram.apply(x[:, None], loose, None) - got).abs().max().item()
    assert loose_err <= 2.0**-10 + EPS_DEFAULT
    if getattr(loose, "window", 0) != bins:
        assert loose_err > EPS_DEFAULT


def test_chebyshev_bound_and_saturation_cut() -> None:
    eps = 2.0**-30
    # The bound decreases with the degree and grows with the group's half-width.
    assert chebyshev_error_bound(8, 0.25) < chebyshev_error_bound(7, 0.25)
    assert chebyshev_error_bound(7, 0.5) > chebyshev_error_bound(7, 0.25)
    # Bins whose nearest edge is more than T = log(1 / eps) / sigma away weigh < eps.
    t = math.log(1 / eps)
    for sd in (0.1, 1.0, 30.0):
        beyond = torch.tensor([-t, t + sd], dtype=torch.float64)  # nearest edge T away
        assert (bin_kernel(beyond, sd) < eps).all()
        within = torch.tensor([-t / 2, t / 2 + sd], dtype=torch.float64)
        assert (bin_kernel(within, sd) > eps).all()


@pytest.mark.parametrize(("bins", "sigma"), [(7, 0.5), (50, 20.0), (50, 300.0), (3, 60.0)])
def test_kernel_bands_of_any_width_give_the_same_numbers(monkeypatch, bins, sigma) -> None:
    # The kernel products go band by band over the nonzero part of the kernel; a band of one
    # bin, of a few and of all bins at once must agree with each other and the reference.
    x = values((2, 60), 0.0, 1.0, seed=8)[:, 6:].clone().requires_grad_()
    weights = torch.randn(2, bins, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    results = []
    for band in (1, 3, 10_000):
        monkeypatch.setattr(engine, "BAND_BINS", band)
        build_plan.cache_clear()  # bands are built per plan
        plan = engine.make_plan(bins, 0.0, 1.0, sigma, torch.float64, "moments", "cpu")
        forward = plan._bands("forward", torch.float64)
        assert len(forward) == -(-bins // band)
        hist = soft_histogram(x, bins, sigma=sigma, block_size=17, method="moments")
        (grad,) = torch.autograd.grad((hist * weights).sum(), x)
        results.append((hist.detach(), grad))
    build_plan.cache_clear()  # no plans with odd bands left for other tests
    expected = soft_histogram_reference(x, bins, 0.0, 1.0, sigma)
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), x)
    for hist, grad in results:
        torch.testing.assert_close(hist, expected.detach(), rtol=0, atol=1e-9)
        torch.testing.assert_close(grad, expected_grad, rtol=1e-9, atol=1e-9)


def test_kernel_bands_skip_the_kernels_zeros() -> None:
    # At per channel 200 bins / sigma 200 a group reaches ~43 of the 200 bins: the bands hold
    # well under half of the full kernel, and the product through them is the full kernel.
    plan = engine.make_plan(200, 0.0, 1.0, 200.0, torch.float32, "auto", "cpu")
    groups, terms = plan.groups, plan.terms
    bands = plan._bands("forward", torch.float64)
    held = sum(kernel.numel() for _, _, kernel in bands)
    assert held < 0.45 * groups * terms * plan.bins
    # The full kernel, (groups, terms, bins), the trash cells' rows 0.
    full = torch.zeros(plan.cells + 2, plan.cell_groups, terms, plan.bins, dtype=torch.float64)
    full[1:-1] = plan._spell(plan.kernel_toeplitz, 0, plan.cells, 0, plan.bins)
    full = full.view(groups, terms, plan.bins)
    through_bands = plan.finish((torch.eye(groups * terms, dtype=torch.float64),))
    assert torch.equal(through_bands.view(groups, terms, plan.bins), full)
    assert (full.abs().sum((0, 1)) > 0).all()  # every bin is fed


def test_concurrent_calls_from_threads_do_not_share_work_buffers() -> None:
    # Work buffers are kept per thread between calls; two threads must not trample each other.
    inputs = [values((8, 4000), 0.0, 1.0, seed=s).float() for s in range(4)]
    expected = [soft_histogram(x, 100, sigma=100.0) for x in inputs]
    results: dict[int, list[torch.Tensor]] = {}

    def work(i: int) -> None:
        results[i] = [soft_histogram(inputs[(i + k) % 4], 100, sigma=100.0) for k in range(8)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, got in results.items():
        for k, h in enumerate(got):
            assert torch.equal(h, expected[(i + k) % 4])


def test_a_strided_input_gives_the_contiguous_inputs_numbers() -> None:
    # A transposed view (the fused loops read strided memory; no copy without a gradient).
    x = values((40, 5), 0.0, 1.0, seed=11)
    strided = x.t()
    assert not strided.is_contiguous()
    got = soft_histogram(strided, 12, sigma=70.0)
    assert torch.equal(got, soft_histogram(strided.contiguous(), 12, sigma=70.0))
    expected = soft_histogram_reference(strided, 12, 0.0, 1.0, 70.0)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", [(30,), (2, 30), (2, 3, 30), (1, 2, 1, 30)])
def test_shapes_and_leading_dimensions(shape: tuple[int, ...]) -> None:
    x = values(shape, 0.0, 1.0)
    got = soft_histogram(x, 9, sigma=40.0)
    assert got.shape == (*shape[:-1], 9)
    flat = soft_histogram(x.reshape(-1, shape[-1]), 9, sigma=40.0)
    assert torch.equal(got.reshape(-1, 9), flat)


def test_block_boundaries_do_not_change_the_result() -> None:
    x = values((3, 500), 0.0, 1.0)
    whole = soft_histogram(x, 30, sigma=80.0)
    for block in (1, 7, 499, 500, 501, 10_000):  # within a row, across rows, all at once
        assert torch.allclose(
            soft_histogram(x, 30, sigma=80.0, block_size=block), whole, atol=1e-12
        )


@pytest.mark.parametrize("method", ["moments", "window"])
def test_row_ranges_and_slabs_do_not_change_values_or_gradients(monkeypatch, method) -> None:
    # One table row range per histogram row and slabs of a few rows, or of part of a row,
    # against the whole input in one slab: the same histogram and the same gradient.
    x = values((7, 300), 0.0, 1.0, seed=9)[:, 6:].clone().requires_grad_()
    weights = torch.randn(7, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    def run(**kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        hist = soft_histogram(x, 20, sigma=60.0, method=method, **kwargs)
        (grad,) = torch.autograd.grad((hist * weights).sum(), x)
        return hist.detach(), grad

    whole, whole_grad = run(block_size=10_000)
    monkeypatch.setattr(engine, "TABLE_ELEMENTS", 1)  # a row range per histogram row
    for block in (None, 1, 100, 600):
        hist, grad = run(block_size=block)
        torch.testing.assert_close(hist, whole, rtol=0, atol=1e-12)
        torch.testing.assert_close(grad, whole_grad, rtol=1e-12, atol=1e-12)


def test_counts_add_up_and_a_value_on_the_range_edge_counts_half() -> None:
    x = torch.tensor([0.0, 0.35, 0.7, 1.0], dtype=torch.float64)  # 0.7 is an inner edge
    h = soft_histogram(x, 10, sigma=1e5)
    assert h.sum().item() == pytest.approx(3.0, abs=1e-9)
    assert h[0].item() == pytest.approx(0.5, abs=1e-9)
    assert h[9].item() == pytest.approx(0.5, abs=1e-9)
    assert h[3].item() == pytest.approx(1.0, abs=1e-9)
    assert h[6].item() == pytest.approx(0.5, abs=1e-9)
    assert h[7].item() == pytest.approx(0.5, abs=1e-9)


def test_infinities_count_nothing_and_nan_poisons_only_its_histogram() -> None:
    x = torch.tensor([[0.25, math.inf, -math.inf], [0.25, math.nan, 0.5]], requires_grad=True)
    h = soft_histogram(x, 4, sigma=200.0)
    expected = soft_histogram_reference(x[:1, :1].detach(), 4, 0.0, 1.0, 200.0)
    assert torch.allclose(h[0], expected[0], atol=1e-6)
    assert torch.isnan(h[1]).all()
    # The backward reads every value, NaN and infinities included, and keeps row 0 exact.
    weights = torch.tensor([[1.0, -2.0, 3.0, 0.5], [0.0, 0.0, 0.0, 0.0]])
    (grad,) = torch.autograd.grad((h.nan_to_num(0.0) * weights).sum(), x)
    x0 = x.detach()[:1, :1].clone().requires_grad_()
    (expected_grad,) = torch.autograd.grad(
        (soft_histogram_reference(x0, 4, 0.0, 1.0, 200.0) * weights[:1]).sum(), x0
    )
    torch.testing.assert_close(grad[0], torch.cat([expected_grad[0], torch.zeros(2)]))


def test_empty_inputs_and_half_precision() -> None:
    assert torch.equal(soft_histogram(torch.empty(2, 0), 5), torch.zeros(2, 5))
    assert soft_histogram(torch.empty(0, 7), 5).shape == (0, 5)
    x = values((64,), 0.0, 1.0)
    for dtype in (torch.float16, torch.bfloat16):
        got = soft_histogram(x.to(dtype), 8, sigma=50.0)
        assert got.dtype == dtype
        expected = soft_histogram_reference(x.to(dtype).double(), 8, 0.0, 1.0, 50.0)
        assert torch.allclose(got.double(), expected, rtol=1e-2, atol=0.1)


@pytest.mark.parametrize(
    ("method", "sigma"), [("moments", 3.0), ("moments", 60.0), ("window", 60.0), ("auto", 3e3)]
)
def test_gradcheck_several_blocks(method: str, sigma: float) -> None:
    x = values((2, 9), 0.0, 1.0, seed=3)[:, 3:].clone().requires_grad_()  # no infinities
    fn = lambda t: soft_histogram(t, 6, 0.0, 1.0, sigma, method=method, block_size=4)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))


@pytest.mark.parametrize("sigma", [0.5, 30.0, 300.0, 1e5])
def test_gradients_reach_the_input_and_equal_the_references(sigma: float) -> None:
    x = values((3, 200), 0.0, 1.0, seed=4)[:, 6:].clone().requires_grad_()
    weights = torch.randn(3, 25, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    (ours,) = torch.autograd.grad((soft_histogram(x, 25, sigma=sigma) * weights).sum(), x)
    ref = soft_histogram_reference(x, 25, 0.0, 1.0, sigma)
    (expected,) = torch.autograd.grad((ref * weights).sum(), x)
    assert ours.abs().max() > 0  # torch.histc would give none at all
    assert torch.allclose(ours, expected, rtol=1e-9, atol=1e-9 * expected.abs().max().item())
    # float32 gradients: close to the float64 ones.
    x32 = x.detach().float().requires_grad_()
    (g32,) = torch.autograd.grad(
        (soft_histogram(x32, 25, sigma=sigma) * weights.float()).sum(), x32
    )
    assert torch.allclose(
        g32.double(), expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item()
    )


def test_triangular_kernel() -> None:
    # Values on bin centres land whole in their bin; on min/max they count half; linear between.
    x = torch.tensor([0.05, 0.15, 0.15, 0.0, 1.0, 0.5, 0.1, -0.2, 7.0], dtype=torch.float64)
    h = soft_histogram(x, 10, kernel="triangular")
    expected = torch.zeros(10, dtype=torch.float64)
    expected[0] = 1 + 0.5 + 0.5  # 0.05, half of 0.0, half of 0.1
    expected[1] = 2 + 0.5  # 0.15 twice, half of 0.1
    expected[4] = expected[5] = 0.5  # 0.5 sits on the edge between the two centres
    expected[9] = 0.5  # 1.0
    assert torch.allclose(h, expected, atol=1e-12)
    # Its mean is exact for values inside [min + delta / 2, max - delta / 2].
    y = 0.05 + 0.9 * torch.rand(
        1000, dtype=torch.float64, generator=torch.Generator().manual_seed(6)
    )
    ht = soft_histogram(y, 10, kernel="triangular")
    centres = 0.05 + 0.1 * torch.arange(10, dtype=torch.float64)
    assert (ht * centres).sum().item() == pytest.approx(y.sum().item(), rel=1e-12)
    # Differentiable: d hist / d x moves mass between the two neighbouring bins.
    z = torch.tensor([0.12], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: soft_histogram(t, 10, kernel="triangular"), (z,))


@pytest.mark.parametrize(
    ("kernel", "bins", "sigma", "moved"),
    [("triangular", 100, 0.0, 0.25), ("sigmoid", 100, 100.0, 0.76), ("sigmoid", 200, 100.0, 0.88),
     ("sigmoid", 50, 200.0, 0.34)],
)  # fmt: skip
def test_kernel_accuracy_against_a_hard_histogram(kernel, bins, sigma, moved) -> None:
    # The figures quoted in soft_histogram's docstring: the mass one value moves out of its
    # own bin, averaged over values spread uniformly away from the range's ends.
    g = torch.Generator().manual_seed(7)
    x = 0.1 + 0.8 * torch.rand(20_000, 1, dtype=torch.float64, generator=g)
    hard = torch.nn.functional.one_hot((x[:, 0] * bins).long(), bins).double()
    soft = soft_histogram(x, bins, sigma=sigma or 1.0, kernel=kernel)  # one row per value
    assert ((soft - hard).abs().sum(1) / 2).mean().item() == pytest.approx(moved, abs=0.005)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("method", ["moments", "window"])
def test_cuda_equals_cpu(method: str) -> None:
    x = values((3, 400), 0.0, 1.0).requires_grad_()
    xc = x.detach().cuda().requires_grad_()
    cpu = soft_histogram(x, 40, sigma=150.0, method=method)
    gpu = soft_histogram(xc, 40, sigma=150.0, method=method)
    assert gpu.device == xc.device
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-9)
    cpu.sum().backward()
    gpu.sum().backward()
    assert torch.allclose(xc.grad.cpu(), x.grad, atol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bins": 0}, r"^bins must be an integer >= 1, got 0$"),
        ({"bins": 2.5}, r"^bins must be an integer >= 1, got 2.5$"),
        ({"sigma": 0.0}, r"^sigma must be > 0, got 0.0$"),
        ({"sigma": math.inf}, r"^sigma must be finite, got inf$"),
        ({"min": 1.0, "max": 1.0}, r"^min must be < max, got min=1.0, max=1.0$"),
        ({"kernel": "gauss"}, r"^kernel must be one of sigmoid, triangular; got 'gauss'$"),
        ({"method": "fast"}, r"^method must be one of auto, moments, window; got 'fast'$"),
        ({"block_size": 0}, r"^block_size must be >= 1, got 0$"),
    ],
)
def test_bad_arguments_raise_one_clear_line(kwargs: dict, match: str) -> None:
    args = {"bins": 10, "min": 0.0, "max": 1.0, "sigma": 100.0} | kwargs
    with pytest.raises(ValueError, match=match):
        soft_histogram(torch.rand(5), **args)


def test_integer_input_is_refused() -> None:
    with pytest.raises(ValueError, match="x must be a floating point tensor"):
        soft_histogram(torch.arange(5), 4)


def test_an_input_without_gradient_builds_no_graph_node() -> None:
    # A loss's target: computed directly, nothing saved for a backward that never comes.
    x = values((2, 300), 0.0, 1.0)
    plain = soft_histogram(x, 20, sigma=90.0)
    assert plain.grad_fn is None
    tracked = soft_histogram(x.clone().requires_grad_(), 20, sigma=90.0)
    assert tracked.grad_fn is not None and torch.equal(tracked.detach(), plain)
    with torch.no_grad():
        assert soft_histogram(x.clone().requires_grad_(), 20, sigma=90.0).grad_fn is None


def _hist_and_grad(x: torch.Tensor, bins: int, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(R, N) values -> their histogram and the gradient of a fixed weighting of it."""
    x = x.detach().clone().requires_grad_()
    weights = torch.randn(x.shape[0], bins, generator=torch.Generator().manual_seed(1))
    hist = soft_histogram(x, bins, sigma=sigma)
    (grad,) = torch.autograd.grad((hist * weights.to(x.dtype)).sum(), x)
    return hist.detach(), grad


def test_the_fused_cpu_loops_take_float_cpu_inputs(monkeypatch) -> None:
    # numba is a dependency: on CPU the moments method runs fused, in float32 and float64.
    module = engine._histogram_cpu()
    assert module is not None
    monkeypatch.setattr(engine, "FUSED_CPU", True)
    calls: list[str] = []
    for name in ("moments", "gradient"):
        original = getattr(module, name)

        def spy(*args, _name=name, _original=original) -> object:
            calls.append(_name)
            return _original(*args)

        monkeypatch.setattr(module, name, spy)
    for dtype in (torch.float32, torch.float64, torch.bfloat16):  # bfloat16: in float32
        calls.clear()
        _hist_and_grad(values((3, 50), 0.0, 1.0).to(dtype), 20, 50.0)
        assert calls == ["moments", "gradient"]
    calls.clear()
    monkeypatch.setattr(engine, "FUSED_CPU", False)  # the switch the other tests use
    _hist_and_grad(values((3, 50), 0.0, 1.0), 20, 50.0)
    assert calls == []


@pytest.mark.parametrize(("bins", "sigma", "per_channel"), [(50, 100.0, False), (200, 200.0, True)])
def test_fused_and_eager_paths_agree(monkeypatch, bins, sigma, per_channel) -> None:
    # A training batch, 8-bit repeats included: the two paths differ by rounding only.
    rows = 8 * (3 if per_channel else 1)
    x = values((rows, 3072 // (3 if per_channel else 1)), 0.0, 1.0, seed=6)
    x[1] = torch.round(x[1] * 255) / 255
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        monkeypatch.setattr(engine, "FUSED_CPU", True)
        fused = _hist_and_grad(x.to(dtype), bins, sigma)
        monkeypatch.setattr(engine, "FUSED_CPU", False)
        eager = _hist_and_grad(x.to(dtype), bins, sigma)
        for a, b in zip(fused, eager, strict=True):
            scale = b.abs().max().item()
            torch.testing.assert_close(a, b, rtol=0, atol=tol * scale)


def test_fused_loops_are_bitwise_the_same_at_any_thread_count(monkeypatch) -> None:
    # Each histogram row is summed by one thread in value order: the fused loops' moments and
    # gradients do not depend on the thread count (the kernel products are BLAS's: repeated
    # runs at one thread count agree bitwise, other thread counts may round differently).
    monkeypatch.setattr(engine, "FUSED_CPU", True)
    x = values((24, 1024), 0.0, 1.0, seed=7).float()
    plan = engine.make_plan(100, 0.0, 1.0, 100.0, torch.float32, "auto", "cpu")
    grad_table = plan.grad_table(torch.randn(24, 100, generator=torch.Generator().manual_seed(2)))
    previous = torch.get_num_threads()
    try:
        runs = []
        for threads in (1, 2, 1, 2):
            torch.set_num_threads(threads)
            (table,) = plan.tabulate(x, 0)
            moments, gradient = table.clone(), plan.gradient(grad_table, x, 0)
            runs.append((moments, gradient, *_hist_and_grad(x, 100, 100.0)))
    finally:
        torch.set_num_threads(previous)
    for run in runs[1:]:
        for a, b in zip(run[:2], runs[0][:2], strict=True):
            assert torch.equal(a, b)
    for a, b in zip(runs[2], runs[0], strict=True):  # histogram and gradient: same threads
        assert torch.equal(a, b)
    for a, b in zip(runs[3], runs[1], strict=True):
        assert torch.equal(a, b)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: every thread count is 1")
def test_the_fused_loops_leave_torchs_thread_count_alone(backend) -> None:
    if backend == "eager":
        pytest.skip("a fresh process, where the fused loops run; once is enough")
    # numba's OpenMP pool shares torch's libgomp, and launching it (once per process) reset
    # torch's thread count to all cores: a SLURM job set to 1 thread trained on 2. A fresh
    # process, as a job is.
    code = (
        "import torch; torch.set_num_threads(1)\n"
        "from histae.histogram import soft_histogram\n"
        "x = torch.rand(4, 100, requires_grad=True)\n"
        "soft_histogram(x, 10).sum().backward()\n"
        "print(torch.get_num_threads())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.split() == ["1"]


@pytest.mark.slow  # two fresh processes, each compiling the CPU loops
def test_a_damaged_numba_cache_is_rebuilt_not_fatal(tmp_path, backend) -> None:
    if backend == "eager":
        pytest.skip("fresh processes, where the fused loops run; once is enough")
    # A truncated cache file (a full disk, a killed copy) made numba raise UnpicklingError from
    # inside the loss: the loops remove their cache, say so in one line, and compile afresh.
    code = (
        "import logging, torch\n"
        "logging.basicConfig(format='%(message)s')\n"
        "from histae.histogram import soft_histogram, soft_histogram_reference\n"
        "x = torch.rand(4, 100, requires_grad=True)\n"
        "h = soft_histogram(x, 10)\n"
        "h.sum().backward()\n"
        "ref = soft_histogram_reference(x.detach(), 10, 0.0, 1.0, 100.0)\n"
        "print(float((h - ref).abs().max()), float(x.grad.abs().max()))\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    run = lambda: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT
    )
    first = run()
    assert first.returncode == 0, first.stderr[-2000:]
    data = sorted(tmp_path.rglob("*.nbc"))
    assert data, "numba wrote no cache"
    for path in data:
        path.write_bytes(path.read_bytes()[:100])
    second = run()
    assert second.returncode == 0, second.stderr[-2000:]
    error, grad = (float(v) for v in second.stdout.split())
    assert error < 1e-5 and grad > 0
    assert "cache of histae's CPU loops was damaged" in second.stderr
    assert all(len(p.read_bytes()) > 100 for p in tmp_path.rglob("*.nbc"))  # rebuilt
