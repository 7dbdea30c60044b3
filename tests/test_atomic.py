"""The atomic writer: a file is replaced whole or not at all, readable by all, strict JSON."""

from __future__ import annotations

import errno
import json
import math
import os
import re

import pytest

from histae import atomic
from histae.atomic import NoSpaceError, atomic_write, remove_stale_temps, write_json, write_text


def test_an_interrupted_write_leaves_the_old_file_and_no_temp(tmp_path) -> None:
    target = write_text(tmp_path / "metrics.csv", "old\n")

    def half_then_interrupt(f) -> None:
        f.write(b"new but only ha")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_then_interrupt)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]


def test_a_full_disk_is_one_line_and_keeps_the_previous_file(tmp_path) -> None:
    target = write_text(tmp_path / "checkpoint.pt", "good")

    def fill(f) -> None:
        f.write(b"x" * 3 * 2**20)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(
        NoSpaceError,
        match=rf"^no space left on {re.escape(str(tmp_path))}: the checkpoint needs at least "
        r"about 3 MB, \d+ MB are free$",
    ):
        atomic_write(target, fill, what="the checkpoint")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_a_full_disk_names_the_whole_size_when_it_is_known(tmp_path) -> None:
    # The disk fills after 1 MB of an 84 MB write: the message names 84, not what fitted.
    target = tmp_path / "checkpoint.pt"

    def fill(f) -> None:
        f.write(b"x" * 2**20)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(NoSpaceError, match=r"the checkpoint needs about 84 MB, \d+ MB are free$"):
        atomic_write(target, fill, what="the checkpoint", size=84 * 2**20)
    assert not target.exists()


def test_stale_temps_of_a_killed_writer_are_removed(tmp_path) -> None:
    (tmp_path / ".checkpoint.pt.x1y2.tmp").write_bytes(b"half")
    (tmp_path / "keep.tmp").write_bytes(b"not ours")  # not a hidden temp of atomic_write
    assert [p.name for p in remove_stale_temps(tmp_path)] == [".checkpoint.pt.x1y2.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.tmp"]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_written_file_has_the_mode_of_a_plain_open(tmp_path, umask: int, mode: int) -> None:
    # mkstemp makes its file 0600; the result must be what open() would make: 0o666 & ~umask.
    previous = os.umask(umask)
    atomic._umask.cache_clear()
    try:
        path = write_text(tmp_path / "summary.json", "{}")
    finally:
        os.umask(previous)
        atomic._umask.cache_clear()
    assert path.stat().st_mode & 0o777 == mode


def test_write_json_writes_nan_and_inf_as_null_and_stays_strict_json(tmp_path) -> None:
    data = {"loss": math.nan, "rows": [math.inf, 1.5], "pair": (2, -math.inf), 3: {"x": math.nan}}
    path = write_json(tmp_path / "summary.json", data)

    def no_constants(name: str) -> None:
        raise AssertionError(f"{name} in the JSON")

    loaded = json.loads(path.read_text(), parse_constant=no_constants)
    assert loaded == {"loss": None, "rows": [None, 1.5], "pair": [2, None], "3": {"x": None}}
    assert path.read_text().endswith("}\n")


def test_a_file_is_replaced_by_a_synced_rename_never_rewritten_in_place(
    tmp_path, monkeypatch
) -> None:
    target = write_text(tmp_path / "status.json", "old")
    reader = tmp_path / "held"  # a reader that opened the old file keeps all of it
    os.link(target, reader)
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: events.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(
        atomic.os, "replace", lambda a, b: events.append(("replace", b)) or real_replace(a, b)
    )
    write_text(target, "new")
    assert events == ["fsync", ("replace", target)]  # on disk before it takes the name
    assert target.read_text() == "new" and reader.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["held", "status.json"]
