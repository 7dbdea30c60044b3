"""histae.perf: per-tile target histograms, the channels_last and compile switches, deterministic
mode, CUDA."""

from __future__ import annotations

import shutil

import pytest
import torch

from histae.build import build, build_option
from histae.checkpoint import load_checkpoint
from histae.jobdir import CHECKPOINT, METRICS, read_metrics
from histae.objective import code_regularizer
from histae.perf import deterministic_mode, per_tile_criterion, prepare_batch, prepare_model
from histae.train import train

CPU = torch.device("cpu")


def tiles(n: int = 300, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("per_channel", [False, True])
def test_per_tile_targets_give_the_per_step_loss(per_channel: bool) -> None:
    # 300 tiles: two cache chunks, so a batch mixes tiles filled in different chunks.
    data = tiles()
    criterion = build_option("loss/histogram", bins=30, sigma=70.0, per_channel=per_channel)
    criterion_for = per_tile_criterion(criterion, data, CPU)
    index = torch.tensor([3, 299, 255, 256, 0, 17])
    x = data[index].float() / 255
    out = torch.rand_like(x, requires_grad=True)
    cached = criterion_for(index)(out, x)
    plain = criterion(out, x)
    torch.testing.assert_close(cached, plain, rtol=1e-6, atol=1e-7)
    (g_cached,) = torch.autograd.grad(cached, out)
    (g_plain,) = torch.autograd.grad(plain, out)
    torch.testing.assert_close(g_cached, g_plain, rtol=1e-5, atol=1e-9)


def test_criteria_without_a_target_histogram_pass_through() -> None:
    for criterion in (torch.nn.L1Loss(), build_option("loss/histogram", bins=10, loss="sorted_w1")):
        assert per_tile_criterion(criterion, tiles(4), CPU)(torch.tensor([0, 1])) is criterion


def test_a_tile_set_too_large_to_cache_computes_per_step(monkeypatch) -> None:
    monkeypatch.setattr("histae.perf.MAX_TARGET_CACHE_BYTES", 100)
    criterion = build_option("loss/histogram", bins=10)
    assert per_tile_criterion(criterion, tiles(4), CPU)(torch.tensor([0])) is criterion


def losses(channels_last: bool, steps: int = 3) -> list[float]:
    torch.manual_seed(0)
    model = prepare_model(build_option("model/conv_ae"), channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    criterion = build_option("loss/histogram", bins=50)
    x = prepare_batch(
        torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(1)), channels_last
    )
    seen = []
    for _ in range(steps):
        code = model.encoder(x)
        loss = criterion(model.decoder(code), x) + 1e-4 * sum(code_regularizer(code))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen.append(loss.item())
    return seen


def test_channels_last_gives_the_same_losses_to_float_tolerance() -> None:
    assert losses(True) == pytest.approx(losses(False), rel=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on CPU needs a C++ compiler")
def test_compile_trains_to_float_tolerance_and_loads_without_it(compose_cfg, tmp_path) -> None:
    job = [
        "trainer.max_inputs=64",
        "trainer.val_every_inputs=32",
        "trainer.batch_size=16",
        "scheduler=none",
    ]
    train(compose_cfg(*job), tmp_path / "plain")
    train(compose_cfg(*job, "trainer.compile=true"), tmp_path / "compiled")
    plain, compiled = (read_metrics(tmp_path / name / METRICS) for name in ("plain", "compiled"))
    assert [r["inputs"] for r in compiled] == [r["inputs"] for r in plain]
    assert [r["loss"] for r in compiled] == pytest.approx([r["loss"] for r in plain], rel=1e-3)
    # Compiled in place: the same state-dict keys, so the job resumes with the switch off.
    saved = load_checkpoint(tmp_path / "compiled" / CHECKPOINT)
    assert saved["model"].keys() == load_checkpoint(tmp_path / "plain" / CHECKPOINT)["model"].keys()
    build(compose_cfg(*job).model).load_state_dict(saved["model"], strict=True)
    train(compose_cfg(*job), tmp_path / "compiled")  # compile is a runtime key: same job
    assert read_metrics(tmp_path / "compiled" / METRICS) == compiled


def test_deterministic_mode_runs_the_histogram_losses_and_restores_the_setting() -> None:
    out = torch.rand(2, 3, 8, 8, requires_grad=True)
    before = torch.are_deterministic_algorithms_enabled()
    with deterministic_mode(True):
        assert torch.are_deterministic_algorithms_enabled()
        for criterion in (
            build_option("loss/histogram", bins=20),
            build_option("loss/histogram", bins=20, kernel="triangular"),
        ):
            criterion(out, torch.rand(2, 3, 8, 8)).backward()
    assert torch.are_deterministic_algorithms_enabled() == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("per_channel", [False, True])
def test_cuda_per_tile_targets_stay_on_the_device(per_channel: bool) -> None:
    cuda = torch.device("cuda")
    data = tiles()
    criterion = build_option("loss/histogram", bins=30, sigma=70.0, per_channel=per_channel)
    index = torch.tensor([3, 299, 256])
    x = (data[index].float() / 255).to(cuda)
    out = torch.rand_like(x, requires_grad=True)
    cached = per_tile_criterion(criterion, data, cuda)(index)(out, x)
    assert cached.device.type == "cuda"
    cpu = criterion(out.detach().cpu(), x.cpu())
    torch.testing.assert_close(cached.cpu(), cpu, rtol=1e-5, atol=1e-6)
    cached.backward()
    assert out.grad is not None and out.grad.device.type == "cuda"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_deterministic_mode_gives_the_same_gradient_twice() -> None:
    x = torch.rand(16, 3, 32, 32, device="cuda")
    grads = []
    with deterministic_mode(True):
        for _ in range(2):
            out = x.clone().requires_grad_()
            build_option("loss/histogram", bins=100)(out, x.flip(0)).backward()
            grads.append(out.grad)
    assert torch.equal(grads[0], grads[1])
