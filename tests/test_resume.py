"""Faults: a job killed with SIGKILL resumes bitwise; finished jobs are skipped; failures isolated."""

from __future__ import annotations

import json
import signal

import pytest
import torch

from histae.atomic import FAULT_ENV
from histae.checkpoint import load_checkpoint
from histae.jobdir import is_stopped, read_metrics, read_status
from tests.helpers import TINY, histae

# Two checkpoints (at 320 and 640 inputs): the kill lands between them.
JOB = [
    *TINY,
    "trainer.max_inputs=640",
    "trainer.val_every_inputs=320",
    "trainer.log_every_inputs=64",
]


@pytest.mark.slow
def test_sigkill_between_checkpoints_then_rerun_is_bitwise_identical(tmp_path) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert histae(*JOB, f"hydra.run.dir={straight}").wait() == 0

    # SIGKILL while metrics.csv is written for the 9th time: the start, the train rows at 64
    # .. 320, the validation at 320, the row at 384, then the row at 448 (in its temp file).
    proc = histae(*JOB, f"hydra.run.dir={killed}", env={FAULT_ENV: "metrics.csv:KILL:9"})
    assert proc.wait() == -signal.SIGKILL
    assert list(killed.glob(".metrics.csv.*.tmp"))  # killed mid-write: the temp file stays
    status = read_status(killed)
    assert status["status"] == "running"
    assert is_stopped(status)  # the report can tell this job was killed, not still running
    checkpoint = load_checkpoint(killed / "checkpoint.pt")
    assert checkpoint["state"]["inputs"] == 320  # the kill came before the second checkpoint
    assert max(r["inputs"] for r in read_metrics(killed / "metrics.csv")) == 384

    assert histae(*JOB, f"hydra.run.dir={killed}").wait() == 0
    assert read_status(killed)["status"] == "done"
    a = load_checkpoint(straight / "checkpoint.pt")
    b = load_checkpoint(killed / "checkpoint.pt")
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    assert (straight / "metrics.csv").read_text() == (killed / "metrics.csv").read_text()
    summary_a = json.loads((straight / "summary.json").read_text())
    summary_b = json.loads((killed / "summary.json").read_text())
    assert summary_a["final"] == summary_b["final"]


@pytest.mark.slow
def test_rerun_of_a_finished_sweep_skips_every_job(run_cli, tmp_path) -> None:
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, "trainer.max_inputs=256", "trainer.seed=0,1", f"hydra.sweep.dir={sweep}"]
    assert run_cli(*args) == 0
    jobs = sorted(p.name for p in sweep.iterdir() if (p / ".hydra").is_dir())  # not report/
    assert jobs == ["seed-0", "seed-1"]
    kept = ("checkpoint.pt", "metrics.csv", "status.json", "summary.json", "samples.npz")

    def written() -> dict[str, tuple[int, bytes]]:
        files = [sweep / j / name for j in jobs for name in kept]
        return {str(f): (f.stat().st_mtime_ns, f.read_bytes()) for f in files}

    before = written()
    assert run_cli(*args) == 0
    # No training step ran: nothing a job writes was rewritten, not even its status.
    assert written() == before


@pytest.mark.slow  # a real sweep of 2 jobs, 4 validations each
def test_diverged_job_stops_keeps_its_checkpoint_and_the_sweep_goes_on(run_cli, tmp_path) -> None:
    sweep = tmp_path / "sweep"
    # A learning rate of 1e12 blows the weights up within a few steps.
    code = run_cli(
        "-m",
        *TINY,
        "loss=mse",
        "optimizer=sgd",
        "optimizer.lr=0.01,1e12",
        "trainer.max_inputs=64",
        "trainer.val_every_inputs=16",  # a checkpoint after the first step, before it diverges
        f"hydra.sweep.dir={sweep}",
    )
    assert code == 3  # diverging is a result, not a crash, but a script can tell
    ok, bad = read_status(sweep / "lr-0.01"), read_status(sweep / "lr-1000000000000.0")
    assert ok["status"] == "done"
    assert bad["status"] == "diverged"
    assert "loss became" in bad["error"] and "last finite loss" in bad["error"]
    assert bad["inputs"] < 64
    checkpoint = load_checkpoint(sweep / "lr-1000000000000.0" / "checkpoint.pt")
    assert all(torch.isfinite(t).all() for t in checkpoint["model"].values())


@pytest.mark.slow  # real sweeps of 2 jobs, twice
def test_failed_job_is_recorded_and_the_others_run(run_cli, capsys, tmp_path) -> None:
    sweep = tmp_path / "sweep"
    # A value only the job can find wrong (the config is fine): 40 tiles hold 36 training tiles,
    # fewer than a batch of 64. A bad config value is refused before any job starts (test_faults).
    code = run_cli(
        "-m",
        *TINY,
        "trainer.max_inputs=32",
        "trainer.batch_size=64,16",
        "data.count=40",
        f"hydra.sweep.dir={sweep}",
    )
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1 of 2 jobs failed" in err[0] and "batch_size-64" in err[0]
    # The exact command that reruns the failed job (the done one is skipped).
    assert err[0].endswith(
        "; to rerun them (finished jobs are skipped): histae -m +experiment=smoke "
        f"trainer.max_inputs=32 trainer.batch_size=64,16 data.count=40 hydra.sweep.dir={sweep}"
    )
    failed, done = read_status(sweep / "batch_size-64"), read_status(sweep / "batch_size-16")
    assert failed["status"] == "failed"
    assert failed["error"].startswith("ValueError: trainer.batch_size=64 is larger than the ")
    assert done["status"] == "done"
    log = (sweep / "batch_size-64" / "histae.log").read_text()
    assert "trainer.batch_size=64 is larger than the" in log


def test_a_sweep_that_leaves_a_job_stopped_ends_with_the_rerun_command(
    run_cli, capsys, tmp_path, monkeypatch
) -> None:
    """A launcher's worker stopped by SIGTERM, a preempted cluster job: the job records
    ``stopped`` and returns; the sweep still ends non-zero, naming it and the command."""
    import histae.train
    from histae.jobdir import JobDir

    def worker(cfg, job_dir, on_start=None, record_failure=False, overrides=()):
        job = JobDir(job_dir)
        job.path.mkdir(parents=True, exist_ok=True)
        on_start()
        job.write_status("stopped" if cfg.loss.bins == 100 else "done")
        return {"status": "done"}

    monkeypatch.setattr(histae.train, "train", worker)
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, "loss.bins=50,100", f"hydra.sweep.dir={sweep}"]
    assert run_cli(*args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"histae: error: 1 of 2 jobs stopped before their end (bins-100); see {sweep}; to rerun "
        f"them (finished jobs are skipped): histae {' '.join(args)}"
    ]
