"""Every use of Hydra's internals, in one place, pinned by tests/test_hydra_compat.py.

histae relies on three things hydra-core 1.3 does not promise: the function that reports errors
(``hydra._internal.utils.run_and_report``, swapped for a one-line reporter), the basic sweeper's
class (subclassed by histae's sweeper), and a failed job's exception (``JobReturn._return_value``).
A Hydra release that moves any of them breaks that test, not the command line.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from hydra.core.utils import JobReturn

__all__ = ["basic_sweeper", "job_error", "one_line_errors"]


def basic_sweeper() -> type:
    """Hydra's basic sweeper class, looked up when called.

    Hydra's plugin scan re-executes its core plugin modules, so a class imported before the scan
    is a stale copy; a sweeper subclassing it fails in ``super().__init__``.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    return BasicSweeper


def job_error(result: JobReturn) -> BaseException | None:
    """The exception a failed job raised (Hydra keeps it privately; ``return_value`` re-raises)."""
    error = getattr(result, "_return_value", None)
    return error if isinstance(error, BaseException) else None


@contextlib.contextmanager
def one_line_errors(
    condense: Callable[[BaseException], str], exit_status: Callable[[BaseException], int]
) -> Iterator[None]:
    """Swap Hydra 1.3's error reporter (a trimmed traceback, several lines) for one line.

    ``histae: error: <condense(err)>`` on stderr and ``exit_status(err)``.
    ``HYDRA_FULL_ERROR=1`` keeps Hydra's own, with the full traceback.
    """
    import hydra._internal.utils as hydra_utils

    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        yield
        return

    def run_and_report(func: Callable[[], Any]) -> Any:
        try:
            return func()
        except Exception as err:
            sys.stderr.write(f"histae: error: {condense(err)}\n")
            sys.exit(exit_status(err))

    original = hydra_utils.run_and_report
    hydra_utils.run_and_report = run_and_report
    try:
        yield
    finally:
        hydra_utils.run_and_report = original
