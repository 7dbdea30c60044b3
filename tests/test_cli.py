"""The real command line on bad input: one clear line naming what the user typed, a non-zero exit,
nothing lost."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from histae.app import missing_launcher
from histae.checkpoint import first_difference, typed_keys
from tests.helpers import NO_COUNT, ROOT, TINY

CASES = [
    (["loss.bins=0"], "loss.bins must be .*>= 1, got 0"),
    (["loss.bins=-3"], "loss.bins must be .*>= 1, got -3"),
    (["loss.sigma=0"], "loss.sigma must be > 0"),
    (["loss.sigma=-1"], "loss.sigma must be > 0"),
    (["loss.min=1", "loss.max=0"], "loss.min .*must be .*< .*loss.max|loss.max must be > loss.min"),
    (["loss.loss=nope"], "loss.loss must be one of .*l1"),
    (["loss=nope"], "Could not find 'loss/nope'; Available options in 'loss': .*histogram"),
    # An unknown key: the close key that exists, never Hydra's "+loss.binz=3" (a TypeError later).
    (
        ["loss.binz=3"],
        r"^histae: error: loss.binz is not a key of loss; did you mean loss.bins=3\?$",
    ),
    (["los.bins=3"], r"los.bins is not a key of the config; did you mean loss.bins=3\?"),
    (["trainer.max_input=9"], r"did you mean trainer.max_inputs=9\?"),
    (["loss=l1", "loss.binz=3"], r"loss.binz is not a key of loss; loss has _target_, reduction$"),
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
    (["scheduler.eta_min=nan"], "scheduler.eta_min must be a finite number >= 0, got nan"),
    (["optimizer.weight_decay=-1"], "optimizer.weight_decay must be a finite number >= 0"),
    (["optimizer.betas=[0.9]"], r"optimizer.betas must be two numbers in \[0, 1\)"),
    (["optimizer.betas=[0.9,2]"], r"optimizer.betas must be two numbers in \[0, 1\)"),
    (["optimizer=sgd", "optimizer.momentum=-0.5"], "optimizer.momentum must be a finite number"),
    # A huge batch is named, not the bins that would fit at the reference's batch of 64.
    (["trainer.batch_size=100000"], r"^histae: error: trainer.batch_size=100000 needs about"),
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
    assert re.search(message, err[0]), err[0]
    assert "+" not in err[0].split("did you mean")[-1]  # no suggestion to append a key
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


def test_a_rerun_with_another_budget_names_the_key_typed_not_a_derived_one(
    run_cli, capsys, tmp_path
) -> None:
    """scheduler.T_max follows from trainer.max_inputs; the user typed the budget."""
    run_dir = tmp_path / "run"
    assert run_cli(*TINY, "trainer.max_inputs=32", f"hydra.run.dir={run_dir}") == 0
    capsys.readouterr()
    # Typed now, and not typed now (the folder's own command typed it): the budget either way.
    for budget in (["trainer.max_inputs=64"], []):
        assert run_cli(*TINY, *budget, f"hydra.run.dir={run_dir}") == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "trainer.max_inputs=32, the config says trainer" in err[0], err
        assert "T_max" not in err[0]


@pytest.mark.slow  # a real sweep of 2 jobs, rerun
def test_a_sweep_rerun_with_another_budget_names_it_and_says_job_k_of_n(
    run_cli, capsys, tmp_path
) -> None:
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, "loss.bins=50,100", f"hydra.sweep.dir={sweep}"]
    assert run_cli(*args, "trainer.max_inputs=32") == 0
    out = capsys.readouterr().out
    # Each job is announced as it starts and ends, with the sweep's ETA.
    for line in (
        "job 1 of 2 starts: bins-50; sweep ETA ",
        "job 1 of 2 done in ",
        "1 of 2 jobs ended in ",
        "job 2 of 2 starts: bins-100; sweep ETA ",
        "job 2 of 2 done in ",
        "all 2 jobs ended in ",
    ):
        assert line in out, out
    assert out.index("job 1 of 2 done") < out.index("job 2 of 2 starts")
    assert run_cli(*args, "trainer.max_inputs=64") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"histae: error: {sweep / 'bins-50'} holds another")
    assert "made with trainer.max_inputs=32, the config says trainer.max_inputs=64" in err[0]


def test_first_difference_prefers_the_keys_typed() -> None:
    old = {"model": {"code_size": 16}, "scheduler": {"T_max": 12}, "trainer": {"max_inputs": 192}}
    new = {"model": {"code_size": 16}, "scheduler": {"T_max": 25}, "trainer": {"max_inputs": 400}}
    assert first_difference(old, new) == ("scheduler.T_max", 12, 25)  # nothing typed: sorted
    typed = typed_keys(["+experiment=smoke", "trainer.max_inputs=400", "hydra.run.dir=x"])
    assert typed == {"experiment", "trainer.max_inputs"}
    assert first_difference(old, new, typed) == ("trainer.max_inputs", 192, 400)
    # A group typed (loss=l1) covers every key under it.
    assert first_difference({"loss": {"a": 1}}, {"loss": {"a": 2}}, typed_keys(["loss=l1"])) == (
        "loss.a",
        1,
        2,
    )


def test_version_is_histaes_and_hydras(run_cli, capsys) -> None:
    import hydra

    import histae

    assert run_cli("--version") == 0
    out = capsys.readouterr().out.strip()
    assert out == f"histae {histae.__version__} (Hydra {hydra.__version__})"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["-m", "--cfg", "job"], "-m and --cfg cannot be combined: --cfg shows one job's config"),
        (["--multirun", "-c", "job"], "-m and --cfg cannot be combined"),
        (["-m", "--info"], "--multirun and --info cannot be combined"),
    ],
)
def test_two_commands_at_once_are_one_line(run_cli, capsys, flags: list[str], message: str) -> None:
    assert run_cli(*TINY, *flags) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("histae: error: ") and message in err[0], err
    assert "Traceback" not in captured.out + captured.err


@pytest.fixture
def no_joblib_launcher():
    """hydra/launcher=joblib as without the launchers extra: its config is not in Hydra's store."""
    from hydra.core.config_store import ConfigStore

    launchers = ConfigStore.instance().repo.get("hydra", {}).get("launcher", {})
    saved = launchers.pop("joblib.yaml", None)
    yield
    if saved is not None:
        launchers["joblib.yaml"] = saved


def test_a_launcher_without_its_extra_names_the_pip_command(
    run_cli, capsys, tmp_path, no_joblib_launcher
) -> None:
    sweep = tmp_path / "sweep"
    code = run_cli("-m", *TINY, "hydra/launcher=joblib", f"hydra.sweep.dir={sweep}")
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "histae: error: hydra/launcher=joblib needs hydra-joblib-launcher, which is not "
        'installed: pip install -e ".[launchers]" (histae\'s launchers extra)'
    ]
    assert not sweep.exists()
    assert "submitit" in missing_launcher("Could not find 'hydra/launcher/submitit_slurm'")
    assert missing_launcher("Could not find 'hydra/launcher/nope'") is None  # a typo, not an extra


@pytest.mark.slow
def test_a_launcher_not_installed_in_a_real_process(tmp_path) -> None:
    """The plugin package itself is missing (not only its config): Hydra's scan skips it."""
    hide = "import sys; sys.modules['hydra_plugins.hydra_joblib_launcher'] = None; "
    run = "from histae.app import main; main()"
    argv = ["histae", "-m", *TINY, "hydra/launcher=joblib", f"hydra.sweep.dir={tmp_path}/s"]
    code = f"{hide}sys.argv = {argv!r}; {run}"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "histae: error: hydra/launcher=joblib needs hydra-joblib-launcher, which is not "
        'installed: pip install -e ".[launchers]" (histae\'s launchers extra)'
    ]


def test_a_second_ctrl_c_names_the_command_that_resumes(
    run_cli, capsys, tmp_path, monkeypatch
) -> None:
    """A second Ctrl-C raises KeyboardInterrupt mid-step (histae.signals); the run and the
    sweep still end with the exact command that resumes them."""
    import histae.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(histae.train, "validation", interrupted)
    run_dir, sweep = tmp_path / "run", tmp_path / "sweep"
    assert run_cli(*TINY, "trainer.max_inputs=32", f"hydra.run.dir={run_dir}") == 130
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == (
        "histae: interrupted before the step was checkpointed; to resume from the last "
        f"checkpoint, run: histae +experiment=smoke trainer.max_inputs=32 hydra.run.dir={run_dir}"
    )
    args = ["-m", *TINY, "trainer.max_inputs=32", "loss.bins=50,100", f"hydra.sweep.dir={sweep}"]
    assert run_cli(*args) == 130
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.endswith(f"run: histae {' '.join(args)}")
    assert not (sweep / "bins-100").exists()  # the sweep stopped at its first job


@pytest.mark.slow  # subprocesses
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
