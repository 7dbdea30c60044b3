"""The terminal: the bar in a real pseudo-terminal, the off-TTY lines, the sweep notice."""

from __future__ import annotations

import fcntl
import io
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from histae import progress as progress_module
from histae.progress import Progress, format_duration, progress_line, total_images
from hydra_plugins.histae_sweeper.histae_sweeper import (
    CPU_IMAGES_PER_SECOND_BY_LOSS,
    cpu_rate,
    sweep_notice,
)

ROOT = Path(__file__).resolve().parents[1]


def test_total_images_counts_whole_batches() -> None:
    assert total_images(3000, 64) == 3008  # 47 batches: the loop stops after reaching 3,000
    assert total_images(192, 16) == 192
    assert total_images(1, 64) == 64
    with pytest.raises(ValueError, match=r"trainer\.batch_size must be >= 1, got 0"):
        total_images(100, 0)


def test_format_duration() -> None:
    assert format_duration(0) == "0s"
    assert format_duration(45) == "45s"
    assert format_duration(88) == "1m28s"
    assert format_duration(7500) == "2h05m"


def test_progress_line() -> None:
    # 36,000 images left at 410 img/s: 87.8 s
    assert progress_line(12_000, 48_000, 410.0, 24.3) == (
        "12,000/48,000 images, 410 img/s, ETA 1m28s, loss 24.3"
    )
    assert progress_line(0, 48_000, None, None) == "0/48,000 images, ? img/s, ETA ?"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_off_tty_lines_every_tenth_with_this_runs_rate(monkeypatch, caplog) -> None:
    clock = FakeClock()
    monkeypatch.setattr(progress_module, "perf_counter", clock)
    # A resumed job: 500 of 1,000 images were seen by an earlier run.
    with (
        caplog.at_level(logging.INFO, logger="histae"),
        Progress(1_000, initial=500, name="job", interactive=False) as p,
    ):
        assert p.bar is None
        p.update(0, loss=24.31)  # a loss without images: kept, no line
        for _ in range(10):
            clock.now += 1.0
            p.update(50)  # 50 img/s in this run
    lines = [r.getMessage() for r in caplog.records]
    # A line each 100 images (a tenth of the job); the rate counts this run's images only.
    assert lines == [
        "[job] 600/1,000 images, 50 img/s, ETA 8s, loss 24.3",
        "[job] 700/1,000 images, 50 img/s, ETA 6s, loss 24.3",
        "[job] 800/1,000 images, 50 img/s, ETA 4s, loss 24.3",
        "[job] 900/1,000 images, 50 img/s, ETA 2s, loss 24.3",
        "[job] 1,000/1,000 images, 50 img/s, ETA 0s, loss 24.3",
    ]


def test_off_tty_line_after_a_minute_and_at_close(monkeypatch, caplog) -> None:
    clock = FakeClock()
    monkeypatch.setattr(progress_module, "perf_counter", clock)
    with caplog.at_level(logging.INFO, logger="histae"):
        p = Progress(1_000_000, name="slow", interactive=False)
        clock.now += 30.0
        p.update(10)  # neither a tenth nor a minute
        clock.now += 31.0
        p.update(10)  # a minute since the start
        clock.now += 1.0
        p.update(10)
        p.close()  # the last 10 images get their line
        p.close()  # closing twice is harmless
    assert [r.getMessage().split(",")[0] for r in caplog.records] == [
        "[slow] 20/1",
        "[slow] 30/1",
    ]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_on_a_terminal_but_lines_in_a_pool_worker(monkeypatch) -> None:
    terminal = FakeTerminal()
    with Progress(64, name="job", file=terminal) as p:
        assert p.interactive and p.bar is not None
        p.update(64, loss=3.0)
    assert "64/64" in terminal.getvalue() and "loss 3" in terminal.getvalue()
    # joblib's workers share the terminal: their bars would overwrite each other
    monkeypatch.setattr(progress_module.multiprocessing, "parent_process", lambda: object())
    with Progress(64, name="job", file=FakeTerminal()) as p:
        assert not p.interactive and p.bar is None


def run_in_pty(args: list[str], cwd: Path, timeout: float = 900.0) -> tuple[int, str]:
    """Run ``args`` with stdin, stdout and stderr on a real 200-column pseudo-terminal; return
    the exit status and everything it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "200"}
    proc = subprocess.Popen(
        args, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env, close_fds=True
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        code = proc.wait()
    return code, b"".join(chunks).decode("utf-8", "replace")


BAR = re.compile(r"\|\s*(\d+)/(\d+) \[")  # tqdm's "...| 48/112 [00:03<00:04, ...]"
LOG = re.compile(r"\[(INFO|WARNING|ERROR)\]|\[histae\]|validation at|parameters,")


@pytest.mark.slow
def test_bar_in_a_real_terminal(tmp_path: Path) -> None:
    """Log lines print above the bar, never on its line; the bar ends at the real total."""
    run_dir = tmp_path / "run"
    code, text = run_in_pty(
        [
            sys.executable,
            "-m",
            "histae",
            "+experiment=smoke",
            "trainer.max_inputs=100",  # 7 batches of 16: 112 images
            "trainer.val_every_inputs=64",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=ROOT,
    )
    assert code == 0, text[-2000:]
    segments = [s for s in re.split(r"[\r\n]", text) if s.strip()]
    bars = [s for s in segments if BAR.search(s)]
    logs = [s for s in segments if LOG.search(s)]
    assert bars, text[-2000:]
    assert any("validation at 64 inputs" in s for s in logs)  # logged while the bar was open
    glued = [s for s in bars if LOG.search(s)]
    assert not glued, glued
    done, total = BAR.search(bars[-1]).groups()
    assert (int(done), int(total)) == (112, 112)
    assert all(int(BAR.search(s).group(2)) == 112 for s in bars)
    assert "img/s" in bars[-1] and "loss " in bars[-1]
    # The run ends with where its results are.
    assert f"results: {run_dir}" in logs[-1]


def test_sweep_notice() -> None:
    assert sweep_notice("histloss", [500_000] * 9, "rpg_tiles", on_cpu=True) == (
        "histloss: 9 jobs x 500,000 images on data=rpg_tiles; "
        "on a CPU about 3h08m (about 21 min a job at ~400 img/s)"
    )
    assert sweep_notice("sweep", [48_000, 96_000], "procedural", on_cpu=False) == (
        "sweep: 2 jobs, 144,000 images in all on data=procedural"
    )
    assert sweep_notice("sweep", [192] * 4, "procedural", on_cpu=True) == (
        "sweep: 4 jobs x 192 images on data=procedural; "
        "on a CPU under a minute (under a minute a job at ~400 img/s)"
    )
    # Jobs at different rates: the total adds each job's own time.
    assert sweep_notice("mixed", [36_000, 36_000], "procedural", True, rates=[400, 100]) == (
        "mixed: 2 jobs x 36,000 images on data=procedural; on a CPU about 8 min (100-400 img/s by loss)"
    )


def test_cpu_rate_by_loss_and_a_composite_at_its_slowest_term(compose_cfg) -> None:
    rates = {o: cpu_rate(compose_cfg(f"loss={o}").loss) for o in ("histogram", "rgbuv", "l1")}
    assert rates["rgbuv"] < rates["histogram"] <= rates["l1"]
    composite = compose_cfg(
        "loss=composite", "+loss@loss.terms.uv.loss=rgbuv", "loss.terms.uv.weight=1"
    )
    assert cpu_rate(composite.loss) == rates["rgbuv"]
    unused = compose_cfg(
        "loss=composite", "+loss@loss.terms.uv.loss=rgbuv", "loss.terms.uv.weight=0"
    )
    assert cpu_rate(unused.loss) == rates["histogram"]


@pytest.mark.parametrize("experiment", ["histloss", "histloss_norm", "histloss_losses"])
def test_cfg_job_shows_the_sweep(experiment: str, run_cli, capsys) -> None:
    assert run_cli(f"+experiment={experiment}", "--cfg", "job") == 0
    out = capsys.readouterr().out
    assert "\nsweep:\n" in out
    assert ("loss.bins: 100,200,50" in out) != (experiment == "histloss_losses")


def test_an_experiment_says_what_it_will_run_before_it_starts(tmp_path: Path, run_cli, capsys):
    """The 9 jobs come from the experiment's top-level ``sweep`` key; multirun.yaml records
    them as they ran. (Every job stops building its data, so nothing trains.)"""
    sweep_dir = tmp_path / "sweep"
    code = run_cli(
        "+experiment=histloss",
        "data=procedural",
        "data.count=1",  # every job fails building: one tile is too few
        "trainer.device=cpu",  # the time estimate is for a CPU
        f"hydra.sweep.dir={sweep_dir}",
    )
    assert code == 1
    out = capsys.readouterr().out
    # Each job estimated at the histogram loss's measured CPU rate.
    rate = CPU_IMAGES_PER_SECOND_BY_LOSS["histae.loss.HistogramLoss"]
    notice = sweep_notice("histloss", [500_000] * 9, "procedural", True, rates=[rate] * 9)
    assert notice.startswith("histloss: 9 jobs x 500,000 images on data=procedural; on a CPU")
    assert notice in out
    assert out.index(notice) < out.index("Launching 9 jobs")
    recorded = OmegaConf.load(sweep_dir / "multirun.yaml").hydra.sweeper.params
    assert OmegaConf.to_container(recorded) == {
        "loss.bins": "100,200,50",
        "loss.sigma": "100,200,50",
    }
