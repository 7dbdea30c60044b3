"""The real command line on bad input: one clear line, a non-zero exit, nothing lost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import NO_COUNT, ROOT, TINY

CASES = [
    (["loss.bins=0"], "loss.bins must be .*>= 1, got 0"),
    (["loss.bins=-3"], "loss.bins must be .*>= 1, got -3"),
    (["loss.sigma=0"], "loss.sigma must be > 0"),
    (["loss.sigma=-1"], "loss.sigma must be > 0"),
    (["loss.min=1", "loss.max=0"], "loss.min .*must be .*< .*loss.max|loss.max must be > loss.min"),
    (["loss.loss=nope"], "loss.loss must be one of .*l1"),
    (["loss=nope"], "Could not find 'loss/nope'; Available options in 'loss': .*histogram"),
    (["loss.binz=3"], "loss.binz"),
    (["loss.bins=abc"], "loss.bins=abc.*could not be converted to Integer"),
    (["trainer.batch_size=0"], "trainer.batch_size must be >= 1, got 0"),
    (["trainer.max_inputs=0"], "trainer.max_inputs must be >= 1, got 0"),
    (["optimizer.lr=0"], "optimizer.lr must be a finite number > 0, got 0"),
    (["optimizer.lr=-0.1"], "optimizer.lr must be a finite number > 0, got -0.1"),
    (["optimizer.lr=inf"], "optimizer.lr must be a finite number > 0, got inf"),
    (["optimizer.lr=nan"], "optimizer.lr must be a finite number > 0, got nan"),
    (["trainer.code_reg_weight=nan"], "trainer.code_reg_weight must be a finite number >= 0"),
    (["trainer.code_reg_weight=-inf"], "trainer.code_reg_weight must be a finite number >= 0"),
    (["trainer.threads=-1"], "trainer.threads must be >= 0"),
    (["loss.bins=10000000"], r"loss.bins=10000000 needs about .* GiB .*; use at most \d+ bins"),
    (["trainer.device=cuda:7"], "trainer.device=cuda:7 but (no CUDA device|this machine has)"),
    (["model.shape=[3,16,16]", "model.kernel_size=7"], r"model.shape \[3, 16, 16\] is too small"),
    (
        ["data.shape=[3,64,64]"],
        r"data tiles have shape \[3, 64, 64\] but model.shape is \[3, 32, 32\]",
    ),
    (["data=image_folder", NO_COUNT, "data.root=/nonexistent/tiles"], "/nonexistent/tiles"),
    (["trainer.device=tpu"], "trainer.device must be auto, cpu, cuda or cuda:N"),
]


@pytest.mark.parametrize(("overrides", "message"), CASES, ids=lambda v: str(v))
def test_bad_input_is_one_line_and_writes_nothing(
    run_cli, capsys, tmp_path, overrides: list[str], message: str
) -> None:
    run_dir = tmp_path / "run"
    code = run_cli(*TINY, *overrides, f"hydra.run.dir={run_dir}")
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1, err
    assert err[0].startswith("histae: error: ")
    import re

    assert re.search(message, err[0]), err[0]
    assert not run_dir.exists()  # no half-made run folder


def test_empty_folder_and_corrupt_image_name_the_path(run_cli, capsys, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (
        run_cli(*TINY, "data=image_folder", NO_COUNT, f"data.root={empty}", "data.cache_dir=null")
        != 0
    )
    assert str(empty) in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "tile.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    assert (
        run_cli(*TINY, "data=image_folder", NO_COUNT, f"data.root={bad}", "data.cache_dir=null")
        != 0
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad / "tile.png") in err[0]


def test_unwritable_output_folder(run_cli, capsys, tmp_path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert run_cli(*TINY, f"hydra.run.dir={blocker}/run") != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(blocker) in err[0], err
    assert blocker.read_text() == "not a folder"


def test_resume_with_another_model_config_is_refused_and_the_folder_untouched(
    run_cli, capsys, tmp_path
) -> None:
    run_dir = tmp_path / "run"
    assert run_cli(*TINY, "trainer.max_inputs=32", f"hydra.run.dir={run_dir}") == 0
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.suffix != ".log"}
    capsys.readouterr()
    code = run_cli(*TINY, "trainer.max_inputs=32", "model.code_size=64", f"hydra.run.dir={run_dir}")
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1
    assert "model.code_size=16" in err[0] and "model.code_size=64" in err[0]
    assert "trainer.resume=false" in err[0]
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.suffix != ".log"}
    assert after == before
    # Starting over is one flag away.
    assert (
        run_cli(
            *TINY,
            "trainer.max_inputs=32",
            "model.code_size=64",
            "trainer.resume=false",
            f"hydra.run.dir={run_dir}",
        )
        == 0
    )


def test_subprocess_prints_no_traceback_unless_asked(tmp_path) -> None:
    args = [sys.executable, "-m", "histae", *TINY, "loss.bins=0", f"hydra.run.dir={tmp_path}/r"]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    quiet = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT)
    assert quiet.returncode == 1
    assert quiet.stderr.strip() == "histae: error: loss.bins must be an integer >= 1, got 0"
    assert "Traceback" not in quiet.stdout + quiet.stderr
    full = subprocess.run(
        args, capture_output=True, text=True, env={**env, "HYDRA_FULL_ERROR": "1"}, cwd=ROOT
    )
    assert full.returncode != 0 and "Traceback" in full.stderr
    assert not Path(f"{tmp_path}/r").exists() or not any(Path(f"{tmp_path}/r").glob("*.pt"))
