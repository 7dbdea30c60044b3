"""outputs/index.html: every sweep and single run under an outputs folder, newest first.

One row each: when it started, a thumbnail of its reconstructions, a link to its page, its
status, what it trained (data, loss) and its overrides. It shows no loss numbers: entries
differ in data and loss, and such numbers do not compare.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path

from histae.atomic import write_text
from histae.config import CONFIG_DIR
from histae.jobdir import GRID, HYDRA, is_job_dir
from histae.labels import describe_config
from histae.report import layout
from histae.report.html import esc, href, page
from histae.report.measures import section
from histae.report.reading import MULTIRUN, find_job_dirs, load_job, read_sweep_overrides

_STAMP = "%Y-%m-%d_%H-%M-%S"  # hydra.run.dir / hydra.sweep.dir's ${now:...} in conf/config.yaml


@dataclass
class Entry:
    """A sweep or a single run listed in outputs/index.html."""

    kind: str  # sweep | run
    path: Path
    started: float  # seconds since the epoch
    status: str  # "3 done, 1 failed" or a run's state
    what: str  # data and loss, as far as every job shares them
    overrides: list[str]
    page: Path  # what the row links to
    thumbnail: Path | None


def _started(folder: Path, marker: Path) -> float:
    """From the folder's name (the default ``${now:...}``), else its first Hydra file's time."""
    try:
        return time.mktime(time.strptime(folder.name, _STAMP))
    except ValueError:
        pass
    for path in (marker, folder):
        try:
            return path.stat().st_mtime
        except OSError:
            continue
    return 0.0


@functools.cache
def data_options() -> dict[str, str]:
    """``_target_`` -> ``data=<option>`` for every option of conf/data/ (what the user typed)."""
    out = {}
    for path in sorted(Path(CONFIG_DIR, "data").glob("*.yaml")):
        for line in path.read_text().splitlines():
            if line.startswith("_target_:"):
                out.setdefault(line.split(":", 1)[1].strip(), f"data={path.stem}")
    return out


def data_name(config: dict) -> str:
    """The data option a job ran on, as typed (``data=rpg_tiles``); else its function's name."""
    target = str(section(config, "data").get("_target_", ""))
    return data_options().get(target, target.rsplit(".", 1)[-1])


def _what(configs: list[dict]) -> str:
    described = [describe_config(c).split(", ") for c in configs if c]
    if not described:
        return ""
    common = [p for p in described[0] if all(p in d for d in described[1:])]
    data = {data_name(c) for c in configs if c}
    return ", ".join([*sorted(d for d in data if d), *common])


def _sweep(folder: Path) -> Entry | None:
    job_dirs = find_job_dirs(folder)
    if not job_dirs and not (folder / MULTIRUN).is_file():
        return None
    jobs = [load_job(d, folder) for d in job_dirs]
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.state] = counts.get(job.state, 0) + 1
    status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no jobs yet"
    collapsed = sum(j.collapsed for j in jobs)
    report = folder / layout.REPORT
    thumb = report / layout.MOSAIC
    return Entry(
        "sweep",
        folder,
        _started(folder, folder / MULTIRUN),
        status + (f" ({collapsed} collapsed)" if collapsed else ""),
        _what([j.config for j in jobs]),
        read_sweep_overrides(folder),
        report / layout.INDEX if (report / layout.INDEX).is_file() else folder,
        thumb if thumb.is_file() else None,
    )


def _run(folder: Path) -> Entry:
    job = load_job(folder, folder.parent)
    page_path = folder / layout.JOB_PAGE
    return Entry(
        "run",
        folder,
        _started(folder, folder / HYDRA / "config.yaml"),
        job.status_text,
        _what([job.config]),
        job.record.overrides,
        page_path if page_path.is_file() else folder,
        folder / GRID if (folder / GRID).is_file() else None,
    )


def list_outputs(root: Path) -> list[Entry]:
    """The sweeps (``sweeps/*``) and single runs (``runs/*``) under ``root``, newest first."""
    entries: list[Entry] = []
    sweeps, runs = root / layout.SWEEPS, root / layout.RUNS
    for folder in sorted(sweeps.iterdir()) if sweeps.is_dir() else []:
        if folder.is_dir() and (entry := _sweep(folder)) is not None:
            entries.append(entry)
    for folder in sorted(runs.iterdir()) if runs.is_dir() else []:
        if folder.is_dir() and is_job_dir(folder):
            entries.append(_run(folder))
    return sorted(entries, key=lambda e: (e.started, e.path.name), reverse=True)


def is_outputs_root(folder: Path) -> bool:
    """An outputs folder holds ``sweeps/`` or ``runs/`` (and is no job folder itself)."""
    has = (folder / layout.SWEEPS).is_dir() or (folder / layout.RUNS).is_dir()
    return has and not is_job_dir(folder)


def write_outputs_index(outputs_root: str | os.PathLike) -> Path:
    """Write ``outputs_root/index.html`` (every sweep and single run, newest first); return it.

    Raises:
        FileNotFoundError / ValueError: the folder is missing or holds neither sweeps/ nor runs/.
    """
    root = Path(os.path.abspath(outputs_root))
    if not root.is_dir():
        raise FileNotFoundError(f"{root} does not exist or is not a folder: pass an outputs folder")
    if not is_outputs_root(root):
        raise ValueError(
            f"{root} is not an outputs folder: no {layout.SWEEPS}/ or {layout.RUNS}/ folder inside"
        )
    entries = list_outputs(root)
    rows = []
    for e in entries:
        link = href(e.page, root)
        thumb = (
            f'<a href="{link}"><img class="thumb" src="{href(e.thumbnail, root)}" '
            f'alt="reconstructions of {esc(e.path.name)}"></a>'
            if e.thumbnail
            else ""
        )
        shown = " ".join(e.overrides)
        state = e.status.split(":")[0].split(",")[0].split(" ")[-1]  # "4 done, ..." -> done
        state = "collapsed" if "collapsed" in e.status else state
        rows.append(
            "<tr>"
            f"<td>{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(e.started))}</td>"
            f"<td>{e.kind}</td><td>{thumb}</td>"
            f'<td><a href="{link}">{esc(e.path.relative_to(root).as_posix())}</a></td>'
            f'<td class="{esc(state)}">{esc(e.status)}</td><td>{esc(e.what)}</td>'
            f"<td>{f'<code>{esc(shown)}</code>' if shown else ''}</td></tr>"
        )
    table = (
        '<table id="results"><thead><tr><th>started</th><th>kind</th><th>reconstructions</th>'
        "<th>folder</th><th>status</th><th>what</th><th>overrides</th></tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table>"
    )
    body = (
        f'<h1>histae outputs</h1>\n<p class="meta">folder <code>{esc(root)}</code> · sweeps: '
        f"{sum(e.kind == 'sweep' for e in entries)}, single runs: "
        f"{sum(e.kind == 'run' for e in entries)} · written {time.strftime('%Y-%m-%d %H:%M:%S')}"
        '</p>\n<p class="note">Losses are not compared here: runs differ in data and loss. '
        "Open a sweep for comparable metrics.</p>\n" + (table if entries else "<p>Nothing yet.</p>")
    )
    return write_text(root / layout.INDEX, page("histae outputs", body))


def outputs_index_of(folder: str | os.PathLike) -> Path | None:
    """``outputs/index.html`` for a sweep or run in the default layout, or None elsewhere."""
    folder = Path(os.path.abspath(folder))
    if folder.parent.name in (layout.SWEEPS, layout.RUNS):
        return folder.parent.parent / layout.INDEX
    return None


def refresh_outputs_index(folder: str | os.PathLike) -> Path | None:
    """Rewrite ``outputs/index.html`` if ``folder`` is a sweep or run in the default layout
    (``outputs/sweeps/<name>`` or ``outputs/runs/<name>``); return it, or None elsewhere."""
    folder = Path(os.path.abspath(folder))
    if folder.parent.name in (layout.SWEEPS, layout.RUNS):
        return write_outputs_index(folder.parent.parent)
    return None
