"""histae on a real one-node SLURM cluster (scripts/slurm-local.sh), through submitit_slurm.

Every job here goes through sbatch: SLURM's own record of it (jobcomp.txt, one line per finished
job with its array id and start/end times) and submitit's per-job logs are the evidence. The
controller (``python -m histae -m ...``) runs as a subprocess, exactly as README shows it.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from histae.checkpoint import load_checkpoint
from histae.jobdir import is_job_dir, read_metrics, read_status
from tests.helpers import ROOT

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

SCRIPT = ROOT / "scripts" / "slurm-local.sh"

# README's "Run on a cluster" commands; the tests run each of them (plus hydra.sweep.dir=...).
TRY_OUT = (
    "python -m histae -m +experiment=smoke hydra/launcher=submitit_slurm "
    "hydra.launcher.cpus_per_task=1 loss=l1,mse optimizer.lr=0.001,0.0003"
)
ONE_AT_A_TIME = (
    "python -m histae -m +experiment=smoke hydra/launcher=submitit_slurm "
    "hydra.launcher.array_parallelism=1 trainer.seed=1,2"
)
# README's way to take the node out, empty it and bring it back (run here through bash).
DRAIN = "scontrol update nodename=$(hostname -s) state=drain reason=maintenance"
CANCEL = "scancel <array job id>"
RESUME = "scontrol update nodename=$(hostname -s) state=resume"

# Three checkpoints (320, 640, 960 inputs) on one CPU: long enough to interrupt mid-run.
LONG_JOB = [
    "+experiment=smoke",
    "hydra/launcher=submitit_slurm",
    "hydra.launcher.cpus_per_task=1",
    "trainer.max_inputs=960",
    "trainer.val_every_inputs=320",
    "trainer.log_every_inputs=64",
]


@dataclass
class Cluster:
    """A running local cluster: the environment that finds it, and its state folder."""

    env: dict[str, str]
    dir: Path

    def run(self, *args: str, check: bool = False, timeout: float = 600) -> str:
        """Run a command (``squeue``, ``scontrol ...``) against this cluster; its stdout."""
        done = subprocess.run(
            args, env=self.env, capture_output=True, text=True, check=check, timeout=timeout
        )
        return done.stdout

    def finished_jobs(
        self, array_id: str, expect: int = 0, timeout: float = 30.0
    ) -> list[dict[str, str]]:
        """SLURM's records (jobcomp.txt) of the finished tasks of array job ``array_id``,
        waiting up to ``timeout`` s for ``expect`` of them: slurmctld writes a task's record
        when it has processed the task's end, which can come after submitit has read the
        task's result and the sweep has returned (seen once in CI: 1 of 2 records)."""
        path = self.dir / "jobcomp.txt"
        deadline = time.monotonic() + timeout
        while True:
            records = [
                dict(re.findall(r"(\w+)=(\S*)", line))
                for line in (path.read_text().splitlines() if path.exists() else [])
            ]
            found = [r for r in records if r.get("ArrayJobId") == array_id]
            if len(found) >= expect or time.monotonic() > deadline:
                return found
            time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A one-node cluster for the whole session, always stopped at the end (tests failing or not)."""
    if shutil.which("slurmctld") is None:
        pytest.skip("slurmctld is not installed (apt-get install -y slurm-wlm munge)")
    if os.geteuid() != 0:
        pytest.skip("the local SLURM cluster runs its daemons as root; run the tests as root")
    state = tmp_path_factory.mktemp("slurm")
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    # Ports of their own, so a try-out cluster on the default ports does not get in the way.
    env.update(
        HISTAE_SLURM_DIR=str(state),
        HISTAE_SLURM_CTLD_PORT=str(free_port()),
        HISTAE_SLURM_SLURMD_PORT=str(free_port()),
        SLURM_CONF=str(state / "slurm.conf"),
    )
    try:
        start = subprocess.run(
            [str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=120
        )
        if start.returncode != 0:
            lines = start.stderr.strip().splitlines() or ["(no output)"]
            pytest.fail(f"the local SLURM cluster did not start: {lines[-1]}", pytrace=False)
        yield Cluster(env, state)
    finally:
        subprocess.run([str(SCRIPT), "stop"], env=env, capture_output=True, timeout=120)


def histae(cluster: Cluster, command: str | list[str], sweep: Path) -> subprocess.Popen:
    """Start README's ``python -m histae ...`` (or ``-m`` + args) writing the sweep to ``sweep``.

    Its stderr goes to a file beside the sweep (see :func:`stderr_of`): a pipe nobody reads
    while a test waits on a job would fill up with submitit's polling lines and block it.
    """
    args = shlex.split(command)[3:] if isinstance(command, str) else ["-m", *command]
    sweep.parent.mkdir(parents=True, exist_ok=True)
    with open(stderr_path(sweep), "w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "histae", *args, f"hydra.sweep.dir={sweep}"],
            cwd=ROOT,
            env=cluster.env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )


def stderr_path(sweep: Path) -> Path:
    return sweep.with_name(f"{sweep.name}.stderr")


def stderr_of(sweep: Path) -> str:
    path = stderr_path(sweep)
    return path.read_text() if path.exists() else ""


def finish(proc: subprocess.Popen, sweep: Path, timeout: float = 600) -> tuple[int, str]:
    """Wait for the controller of ``sweep``; its exit status and stderr."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(
            f"the sweep did not end within {timeout} s: {stderr_of(sweep)[-2000:]}"
        ) from None
    return proc.returncode, stderr_of(sweep)


def job_folders(sweep: Path) -> list[str]:
    return sorted(p.name for p in sweep.iterdir() if p.is_dir() and is_job_dir(p))


def submitit_logs(sweep: Path) -> dict[str, Path]:
    """``{"<array>_<task>" (or "<job>" for a one-job sweep): its submitit log}``, one per job."""
    return {
        log.name.removesuffix("_0_log.out"): log
        for log in (sweep / ".submitit").glob("*/*_0_log.out")
    }


def job_of_log(text: str) -> str:
    """The job folder a submitit log's histae lines name (``[loss-l1_lr-0.001] ...``)."""
    match = re.search(r"\] - \[([^\]]+)\] [\d,]+ parameters", text)
    assert match, text[-2000:]
    return match.group(1)


def wait_until(
    predicate: Callable[[], bool], proc: subprocess.Popen, sweep: Path, what: str
) -> None:
    deadline = time.monotonic() + 300
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the sweep ended before {what}: {stderr_of(sweep)[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def report_rows(sweep: Path) -> list[dict[str, str]]:
    """The rows of the sweep report's results.csv."""
    with open(sweep / "report" / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def results(sweep: Path, key: str) -> dict[str, str]:
    """The sweep report's results as ``{row[key]: row["status"]}`` (``key``: a swept one)."""
    return {row[key]: row["status"] for row in report_rows(sweep)}


def train_rows_past(job_dir: Path, inputs: int) -> bool:
    try:
        rows = read_metrics(job_dir / "metrics.csv")
    except (OSError, ValueError):
        return False
    return any(r["split"] == "train" and r["inputs"] > inputs for r in rows)


def test_the_script_names_missing_packages_in_one_line(tmp_path) -> None:
    bash = shutil.which("bash")
    assert bash is not None
    done = subprocess.run(
        [bash, str(SCRIPT), "start"],
        env={"PATH": str(tmp_path), "HISTAE_SLURM_DIR": str(tmp_path / "slurm")},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "slurm-local: error: missing munge slurmctld slurmd slurm-client; "
        "install with: apt-get install -y slurm-wlm munge"
    ]
    assert not (tmp_path / "slurm").exists()


def test_cluster_page_commands_are_the_tested_ones() -> None:
    section = (ROOT / "docs" / "cluster.md").read_text()
    commands = [
        line
        for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)
        for line in block.strip().splitlines()
    ]
    assert commands == [
        "apt-get install -y slurm-wlm munge",  # CI's apt-get line installs both
        'eval "$(scripts/slurm-local.sh start)"',  # the cluster fixture (and the next test)
        TRY_OUT,
        ONE_AT_A_TIME,
        "scripts/slurm-local.sh status",
        "scripts/slurm-local.sh stop",  # the cluster fixture, at the end
        DRAIN,
        CANCEL,
        RESUME,
    ]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "apt-get install -y" in ci and " slurm-wlm munge " in ci


def test_submitit_requeue_signal_only_in_a_submitit_slurm_job() -> None:
    from histae.signals import submitit_requeue_signal

    assert submitit_requeue_signal({}) is None
    assert submitit_requeue_signal({"SUBMITIT_EXECUTOR": "local"}) is None
    assert submitit_requeue_signal({"SUBMITIT_EXECUTOR": "slurm"}) == signal.SIGUSR2
    env = {"SUBMITIT_EXECUTOR": "slurm", "SUBMITIT_PREEMPT_SIGNAL": "USR1"}
    assert submitit_requeue_signal(env) == signal.SIGUSR1


@pytest.mark.slow
def test_start_again_finds_the_running_cluster(cluster) -> None:
    again = subprocess.run(
        [str(SCRIPT), "start"], env=cluster.env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0
    assert "already running" in again.stderr
    assert again.stdout == f"export SLURM_CONF={cluster.dir / 'slurm.conf'}\n"
    status = subprocess.run(
        [str(SCRIPT), "status"], env=cluster.env, capture_output=True, text=True
    )
    assert status.returncode == 0
    assert re.search(r"\b(idle|mixed|allocated)\b", status.stdout), status.stdout


@pytest.mark.slow
def test_two_by_two_sweep_runs_as_four_slurm_jobs(cluster, tmp_path) -> None:
    sweep = tmp_path / "sweep"
    code, err = finish(histae(cluster, TRY_OUT, sweep), sweep)
    assert code == 0, err[-2000:]
    jobs = ["loss-l1_lr-0.0003", "loss-l1_lr-0.001", "loss-mse_lr-0.0003", "loss-mse_lr-0.001"]
    assert job_folders(sweep) == jobs
    # One sbatch of a 4-task array ...
    submission = next((sweep / ".submitit").glob("*/*_submission.sh")).read_text()
    assert "#SBATCH --array=0-3%4" in submission and "#SBATCH --cpus-per-task=1" in submission
    logs = submitit_logs(sweep)
    array_ids = {name.split("_")[0] for name in logs}
    assert len(logs) == 4 and len(array_ids) == 1
    # ... that SLURM ran and recorded: four tasks, each completed.
    records = cluster.finished_jobs(array_ids.pop(), expect=4)
    assert sorted(r["ArrayTaskId"] for r in records) == ["0", "1", "2", "3"]
    assert {r["JobState"] for r in records} == {"COMPLETED"}
    seen = set()
    for task, log in logs.items():
        text = log.read_text()
        assert f"JobEnvironment(job_id={task}," in text  # submitit read SLURM_JOB_ID & co.
        seen.add(job_of_log(text))
        # cpus_per_task=1 -> one torch thread (torch would take both cores otherwise).
        assert " on cpu, 1 threads" in text, text[-2000:]
    assert sorted(seen) == jobs
    statuses = {(r["loss"], r["optimizer.lr"]): r["status"] for r in report_rows(sweep)}
    assert sorted(statuses) == [
        ("l1", "0.0003"),
        ("l1", "0.001"),
        ("mse", "0.0003"),
        ("mse", "0.001"),
    ]
    assert set(statuses.values()) <= {"done", "done, collapsed"}, statuses


# The bad value passes the sweep's up-front checks (a batch is not known to be too big before the
# job has loaded its tiles), so it fails inside its SLURM job.
# the smoke set: 320 procedural tiles, 302 of them for training (the hash split)
TOO_BIG = "ValueError: trainer.batch_size=6000 is larger than the 302 training tiles; lower it"


@pytest.fixture(scope="module")
def failing_sweep(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, int, str]:
    """A 2-job sweep on the cluster whose second job fails: its folder, exit status, stderr."""
    sweep = tmp_path_factory.mktemp("failing") / "sweep"
    args = [*LONG_JOB[:3], "trainer.max_inputs=32", "trainer.batch_size=16,6000"]
    code, err = finish(histae(cluster, args, sweep), sweep)
    return sweep, code, err


@pytest.mark.slow
def test_a_job_that_fails_on_the_cluster_is_reported_and_the_others_finish(
    cluster, failing_sweep
) -> None:
    sweep, code, err = failing_sweep
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert f"1 of 2 jobs failed (batch_size-6000: {TOO_BIG})" in last, err[-2000:]
    assert read_status(sweep / "batch_size-16")["status"] == "done"
    assert results(sweep, "trainer.batch_size")["16"] in {"done", "done, collapsed"}
    # Both ran on the cluster: histae caught the error inside its SLURM job and returned it.
    logs = submitit_logs(sweep)
    (array_id,) = {name.split("_")[0] for name in logs}
    assert len(cluster.finished_jobs(array_id, expect=2)) == 2
    assert sum(TOO_BIG.split(": ", 1)[1] in log.read_text() for log in logs.values()) == 1
    assert TOO_BIG.split(": ", 1)[1] in (sweep / "batch_size-6000" / "histae.log").read_text()


@pytest.mark.slow
def test_the_report_lists_the_failed_job_with_its_error(failing_sweep) -> None:
    sweep, _, _ = failing_sweep
    assert results(sweep, "trainer.batch_size").get("6000") == f"failed: {TOO_BIG}"


@pytest.mark.slow
def test_array_parallelism_one_runs_the_jobs_one_at_a_time(cluster, tmp_path) -> None:
    sweep = tmp_path / "sweep"
    code, err = finish(histae(cluster, ONE_AT_A_TIME, sweep), sweep)
    assert code == 0, err[-2000:]
    assert job_folders(sweep) == ["seed-1", "seed-2"]
    submission = next((sweep / ".submitit").glob("*/*_submission.sh")).read_text()
    assert "#SBATCH --array=0-1%1" in submission
    (array_id,) = {name.split("_")[0] for name in submitit_logs(sweep)}
    # SLURM's start and end times (whole seconds): each job starts once the one before has ended.
    records = cluster.finished_jobs(array_id, expect=2)
    runs = sorted((r["StartTime"], r["EndTime"]) for r in records)
    assert len(runs) == 2
    assert runs[1][0] >= runs[0][1], runs
    # The same from the jobs' own logs, to the millisecond.
    spans = sorted(log_span(log.read_text()) for log in submitit_logs(sweep).values())
    assert spans[1][0] >= spans[0][1], spans
    # No cpus_per_task asked: SLURM allots one CPU per task by default, and that is what ran.
    for log in submitit_logs(sweep).values():
        assert " on cpu, 1 threads" in log.read_text()


def log_span(text: str) -> tuple[str, str]:
    """The first and last timestamps of a submitit log (``2026-11-29 00:06:55,609``)."""
    stamps = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}", text)
    return stamps[0], stamps[-1]


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LONG_JOB run without interruption, here, on one thread like its SLURM job."""
    run_dir = tmp_path_factory.mktemp("straight") / "job"
    job = [a for a in LONG_JOB if not a.startswith("hydra")]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    done = subprocess.run(
        [sys.executable, "-m", "histae", *job, "trainer.threads=1", f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return run_dir


def interrupt_and_finish(cluster: Cluster, sweep: Path, signal_job: Callable[[str], None]) -> Path:
    """Run LONG_JOB on the cluster; past its first checkpoint, ``signal_job(slurm_job_id)``.

    Returns the job folder once the controller has ended (with exit status 0).
    """
    proc = histae(cluster, LONG_JOB, sweep)

    def job_dir() -> Path | None:
        folders = job_folders(sweep) if sweep.is_dir() else []
        return sweep / folders[0] if folders else None

    wait_until(
        lambda: (d := job_dir()) is not None and train_rows_past(d, 320), proc, sweep, "320 inputs"
    )
    (slurm_id,) = submitit_logs(sweep)
    signal_job(slurm_id)
    code, err = finish(proc, sweep)
    assert code == 0, err[-2000:]
    folder = job_dir()
    assert folder is not None
    return folder


def assert_resumed_bitwise(job: Path, straight: Path, log: str) -> None:
    """The job started twice, the second time from a checkpoint, and ended as ``straight``."""
    assert log.count("Starting with JobEnvironment") == 2, log[-3000:]
    resumed = [int(n) for n in re.findall(r"resuming at (\d+) inputs", log)]
    assert len(resumed) == 1 and 320 <= resumed[0] < 960, log[-3000:]
    assert read_status(job)["status"] == "done"
    a = load_checkpoint(straight / "checkpoint.pt")
    b = load_checkpoint(job / "checkpoint.pt")
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    assert (straight / "metrics.csv").read_text() == (job / "metrics.csv").read_text()


def assert_resumed_where_it_stopped(log: str) -> None:
    """The second run started at the step the signal stopped (the test sends it once a train
    row past 320 inputs exists, so at 384 or later), not at a validation checkpoint (a multiple
    of 320)."""
    (resumed,) = (int(n) for n in re.findall(r"resuming at (\d+) inputs", log))
    assert resumed >= 384 and resumed % 320 != 0, resumed


@pytest.mark.slow
def test_requeued_job_resumes_from_its_checkpoint_bitwise(cluster, straight, tmp_path) -> None:
    # What SLURM does on preemption with PreemptMode=REQUEUE: SIGCONT and SIGTERM to the job,
    # SIGKILL KillWait seconds later, then the same job id back in the queue.
    sweep = tmp_path / "sweep"
    job = interrupt_and_finish(
        cluster, sweep, lambda jid: cluster.run("scontrol", "requeue", jid, check=True)
    )
    (log,) = submitit_logs(sweep).values()
    text = log.read_text()
    # histae caught the SIGTERM, checkpointed the step it was at and left (no SIGKILL needed):
    # the second run starts exactly there, not at the last validation.
    stopped = re.search(r"got signal 15: stopping after this step", text)
    assert stopped, text[-3000:]
    assert_resumed_bitwise(job, straight, text)
    assert_resumed_where_it_stopped(text)


@pytest.mark.slow
def test_time_limit_signal_checkpoints_requeues_and_resumes_bitwise(
    cluster, straight, tmp_path
) -> None:
    # What SLURM sends signal_delay_s before the time limit (sbatch --signal=USR2@...): histae
    # checkpoints the step, then submitit pickles the job again (the launcher's checkpoint()),
    # runs `scontrol requeue` and exits.
    sweep = tmp_path / "sweep"
    job = interrupt_and_finish(
        cluster, sweep, lambda jid: cluster.run("scancel", "--signal=USR2", jid, check=True)
    )
    (log,) = submitit_logs(sweep).values()
    text = log.read_text()
    # histae stopped at the step with a checkpoint first, then let submitit requeue the job.
    stopped = re.search(rf"got signal {int(signal.SIGUSR2)}: stopping after this step", text)
    assert stopped, text[-3000:]
    assert "Caught signal SIGUSR2" in text and f"Requeued job {log.parent.name}" in text
    assert_resumed_bitwise(job, straight, text)
    assert_resumed_where_it_stopped(text)


@pytest.mark.slow
def test_sweep_resumes_after_the_cluster_was_drained(cluster, tmp_path) -> None:
    # A short job that finishes, then a long one that the drain interrupts past a checkpoint.
    sweep = tmp_path / "sweep"
    args = [
        *LONG_JOB[:3],
        "hydra.launcher.array_parallelism=1",
        "trainer.val_every_inputs=320",
        "trainer.max_inputs=192,960",
    ]
    proc = histae(cluster, args, sweep)
    long_job = sweep / "max_inputs-960"
    wait_until(lambda: train_rows_past(long_job, 320), proc, sweep, "the second job's checkpoint")
    # README: drain the node, cancel what still runs, stop the controller (it would wait on).
    cluster.run("bash", "-c", DRAIN, check=True)
    (array_id,) = {name.split("_")[0] for name in submitit_logs(sweep)}
    cluster.run("bash", "-c", CANCEL.replace("<array job id>", array_id), check=True)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    assert read_status(sweep / "max_inputs-192")["status"] == "done"
    # scancel's SIGTERM: the job checkpoints the step it reached and records that it stopped.
    deadline = time.monotonic() + 60
    while read_status(long_job)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert read_status(long_job)["status"] == "stopped"

    cluster.run("bash", "-c", RESUME, check=True)
    code, err = finish(histae(cluster, args, sweep), sweep)
    assert code == 0, err[-2000:]
    statuses = results(sweep, "trainer.max_inputs")
    assert sorted(statuses) == ["192", "960"], statuses
    assert set(statuses.values()) <= {"done", "done, collapsed"}, statuses
    short_log = (sweep / "max_inputs-192" / "histae.log").read_text()
    assert "already done (192 inputs); skipping" in short_log
    long_log = (long_job / "histae.log").read_text()
    resumed = [int(n) for n in re.findall(r"resuming at (\d+) inputs", long_log)]
    assert len(resumed) == 1 and 320 <= resumed[0] < 960, long_log[-3000:]


@pytest.mark.slow
def test_a_small_search_runs_each_trial_as_a_slurm_array(cluster, tmp_path) -> None:
    """hparams_search under submitit_slurm: trial by trial, each trial's seeds one array; no
    pruning there (the jobs run in SLURM's processes), whole trials only."""
    optuna = pytest.importorskip("optuna")
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    sweep = tmp_path / "sweep"
    args = [
        *LONG_JOB[:3],
        "hparams_search=tiny",
        "hydra.sweeper.search.n_trials=2",
        "trainer.seed=1,2",
    ]
    code, err = finish(histae(cluster, args, sweep), sweep)
    assert code == 0, err[-2000:]
    storage = JournalStorage(JournalFileBackend(str(sweep / "optuna.journal")))
    trials = optuna.load_study(study_name="histae", storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    folders = sorted(f for t in trials for f in t.user_attrs["folders"])
    assert job_folders(sweep) == folders and len(folders) == 4
    arrays: dict[str, list[str]] = {}
    for name in submitit_logs(sweep):
        array, _, task = name.partition("_")
        arrays.setdefault(array, []).append(task)
    assert sorted(sorted(tasks) for tasks in arrays.values()) == [["0", "1"], ["0", "1"]]
    for array in arrays:
        records = cluster.finished_jobs(array, expect=2)
        assert {r["JobState"] for r in records} == {"COMPLETED"}
    assert (sweep / "best.yaml").is_file()
