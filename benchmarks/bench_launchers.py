"""A sweep's wall time with the joblib launcher (n_jobs=2) against Hydra's basic launcher.

    python benchmarks/bench_launchers.py [--repeats 3] [--jobs 4] [--inputs 480]

Runs the same tiny sweep (``--jobs`` seeds of ``+experiment=smoke`` with ``--inputs`` images
each) as a whole ``python -m histae -m ...`` command, alternately with the basic launcher (jobs
one after another, each on all cores) and with ``hydra/launcher=joblib hydra.launcher.n_jobs=2``
(two jobs at a time, each on cores/2 threads). Prints every run's wall time with the 1-minute load
average before and after it, then min/median/max per launcher and the ratio of the medians
(joblib / basic: below 1 means joblib is faster). Interleaving makes machine noise hit both alike;
a load above the core count means other work shared the machine and the numbers are rough.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAUNCHERS = {
    "basic": [],
    "joblib n_jobs=2": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
}


def sweep_command(launcher: list[str], jobs: int, inputs: int, sweep_dir: Path) -> list[str]:
    seeds = ",".join(str(s) for s in range(1, jobs + 1))
    return [
        sys.executable,
        "-m",
        "histae",
        "-m",
        "+experiment=smoke",
        f"trainer.max_inputs={inputs}",
        f"trainer.val_every_inputs={inputs}",
        f"trainer.seed={seeds}",
        *launcher,
        f"hydra.sweep.dir={sweep_dir}",
    ]


def run_once(command: list[str]) -> float:
    """Wall time in seconds of one whole sweep command (process start to exit)."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"sweep failed ({' '.join(command[3:])}): {done.stderr.strip()[-500:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per launcher (interleaved)")
    parser.add_argument("--jobs", type=int, default=4, help="jobs in the sweep (seeds)")
    parser.add_argument("--inputs", type=int, default=480, help="training images per job")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(
        f"{args.jobs}-job sweep, {args.inputs} images per job, {cores} cores, "
        f"{args.repeats} interleaved runs per launcher"
    )
    times: dict[str, list[float]] = {name: [] for name in LAUNCHERS}
    busiest = 0.0
    with tempfile.TemporaryDirectory(prefix="histae-bench-") as tmp:
        for repeat in range(args.repeats):
            for name, launcher in LAUNCHERS.items():
                sweep_dir = Path(tmp) / f"{name.split()[0]}-{repeat}"
                before = os.getloadavg()[0]
                wall = run_once(sweep_command(launcher, args.jobs, args.inputs, sweep_dir))
                after = os.getloadavg()[0]
                busiest = max(busiest, before, after)
                times[name].append(wall)
                print(
                    f"  {name:<16} {wall:7.1f} s   load {before:5.2f} -> {after:5.2f}", flush=True
                )
    print()
    print(f"{'launcher':<16} {'min s':>7} {'median s':>9} {'max s':>7}")
    for name, walls in times.items():
        print(f"{name:<16} {min(walls):7.1f} {statistics.median(walls):9.1f} {max(walls):7.1f}")
    basic, joblib = (statistics.median(times[name]) for name in LAUNCHERS)
    print(f"\njoblib n_jobs=2 / basic (median wall time): {joblib / basic:.2f}x")
    if busiest > cores:
        print(
            f"the 1-minute load reached {busiest:.1f} on {cores} cores: other work shared the "
            "machine, so these times are rough"
        )


if __name__ == "__main__":
    main()
