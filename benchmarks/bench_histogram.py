"""soft_histogram against the dense reference formula on the reference workload.

    python benchmarks/bench_histogram.py [--reps 5] [--quick] [--device cpu|cuda]

x = rand(64, 3, 32, 32) float32, one histogram per image (64 x 3072 values) or per channel
(192 x 1024), bins 50/100/200, sigma 50/100/200, on 2 threads. For each case: the median time
of one forward + backward (d/dx of sum(hist * w)), the speed ratio, the peak extra memory and
the max abs error of the float32 histogram against a float64 evaluation, for the reference
formula and for soft_histogram. Reference and ours run interleaved in this process, so machine
noise hits both alike. Times are min / median / max; the load average is printed before and
after, with a warning when it exceeded the core count (figures then not comparable). Targets: >= 50x at bins=200, sigma=100 and >= 20x at bins=50; extra
memory < 32 MiB at every bins.

Peak extra memory is the high-water mark of bytes held by torch's CPU allocator during one
forward + backward, above what was allocated before it (profiler memory events, which count
every allocation of every op). Ours is measured cold, its caches emptied first: the kernel
matrices and the per-thread scratch it keeps between calls count in full. A cross-check in fresh subprocesses reads the process's RSS
high-water mark (VmHWM) before and after the op's first call, after a trivial backward has
started the thread pools; plan building included. Loading the fused CPU loops' code (numba
and its compiled functions, once per process) is measured apart, by a tiny call first. The
last table times ours with and without the fused loops (``FUSED_CPU``), interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

import torch
from _timing import LoadWatch, spread
from torch.profiler import ProfilerActivity, profile

from histae import _histogram_engine as engine
from histae._histogram_engine import SCRATCH, build_plan, make_plan
from histae.histogram import soft_histogram, soft_histogram_reference

MIB = 2**20


def workload(per_channel: bool, bins: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(64, 3, 32, 32, generator=g).flatten(2 if per_channel else 1)
    w = torch.randn(*x.shape[:-1], bins, generator=g)
    return x, w


def step(fn, x: torch.Tensor, w: torch.Tensor, bins: int, sigma: float) -> None:
    """One forward + backward of sum(hist * w)."""
    xg = x.detach().requires_grad_()
    (fn(xg, bins, 0.0, 1.0, sigma) * w).sum().backward()
    if x.is_cuda:
        torch.cuda.synchronize(x.device)


def ours(x: torch.Tensor, bins: int, lo: float, hi: float, sigma: float) -> torch.Tensor:
    return soft_histogram(x, bins, lo, hi, sigma)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def fmt(times: list[float], digits: int) -> str:
    """min/median/max in ms, compact."""
    lo, mid, hi = spread(times)
    return f"{lo:.{digits}f}/{mid:.{digits}f}/{hi:.{digits}f}"


def peak_allocated(fn, *args) -> float:
    """MiB: high-water mark of torch's CPU allocator during fn(*args), above its start."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn(*args)
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        prof.export_chrome_trace(f.name)
        with open(f.name) as trace:
            events = json.load(trace)["traceEvents"]
    memory = sorted(
        (e for e in events if e.get("name") == "[memory]" and e["args"].get("Device Type") == 0),
        key=lambda e: e["ts"],
    )
    if not memory:
        return 0.0
    start = memory[0]["args"]["Total Allocated"] - memory[0]["args"]["Bytes"]
    return (max(e["args"]["Total Allocated"] for e in memory) - start) / MIB


def max_error(x: torch.Tensor, bins: int, sigma: float) -> tuple[float, float]:
    """Max |float32 result - float64 evaluation| of the reference formula and of ours."""
    ref_err = ours_err = 0.0
    for rows in torch.split(torch.arange(x.shape[0]), 16):  # float64 truth in slices
        xs = x[rows]
        truth = soft_histogram_reference(xs.double(), bins, 0.0, 1.0, sigma)
        ref = soft_histogram_reference(xs, bins, 0.0, 1.0, sigma).double()
        ref_err = max(ref_err, (ref - truth).abs().max().item())
        ours_err = max(
            ours_err,
            (soft_histogram(xs, bins, 0.0, 1.0, sigma).double() - truth).abs().max().item(),
        )
    return ref_err, ours_err


def _peak_rss_kib() -> int:
    """KiB: this process's RSS high-water mark. VmHWM belongs to the address space, which
    execve replaces; ru_maxrss would carry over the parent's peak into a fresh child."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))


def rss_delta(which: str, per_channel: bool, bins: int, sigma: float) -> tuple[float, float]:
    """MiB of RSS high-water growth in a fresh process: of loading ours' fused CPU loops (a
    tiny call of another plan: numba and the compiled code, once per process; 0 for the
    reference), then of one cold forward + backward."""
    here = os.path.dirname(os.path.abspath(__file__))
    fn = "b.ours" if which == "ours" else "b.soft_histogram_reference"
    code = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {here!r})
        import bench_histogram as b
        torch.set_num_threads(2)
        x, w = b.workload({per_channel!r}, {bins})
        b.step(lambda t, *a: t[..., :1].expand(*w.shape) * 1.0, x, w, 0, 0.0)  # start threads
        start = b._peak_rss_kib()
        if {which == "ours"!r}:
            b.step(b.ours, x[:1, :8], w[:1, :3], 3, 10.0)
        before = b._peak_rss_kib()
        b.step({fn}, x, w, {bins}, {sigma!r})
        print(before - start, b._peak_rss_kib() - before)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    once, call = out.stdout.split()[-2:]
    return int(once) / 1024, int(call) / 1024


def fused_vs_eager(device: torch.device, reps: int) -> None:
    """Ours with the moments method's fused CPU loops against the eager torch path (the one
    CUDA runs), interleaved, at the targets' settings."""
    print("\nFused CPU loops vs the eager path (CUDA's), fwd+bwd ms min/median/max:")
    for per_channel in (False, True):
        for bins in (200, 50):
            x, w = workload(per_channel, bins)
            times: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(reps + 1):
                for fused in (True, False):
                    engine.FUSED_CPU = fused
                    times[fused] += [timed(step, ours, x, w, bins, 100.0) for _ in range(5)]
            engine.FUSED_CPU = True
            fused_t, eager_t = times[True][5:], times[False][5:]  # the first round warms up
            mode = "per channel" if per_channel else "per image"
            print(
                f"  {mode:11s} bins={bins:3d} sigma=100: fused {fmt(fused_t, 2)},"
                f" eager {fmt(eager_t, 2)}:"
                f" {statistics.median(eager_t) / statistics.median(fused_t):.2f}x"
            )


def cuda_peak(device: torch.device, fn, *args) -> float:
    """MiB: CUDA allocator high-water mark during fn(*args), above what it held before."""
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn(*args)
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / MIB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="reference runs per case")
    parser.add_argument("--quick", action="store_true", help="bins=200/50, sigma=100 only")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(2)
    watch = LoadWatch()
    grid = [(b, s) for b in (50, 100, 200) for s in (50.0, 100.0, 200.0)]
    if args.quick:
        grid = [(200, 100.0), (50, 100.0)]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "2 CPU threads"
    print(f"torch {torch.__version__}, {name}; fwd+bwd of (64, 3, 32, 32); ms min/median/max")
    header = (
        f"{'mode':11s} {'bins':>4s} {'sigma':>5s} {'method':>11s} | {'ref ms':>17s}"
        f" {'ours ms':>17s} {'speedup':>7s} | {'ref MiB':>7s} {'ours MiB':>8s} |"
        f" {'ref err':>8s} {'ours err':>8s}"
    )
    print(header)
    print("-" * len(header))
    results = {}
    for per_channel in (False, True):
        for bins, sigma in grid:
            x, w = (t.to(device) for t in workload(per_channel, bins))
            plan = make_plan(bins, 0.0, 1.0, sigma, torch.float32, "auto", device)
            method = f"{type(plan).__name__[:-4].lower()}" + (
                f" p={plan.terms}" if hasattr(plan, "terms") else f" w={plan.window}"
            )
            step(ours, x, w, bins, sigma)  # warm: builds and caches the plan
            step(soft_histogram_reference, x, w, bins, sigma)
            ref_t, ours_t = [], []
            for _ in range(args.reps):  # interleaved: 1 reference run, 5 of ours
                ref_t.append(timed(step, soft_histogram_reference, x, w, bins, sigma))
                ours_t += [timed(step, ours, x, w, bins, sigma) for _ in range(5)]
            speedup = statistics.median(ref_t) / statistics.median(ours_t)
            if device.type == "cuda":
                ref_mib = cuda_peak(device, step, soft_histogram_reference, x, w, bins, sigma)
                ours_mib = cuda_peak(device, step, ours, x, w, bins, sigma)
            else:
                ref_mib = peak_allocated(step, soft_histogram_reference, x, w, bins, sigma)
                build_plan.cache_clear()  # cold: plan, kernel matrices and scratch
                SCRATCH.buffers.clear()
                ours_mib = peak_allocated(step, ours, x, w, bins, sigma)
            ref_err, ours_err = max_error(x.cpu(), bins, sigma)
            mode = "per channel" if per_channel else "per image"
            results[mode, bins, sigma] = speedup, ours_mib
            print(
                f"{mode:11s} {bins:4d} {sigma:5.0f} {method:>11s} | {fmt(ref_t, 1):>17s}"
                f" {fmt(ours_t, 2):>17s} {speedup:6.0f}x | {ref_mib:7.0f} {ours_mib:8.1f} |"
                f" {ref_err:8.1e} {ours_err:8.1e}",
                flush=True,
            )
    if device.type == "cpu":
        print("\nRSS high-water growth of one cold call in a fresh process (MiB):")
        for bins in (200, 50):
            _, ref_rss = rss_delta("reference", False, bins, 100.0)
            once, ours_rss = rss_delta("ours", False, bins, 100.0)
            print(
                f"  per image, bins={bins}, sigma=100: reference {ref_rss:.0f}, ours {ours_rss:.1f}"
                f" (+ {once:.0f} once per process: the fused loops' numba code)"
            )
        fused_vs_eager(device, args.reps)
    print("\nTargets (speedups of medians):")
    for mode in ("per image", "per channel"):
        for bins, want in ((200, 50), (50, 20)):
            if (mode, bins, 100.0) in results:
                got = results[mode, bins, 100.0][0]
                verdict = "ok" if got >= want else "MISSED"
                print(f"  {mode}, bins={bins}, sigma=100: {got:.0f}x (target >= {want}x) {verdict}")
    worst = max(m for _, m in results.values())
    print(
        f"  peak extra memory, worst case: {worst:.1f} MiB (target < 32) "
        f"{'ok' if worst < 32 else 'MISSED'}"
    )
    print()
    print(watch.verdict())


if __name__ == "__main__":
    sys.exit(main())
