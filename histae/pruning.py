"""Where a search's pruner meets a job: the job reports each validation, the search may stop it.

A search (``hydra.sweeper.search``) that runs its jobs in this process (Hydra's basic launcher)
installs a reporter with :func:`reporting_to`; :func:`validated`, called by the training loop
after each validation but the last, hands it the validation's metrics and raises
:class:`~histae.jobdir.JobPruned` when the reporter says the trial is not worth finishing.
Nothing is installed in a single run, a grid, or a launcher's worker process (joblib, submitit):
there :func:`validated` returns at once and the job runs to its end.

The reporter is held at module level on purpose: the basic launcher calls the job in this
thread, and a worker process of another launcher starts without it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from histae.jobdir import JobPruned

Reporter = Callable[[Path, int, Mapping[str, float]], bool]
"""``reporter(job_dir, inputs, metrics) -> prune?``: called at each validation but the last."""

_reporter: Reporter | None = None


@contextlib.contextmanager
def reporting_to(reporter: Reporter) -> Iterator[None]:
    """Send the validations of jobs run inside this context to ``reporter``."""
    global _reporter
    previous, _reporter = _reporter, reporter
    try:
        yield
    finally:
        _reporter = previous


def validated(job_dir: Path, inputs: int, metrics: Mapping[str, float]) -> None:
    """Report a validation to the search, if one listens; raise JobPruned if it prunes the job.

    >>> validated(Path("job"), 96, {"hist_w1": 0.1})  # no search: nothing happens
    """
    if _reporter is not None and _reporter(job_dir, inputs, metrics):
        raise JobPruned(job_dir, inputs)
