"""Running histae from a test: in this process (Hydra's real command line) or as a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

from histae.jobdir import read_metrics
from tests.helpers.paths import ROOT

# A job of a second or two: a few hundred tiles, a small network (conf/experiment/smoke.yaml).
TINY = ["+experiment=smoke"]
# smoke.yaml sets data.count for the embedded tiles; another data source has no such key.
NO_COUNT = "~data.count"


def run_histae(*args: str) -> int:
    """Run ``python -m histae ARGS`` in this process (Hydra's real command line); the exit status."""
    from histae.app import main

    GlobalHydra.instance().clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["histae", *args])
        try:
            main()
        except SystemExit as exit_:
            return int(exit_.code or 0)
        finally:
            GlobalHydra.instance().clear()
    return 0


def histae(*args: str, **kwargs) -> subprocess.Popen:
    """``python -m histae ARGS`` as a subprocess in the repository (stderr piped, as text)."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(kwargs.pop("env", {}))
    return subprocess.Popen(
        [sys.executable, "-m", "histae", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def wait_for(predicate: Callable[[], bool], proc: subprocess.Popen, timeout: float = 300.0) -> None:
    """Poll ``predicate`` until true; fail if the process ends or the time runs out first."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"job ended before the kill point: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the job never reached the kill point")
        time.sleep(0.01)


def train_rows_past(run_dir: Path, inputs: int) -> bool:
    """Whether metrics.csv has a train row past ``inputs`` images."""
    try:
        rows = read_metrics(run_dir / "metrics.csv")
    except (OSError, ValueError):
        return False
    return any(r["split"] == "train" and r["inputs"] > inputs for r in rows)


def kill_past_then_rerun(job: Sequence[str], run_dir: Path, inputs: int) -> None:
    """Run ``python -m histae JOB``, SIGKILL it once metrics.csv has a train row past ``inputs``
    images, then rerun the same command to its end (it must exit 0)."""
    proc = histae(*job)
    wait_for(lambda: train_rows_past(run_dir, inputs), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert histae(*job).wait() == 0
