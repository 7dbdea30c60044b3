"""Files written whole or not at all: a temp file beside the target, then a rename.

A process killed at any moment leaves either the old file or the new one, never half of one. An
interrupted write (an exception, Ctrl-C, SIGTERM) removes its temp file; one killed by SIGKILL
leaves a ``.<name>.<random>.tmp`` that :func:`remove_stale_temps` clears on the next start.
"""

from __future__ import annotations

import errno
import functools
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".tmp"

# A test hook, for fault tests that must hit an exact moment rather than poll the disk for it:
# HISTAE_FAULT=<file name>:<signal>[:<n>] sends this process <signal> (TERM, INT, KILL, ...) when
# the n-th write (default 1) of a file of that name is complete in its temp file, not yet renamed.
FAULT_ENV = "HISTAE_FAULT"
_writes: dict[str, int] = {}


def _fault_point(name: str) -> None:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    target, signame, *nth = spec.split(":")
    if name != target:
        return
    _writes[name] = _writes.get(name, 0) + 1
    if _writes[name] == int(nth[0] if nth else 1):
        import signal

        os.kill(os.getpid(), getattr(signal, f"SIG{signame.upper().removeprefix('SIG')}"))


class NoSpaceError(OSError):
    """The disk is full: one line naming the folder and what the write needed."""

    def __str__(self) -> str:
        return str(self.strerror)


@functools.cache
def _umask() -> int:
    # Read once, on first write: setting it is the only way to read it, so never at import time.
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[IO[bytes]], Any],
    what: str | None = None,
    size: int | None = None,
) -> Path:
    """Call ``write(file)`` on a temp file in ``path``'s folder, then rename it over ``path``.

    On a full disk raises :class:`NoSpaceError` ``no space left on <folder>: <what> needs about
    N MB, M MB are free`` (``what`` defaults to the file's name; N is ``size`` when the caller
    knows it, else what was written before the disk filled), and ``path`` keeps its previous
    content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; results are for everyone to read
        with os.fdopen(fd, "wb") as f:
            try:
                write(f)
                f.flush()
                os.fsync(f.fileno())
                _fault_point(path.name)
            except OSError as err:
                if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                needed = max(size or 0, f.tell(), 1)
                try:
                    free = f", {shutil.disk_usage(path.parent).free / 2**20:.0f} MB are free"
                except OSError:
                    free = ""
                at_least = "" if size else "at least "
                raise NoSpaceError(
                    err.errno,
                    f"no space left on {path.parent}: {what or path.name} needs {at_least}about "
                    f"{math.ceil(needed / 2**20)} MB{free}",
                ) from None
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_bytes(path: str | os.PathLike, data: bytes, what: str | None = None) -> Path:
    """Atomically write ``data`` to ``path``."""
    return atomic_write(path, lambda f: f.write(data), what, size=len(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    return write_bytes(path, text.encode())


def json_safe(value: Any) -> Any:
    """``value`` with NaN/Inf floats as None: JSON has no NaN, and a diverged loss is one."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Atomically write ``data`` as indented JSON (NaN/Inf as null)."""
    return write_text(path, json.dumps(json_safe(data), indent=2) + "\n")


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temp files a killed writer left directly in ``folder``; return them."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for path in folder.glob(f".*{TEMP_SUFFIX}"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
