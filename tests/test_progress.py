"""The terminal: the bar in a real pseudo-terminal, the off-TTY lines, the sweep notice, job k of
N with the sweep's ETA, the rerun command."""

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
from histae.progress import (
    Progress,
    SweepProgress,
    format_duration,
    progress_line,
    rerun_command,
    sweep_eta,
    total_images,
)
from hydra_plugins.histae_sweeper.histae_sweeper import (
    CPU_IMAGES_PER_SECOND_BY_LOSS,
    JOB_SECONDS,
    SWEEP_SECONDS,
    VALIDATION_SECONDS,
    JobEstimate,
    cpu_rate,
    sweep_notice,
    sweep_seconds,
)

HISTOGRAM = "histae.loss.HistogramLoss"

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


@pytest.mark.slow
def test_sweep_progress_in_a_real_terminal(tmp_path: Path) -> None:
    """On a TTY too, each job of a sweep is announced as it starts and ends, between the bars."""
    sweep = tmp_path / "sweep"
    code, text = run_in_pty(
        [
            sys.executable,
            "-m",
            "histae",
            "-m",
            "+experiment=smoke",
            "trainer.max_inputs=32",
            "loss.bins=50,100",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=ROOT,
    )
    assert code == 0, text[-2000:]
    lines = [s for s in re.split(r"[\r\n]", text) if s.strip()]
    said = [s for s in lines if re.search(r"jobs? \d", s)]
    assert [re.search(r"(job \d of 2 \w+)", s).group(1) for s in said] == [
        "job 1 of 2 starts",
        "job 1 of 2 done",
        "job 2 of 2 starts",
        "job 2 of 2 done",
    ], said
    assert not [s for s in said if BAR.search(s)]  # never glued onto a bar
    assert "sweep ETA" in said[2] and "all 2 jobs ended in" in said[3]


def test_sweep_notice() -> None:
    # 500,032 images at 505 img/s, 42 validations: 2 + 42 x 1.3 + 990.2 s a job, plus 8 s.
    histloss = JobEstimate(500_000, 500_032, 505.0, 42)
    assert sweep_notice("histloss", [histloss] * 9, "rpg_tiles", on_cpu=True) == (
        "histloss: 9 jobs x 500,000 images on data=rpg_tiles; on a CPU about 2h37m "
        "(about 17 min a job at ~505 img/s, with its setup and validations)"
    )
    jobs = [JobEstimate(48_000, 48_000, 505.0, 4), JobEstimate(96_000, 96_000, 505.0, 8)]
    assert sweep_notice("sweep", jobs, "procedural", on_cpu=False) == (
        "sweep: 2 jobs, 144,000 images in all on data=procedural"
    )
    # Four tiny jobs: their fixed costs are the whole estimate, never "under a minute" blindly.
    tiny = JobEstimate(192, 192, 505.0, 2)
    assert sweep_notice("sweep", [tiny] * 4, "procedural", on_cpu=True) == (
        "sweep: 4 jobs x 192 images on data=procedural; "
        "on a CPU about 30 s (about 5 s a job at ~505 img/s, with its setup and validations)"
    )
    # Jobs at different rates: the total adds each job's own time.
    mixed = [JobEstimate(36_000, 36_000, 400.0, 3), JobEstimate(36_000, 36_000, 100.0, 3)]
    assert sweep_notice("mixed", mixed, "procedural", True) == (
        "mixed: 2 jobs x 36,000 images on data=procedural; on a CPU about 8 min "
        "(100-400 img/s by loss, with each job's setup and validations)"
    )


def test_the_opening_estimate_counts_each_jobs_fixed_costs() -> None:
    """The estimate's arithmetic from given rates: the sweep's start-up and report once, per job
    its setup, its validations and its steps (the headline sweep at 3,000 images)."""
    job = JobEstimate(3000, 3008, 505.0, 1)
    assert job.seconds() == pytest.approx(JOB_SECONDS + VALIDATION_SECONDS + 3008 / 505)
    assert sweep_seconds([job] * 9) == pytest.approx(SWEEP_SECONDS + 9 * job.seconds())
    assert sweep_seconds([]) == 0.0
    # At 3,000 images the fixed costs are about half of each job: leaving them out (the old
    # estimate, images / rate alone) said "under a minute".
    assert 60 < sweep_seconds([job] * 9) < 120


def test_job_estimate_from_a_config(compose_cfg) -> None:
    cfg = compose_cfg("trainer.max_inputs=3000", "trainer.batch_size=64", tiny=False)
    job = JobEstimate.of(cfg)
    assert job == JobEstimate(3000, 3008, CPU_IMAGES_PER_SECOND_BY_LOSS[HISTOGRAM], 1)
    smoke = JobEstimate.of(compose_cfg())  # 192 images, validated at 96 and 192
    assert (smoke.images, smoke.validations) == (192, 2)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_sweep_eta_scales_the_time_taken_by_the_work_left() -> None:
    assert sweep_eta(60.0, [10.0, 10.0], [10.0, 20.0]) == pytest.approx(90.0)
    assert sweep_eta(60.0, [], [10.0]) is None
    assert sweep_eta(60.0, [10.0], []) == 0.0


def test_sweep_progress_says_job_k_of_n_and_the_eta_from_the_jobs_done() -> None:
    clock = Clock()
    progress = SweepProgress(["a", "b", "c", "d"], [10.0] * 4, estimate=48.0, clock=clock)
    # Nothing has ended yet: the opening estimate.
    assert progress.started([0]) == "job 1 of 4 starts: a; sweep ETA 48s (estimated)"
    clock.now = 30.0  # three times slower than estimated
    assert progress.finished([0], ["done"]) == (
        "job 1 of 4 done in 30s: a; 1 of 4 jobs ended in 30s, sweep ETA 1m30s"
    )
    assert progress.started([1]) == "job 2 of 4 starts: b; sweep ETA 1m30s"
    clock.now = 40.0
    assert progress.finished([1], ["failed"]) == (
        "job 2 of 4 failed in 10s: b; 2 of 4 jobs ended in 40s, sweep ETA 40s"
    )
    progress.started([2, 3])  # a parallel launcher's batch
    clock.now = 60.0
    assert progress.finished([2, 3], ["done", "diverged"]) == (
        "jobs 3-4 of 4 ended in 20s (1 done, 1 diverged); all 4 jobs ended in 1m00s"
    )


def test_skipped_jobs_leave_the_eta_alone() -> None:
    """A rerun skips the jobs already done in no time: they must not make the rest look quick."""
    clock = Clock()
    progress = SweepProgress(["a", "b", "c"], [10.0] * 3, estimate=38.0, clock=clock)
    progress.started([0])
    clock.now = 0.1
    line = progress.finished([0], ["skipped"])
    assert line.startswith("job 1 of 3 skipped in 0s: a; 1 of 3 jobs ended")
    assert line.endswith("sweep ETA 25s (estimated)")  # 38 s x 20 / 30 of the work
    progress.started([1])
    clock.now = 20.1
    assert progress.finished([1], ["done"]).endswith("sweep ETA 20s")  # 20 s a job, one left
    # Without an opening estimate (a GPU) and nothing measured: no made-up number.
    gpu = SweepProgress(["a", "b"], [1.0, 1.0])
    assert gpu.started([0]) == "job 1 of 2 starts: a; sweep ETA ?"


def test_rerun_command_replaces_the_folder_and_quotes() -> None:
    argv = ["/x/histae/__main__.py", "-m", "loss.bins=5,6", "hydra.sweep.dir=out/s"]
    assert rerun_command("hydra.sweep.dir", "/o/s", argv) == (
        "python -m histae -m loss.bins=5,6 hydra.sweep.dir=/o/s"
    )
    assert rerun_command("hydra.run.dir", "/o/r", ["histae", "data.root=my tiles"]) == (
        "histae 'data.root=my tiles' hydra.run.dir=/o/r"
    )
    relative = rerun_command("hydra.run.dir", "outputs/runs/x", ["histae"])
    assert relative == f"histae hydra.run.dir={Path('outputs/runs/x').resolve()}"


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


@pytest.mark.slow  # a 9-job sweep through the launcher (each job stops at its data)
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
    notice = next(line for line in out.splitlines() if "histloss: 9 jobs x 500,000" in line)
    assert "images on data=procedural; on a CPU about " in notice
    # Each job is announced as it starts and ends, after the notice; the first ETA is the
    # opening estimate, the later ones come from the jobs ended.
    first = next(line for line in out.splitlines() if "job 1 of 9 starts: " in line)
    assert out.index(notice) < out.index(first)
    assert first.endswith("(estimated)")
    assert "job 9 of 9 failed in " in out and "all 9 jobs ended in " in out
    assert "Launching 9 jobs" not in out and "Launching 1 jobs" not in out  # said once, by us
    recorded = OmegaConf.load(sweep_dir / "multirun.yaml").hydra.sweeper.params
    assert OmegaConf.to_container(recorded) == {
        "loss.bins": "100,200,50",
        "loss.sigma": "100,200,50",
    }
