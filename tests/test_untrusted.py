"""Folders received from elsewhere are untrusted input: every reader is bounded and total.

Each test plants one attack in a job or sweep folder written by the real writer, then reads it
the way the report and the sweeper do, and asserts the read ends (no hang, no memory blow-up),
names the file, and leaves every other job reported as usual.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from histae.atomic import FAULT_ENV
from histae.checkpoint import load_checkpoint, save_checkpoint
from histae.jobdir import (
    SAMPLES_LIMIT,
    Unreadable,
    load_yaml,
    read_job,
    read_metrics,
    read_regular,
    read_samples,
    recorded_config,
)
from histae.report import write_report
from tests.helpers import ROOT, TINY, histae, run_histae, write_job, write_sweep

ALIAS_BOMB = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}" + f",*{chr(97 + i)}" * 8 + "]\n"
    for i in range(8)
)


def report_in_subprocess(sweep_dir: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m histae.report SWEEP`` with a deadline: a hang fails the test, not the run."""
    return subprocess.run(
        [sys.executable, "-m", "histae.report", str(sweep_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_fifo_a_device_and_a_link_are_refused_without_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "status.json"
    os.mkfifo(fifo)
    with pytest.raises(Unreadable, match=r"status\.json: not a regular file"):
        read_regular(fifo)  # opened without waiting for a writer
    link = tmp_path / "summary.json"
    link.symlink_to("/dev/zero")
    with pytest.raises(Unreadable, match=r"summary\.json: a symbolic link"):
        read_regular(link)
    big = tmp_path / "metrics.csv"
    big.write_bytes(b"x" * 1000)
    with pytest.raises(Unreadable, match="1,000 bytes, more than the 100 such"):
        read_regular(big, limit=100)


@pytest.mark.slow  # the report in a subprocess, with a deadline
def test_a_job_whose_status_is_dev_zero_is_unreadable_and_the_report_whole(
    tmp_path: Path,
) -> None:
    sweep_dir = write_sweep(tmp_path / "s")
    status = sweep_dir / "bins-200_sigma-100" / "status.json"
    status.unlink()
    status.symlink_to("/dev/zero")
    samples = sweep_dir / "bins-50_sigma-100" / "samples.npz"
    samples.unlink()
    os.mkfifo(samples)
    done = report_in_subprocess(sweep_dir)
    assert done.returncode == 0, done.stderr
    jobs = json.loads((sweep_dir / "report" / "results.json").read_text())["jobs"]
    states = {j["job"]: (j["status"], j["error"]) for j in jobs}
    assert states["bins-200_sigma-100"] == (
        "unreadable",
        "status.json: a symbolic link, not a file histae wrote",
    )
    assert states["bins-50_sigma-100"] == ("unreadable", "samples.npz: not a regular file")
    assert states["bins-50_sigma-50"][0] == "done"


def npz_declaring(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    """An .npz whose one array's header declares ``shape`` but holds a few bytes of data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "reconstructions.npy", b"\x93NUMPY\x01\x00" + header.getvalue()[8:] + b"\0" * 64
        )
    return raw.getvalue()


def test_a_small_archive_declaring_gigabytes_is_refused_before_decompressing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "samples.npz"
    path.write_bytes(npz_declaring((6 * 2**30 // 4,)))  # 6 GiB of float32, in a few hundred bytes
    assert path.stat().st_size < 10_000
    with pytest.raises(Unreadable, match=f"declare more than {SAMPLES_LIMIT:,} bytes"):
        read_samples(path)
    path.write_bytes(npz_declaring((4,), "|O"))
    with pytest.raises(Unreadable, match="not numbers"):
        read_samples(path)


def test_yaml_aliases_are_refused_not_expanded(tmp_path: Path) -> None:
    job = write_job(tmp_path / "job", ["loss.bins=50"])
    (job / "summary.json").unlink()  # the config is then read from Hydra's record
    (job / ".hydra" / "config.yaml").write_text(ALIAS_BOMB)
    assert recorded_config(job) is None  # at once: expanding it would take minutes
    with pytest.raises(Unreadable, match="aliases"):
        load_yaml(job / ".hydra" / "config.yaml")


def test_a_swept_value_with_dollars_is_drawn_literally(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    for tag in ("$x^$", "$y_$"):
        write_job(sweep_dir / f"tag-{tag.strip('$^_')}", ["loss.bins=50", f"+tag='{tag}'"])
    write_report(sweep_dir)
    assert (sweep_dir / "report" / "curves.png").stat().st_size > 1000


def _rebuild(sweep_dir: str, rounds: int) -> int:
    failures = 0
    for _ in range(rounds):
        try:
            write_report(sweep_dir)
        except Exception:
            failures += 1
    return failures


@pytest.mark.slow  # three processes
def test_report_rebuilds_of_one_sweep_at_once_all_succeed(tmp_path: Path) -> None:
    sweep_dir = write_sweep(tmp_path / "s")
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        failures = pool.starmap(_rebuild, [(str(sweep_dir), 4)] * 3)
    assert failures == [0, 0, 0]
    assert (sweep_dir / "report" / "index.html").is_file()
    assert len(list(sweep_dir.glob(".report-*"))) <= 3  # old reports are cleaned up


def test_a_finished_job_reports_its_summarys_finals_and_a_rerun_mends_a_cut_metrics_csv(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    assert run_histae(*TINY, f"hydra.run.dir={run}") == 0
    summary = json.loads((run / "summary.json").read_text())
    whole = (run / "metrics.csv").read_text()
    for cut in (whole.splitlines()[0] + "\n", whole[: len(whole) * 2 // 3]):
        (run / "metrics.csv").write_text(cut)
        record = read_job(run)
        # The report takes the finals from summary.json, not the cut file.
        assert record.final("val")["hist_w1"] == summary["final"]["val"]["hist_w1"]
        assert run_histae(*TINY, f"hydra.run.dir={run}") == 0  # "already done": checks, mends
        rows = read_metrics(run / "metrics.csv")
        assert rows[-1]["inputs"] == summary["inputs"] and rows[-1]["split"] == "val"
        assert rows[-1]["hist_w1"] == pytest.approx(summary["final"]["val"]["hist_w1"], rel=1e-5)


@pytest.fixture(scope="module")
def stopped_job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny job stopped by SIGTERM during its first checkpoint (96 of 192 inputs)."""
    run = tmp_path_factory.mktemp("stopped") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(FAULT_ENV, "checkpoint.pt:TERM:1")
        assert run_histae(*TINY, f"hydra.run.dir={run}") == 143
    status = json.loads((run / "status.json").read_text())
    assert (status["status"], status["inputs"]) == ("stopped", 96)
    return run


@pytest.mark.parametrize(
    ("edit", "part"),
    [
        (lambda c: c.update(state={}), "has a state part that lacks"),
        (lambda c: c["state"].update(inputs=(1, 2)), "has state.inputs = (1, 2), not a count"),
        (lambda c: c["model"].popitem(), "has a model part that does not fit"),
        (lambda c: c.update(optimizer={"state": 3}), "has an optimizer part that does not fit"),
    ],
)
def test_an_edited_checkpoint_is_refused_naming_the_part_and_the_status_stays(
    stopped_job: Path, tmp_path: Path, capsys: pytest.CaptureFixture, edit, part: str
) -> None:
    run = tmp_path / "run"
    shutil.copytree(stopped_job, run)
    checkpoint = load_checkpoint(run / "checkpoint.pt")
    edit(checkpoint)
    save_checkpoint(run / "checkpoint.pt", checkpoint)  # a valid digest over an edited inside
    status_before = (run / "status.json").read_bytes()
    code = run_histae(*TINY, f"hydra.run.dir={run}")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert "checkpoint.pt" in err[0] and part in err[0] and "Traceback" not in err[0]
    assert (run / "status.json").read_bytes() == status_before  # still "stopped 96"


def test_a_resume_under_another_thread_count_says_it_is_no_longer_bitwise(
    stopped_job: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(stopped_job, run)
    recorded = load_checkpoint(run / "checkpoint.pt")["threads"]
    other = 1 if recorded != 1 else 2
    assert run_histae(*TINY, f"trainer.threads={other}", f"hydra.run.dir={run}") == 0
    log = (run / "histae.log").read_text()
    assert f"written with {recorded} CPU threads, this run uses {other}" in log
    assert f"(trainer.threads={recorded} keeps it exact)" in log


# ----------------------------------------------------------------------------------------------
# Writers: nothing written through a link, nothing deleted that histae did not make


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (links not followed), by relative path, with its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


@pytest.mark.parametrize(
    "name", [".hydra", "reconstructions", "histae.log", ".lock", "metrics.csv"]
)
def test_a_received_job_with_a_link_inside_is_refused_and_nothing_outside_changes(
    stopped_job: Path, tmp_path: Path, capsys: pytest.CaptureFixture, name: str
) -> None:
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    shutil.copytree(stopped_job, run)
    target = run / name
    if target.is_dir():
        shutil.copytree(target, elsewhere)
        shutil.rmtree(target)
    else:
        elsewhere.mkdir()
        if target.exists():
            shutil.copy(target, elsewhere / name)
        else:
            (elsewhere / name).write_bytes(b"")
        target.unlink(missing_ok=True)
        elsewhere = elsewhere / name
    target.symlink_to(elsewhere)
    before = snapshot(elsewhere) if elsewhere.is_dir() else {"": elsewhere.read_bytes()}
    status = (run / "status.json").read_bytes()
    assert run_histae(*TINY, f"hydra.run.dir={run}") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{target} is a symbolic link" in err[0], err
    after = snapshot(elsewhere) if elsewhere.is_dir() else {"": elsewhere.read_bytes()}
    assert after == before and (run / "status.json").read_bytes() == status


def test_a_log_hard_linked_to_a_file_elsewhere_is_refused(
    stopped_job: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    shutil.copytree(stopped_job, run)
    elsewhere = tmp_path / "audit.log"
    elsewhere.write_text("precious\n")
    (run / "histae.log").unlink()
    os.link(elsewhere, run / "histae.log")
    assert run_histae(*TINY, f"hydra.run.dir={run}") == 1
    assert "is a hard link to a file elsewhere" in capsys.readouterr().err
    assert elsewhere.read_text() == "precious\n"


def test_a_failing_run_keeps_a_folder_it_did_not_make(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    mine = tmp_path / "mylogs"
    mine.mkdir()
    (mine / "audit.log").write_text("precious\n")
    assert run_histae(*TINY, f"hydra.run.dir={mine}", "trainer.batch_size=0") == 1
    assert "trainer.batch_size" in capsys.readouterr().err
    assert (mine / "audit.log").read_text() == "precious\n"
    # A folder the failing run made itself is removed, as before.
    fresh = tmp_path / "fresh"
    assert run_histae(*TINY, f"hydra.run.dir={fresh}", "trainer.batch_size=0") == 1
    assert not fresh.exists()


def test_a_job_folder_that_is_a_link_or_a_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    assert run_histae(*TINY, f"hydra.run.dir={afile}") == 1
    assert f"{afile} is a file, not a folder" in capsys.readouterr().err
    assert afile.read_text() == "mine\n"
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    assert run_histae(*TINY, f"hydra.run.dir={tmp_path / 'link'}") == 1
    assert "is a symbolic link" in capsys.readouterr().err
    assert list(real.iterdir()) == []
    # A sweep whose job folder is a link is refused whole, before anything is written.
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "bins-50").symlink_to(real)
    code = run_histae("-m", *TINY, "loss.bins=50,100", f"hydra.sweep.dir={sweep}")
    err = capsys.readouterr().err
    assert code == 1 and "bins-50 is a symbolic link" in err, err
    assert sorted(p.name for p in sweep.iterdir()) == ["bins-50"]
    assert list(real.iterdir()) == []


def test_a_too_long_folder_name_and_a_job_name_with_a_path_are_refused_before_any_write(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sweep = tmp_path / "sweep"
    code = run_histae("-m", *TINY, f"+tag={'x' * 300},y", f"hydra.sweep.dir={sweep}")
    err = capsys.readouterr().err
    assert code == 1 and "bytes, more than the" in err and len(err.strip().splitlines()) == 1
    assert not sweep.exists()  # not even multirun.yaml
    run = tmp_path / "run"
    assert run_histae(*TINY, f"hydra.run.dir={run}", "hydra.job.name=../x") == 1
    assert "hydra.job.name" in capsys.readouterr().err
    assert not (tmp_path / "x.log").exists()


@pytest.mark.slow
def test_two_identical_sweeps_at_once_the_one_held_out_says_so(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, "trainer.max_inputs=960", "loss.bins=50,100", f"hydra.sweep.dir={sweep}"]
    first = histae(*args)
    time.sleep(0)  # both start at once; whichever locks a job first runs it
    second = histae(*args)
    results = [p.communicate(timeout=600) for p in (first, second)]
    codes = [p.returncode for p in (first, second)]
    errors = [err for _, err in results]
    assert codes == [0, 0], errors
    for job in ("bins-50", "bins-100"):
        assert json.loads((sweep / job / "status.json").read_text())["status"] == "done"
    held = [err for err in errors if "held by another histae" in err]
    # With two jobs, the loser finds at least one held (or none, if one sweep ended first).
    assert all("failed" not in err for err in errors), errors
    assert len(held) <= 2
