"""Helpers shared by the tests, one copy each: paths, running histae, job folders written by the
job's own writer. Fixtures are in tests/conftest.py."""

from tests.helpers.jobs import (
    SEEDS,
    finished_job,
    job_config,
    metric_rows,
    samples,
    write_job,
    write_sweep,
)
from tests.helpers.paths import CONF, ROOT
from tests.helpers.run import (
    NO_COUNT,
    TINY,
    histae,
    kill_past_then_rerun,
    run_histae,
    train_rows_past,
    wait_for,
)

__all__ = [
    "CONF",
    "NO_COUNT",
    "ROOT",
    "SEEDS",
    "TINY",
    "finished_job",
    "histae",
    "job_config",
    "kill_past_then_rerun",
    "metric_rows",
    "run_histae",
    "samples",
    "train_rows_past",
    "wait_for",
    "write_job",
    "write_sweep",
]
