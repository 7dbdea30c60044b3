"""Attacks on a job folder through the real command line: nothing is lost or clobbered."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from histae.atomic import FAULT_ENV
from histae.checkpoint import load_checkpoint
from histae.jobdir import is_job_dir, read_job, read_metrics, read_status
from tests.helpers import NO_COUNT, ROOT, TINY, histae

QUICK = [*TINY, "trainer.max_inputs=32"]
# The reference network's size (smoke's is 45x smaller), for what depends on it.
REFERENCE_MODEL = ["model.code_size=128", "model.channels=[24,32,48]"]


def hashes(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` (but Hydra's job log) -> its SHA-256."""
    if not folder.exists():
        return {}
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix != ".log"
    }


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("histae: error: ")
    return err[0]


# ----------------------------------------------------------------------------------------------
# Folders that cannot be clobbered


@pytest.mark.slow
def test_values_that_differ_only_in_sign_get_their_own_folders(run_cli, tmp_path) -> None:
    sweep = tmp_path / "sweep"
    assert run_cli("-m", *QUICK, "optimizer.weight_decay=0.0,-0.0", f"hydra.sweep.dir={sweep}") == 0
    jobs = sorted(p.name for p in sweep.iterdir() if is_job_dir(p))
    assert jobs == ["weight_decay--0.0", "weight_decay-0.0"]
    for name in jobs:
        assert read_status(sweep / name)["status"] == "done"
        overrides = read_job(sweep / name).overrides
        assert f"optimizer.weight_decay={name.split('-', 1)[1]}" in overrides


def test_a_repeated_value_is_refused_before_anything_is_written(run_cli, capsys, tmp_path) -> None:
    sweep = tmp_path / "sweep"
    assert run_cli("-m", *QUICK, "loss.bins=50,50", f"hydra.sweep.dir={sweep}") != 0
    line = one_error_line(capsys)
    assert "two jobs would share the folder" in line and "a swept value is repeated" in line
    assert not sweep.exists()


def test_a_typo_in_one_swept_value_writes_nothing(run_cli, capsys, tmp_path) -> None:
    sweep = tmp_path / "sweep"
    assert run_cli("-m", *QUICK, "loss.bins=50,5O", f"hydra.sweep.dir={sweep}") != 0
    line = one_error_line(capsys)
    assert "loss.bins=5O" in line
    assert not sweep.exists()
    assert (
        run_cli("-m", *QUICK, "loss.bins=50,60", "optimizer.lr=1,nan", f"hydra.sweep.dir={sweep}")
        != 0
    )
    assert "optimizer.lr must be a finite number > 0, got nan" in one_error_line(capsys)
    assert not sweep.exists()


def test_an_unknown_report_lead_is_refused_before_anything_is_written(
    run_cli, capsys, tmp_path
) -> None:
    sweep = tmp_path / "sweep"
    args = ("-m", *QUICK, "loss.bins=50,60", f"hydra.sweep.dir={sweep}")
    assert run_cli(*args, "hydra.sweeper.report_lead=psnrr") != 0
    line = one_error_line(capsys)
    assert (
        "hydra.sweeper.report_lead" in line and "retrieval_rank_joint" in line and "'psnrr'" in line
    )
    assert not sweep.exists()


@pytest.mark.slow
def test_rerunning_a_sweep_with_another_fixed_value_is_refused_whole(
    run_cli, capsys, tmp_path
) -> None:
    sweep = tmp_path / "sweep"
    assert (
        run_cli("-m", *QUICK, "loss.bins=50,60", "loss.sigma=50", f"hydra.sweep.dir={sweep}") == 0
    )
    before = hashes(sweep)
    assert {"multirun.yaml", "index.html", "bins-50/metrics.csv"} <= set(before)
    capsys.readouterr()
    assert (
        run_cli("-m", *QUICK, "loss.bins=50,60", "loss.sigma=200", f"hydra.sweep.dir={sweep}") != 0
    )
    line = one_error_line(capsys)
    assert (
        "bins-50 holds another job" in line
        and "loss.sigma=50.0" in line
        and "loss.sigma=200.0" in line
    )
    assert hashes(sweep) == before


@pytest.mark.slow
def test_a_single_run_into_a_sweep_or_another_jobs_folder_is_refused(
    run_cli, capsys, tmp_path
) -> None:
    sweep = tmp_path / "sweep"
    assert run_cli("-m", *QUICK, "loss.bins=50,60", f"hydra.sweep.dir={sweep}") == 0
    before = hashes(sweep)
    capsys.readouterr()
    assert run_cli(*QUICK, f"hydra.run.dir={sweep}") != 0
    assert "is a sweep folder (it holds multirun.yaml" in one_error_line(capsys)
    assert run_cli(*QUICK, "loss.bins=70", f"hydra.run.dir={sweep / 'bins-50'}") != 0
    line = one_error_line(capsys)
    assert "bins-50 holds another job (made with loss.bins=50" in line and "loss.bins=70" in line
    assert hashes(sweep) == before


# ----------------------------------------------------------------------------------------------
# A finished job keeps its results


@pytest.mark.slow
def test_a_lost_or_damaged_metrics_csv_is_rebuilt_on_the_next_run(run_cli, tmp_path) -> None:
    run_dir = tmp_path / "run"
    args = [*TINY, "trainer.log_every_inputs=32", f"hydra.run.dir={run_dir}"]
    assert run_cli(*args) == 0
    original = (run_dir / "metrics.csv").read_text()
    assert len(read_metrics(run_dir / "metrics.csv")) > 4
    (run_dir / "metrics.csv").unlink()
    assert run_cli(*args) == 0
    assert (run_dir / "metrics.csv").read_text() == original
    (run_dir / "metrics.csv").write_text("inputs,split\n1,what\n")
    assert read_job(run_dir).error.startswith("metrics.csv: line 2")  # damaged, and seen so
    assert run_cli(*args) == 0
    assert (run_dir / "metrics.csv").read_text() == original


def test_stale_temp_files_are_swept_when_a_job_starts(run_cli, tmp_path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".checkpoint.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")
    assert run_cli(*QUICK, f"hydra.run.dir={run_dir}") == 0
    assert not list(run_dir.glob(".*.tmp"))


# ----------------------------------------------------------------------------------------------
# Signals


JOB = [
    *TINY,
    "trainer.max_inputs=192",
    "trainer.val_every_inputs=64",
    "trainer.log_every_inputs=32",
]


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_a_checkpoint_write_stops_cleanly_and_resumes_bitwise(
    tmp_path, signum: int, code: int
) -> None:
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert histae(*JOB, f"hydra.run.dir={straight}").wait() == 0

    # The signal arrives while the first checkpoint is written (its temp file whole, not renamed).
    fault = {FAULT_ENV: f"checkpoint.pt:{signal.Signals(signum).name}"}
    proc = histae(*JOB, f"hydra.run.dir={stopped}", env=fault)
    assert proc.wait() == code
    err = proc.stderr.read()
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("histae: stopped at ")
    assert last.endswith(
        f"; to resume, run: python -m histae {' '.join(JOB)} hydra.run.dir={stopped}"
    )
    status = read_status(stopped)
    assert status["status"] == "stopped" and status["error"] is None
    assert not list(stopped.glob(".*.tmp"))
    checkpoint = load_checkpoint(stopped / "checkpoint.pt")
    # Stopped at the step after the first validation's checkpoint (64 inputs), not later.
    assert checkpoint["state"]["inputs"] == status["inputs"] == 64

    assert histae(*JOB, f"hydra.run.dir={stopped}").wait() == 0
    assert read_status(stopped)["status"] == "done"
    a, b = load_checkpoint(straight / "checkpoint.pt"), load_checkpoint(stopped / "checkpoint.pt")
    assert all(a["model"][k].equal(b["model"][k]) for k in a["model"])
    assert (straight / "metrics.csv").read_text() == (stopped / "metrics.csv").read_text()


@pytest.mark.slow
def test_ctrl_c_in_a_sweep_stops_the_sweep(tmp_path) -> None:
    sweep = tmp_path / "sweep"
    fault = {FAULT_ENV: "checkpoint.pt:SIGINT"}  # Ctrl-C during the first job's first checkpoint
    proc = histae("-m", *JOB, "optimizer.lr=0.001,0.002", f"hydra.sweep.dir={sweep}", env=fault)
    first = sweep / "lr-0.001"
    assert proc.wait() == 130
    err = proc.stderr.read()
    assert "Traceback" not in err
    args = ["-m", *JOB, "optimizer.lr=0.001,0.002", f"hydra.sweep.dir={sweep}"]
    assert (
        err.strip()
        .splitlines()[-1]
        .endswith(f"; to resume, run: python -m histae {' '.join(args)}")
    )
    assert read_status(first)["status"] == "stopped"
    assert not (sweep / "lr-0.002").exists()  # the sweep stopped; the next job never started


# ----------------------------------------------------------------------------------------------
# A full disk


@pytest.fixture
def small_disk(tmp_path):
    """A 10 MB tmpfs (root only): room for a job's small files, not for the reference network's
    checkpoint (19 MB of weights once finished)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=10m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_a_full_disk_is_one_line_naming_the_folder_and_the_size(
    run_cli, capsys, small_disk
) -> None:
    run_dir = small_disk / "run"
    assert run_cli(*QUICK, *REFERENCE_MODEL, f"hydra.run.dir={run_dir}") == 1
    line = one_error_line(capsys)
    assert (
        f"no space left on {run_dir}: the checkpoint needs about" in line and "MB are free" in line
    )
    # The whole checkpoint's size, not what fitted: at least the reference network's weights
    # (5,053,491 float32, 20.2 MB) on a 10 MB disk.
    needed = int(re.search(r"needs about (\d+) MB", line).group(1))
    assert needed >= 20
    assert "inline_container" not in line
    status = read_status(run_dir)
    assert status["status"] == "failed" and "no space left" in status["error"]
    assert not list(run_dir.glob(".*.tmp"))


# ----------------------------------------------------------------------------------------------
# Input that is refused before anything is read or decoded


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` but holds a few bytes of pixels: decoding it
    would fail (or allocate the lot); only reading its header is safe."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(bytes(64))
    signature = bytes([0x89]) + b"PNG" + bytes([13, 10, 26, 10])
    return signature + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_an_enormous_image_is_refused_by_name_before_decoding(run_cli, capsys, tmp_path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "huge.png").write_bytes(png_header(9_000, 8_000))
    code = run_cli(
        *QUICK,
        "data=image_folder",
        NO_COUNT,
        f"data.root={images}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert code == 1
    line = one_error_line(capsys)
    assert f"{images / 'huge.png'} is 9000x8000 pixels, larger than the 64 megapixels" in line


@pytest.mark.slow  # a subprocess job: its stderr is the point
def test_a_file_name_that_is_not_utf8_never_breaks_the_logs(tmp_path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    name = os.fsdecode(b"tile-\xff.png")
    from PIL import Image

    Image.new("RGB", (32, 32), (200, 10, 10)).save(images / name)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "histae",
            *QUICK,
            "data=image_folder",
            NO_COUNT,
            f"data.root={images}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=ROOT,
        capture_output=True,
    )
    err = proc.stderr.decode("utf-8", "replace")
    assert "Logging error" not in err and "Traceback" not in err and "UnicodeEncodeError" not in err
    assert err.strip().splitlines()[-1].startswith("histae: error: ")  # one tile is too few
