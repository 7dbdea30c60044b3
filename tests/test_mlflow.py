"""logger=mlflow: the runs read back with MLflow's own client.

Creating an MLflow SQLite database takes 2-5 s (its schema migrations) on top of importing
mlflow (~2 s), so every test that opens one is in the slow tier; the fast tier checks the config,
the params and the missing-package line, which import nothing of mlflow.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from histae.build import build
from histae.jobdir import read_metrics
from histae.loggers import (
    JOB_TAG,
    MISSING_MLFLOW,
    MLFLOW_DB,
    MissingPackageError,
    MlflowLogger,
    flat_params,
    make_logger,
    row_tags,
    sweep_folder,
)
from tests.helpers import TINY, run_histae


def client_for(folder: Path) -> Any:
    """MLflow's client on the database a histae job or sweep wrote into ``folder``."""
    tracking = pytest.importorskip("mlflow.tracking")
    assert (folder / MLFLOW_DB).is_file()
    return tracking.MlflowClient(f"sqlite:///{folder / MLFLOW_DB}")


def runs_of(client: Any, folder: Path) -> list[Any]:
    """The runs of the experiment histae names after ``folder`` (the sweep or the run)."""
    experiment = client.get_experiment_by_name(str(folder.resolve()))
    assert experiment is not None
    return client.search_runs([experiment.experiment_id])


def steps(client: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_the_mlflow_option_composes(smoke_cfg) -> None:
    from hydra import compose, initialize_config_dir

    from tests.helpers import CONF

    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, "logger=mlflow"])
    assert cfg.logger.name == "mlflow" and cfg.logger.tracking_uri is None
    assert smoke_cfg.logger.name == "csv"


def test_params_are_the_flattened_config() -> None:
    config = {"loss": {"bins": 50, "normalize": False}, "model": {"channels": [8, 8]}, "x": {}}
    assert flat_params(config) == {
        "loss.bins": "50",
        "loss.normalize": "False",
        "model.channels": "[8, 8]",
        "x": "{}",
    }


def test_a_single_run_has_no_sweep_folder(tmp_path: Path) -> None:
    assert sweep_folder(tmp_path) is None  # outside Hydra: the database goes in the job folder


def test_without_mlflow_one_line_before_training(
    tmp_path: Path, run_cli, capsys, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    with pytest.raises(MissingPackageError, match=r'pip install -e "\.\[mlflow\]"'):
        make_logger("mlflow")

    run_dir = tmp_path / "run"
    code = run_cli(*TINY, "logger=mlflow", f"hydra.run.dir={run_dir}")
    assert code == 1
    captured = capsys.readouterr()
    assert captured.err == f"histae: error: {MISSING_MLFLOW}\n"
    assert not run_dir.exists()  # nothing trained, nothing left


@pytest.mark.slow
def test_a_sweep_is_one_experiment_of_one_run_per_job(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    sweep = tmp_path / "sweep"
    code = run_histae("-m", *TINY, "logger=mlflow", "loss.bins=50,100", f"hydra.sweep.dir={sweep}")
    assert code == 0
    client = client_for(sweep)  # one database, in the sweep folder
    runs = {r.info.run_name: r for r in runs_of(client, sweep)}
    assert set(runs) == {"bins-50", "bins-100"}
    for name, run in runs.items():
        job_dir = sweep / name
        assert run.info.status == "FINISHED"
        assert run.data.tags[JOB_TAG] == str(job_dir.resolve())
        # Params: the whole resolved config, the swept value among them.
        params = run.data.params
        assert params["loss.bins"] == name.removeprefix("bins-")
        assert params["model.channels"] == "[8, 8, 8]" and params["trainer.max_inputs"] == "192"
        assert run.data.tags["histae.loss.bins"] == params["loss.bins"]
        # Metrics at their steps: each tag's history is metrics.csv's rows, step = inputs seen.
        rows = read_metrics(job_dir / "metrics.csv")
        expected: dict[str, list[tuple[int, float]]] = {}
        for row in rows:
            for tag, value in row_tags(row, "AdamW").items():
                expected.setdefault(tag, []).append((int(row["inputs"]), value))
        assert set(run.data.metrics) == set(expected)
        for tag, points in expected.items():
            got = steps(client, run.info.run_id, tag)
            assert [s for s, _ in got] == [s for s, _ in points], tag
            np.testing.assert_allclose([v for _, v in got], [v for _, v in points], rtol=1e-5)
        assert [s for s, _ in steps(client, run.info.run_id, "validation_loss")] == [96, 192]
        # The reconstruction grid of each validation, as the PNG the job saved.
        grids = [a.path for a in client.list_artifacts(run.info.run_id, "reconstructions")]
        assert grids == [
            "reconstructions/inputs-000000096.png",
            "reconstructions/inputs-000000192.png",
        ]
        local = Path(client.download_artifacts(run.info.run_id, grids[-1], str(tmp_path)))
        assert local.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The artifacts live beside the database, inside the sweep folder.
    assert len(list((sweep / "mlartifacts").rglob("inputs-*.png"))) == 4


@pytest.mark.slow
def test_resume_continues_the_run_without_duplicate_steps(tmp_path: Path) -> None:
    """A resumed job reopens its own run; steps its killed run logged after the checkpoint are
    not logged twice. A fresh start replaces the folder's run."""
    pytest.importorskip("mlflow")
    config = {"loss": {"bins": 50}}
    first = MlflowLogger(tmp_path, {"loss.bins": 50}, optimizer="AdamW", config=config)
    for inputs in (32, 64, 96):
        first.log_row({"inputs": inputs, "split": "train", "loss": float(inputs)})
    first.log_row({"inputs": 64, "split": "val", "loss": 1.0})
    first.close("KILLED")  # killed after 96 inputs; the checkpoint is from 64
    with MlflowLogger(tmp_path, resume_from=64, optimizer="AdamW", config=config) as second:
        for inputs in (96, 128):  # a resume recomputes 96 exactly
            second.log_row({"inputs": inputs, "split": "train", "loss": float(inputs)})
    client = client_for(tmp_path)
    (run,) = runs_of(client, tmp_path)
    assert run.info.run_id == first.run_id == second.run_id
    assert run.info.status == "FINISHED"
    assert steps(client, run.info.run_id, "train_loss") == [
        (32, 32.0),
        (64, 64.0),
        (96, 96.0),
        (128, 128.0),
    ]
    assert run.data.params == {"loss.bins": "50"}

    with MlflowLogger(tmp_path, resume_from=0) as fresh:
        fresh.log_row({"inputs": 16, "split": "train", "loss": 1.0})
    (run,) = runs_of(client, tmp_path)
    assert run.info.run_id == fresh.run_id != first.run_id
    assert steps(client, run.info.run_id, "train_loss") == [(16, 1.0)]


@pytest.mark.slow
def test_a_killed_and_resumed_job_shows_each_step_once(tmp_path: Path) -> None:
    """SIGKILL past the first checkpoint, rerun: the run's history matches metrics.csv."""
    pytest.importorskip("mlflow")
    from tests.helpers import kill_past_then_rerun
    from tests.test_resume import JOB

    run_dir = tmp_path / "killed"
    # The checkpoint is at 320 inputs: the kill comes after it, the rerun resumes from it.
    kill_past_then_rerun([*JOB, "logger=mlflow", f"hydra.run.dir={run_dir}"], run_dir, 320)

    client = client_for(run_dir)
    (run,) = runs_of(client, run_dir)
    assert run.info.status == "FINISHED"
    rows = read_metrics(run_dir / "metrics.csv")
    for split, tag in (("train", "train_loss"), ("val", "validation_loss")):
        expected = [(r["inputs"], r["loss"]) for r in rows if r["split"] == split]
        got = steps(client, run.info.run_id, tag)
        assert [s for s, _ in got] == [s for s, _ in expected]
        np.testing.assert_allclose([v for _, v in got], [v for _, v in expected], rtol=1e-5)
    grids = [a.path for a in client.list_artifacts(run.info.run_id, "reconstructions")]
    assert grids == ["reconstructions/inputs-000000320.png", "reconstructions/inputs-000000640.png"]


def test_the_logger_builds_from_its_option() -> None:
    pytest.importorskip("mlflow")  # found, not imported: make_logger refuses a missing one
    from histae.build import option_config

    opener = build(option_config("logger/mlflow"))
    assert opener.func is MlflowLogger and opener.keywords == {"tracking_uri": None}
