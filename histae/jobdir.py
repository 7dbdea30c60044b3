"""The job folder: the one module that knows what a job writes, and how to read it back.

A job folder holds (``FILES`` below is the list README's table is checked against):

- ``status.json``: the job's state; its lifecycle is ``running`` -> ``done`` | ``failed`` |
  ``diverged`` | ``stopped`` (SIGTERM, Ctrl-C; resumable). Only :meth:`JobDir.recording` writes
  it, so a job records its own ending.
- ``metrics.csv`` (``METRIC_COLUMNS``), ``summary.json``, ``samples.npz``, ``checkpoint.pt``,
  the ``.hydra/`` record, and the pictures the job draws at each validation.

Every write is atomic (:mod:`histae.atomic`). Every reader is total: :func:`read_job` never
raises on what it finds in a folder; a file it cannot make sense of makes the job
``unreadable`` with ``"<file>: <why>"``, so one broken job cannot take a report down.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import io
import json
import math
import os
import socket
import stat
import time
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import yaml

from histae.atomic import atomic_write, remove_stale_temps, write_json, write_text

# ----------------------------------------------------------------------------------------------
# What a job folder holds

STATUS = "status.json"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
SAMPLES = "samples.npz"
CHECKPOINT = "checkpoint.pt"
HYDRA = ".hydra"
LOSS_PLOT = "loss.png"
GRID = "reconstructions.png"
GRIDS = "reconstructions"
HISTOGRAMS = "histograms.png"
LOCK = ".lock"
MULTIRUN = "multirun.yaml"  # Hydra's record of a sweep: marks a sweep folder, never a job's

FILES: dict[str, str] = {
    METRICS: (
        "one row per train average (`split=train`) and per validation (`split=val`): inputs seen, "
        "`loss` and its parts (`loss_reconstruction`, `loss_batch_std`, `loss_batch_mean`), "
        "learning rate, and what the reference never logged: pixel L1, MSE and PSNR of the "
        "reconstructions, `hist_w1`, the exact 1-D Wasserstein distance between the per-channel "
        "colour distributions of reconstruction and original, and (validation rows) the "
        "input-dependence scores `retrieval_top1_*`, `retrieval_rank_*`, `spread_ratio`"
    ),
    LOSS_PLOT: "train and validation loss against inputs seen, and PSNR, titled from the job's config",
    GRID: (
        "the latest validation grid: the first 32 validation tiles, rows of 8 originals over their "
        "8 reconstructions, clamped and scaled up 4x"
    ),
    f"{GRIDS}/": "one such grid per validation, `inputs-000012032.png`",
    HISTOGRAMS: "colour histograms of all validation originals vs reconstructions, per channel",
    SAMPLES: (
        "the grid's images and the per-channel 256-bin colour histograms, for the report (no "
        "pickles)"
    ),
    CHECKPOINT: (
        "while the job can go on: model, optimizer, scheduler, counters, data position, every "
        "RNG state, config; once it is done: the weights, counters and config only "
        "(`trainer.keep_state=true` keeps all); a SHA-256 of its payload; loads with "
        "`torch.load(weights_only=True)`, so no code runs"
    ),
    SUMMARY: "config, final train/validation metrics, parameter count, wall time, images/s",
    STATUS: (
        "`running` / `done` / `failed` / `diverged` / `stopped`, with the error's first line, "
        "inputs seen, wall time, and the writing host and pid (so a report shows a killed job as "
        "`stopped`)"
    ),
    f"{HYDRA}/": (
        "Hydra's record: `config.yaml`, `hydra.yaml`, `overrides.yaml`, written once the job has "
        "passed its checks"
    ),
    "index.html": (
        "a single run's own page (config, curves, grids, colour histograms, links to its files); a "
        "sweep job's page is in the sweep's `report/`"
    ),
    "mlflow.db": (
        "with `logger=mlflow`, a single run's: its MLflow runs (a sweep's jobs share one in the "
        "sweep folder), artifacts beside it in `mlartifacts/` (histae.loggers)"
    ),
    "profile.json": "with `debug=profile`: a torch.profiler trace of a few steps (histae.debug)",
    "events.out.tfevents.*": (
        "with `logger=tensorboard`: the reference's scalars, the reconstruction grid at each "
        "validation, and the job's hparams with its final metrics"
    ),
}
"""Every file and folder a job writes, with what it holds (docs/outputs.md's table, generated)."""

METRIC_COLUMNS = [
    "inputs",
    "split",
    "loss",
    "loss_reconstruction",
    "loss_batch_std",
    "loss_batch_mean",
    "lr",
    "pixel_l1",
    "pixel_mse",
    "psnr",
    "hist_w1",
    "retrieval_top1_channel",
    "retrieval_rank_channel",
    "retrieval_top1_joint",
    "retrieval_rank_joint",
    "spread_ratio",
]
"""Columns of metrics.csv: one row per train average (split=train) or validation (split=val)."""

STATUSES = ("running", "done", "failed", "diverged", "stopped")
"""What status.json may say. ``stopped``: interrupted cleanly, resumable by the same command."""

_MAX_PID = 2**22  # Linux's pid_max ceiling: a larger "pid" is not one


class Unreadable(ValueError):
    """A job file exists but cannot be used: ``"<file>: <why>"``."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"{name}: {why}")
        self.name, self.why = name, why


MiB = 1 << 20
SIZE_LIMITS: dict[str, int] = {
    STATUS: 1 * MiB,
    SUMMARY: 16 * MiB,
    METRICS: 64 * MiB,
    "overrides.yaml": 1 * MiB,
    "config.yaml": 4 * MiB,
    "hydra.yaml": 4 * MiB,
    MULTIRUN: 4 * MiB,
}
"""The largest file of each kind a reader takes (a real one is a small fraction of this)."""

SAMPLES_LIMIT = 256 * MiB
"""The most bytes samples.npz's arrays may declare, checked before any is decompressed."""


def read_regular(path: str | os.PathLike, limit: int | None = None) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes.

    Files in a job or sweep folder may come from someone else: a FIFO would block a reader for
    ever, ``/dev/zero`` would fill memory, a link would lead outside the folder. So the file
    is opened without following a symbolic link and without waiting (O_NONBLOCK), then
    checked with fstat before a byte is read.

    Raises:
        FileNotFoundError: there is no such file.
        Unreadable: a link, not a regular file, larger than ``limit``, or an OS error (named
            by the file's name).
    """
    path = Path(path)
    limit = SIZE_LIMITS.get(path.name, 64 * MiB) if limit is None else limit
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise Unreadable(path.name, "a symbolic link, not a file histae wrote") from None
        raise Unreadable(path.name, err.strerror or type(err).__name__) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Unreadable(path.name, "not a regular file")
        if info.st_size > limit:
            raise Unreadable(
                path.name, f"{info.st_size:,} bytes, more than the {limit:,} such a file may have"
            )
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # grew while being read
                raise Unreadable(path.name, f"more than the {limit:,} bytes such a file may have")
        return b"".join(chunks)
    except OSError as err:
        raise Unreadable(path.name, err.strerror or type(err).__name__) from None
    finally:
        os.close(fd)


class _NoAliasLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses aliases: histae's and Hydra's files never use them, and
    a few hundred bytes of nested aliases expand to billions of nodes."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases (*name) are not allowed in histae's files")
        return super().compose_node(parent, index)


def load_yaml(path: str | os.PathLike) -> Any:
    """A YAML file of a job or sweep folder, bounded: a regular file under its size limit,
    no aliases (:func:`read_regular`).

    Raises:
        FileNotFoundError: there is no such file.
        Unreadable: it cannot be read or is not YAML.
    """
    path = Path(path)
    text = read_regular(path).decode("utf-8", errors="replace")
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader: builds no objects
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise Unreadable(path.name, f"not YAML ({first[:80]})") from None


class JobStopped(BaseException):
    """The job was asked to stop (SIGTERM, SIGINT) and left a checkpoint to resume from.

    Not an ``Exception``: it must pass through Hydra's job runner and the sweeper, so Ctrl-C in
    a sweep stops the sweep instead of being recorded as one failed job.
    """

    def __init__(self, signum: int, job_dir: Path, inputs: int) -> None:
        super().__init__(f"stopped by signal {signum} at {inputs} inputs")
        self.signum, self.job_dir, self.inputs = signum, job_dir, inputs


class JobPruned(Exception):
    """A search's pruner stopped the job at a validation (:mod:`histae.pruning`); its checkpoint
    of that validation is kept, and the folder says ``stopped``.

    An ``Exception``, unlike :class:`JobStopped`: the launcher records it as the job's ending and
    the sweep goes on with the next trial.
    """

    def __init__(self, job_dir: Path, inputs: int) -> None:
        super().__init__(f"pruned by the search at {inputs} inputs")
        self.job_dir, self.inputs = job_dir, inputs


def error_line(err: BaseException) -> str:
    """``"TypeName: first line of the message"``: how status.json and the logs name an error."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


# ----------------------------------------------------------------------------------------------
# Formats


def format_metric_rows(rows: Iterable[Mapping[str, Any]]) -> str:
    """metrics.csv text for ``rows`` (missing columns empty)."""
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _format_value(row.get(k)) for k in METRIC_COLUMNS})
    return buf.getvalue()


def _format_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def parse_metrics(text: str) -> list[dict[str, Any]]:
    """Rows of metrics.csv text with numbers as int/float (empty cells dropped).

    Raises:
        ValueError: not a metrics table (no ``inputs``/``split`` header, a cell that is no number,
            a field larger than csv's limit).
    """
    try:
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or not {"inputs", "split"} <= set(reader.fieldnames):
            raise ValueError("no inputs,split header")
        rows = []
        for n, raw in enumerate(reader, start=2):
            row: dict[str, Any] = {}
            for key, cell in raw.items():
                if key is None or cell in (None, ""):
                    continue
                try:
                    row[key] = cell if key == "split" else (int if key == "inputs" else float)(cell)
                except ValueError:
                    raise ValueError(f"line {n}: {key}={cell[:20]!r} is not a number") from None
            if "inputs" not in row or row.get("split") not in ("train", "val"):
                raise ValueError(f"line {n}: no inputs or no split=train|val")
            rows.append(row)
        return rows
    except csv.Error as err:
        raise ValueError(str(err)) from None


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a metrics.csv (see :func:`parse_metrics`); OSError/ValueError if unusable
    (:class:`Unreadable`, a ValueError, for a link, a FIFO or an oversized file)."""
    return parse_metrics(read_regular(path).decode("utf-8", errors="replace"))


def _read_object(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; Unreadable (named by file) for anything else."""
    try:
        data = json.loads(read_regular(path))
    except Unreadable:
        raise
    except FileNotFoundError as err:
        raise Unreadable(path.name, err.strerror or "no such file") from None
    except OSError as err:
        raise Unreadable(path.name, err.strerror or type(err).__name__) from None
    except ValueError as err:  # includes UnicodeDecodeError
        raise Unreadable(path.name, f"not JSON ({str(err).splitlines()[0][:80]})") from None
    if not isinstance(data, dict):
        raise Unreadable(path.name, f"not a JSON object but a {type(data).__name__}")
    return data


def _check_status(data: dict[str, Any]) -> dict[str, Any]:
    if data.get("status") not in STATUSES:
        raise Unreadable(STATUS, f"status {str(data.get('status'))[:40]!r} is none of {STATUSES}")
    for key, kind in (("inputs", int), ("wall_time", (int, float))):
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            raise Unreadable(STATUS, f"{key} is not a number")
    pid = data.get("pid")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int)):
        raise Unreadable(STATUS, "pid is not a whole number")
    if pid is not None and not 0 < pid < _MAX_PID:
        raise Unreadable(STATUS, f"pid {pid} is not a process id")
    if data.get("error") is not None and not isinstance(data["error"], str):
        raise Unreadable(STATUS, "error is not text")
    return data


def is_stopped(status: Mapping[str, Any]) -> bool:
    """A ``running`` status whose writer, a process on this host, no longer exists (killed)."""
    if status.get("status") != "running" or status.get("host") != socket.gethostname():
        return False
    pid = status.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid == os.getpid():
        return False
    if not 0 < pid < _MAX_PID:
        return True  # no process can have it: whatever wrote it is gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):  # alive, another user's
        return False
    return False


# ----------------------------------------------------------------------------------------------
# Reading a job folder


@dataclass
class JobRecord:
    """What a job folder says about its job, as a report needs it. Reading never raises."""

    path: Path
    state: str  # a STATUSES value, "pending" (no status yet) or "unreadable"
    error: str | None = None  # a failed/diverged job's error, or an unreadable file's "file: why"
    status: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)

    def final(self, split: str) -> dict[str, Any]:
        """The final row of ``split`` (train | val): a finished job's from summary.json (the
        record written once, at the end), else the last metrics.csv row; {} if none yet."""
        final = self.summary.get("final") if self.state == "done" else None
        row = final.get(split) if isinstance(final, dict) else None
        if isinstance(row, dict) and row:
            return row
        return next((r for r in reversed(self.rows) if r.get("split") == split), {})

    @property
    def inputs(self) -> int | None:
        """Images seen so far (status.json, else the last metrics row)."""
        if isinstance(self.status.get("inputs"), int):
            return self.status["inputs"]
        return self.rows[-1]["inputs"] if self.rows else None

    @property
    def wall_time(self) -> float | None:
        """Seconds of training, summed over every run of the job."""
        value = self.status.get("wall_time")
        return float(value) if isinstance(value, int | float) else None

    @property
    def images_per_second(self) -> float | None:
        """Training speed: the summary's, else inputs over wall time."""
        speed = self.summary.get("images_per_second")
        if self.state == "done" and isinstance(speed, int | float):
            return float(speed)
        if self.inputs and self.wall_time:
            return round(self.inputs / self.wall_time, 2)
        return None


def is_job_dir(path: Path) -> bool:
    """A job folder holds status.json (once training started) or Hydra's overrides.yaml."""
    return (path / STATUS).is_file() or (path / HYDRA / "overrides.yaml").is_file()


def read_overrides(job_dir: str | os.PathLike) -> list[str]:
    """The job's command-line overrides as written (.hydra/overrides.yaml).

    Raises:
        Unreadable: the file exists but is not a YAML list.
    """
    path = Path(job_dir) / HYDRA / "overrides.yaml"
    try:
        data = load_yaml(path)
    except FileNotFoundError:
        return []
    except Unreadable as err:
        raise Unreadable(f"{HYDRA}/overrides.yaml", err.why) from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise Unreadable(f"{HYDRA}/overrides.yaml", "not a list of overrides")
    return [str(o) for o in data]


def read_job(job_dir: str | os.PathLike) -> JobRecord:
    """Everything a report shows about one job; never raises on the folder's content.

    A job that has not written status.json yet is ``pending``; a ``running`` job whose process
    is gone is ``stopped``; any file that exists but cannot be read makes it ``unreadable``.
    """
    job_dir = Path(job_dir)
    record = JobRecord(path=job_dir, state="pending")
    try:
        record.overrides = read_overrides(job_dir)
        if (job_dir / STATUS).exists():
            record.status = _check_status(_read_object(job_dir / STATUS))
            record.state = record.status["status"]
            record.error = _first_line(record.status.get("error"))
        if (job_dir / SUMMARY).exists():
            record.summary = _read_object(job_dir / SUMMARY)
        if (job_dir / METRICS).exists():
            try:
                record.rows = read_metrics(job_dir / METRICS)
            except (OSError, ValueError) as err:
                raise Unreadable(METRICS, str(err)[:120]) from None
        if (job_dir / SAMPLES).exists():
            read_samples(job_dir / SAMPLES)
    except Unreadable as err:
        record.state, record.error = "unreadable", str(err)
        return record
    if is_stopped(record.status):  # killed mid-run (SIGKILL, node failure): say so
        record.state = "stopped"
        record.error = f"process {record.status['pid']} exited without finishing; rerun to resume"
    return record


def rows_agree(rows: list[dict[str, Any]], summary: Mapping[str, Any]) -> bool:
    """Whether ``rows`` (metrics.csv) end with the summary's final train and validation rows,
    to metrics.csv's 6 significant digits."""
    final = summary.get("final")
    if not isinstance(final, Mapping):
        return True  # nothing recorded to check against
    for split in ("train", "val"):
        want = final.get(split)
        if not isinstance(want, Mapping) or not want:
            continue
        have = next((r for r in reversed(rows) if r.get("split") == split), None)
        if have is None or have.get("inputs") != want.get("inputs"):
            return False
        for key, value in want.items():
            if key in ("inputs", "split") or finite_or_none(value) is None:
                continue
            got = finite_or_none(have.get(key))
            if got is None or not math.isclose(got, float(value), rel_tol=1e-5, abs_tol=1e-12):
                return False
    return True


def _first_line(text: Any) -> str | None:
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return lines[0] if lines else None


SAMPLE_KEYS = (
    "originals",
    "reconstructions",
    "hist_edges",
    "hist_originals",
    "hist_reconstructions",
)


def _check_archive(raw: bytes, name: str) -> None:
    """Read every array's header in an .npz (no data): numeric dtypes, and at most
    :data:`SAMPLES_LIMIT` bytes declared in all, so a small file cannot expand to gigabytes."""
    total = 0
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        for member in archive.infolist():
            with archive.open(member) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            if dtype.hasobject or dtype.kind not in "biuf":
                raise Unreadable(name, f"{member.filename} holds {dtype}, not numbers")
            total += math.prod(shape) * dtype.itemsize
            if total > SAMPLES_LIMIT:
                raise Unreadable(
                    name, f"its arrays declare more than {SAMPLES_LIMIT:,} bytes; refused"
                )


def read_samples(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """samples.npz as arrays (no pickles); Unreadable if it is not one.

    The archive is read whole first (a regular file under :data:`SAMPLES_LIMIT`), and every
    array's declared shape and dtype is checked before any is decompressed.
    """
    path = Path(path)
    raw = read_regular(path, SAMPLES_LIMIT)
    try:
        _check_archive(raw, path.name)
        with np.load(io.BytesIO(raw), allow_pickle=False) as data:
            samples = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, MemoryError) as err:
        if isinstance(err, Unreadable):
            raise
        raise Unreadable(path.name, f"not a samples archive ({type(err).__name__})") from None
    missing = [k for k in SAMPLE_KEYS if k not in samples]
    if missing:
        raise Unreadable(path.name, f"has no {', '.join(missing)}")
    return samples


# ----------------------------------------------------------------------------------------------
# Writing: one JobDir per running job


class UnsafeFolder(ValueError):
    """A job folder histae must not write into: one line naming the path and why."""


WRITTEN_DIRS = (HYDRA, GRIDS)
"""Folders a job creates and writes into."""


def check_writable(job_dir: str | os.PathLike, log_name: str = "histae.log") -> None:
    """Refuse a job folder whose writes could land outside it, before anything is written.

    histae writes only regular files and folders it creates inside the job folder, never
    through a symbolic link: a received folder whose ``.hydra``, ``reconstructions``, log or
    ``.lock`` is a link to another folder would otherwise carry the job's writes there.
    Atomic writes replace a link to a file by a file (the rename replaces the link, not its
    target), but a linked folder, an appended log or the lock would follow it.

    Raises:
        UnsafeFolder: the folder is a link or not a folder; one of the names histae writes is
            a link, or of the wrong kind (a folder where a file goes, a FIFO, ...).
    """
    job_dir = Path(job_dir)
    check_name_lengths(job_dir)
    if not log_name or "/" in log_name or log_name.startswith("."):
        raise UnsafeFolder(
            f"hydra.job.name: {log_name[:-4]!r} would put the job's log outside its folder; use "
            "a plain name (the default is histae)"
        )
    if job_dir.is_symlink():
        raise UnsafeFolder(
            f"{job_dir} is a symbolic link: histae writes only into folders it creates; use "
            "another folder (hydra.run.dir=... / hydra.sweep.dir=...)"
        )
    if not job_dir.exists():
        return
    if not job_dir.is_dir():
        raise UnsafeFolder(f"{job_dir} is not a folder; choose another folder for the job")
    files = [*(n.rstrip("/") for n in FILES if not n.endswith("/") and "*" not in n)]
    files += [LOCK, log_name] + [
        f"{HYDRA}/{n}" for n in ("config.yaml", "hydra.yaml", "overrides.yaml")
    ]
    for name in (*WRITTEN_DIRS, *files):
        path = job_dir / name
        if path.is_symlink():
            raise UnsafeFolder(
                f"{path} is a symbolic link: histae does not write through links; remove it "
                "(or use another folder)"
            )
        if not path.exists():
            continue
        ok = path.is_dir() if name in WRITTEN_DIRS else path.is_file()
        if not ok:
            kind = "a folder" if name in WRITTEN_DIRS else "a regular file"
            raise UnsafeFolder(f"{path} is not {kind}; remove it (or use another folder)")
        # The log is appended to in place: a hard link would carry the lines to its other name.
        if name == log_name and path.stat().st_nlink > 1:
            raise UnsafeFolder(
                f"{path} is a hard link to a file elsewhere; histae appends to its log, so "
                "remove it (or use another folder)"
            )


def check_name_lengths(path: str | os.PathLike) -> None:
    """Refuse a path with a component longer than the file system allows (255 bytes on most),
    before anything is written: a 300-character swept value otherwise fails half-way.

    Raises:
        UnsafeFolder: naming the component (shortened) and its length.
    """
    path = Path(os.path.abspath(path))
    existing = next((p for p in (path, *path.parents) if p.is_dir()), Path("/"))
    try:
        limit = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > limit:
            raise UnsafeFolder(
                f"folder name {part[:40]}... is {size} bytes, more than the {limit} a name may "
                "have here; shorten the swept values or set hydra.sweep.subdir / hydra.run.dir"
            )


class FolderInUse(RuntimeError):
    """Another live process is writing this job folder."""


class JobDir:
    """A job's folder, as the job itself writes it. Construct it once training is set to start."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock: IO[bytes] | None = None
        self.inputs = 0  # what status.json reports if the job ends now
        self.wall_time = 0.0

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # -- ownership

    def acquire(self) -> None:
        """Take the folder: an advisory lock held while the job runs, and stale temps removed.

        Raises:
            FolderInUse: another process (two commands pointed at one folder) holds it.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        # No-follow: a received folder's .lock may be a link to a file elsewhere.
        fd = os.open(
            self.path / LOCK, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        )
        lock = os.fdopen(fd, "ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise FolderInUse(
                f"{self.path} is in use by another histae process; wait for it or choose "
                "another folder (hydra.run.dir=...)"
            ) from None
        self._lock = lock
        remove_stale_temps(self.path)

    def release(self) -> None:
        """Give the folder up (the lock file stays: deleting it would race another taker)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    @contextlib.contextmanager
    def recording(self) -> Iterator[JobDir]:
        """Hold the folder and record the job's ending in status.json, whatever it is.

        Inside, the job writes ``running``/``done``/``diverged`` itself; leaving by an exception
        writes ``failed`` with its first line, by :class:`JobStopped`, Ctrl-C or an exit (a
        launcher's requeue handler) ``stopped``, by :class:`JobPruned` ``stopped`` with why.
        """
        self.acquire()
        try:
            yield self
        except (JobStopped, KeyboardInterrupt, SystemExit):
            self.write_status("stopped")
            raise
        except JobPruned as err:  # resumable like a stop: a later trial may ask the same setting
            self.write_status("stopped", error=str(err))
            raise
        except Exception as err:
            self.write_status("failed", error=error_line(err))
            raise
        finally:
            self.release()

    # -- status

    def write_status(self, status: str, error: str | None = None) -> Path:
        """status.json: the state, inputs seen, wall time, error, and who wrote it."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        data = {
            "status": status,
            "error": error,
            "inputs": int(self.inputs),
            "wall_time": round(float(self.wall_time), 3),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            # Who wrote it: a report can then tell a running job from one whose process died.
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        return write_json(self.path / STATUS, data)

    # -- results

    def write_metrics(self, rows: Iterable[Mapping[str, Any]]) -> Path:
        """metrics.csv, whole."""
        return write_text(self.path / METRICS, format_metric_rows(rows))

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        """summary.json."""
        return write_json(self.path / SUMMARY, summary)

    def read_summary(self) -> dict[str, Any] | None:
        """summary.json, or None if missing or unreadable."""
        try:
            return _read_object(self.path / SUMMARY)
        except Unreadable:
            return None

    def read_status(self) -> dict[str, Any] | None:
        """status.json, or None if missing or unreadable."""
        try:
            return _check_status(_read_object(self.path / STATUS))
        except Unreadable:
            return None

    def metrics_readable(self) -> bool:
        """Whether metrics.csv exists and parses."""
        try:
            read_metrics(self.path / METRICS)
        except (OSError, ValueError):
            return False
        return True

    def metrics_agree(self, summary: Mapping[str, Any]) -> bool:
        """Whether metrics.csv parses and ends with the final rows summary.json recorded (a
        file cut to its header or mid-row, or from another run, does not)."""
        try:
            rows = read_metrics(self.path / METRICS)
        except (OSError, ValueError):
            return False
        return rows_agree(rows, summary)

    def write_samples(self, samples: Mapping[str, np.ndarray | int]) -> Path:
        """samples.npz (compressed, no pickles)."""
        return atomic_write(self.path / SAMPLES, lambda f: np.savez_compressed(f, **samples))

    def grid_path(self, inputs: int) -> Path:
        """Where the grid of the validation at ``inputs`` goes."""
        return self.path / GRIDS / f"inputs-{inputs:09d}.png"

    def record_hydra(self, config_yaml: str, hydra_yaml: str, overrides: list[str]) -> None:
        """The ``.hydra/`` record (config, Hydra's config, overrides)."""
        record = self.path / HYDRA
        write_text(record / "config.yaml", config_yaml)
        write_text(record / "hydra.yaml", hydra_yaml)
        write_text(record / "overrides.yaml", yaml.safe_dump(overrides, default_flow_style=False))


def read_status(job_dir: str | os.PathLike) -> dict[str, Any] | None:
    """A folder's status.json, or None if it is missing or unreadable."""
    return JobDir(job_dir).read_status()


def recorded_config(job_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The job config a folder's job ran with (summary.json, else .hydra/config.yaml), or None."""
    job_dir = Path(job_dir)
    try:
        summary = _read_object(job_dir / SUMMARY)
        if isinstance(summary.get("config"), dict):
            return summary["config"]
    except Unreadable:
        pass
    try:
        data = load_yaml(job_dir / HYDRA / "config.yaml")
    except (OSError, Unreadable):
        return None
    if not isinstance(data, dict):
        return None
    try:  # Hydra's record keeps interpolations; the summary's config is resolved
        from omegaconf import OmegaConf

        resolved = OmegaConf.to_container(OmegaConf.create(data), resolve=True)
    except Exception:  # an interpolation that needs Hydra's context: compare as written
        return data
    return resolved if isinstance(resolved, dict) else None


def finite_or_none(value: Any) -> float | None:
    """``value`` as a finite float, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
