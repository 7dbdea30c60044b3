"""Training-step cost: the model against the machine's GEMM peak, CPU layout and compile
experiments, the histogram loss against pixel L1, and histae's trainer against a bare loop.

    python benchmarks/bench_train.py [--steps 18] [--pairs 40] [--quick] [--compile] [--device cpu|cuda]
                                     [--threads N] [--sections 12345] [--layout L]

(1) This machine's float32 GEMM peak (best of 2048^3 matrix products) and the achieved GFLOP/s of
    a training step of the reference model (batch 64, AdamW, pixel L1): FLOPs counted by
    ``torch.utils.flop_counter`` for forward + backward, divided by the step's time.
(2) The same step in each CPU variant: default, ``channels_last`` (``trainer.channels_last``),
    one thread instead of all, and with ``--compile`` ``torch.compile`` of encoder and decoder (minutes to
    compile on 2 cores), as ratios of the default's time.
(3) The step with the soft-histogram loss at every bins (50/100/200) and sigma (50/100/200) of
    the reference matrix, pooled and per channel, against the pixel-L1 step, both in the
    layout a job trains in (``trainer.channels_last``). The target's histogram is looked up
    per tile as the trainer does (``histae.perf.per_tile_criterion``); one row computes it
    every step, for comparison. Each setting's step runs right after a pixel-L1 step; the
    figure is the median difference over ``--pairs`` pairs, with its 95% confidence interval.
    Target: <= 1.05x everywhere.
(4) histae's trainer (``train()``: data order, logging, metrics) in images/s against a bare
    PyTorch loop over the same model, data and loss. Target: >= 0.98x.
(5) Where a step's time goes (model forward, loss forward, loss backward up to the gradient
    reaching the decoder's output, model backward, optimizer) for pixel L1 and three histogram
    settings, medians over the steps.

Every section runs its sides interleaved in rounds, in this process, so drift in the machine's
load hits them alike; every figure is min / median / max over the timed steps, ratios are of
medians (and of minima, the figure closest to the work alone). The load average is printed
before and after, with a plain warning when it exceeded the core count. On a busy machine
``--threads 1 --clock cpu`` times the work itself (this process's CPU time), which other
processes cannot inflate.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _timing import LoadWatch, fmt_spread, median_interval, timed
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch.utils.flop_counter import FlopCounterMode

from histae.build import build_option, option_config
from histae.config import register
from histae.loss import HistogramLoss
from histae.objective import code_regularizer
from histae.perf import per_tile_criterion, prepare_batch, prepare_model
from histae.train import train

CONF = Path(__file__).resolve().parents[1] / "conf"
BATCH = 64


def sync(device: torch.device) -> None:
    """Wait for the device, so a step's time includes its kernels."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_peak(device: torch.device, n: int = 2048, reps: int = 8) -> list[float]:
    """GFLOP/s of ``reps`` float32 (n, n) @ (n, n) products (the first one warms up)."""
    a = torch.rand(n, n, device=device)
    b = torch.rand(n, n, device=device)
    rates = []
    for _ in range(reps + 1):
        sync(device)
        start = CLOCK()
        a @ b
        sync(device)
        rates.append(2 * n**3 / (CLOCK() - start) / 1e9)
    return rates[1:]


def tile_batch(device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, 32, 32) uint8 tiles and the float batch the trainer would make of them."""
    g = torch.Generator().manual_seed(seed)
    tiles = torch.randint(0, 256, (BATCH, 3, 32, 32), generator=g, dtype=torch.uint8)
    return tiles, tiles.to(device).float().div_(255.0)


def make_step(
    criterion: torch.nn.Module,
    device: torch.device,
    variant: str = "default",
    per_tile: bool = True,
    seed: int = 0,
) -> Callable[[], None]:
    """One training step of the reference model on a fixed batch, as a closure (warmed up).

    ``variant``: ``default``, ``channels_last``, ``threads=1`` or ``compile``. ``per_tile``:
    the target histogram looked up per tile, as the trainer does, else computed every step.
    """
    torch.manual_seed(seed)
    channels_last = variant == "channels_last"
    model = build_option("model/conv_ae").to(device)
    prepare_model(model, channels_last, compile=variant == "compile")  # as trainer.compile does
    encoder, decoder = model.encoder, model.decoder
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    tiles, x = tile_batch(device)
    x = prepare_batch(x, channels_last)
    index = torch.arange(BATCH)
    criterion = criterion.to(device)
    loss_fn = per_tile_criterion(criterion, tiles, device)(index) if per_tile else criterion
    threads = 1 if variant == "threads=1" else torch.get_num_threads()

    def step() -> None:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        code = encoder(x)
        loss = loss_fn(decoder(code), x) + 1e-4 * sum(code_regularizer(code))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync(device)
        torch.set_num_threads(previous)

    for _ in range(2):  # warm up the allocator, kernels, the compiler
        step()
    return step


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK = CLOCKS["wall"]  # --clock


def interleaved(steps: dict[str, Callable[[], None]], per_round: int, rounds: int) -> dict:
    """Seconds of every timed step, the sides taking turns round by round."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            times[name] += [timed(step, CLOCK) for _ in range(per_round)]
    return times


def ratio_columns(times: list[float], base: list[float]) -> str:
    med = statistics.median(times) / statistics.median(base)
    return f"{med:7.3f}x {min(times) / min(base):7.3f}x"


def step_flops(device: torch.device) -> int:
    """FLOPs of one forward + backward of the reference model on a batch (L1 loss)."""
    model = build_option("model/conv_ae").to(device)
    _, x = tile_batch(device)
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.l1_loss(model(x), x).backward()
    return counter.get_total_flops()


def section_model(args, device: torch.device) -> None:
    print("\n(1) float32 GEMM peak and the model's step (batch 64, pixel L1)")
    peak = max(gemm_peak(device))
    flops = step_flops(device)
    step = make_step(torch.nn.L1Loss(), device)
    times = interleaved({"step": step}, args.steps, 1)["step"]
    best, mid = flops / min(times) / 1e9, flops / statistics.median(times) / 1e9
    print(f"  GEMM peak (2048^3, best of 8):   {peak:8.1f} GFLOP/s")
    print(
        f"  step: {flops / 1e9:.2f} GFLOP forward + backward; ms min/median/max {fmt_spread(times)}"
    )
    print(
        f"  step achieved: {best:6.1f} GFLOP/s at its fastest ({100 * best / peak:.0f}% of peak),"
    )
    print(f"                 {mid:6.1f} GFLOP/s at its median ({100 * mid / peak:.0f}% of peak)")

    variants = ["default", "channels_last"]
    if device.type == "cpu":
        variants.append("threads=1")
    if args.compile:
        variants.append("compile")
    print(f"\n(2) the step's variants ({', '.join(variants)}), pixel L1")
    steps = {}
    for variant in variants:
        start = time.perf_counter()
        steps[variant] = make_step(torch.nn.L1Loss(), device, variant)
        if variant == "compile":
            print(f"  compile + warm-up: {time.perf_counter() - start:.0f} s", flush=True)
    times = interleaved(steps, max(1, args.steps // 3), 3)
    print(f"  {'variant':<16}{'ms min':>8}{'median':>8}{'max':>8}{'vs default (median, min)':>28}")
    for name, t in times.items():
        print(f"  {name:<16}{fmt_spread(t)}   {ratio_columns(t, times['default'])}")


def trainer_layout() -> str:
    """make_step's variant for the layout a job trains in (``trainer.channels_last``)."""
    return "channels_last" if option_config("trainer/default").channels_last else "default"


def section_loss(args, device: torch.device) -> None:
    layout = args.layout or trainer_layout()
    trained = " (the trainer's)" if layout == trainer_layout() else ""
    print(
        "\n(3) histogram-loss step vs pixel-L1 step: target histogram per tile as trained,"
        f" {layout} layout{trained}"
    )
    grid = [(b, s) for b in (50, 100, 200) for s in (50.0, 100.0, 200.0)]
    if args.quick:
        grid = [(50, 100.0), (200, 100.0)]
    steps = {"pixel L1": make_step(torch.nn.L1Loss(), device, layout)}
    for per_channel in (False, True):
        for bins, sigma in grid:
            mode = "channel" if per_channel else "image"
            criterion = build_option(
                "loss/histogram", bins=bins, sigma=sigma, per_channel=per_channel
            )
            steps[f"per {mode} {bins:>3} {sigma:>3.0f}"] = make_step(criterion, device, layout)
    steps["per image 100 100, target/step"] = make_step(
        build_option("loss/histogram"), device, layout, per_tile=False
    )
    times, extra = paired(steps, "pixel L1", args.pairs)
    print(
        f"  {'loss bins sigma':<31}{'ms min':>8}{'median':>8}{'max':>8}"
        f"{'vs L1 (median, min)':>23}{'paired':>9}{'95% CI':>16}"
    )
    base = statistics.median(times["pixel L1"])
    worst, worst_high = 0.0, 0.0
    for name, t in times.items():
        line = f"  {name:<31}{fmt_spread(t)}   {ratio_columns(t, times['pixel L1'])}"
        if name not in extra:
            print(f"{line} {1.0:7.3f}x")
            continue
        cost = 1.0 + statistics.median(extra[name]) / base
        low, high = (1.0 + e / base for e in median_interval(extra[name]))
        print(f"{line} {cost:7.3f}x   {low:.3f}-{high:.3f}")
        if "target/step" not in name:
            worst, worst_high = max(worst, cost), max(worst_high, high)
    verdict = "ok" if worst <= 1.05 else "MISSED"
    within = "every" if worst_high <= 1.05 else "not every"
    print(
        f"  worst per-tile histogram step (paired): {worst:.3f}x (target <= 1.05x) {verdict};\n"
        f"  highest upper 95% bound {worst_high:.3f}x: {within} setting's interval ends within"
        " 1.05x\n"
        "  paired: 1 + median(step - the pixel-L1 step just before it) / median(pixel-L1 step),"
        f"\n  over {args.pairs} pairs; 95% CI: of that median, distribution-free"
    )


def paired(
    steps: dict[str, Callable[[], None]], base: str, rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Seconds of every timed step, and of every step minus the ``base`` step run just before
    it. Each round runs base, A, base, B, ...: the settings differ by a few percent, about as
    much as this machine's speed drifts in a minute, and a difference of two adjacent steps
    keeps only the drift of a quarter of a second."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    extra: dict[str, list[float]] = {name: [] for name in steps if name != base}
    for _ in range(rounds):
        for name in extra:
            before = timed(steps[base], CLOCK)
            t = timed(steps[name], CLOCK)
            times[base].append(before)
            times[name].append(t)
            extra[name].append(t - before)
    return times, extra


def section_breakdown(args, device: torch.device) -> None:
    layout = args.layout or trainer_layout()
    print(f"\n(5) where a step's time goes, ms (median of {args.steps} steps, {layout} layout)")
    settings = {"pixel L1": torch.nn.L1Loss()}
    for per_channel, bins, sigma in ((False, 200, 200.0), (True, 200, 200.0), (True, 50, 100.0)):
        name = f"per {'channel' if per_channel else 'image'} {bins} {sigma:.0f}"
        settings[name] = build_option(
            "loss/histogram", bins=bins, sigma=sigma, per_channel=per_channel
        )
    steps = {name: timed_parts(c, device, layout) for name, c in settings.items()}
    parts: dict[str, list[dict[str, float]]] = {name: [] for name in steps}
    for _ in range(args.steps):
        for name, step in steps.items():
            parts[name].append(step())
    fields = list(parts["pixel L1"][0])
    print(f"  {'loss':<24}" + "".join(f"{f:>11}" for f in fields))
    for name, rows in parts.items():
        medians = [statistics.median(r[f] for r in rows) * 1e3 for f in fields]
        print(f"  {name:<24}" + "".join(f"{m:>11.2f}" for m in medians))
    print("  loss bwd: from backward() to the gradient reaching the decoder's output (a hook)")


def timed_parts(
    criterion: torch.nn.Module, device: torch.device, layout: str
) -> Callable[[], dict[str, float]]:
    """A training step as make_step's, returning the seconds of each part of it."""
    torch.manual_seed(0)
    model = build_option("model/conv_ae").to(device)
    prepare_model(model, layout == "channels_last")
    encoder, decoder = model.encoder, model.decoder
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    tiles, x = tile_batch(device)
    x = prepare_batch(x, layout == "channels_last")
    criterion = criterion.to(device)
    per_tile = isinstance(criterion, HistogramLoss)
    loss_fn = (
        per_tile_criterion(criterion, tiles, device)(torch.arange(BATCH)) if per_tile else criterion
    )
    clock = CLOCK

    def step() -> dict[str, float]:
        reached: list[float] = []
        t0 = clock()
        code = encoder(x)
        out = decoder(code)
        sync(device)
        t1 = clock()
        out.register_hook(lambda grad: reached.append(clock()) or None)
        loss = loss_fn(out, x) + 1e-4 * sum(code_regularizer(code))
        sync(device)
        t2 = clock()
        optimizer.zero_grad(set_to_none=True)
        t3 = clock()
        loss.backward()
        sync(device)
        t4 = clock()
        optimizer.step()
        sync(device)
        t5 = clock()
        return {
            "model fwd": t1 - t0,
            "loss fwd": t2 - t1,
            "loss bwd": reached[0] - t3,
            "model bwd": t4 - reached[0],
            "optimizer": t5 - t4,
            "step": t5 - t0,
        }

    for _ in range(2):
        step()
    return step


def bare_loop(tiles: torch.Tensor, inputs: int, device: torch.device, channels_last: bool) -> float:
    """Images/s of the plainest loop over the same model, data and loss as the trainer, with
    the trainer's layout and its per-tile target histograms (histae.build.build_job)."""
    torch.manual_seed(0)
    model = prepare_model(build_option("model/conv_ae").to(device), channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    criterion = build_option("loss/histogram", bins=100, sigma=100.0).to(device)
    criterion_for = per_tile_criterion(criterion, tiles, device)
    sync(device)
    start = time.perf_counter()
    seen = 0
    while seen < inputs:
        for i in range(0, len(tiles) - BATCH + 1, BATCH):
            x = prepare_batch(tiles[i : i + BATCH].to(device).float() / 255, channels_last)
            loss_fn = criterion_for(torch.arange(i, i + BATCH))
            code = model.encoder(x)
            loss = loss_fn(model.decoder(code), x) + 1e-4 * sum(code_regularizer(code))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(x)
            if seen >= inputs:
                break
    sync(device)
    return seen / (time.perf_counter() - start)


def section_trainer(args, device: torch.device) -> None:
    print("\n(4) histae trainer vs a bare loop (histogram bins=100, batch 64, per-tile targets)")
    register()  # the config groups' schemas (the other sections' build_option does it too)
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                f"trainer.max_inputs={args.inputs}",
                f"trainer.val_every_inputs={10 * args.inputs}",
                "trainer.save_checkpoint=false",
                f"trainer.device={device}",
            ],
        )
    tiles = torch.from_numpy(instantiate(cfg.data).train)
    rates_trainer, rates_bare = [], []
    for _ in range(args.trainer_runs):
        with tempfile.TemporaryDirectory() as job_dir:
            summary = train(cfg, job_dir)
        rates_trainer.append(summary["inputs"] / summary["wall_time"])
        rates_bare.append(bare_loop(tiles, args.inputs, device, cfg.trainer.channels_last))
    for name, rates in (("bare loop", rates_bare), ("histae trainer", rates_trainer)):
        print(f"  {name:<16} img/s min/median/max {fmt_spread(rates, 1.0)}")
    med = statistics.median(rates_trainer) / statistics.median(rates_bare)
    best = max(rates_trainer) / max(rates_bare)
    verdict = "ok" if med >= 0.98 else "MISSED"
    print(
        f"  trainer / bare: {med:.3f}x (medians), {best:.3f}x (best runs); target >= 0.98x {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=18, help="timed steps per configuration")
    parser.add_argument(
        "--pairs", type=int, default=40, help="section 3: (pixel-L1, histogram) step pairs"
    )
    parser.add_argument("--inputs", type=int, default=12800, help="images per trainer run")
    parser.add_argument("--trainer-runs", type=int, default=5, help="trainer/bare-loop pairs")
    parser.add_argument("--quick", action="store_true", help="2 histogram settings, fewer steps")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(model)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="time steps by wall clock, or by this process's CPU time (robust to other "
        "processes' load with --threads 1) in sections 1-3",
    )
    parser.add_argument(
        "--sections", default="12345", help="which sections to run, e.g. 3 or 124 (default all)"
    )
    parser.add_argument(
        "--layout",
        choices=["default", "channels_last"],
        help="section 3's layout (default: the trainer's, trainer.channels_last)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    global CLOCK
    CLOCK = CLOCKS[args.clock]
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.steps, args.inputs = min(args.steps, 6), min(args.inputs, 3200)
        args.pairs = min(args.pairs, 6)
        args.trainer_runs = 1
    watch = LoadWatch()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device} ({name}),"
        f" {args.clock} clock"
    )
    if "1" in args.sections or "2" in args.sections:
        section_model(args, device)  # (1) and (2) together
    if "3" in args.sections:
        section_loss(args, device)
    if "4" in args.sections:
        section_trainer(args, device)
    if "5" in args.sections:
        section_breakdown(args, device)
    print()
    print(watch.verdict())


if __name__ == "__main__":
    main()
