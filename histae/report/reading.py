"""Reading a sweep: its job folders (through :mod:`histae.jobdir`), labelled by what they vary.

Nothing here raises on what a folder holds: a job whose files cannot be read is a :class:`Job`
in the state ``unreadable`` with ``"<file>: <why>"``, and every other job reads as usual.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from histae.jobdir import (
    HYDRA,
    MULTIRUN,
    JobRecord,
    Unreadable,
    is_job_dir,
    load_yaml,
    read_job,
    recorded_config,
)
from histae.labels import (
    REPLICATE_KEY,
    label,
    natural_key,
    parse_overrides,
    short_keys,
    value_key,
    varying_keys,
)
from histae.report.measures import is_collapsed


@dataclass
class Job:
    """One job of a sweep as the report shows it."""

    record: JobRecord
    name: str  # the folder relative to the sweep folder, with forward slashes
    config: dict[str, Any]  # the resolved job config ({} if none was recorded yet)
    overrides: dict[str, str]  # .hydra/overrides.yaml as key -> value
    swept: dict[str, str] = field(default_factory=dict)  # the overrides that vary, seed included
    setting: dict[str, str] = field(default_factory=dict)  # swept without the replicate key
    label: str = ""  # the setting as people read it: "bins=100, sigma=50"
    collapsed: bool = False  # every output left the histogram's range (see measures)

    @property
    def path(self) -> Path:
        """The job folder."""
        return self.record.path

    @property
    def state(self) -> str:
        """done | failed | diverged | running | stopped | pending | unreadable."""
        return self.record.state

    @property
    def rows(self) -> list[dict[str, Any]]:
        """metrics.csv rows."""
        return self.record.rows

    @property
    def seed(self) -> str | None:
        """The job's value of the replicate key, when the sweep repeats settings over it."""
        return self.swept.get(REPLICATE_KEY)

    @property
    def slug(self) -> str:
        """A file-name-safe form of the job's folder (its page is ``jobs/<slug>.html``)."""
        return re.sub(r"[^A-Za-z0-9_.,=+-]+", "-", self.name).strip("-") or "job"

    @property
    def status_text(self) -> str:
        """``done``, ``done, collapsed``, ``failed: <error>``, ``unreadable: <file>: <why>``..."""
        text = self.state + (", collapsed" if self.collapsed else "")
        if self.record.error:
            return f"{text}: {self.record.error}"
        if self.state == "pending":
            return "pending (not started)"
        return text


def find_job_dirs(sweep_dir: Path) -> list[Path]:
    """The job folders of a sweep, sorted by path.

    In a folder Hydra made (it holds multirun.yaml) they are searched 3 levels deep, as
    hydra.sweep.subdir may contain slashes; elsewhere only the folders directly inside count,
    so a folder that merely contains runs somewhere below is not mistaken for a sweep.
    """
    max_depth = 3 if (sweep_dir / MULTIRUN).is_file() else 1
    found: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        for child in sorted(folder.iterdir()):
            if not child.is_dir() or child.is_symlink() or child.name.startswith("."):
                continue
            if is_job_dir(child):
                found.append(child)
            elif depth < max_depth:
                walk(child, depth + 1)

    walk(sweep_dir, 1)
    return found


def load_job(job_dir: Path, base: Path) -> Job:
    """Read one job folder (never raises on its content); ``base`` names it relatively."""
    record = read_job(job_dir)
    config = record.summary.get("config")
    if not isinstance(config, dict):
        config = recorded_config(job_dir) or {}
    job = Job(
        record=record,
        name=job_dir.relative_to(base).as_posix() if job_dir != base else job_dir.name,
        config=config,
        overrides=parse_overrides(record.overrides),
    )
    if record.state != "unreadable":
        job.collapsed = is_collapsed(job_dir, config)
    return job


def label_jobs(jobs: Sequence[Job]) -> list[Job]:
    """Fill in each job's swept values, setting and label; return the jobs sorted by them.

    The swept values are the overrides that differ between jobs (:func:`histae.labels.varying_keys`,
    the sweeper's naming rule); the replicate key (``trainer.seed``) is not part of a setting
    when other keys vary beside it. A job without overrides is known by its folder name.
    """
    keys = varying_keys([job.overrides for job in jobs])
    short = short_keys([k for k in keys if k != REPLICATE_KEY] or keys)
    replicated = REPLICATE_KEY in keys and len(keys) > 1
    for job in jobs:
        job.swept = {k: job.overrides.get(k, "") for k in keys}
        job.setting = {
            k: v for k, v in job.swept.items() if not (replicated and k == REPLICATE_KEY)
        }
        shown = {k: v for k, v in job.setting.items() if k in job.overrides}
        job.label = label(shown, short) or job.name
    return sorted(
        jobs,
        key=lambda j: (tuple(value_key(v) for v in j.swept.values()), natural_key(j.name)),
    )


def read_jobs(sweep_dir: Path) -> list[Job]:
    """Every job of the sweep, labelled and sorted (:func:`label_jobs`)."""
    return label_jobs([load_job(d, sweep_dir) for d in find_job_dirs(sweep_dir)])


def _multirun_section(sweep_dir: Path, *keys: str) -> Any:
    """``multirun.yaml[hydra][keys...]``, or None where the file is missing, unreadable (a
    link, a FIFO, too large, aliases) or of another shape."""
    try:
        node: Any = load_yaml(sweep_dir / MULTIRUN)
    except (OSError, Unreadable):
        return None
    for key in ("hydra", *keys):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def read_sweep_overrides(sweep_dir: Path) -> list[str]:
    """The overrides a sweep was started with, from multirun.yaml ([] if there is none)."""
    task = _multirun_section(sweep_dir, "overrides", "task") or []
    params = _multirun_section(sweep_dir, "sweeper", "params") or {}
    task = task if isinstance(task, list) else []
    params = params if isinstance(params, dict) else {}
    return [str(o) for o in task] + [f"{k}={v}" for k, v in params.items()]


def read_sweep_lead(sweep_dir: Path) -> str | None:
    """The report's lead metric the sweep asked for (``hydra.sweeper.report_lead``), or None."""
    lead = _multirun_section(sweep_dir, "sweeper", "report_lead")
    return lead if isinstance(lead, str) else None


def read_search(sweep_dir: Path) -> tuple[str, str] | None:
    """A search's metric and direction (``hydra.sweeper.search``, as the search recorded them),
    or None when the sweep is no search."""
    search = _multirun_section(sweep_dir, "sweeper", "search")
    if not isinstance(search, dict):
        return None
    metric, direction = search.get("metric"), search.get("direction")
    if not isinstance(metric, str) or direction not in ("minimize", "maximize"):
        return None
    return metric, direction


def expected_jobs(overrides: Sequence[str]) -> int | None:
    """How many jobs the sweep overrides expand to, or None if they cannot be parsed here."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
        counts = [len(list(o.sweep_string_iterator())) for o in parsed if o.is_sweep_override()]
    except Exception:  # glob sweeps need the config; the count is only informative
        return None
    return math.prod(counts) if counts else None


def is_sweep_dir(folder: Path) -> bool:
    """A sweep folder holds multirun.yaml or job folders, and is no job folder itself."""
    if is_job_dir(folder) or (folder / HYDRA / "config.yaml").is_file():
        return False
    return (folder / MULTIRUN).is_file() or bool(find_job_dirs(folder))
