"""Files a job writes, each written atomically (a temp file beside it, then a rename).

A job killed at any moment leaves either the old file or the new one, never half of one; that is
what makes the status, the checkpoint and the metrics safe to read from a report or a resume.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

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

STATUSES = ("running", "done", "failed", "diverged")

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(file)`` on a temp file in ``path``'s folder, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are for everyone to read
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    return atomic_write(path, lambda f: f.write(text.encode()))


def _json_safe(value: Any) -> Any:
    # JSON has no NaN/Inf; a diverged loss is written as null rather than an invalid file.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: str | os.PathLike, data: Mapping[str, Any]) -> Path:
    """Atomically write ``data`` as indented JSON."""
    return write_text(path, json.dumps(_json_safe(data), indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None if it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def error_line(err: BaseException) -> str:
    """``"TypeName: first line of the message"``: how status.json and the logs name an error."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def write_status(
    job_dir: str | os.PathLike,
    status: str,
    inputs: int,
    wall_time: float,
    error: str | None = None,
    **extra: Any,
) -> Path:
    """Write ``status.json``: running / done / failed / diverged, inputs seen, wall time, error."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    data = {
        "status": status,
        "error": error,
        "inputs": int(inputs),
        "wall_time": round(float(wall_time), 3),
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        # Who wrote it: a report can then tell a running job from one whose process was killed.
        "host": socket.gethostname(),
        "pid": os.getpid(),
        **extra,
    }
    return write_json(Path(job_dir) / "status.json", data)


def read_status(job_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The job's ``status.json``, or None."""
    return read_json(Path(job_dir) / "status.json")


def is_stopped(status: dict[str, Any]) -> bool:
    """A ``running`` status whose writer, a process on this host, no longer exists (killed)."""
    if status.get("status") != "running" or status.get("host") != socket.gethostname():
        return False
    pid = status.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


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


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a metrics.csv with numbers as int/float (empty cells dropped)."""
    rows = []
    with open(path, newline="") as f:
        for raw in csv.DictReader(f):
            row: dict[str, Any] = {}
            for key, cell in raw.items():
                if key is None or cell in (None, ""):
                    continue
                if key == "split":
                    row[key] = cell
                elif key == "inputs":
                    row[key] = int(cell)
                else:
                    row[key] = float(cell)
            rows.append(row)
    return rows
