"""The job folder's contract: names, total readers, safe checkpoints, one writer per folder."""

from __future__ import annotations

import ast
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from histae import jobdir
from histae.checkpoint import FORMAT, VERSION, load_checkpoint, rng_state, save_checkpoint
from histae.jobdir import JobDir, read_job
from histae.labels import folder_value, job_names
from tests.helpers import ROOT, finished_job

# ----------------------------------------------------------------------------------------------
# Readers never crash


def test_a_finished_job_reads_back_whole(tmp_path) -> None:
    record = read_job(finished_job(tmp_path))
    assert record.state == "done" and record.error is None
    assert record.final("val")["loss"] == 1.5 and record.final("train")["lr"] == 1e-3
    assert record.inputs == 64 and record.images_per_second == 42.0
    assert record.overrides == ["loss.bins=50"]


BROKEN = [
    ("status.json", b"[1, 2]", "status.json: not a JSON object but a list"),
    ("status.json", b'"done"', "status.json: not a JSON object but a str"),
    ("status.json", b"", "status.json: not JSON"),
    ("status.json", b'{"status": "do', "status.json: not JSON"),
    ("status.json", b'{"status": "sleeping"}', "status.json: status 'sleeping' is none of"),
    ("status.json", b'{"status": "running", "inputs": "many"}', "status.json: inputs is not"),
    ("status.json", b'{"status": "running", "pid": 1e300}', "status.json: pid is not"),
    ("status.json", b'{"status": "running", "pid": 99999999999}', "status.json: pid 99999999999"),
    ("status.json", b"\xff\xfe\x00", "status.json: not JSON"),
    ("summary.json", b"3", "summary.json: not a JSON object but a int"),
    ("metrics.csv", b"", "metrics.csv: no inputs,split header"),
    ("metrics.csv", b"inputs,split,loss\n64,train,abc\n", "metrics.csv: line 2: loss='abc'"),
    ("metrics.csv", b"inputs,split,loss\n64,train," + b"9" * 200_000 + b"\n", "metrics.csv: field"),
    ("metrics.csv", b"inputs,split\n64,test\n", "metrics.csv: line 2: no inputs or no split"),
    ("samples.npz", b"", "samples.npz: not a samples archive"),
    ("samples.npz", b"PK\x03\x04 truncated", "samples.npz: not a samples archive"),
    (".hydra/overrides.yaml", b"a: 1\n", ".hydra/overrides.yaml: not a list"),
]


@pytest.mark.parametrize(("name", "content", "why"), BROKEN, ids=[f"{n}:{w}" for n, _, w in BROKEN])
def test_a_damaged_file_makes_the_job_unreadable_naming_file_and_why(
    tmp_path, name: str, content: bytes, why: str
) -> None:
    path = finished_job(tmp_path)
    (path / name).write_bytes(content)
    record = read_job(path)
    assert record.state == "unreadable"
    assert record.error.startswith(why), record.error


def test_a_samples_archive_without_its_arrays_is_unreadable(tmp_path) -> None:
    path = finished_job(tmp_path)
    np.savez(path / "samples.npz", originals=np.zeros(3))
    assert read_job(path).error.startswith("samples.npz: has no reconstructions")


def test_a_folder_without_status_is_pending_and_a_dead_writer_is_stopped(tmp_path) -> None:
    assert read_job(tmp_path).state == "pending"
    path = finished_job(tmp_path)
    # The job's writer in a process that then exits: 'running', by a pid nobody holds now.
    writer = f"from histae.jobdir import JobDir; JobDir({str(path)!r}).write_status('running')"
    subprocess.run([sys.executable, "-c", writer], check=True)
    assert jobdir.read_status(path)["status"] == "running"
    record = read_job(path)
    assert record.state == "stopped" and "rerun to resume" in record.error


# ----------------------------------------------------------------------------------------------
# Names that cannot collide


@pytest.mark.parametrize(
    ("a", "b"), [("-0.5", "0.5"), ("-1", "1"), ("a_b", "a-b"), ("a/b", "a%2Fb"), ("", "%00")]
)
def test_values_that_look_alike_get_different_folders(a: str, b: str) -> None:
    names = job_names([[f"x.k={a}"], [f"x.k={b}"]])
    assert names[0] != names[1], names
    assert all("/" not in n and "_" not in n.split("-", 1)[1] for n in names)


def test_folder_names_stay_readable() -> None:
    jobs = [["loss.bins=100", "loss.sigma=50"], ["loss.bins=200", "loss.sigma=50"]]
    assert job_names(jobs) == ["bins-100", "bins-200"]
    assert job_names([["loss.bins=1", "a.bins=2"], ["loss.bins=3", "a.bins=4"]]) == [
        "loss.bins-1_a.bins-2",
        "loss.bins-3_a.bins-4",
    ]
    assert folder_value("-0.5") == "-0.5" and folder_value("a b") == "a%20b"


# ----------------------------------------------------------------------------------------------
# Checkpoints that are safe to receive


def a_checkpoint() -> dict:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": {},
        "state": {"inputs": 5, "rows": [{"split": "train", "loss": 1.0}]},
        "rng": rng_state(),
        "config": {"loss": {"bins": 50}},
    }


def test_a_checkpoint_round_trips_and_loads_with_weights_only(tmp_path) -> None:
    checkpoint = a_checkpoint()
    path = save_checkpoint(tmp_path / "checkpoint.pt", checkpoint)
    raw = torch.load(path, weights_only=True)  # the outer file is plain too
    assert raw["format"] == FORMAT and raw["version"] == VERSION
    loaded = load_checkpoint(path)
    assert loaded["state"] == checkpoint["state"] and loaded["config"] == checkpoint["config"]
    assert torch.equal(loaded["model"]["weight"], checkpoint["model"]["weight"])


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {Exploit.target}",))


def test_a_checkpoint_with_code_is_refused_without_running_it(tmp_path) -> None:
    Exploit.target = tmp_path / "pwned"
    torch.save({"format": FORMAT, "x": Exploit()}, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"checkpoint.pt cannot be read .*trainer.resume=false"):
        load_checkpoint(tmp_path / "checkpoint.pt")
    assert not (tmp_path / "pwned").exists()


def test_a_truncated_or_altered_checkpoint_is_refused(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "checkpoint.pt", a_checkpoint())
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"checkpoint.pt cannot be read .*trainer.resume=false"):
        load_checkpoint(path)
    buf = io.BytesIO()
    torch.save(a_checkpoint(), buf)
    blob = torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)
    torch.save({"format": FORMAT, "version": VERSION, "sha256": "0" * 64, "payload": blob}, path)
    with pytest.raises(ValueError, match="does not match its recorded digest"):
        load_checkpoint(path)
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="is not a histae checkpoint"):
        load_checkpoint(path)


def test_a_checkpoint_without_training_state_says_so_in_words(tmp_path) -> None:
    checkpoint = a_checkpoint()
    del checkpoint["state"]
    path = save_checkpoint(tmp_path / "checkpoint.pt", checkpoint)
    with pytest.raises(
        ValueError, match="has no training state; it was not written by this version of histae"
    ):
        load_checkpoint(path)


# ----------------------------------------------------------------------------------------------
# One writer per folder


def test_two_writers_cannot_hold_one_folder(tmp_path) -> None:
    first = JobDir(tmp_path)
    first.acquire()
    try:
        with pytest.raises(jobdir.FolderInUse, match="in use by another histae process"):
            JobDir(tmp_path).acquire()
    finally:
        first.release()
    JobDir(tmp_path).acquire()  # free again


# ----------------------------------------------------------------------------------------------
# One owner for every name


def _string_constants(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


@pytest.mark.parametrize(
    "name",
    [
        jobdir.STATUS,
        jobdir.METRICS,
        jobdir.SUMMARY,
        jobdir.SAMPLES,
        jobdir.CHECKPOINT,
        jobdir.MULTIRUN,
    ],
)
def test_each_job_file_name_is_spelled_once_in_the_package(name: str) -> None:
    places = [
        path.relative_to(ROOT).as_posix()
        for folder in ("histae", "hydra_plugins")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for const in _string_constants(path)
        if const == name or const.endswith("/" + name)
    ]
    assert places == ["histae/jobdir.py"], places


def test_outputs_page_lists_exactly_the_files_a_job_writes() -> None:
    # The table is generated from jobdir.FILES (python -m histae.docs; test_docs runs --check).
    page = (ROOT / "docs" / "outputs.md").read_text()
    section = page.split("<!-- BEGIN generated:job-files -->", 1)[1].split("<!-- END", 1)[0]
    listed = re.findall(r"^\| `([^`]+)` \|", section, flags=re.M)
    assert listed == list(jobdir.FILES)
