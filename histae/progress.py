"""What a job shows on the terminal while it trains.

On a TTY: one tqdm bar per job, counting images up to the real number the job will see, with the
latest train loss beside it; log lines print above the bar (tqdm's logging redirection), never
glued onto it. Off a TTY (a log file, CI) or in a pool's worker process (jobs run in parallel by
joblib): a line every tenth of the job or every minute, whichever comes first, and one at the
end::

    [bins-100_sigma-50] 12,000/48,000 images, 410 img/s, ETA 1m28s, loss 24.3

Both show the real rate: this run's images over this run's wall time (validation included), so a
resumed job's earlier images do not inflate it, and neither does a smoothed burst.

A sweep says where it is as each job starts and ends (:class:`SweepProgress`), with the sweep's
ETA from the jobs done so far::

    job 3 of 9 starts: bins-50_sigma-200; sweep ETA 4m40s
    job 3 of 9 done in 38s: bins-50_sigma-200; 3 of 9 jobs ended in 1m55s, sweep ETA 3m50s

A run or sweep that stops before its end names the command that resumes it
(:func:`rerun_command`).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from time import perf_counter
from types import TracebackType
from typing import Any, TextIO

log = logging.getLogger("histae")

# Off a TTY a line is written after this fraction of the job's images or this many seconds.
LINE_EVERY_FRACTION = 0.1
LINE_EVERY_SECONDS = 60.0


def total_images(max_inputs: int, batch_size: int) -> int:
    """The images a job of ``max_inputs`` really sees: whole batches until the budget is reached.

    The loop stops after the first batch that reaches ``max_inputs``, so ``3000`` at batch 64 is
    47 batches, 3,008 images.
    """
    if batch_size < 1:
        raise ValueError(f"trainer.batch_size must be >= 1, got {batch_size}")
    return math.ceil(max_inputs / batch_size) * batch_size


def format_duration(seconds: float) -> str:
    """``45`` -> ``45s``, ``88`` -> ``1m28s``, ``7500`` -> ``2h05m``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def format_loss(loss: float) -> str:
    """Three significant digits: ``24.3``, ``4.49``, ``0.0123``."""
    return f"{loss:.3g}"


def progress_line(done: int, total: int, rate: float | None, loss: float | None) -> str:
    """``12,000/48,000 images, 410 img/s, ETA 1m28s, loss 24.3`` (rate in images per second).

    Without a rate yet (no images trained in this run) the rate and ETA read ``?``; without a
    loss the loss is left out.
    """
    parts = [f"{done:,}/{total:,} images"]
    if rate:
        parts += [f"{rate:,.0f} img/s", f"ETA {format_duration(max(total - done, 0) / rate)}"]
    else:
        parts += ["? img/s", "ETA ?"]
    if loss is not None:
        parts.append(f"loss {format_loss(loss)}")
    return ", ".join(parts)


def console_loggers() -> list[logging.Logger]:
    """The loggers that print histae's lines to the terminal: root (Hydra's job logging puts its
    console handler there) and ``histae`` if it has a console handler of its own.

    tqdm's redirection adds its handler to every logger it is given, so a logger without a
    console handler must not be given, or its lines would print twice.
    """

    def has_console(logger: logging.Logger) -> bool:
        return any(
            isinstance(h, logging.StreamHandler) and h.stream in (sys.stdout, sys.stderr)
            for h in logger.handlers
        )

    loggers = [logging.getLogger(), logging.getLogger("histae")]
    return [lg for lg in loggers if has_console(lg)]


class Progress:
    """A job's progress on the terminal: a tqdm bar on a TTY, periodic log lines elsewhere.

    ``total`` is the number of images the job will have seen when it ends
    (:func:`total_images`), ``initial`` those seen before this run (a resumed job). While the bar
    is open, console log lines go through ``tqdm.write`` and print above it. Use it as a context
    manager, or call :meth:`close`, so the bar closes and logging is restored also on an error.

    ``update`` takes the loss as an optional host float and keeps the last one, so the loop can
    pass it only when it has one (at a metrics row) and never has to sync a device for the bar.
    """

    def __init__(
        self,
        total: int,
        initial: int = 0,
        name: str = "",
        interactive: bool | None = None,
        file: TextIO | None = None,
    ) -> None:
        self.total = total
        self.initial = initial
        self.done = initial
        self.name = name
        self.loss: float | None = None
        self.file = file if file is not None else sys.stderr  # where tqdm draws
        if interactive is None:
            # A pool's worker (joblib's parallel jobs) shares the terminal with its siblings,
            # whose bars would overwrite each other on the same line: it writes lines instead.
            interactive = self.file.isatty() and multiprocessing.parent_process() is None
        self.interactive = interactive
        self.start = perf_counter()
        self._last_line = (initial, self.start)  # images and time of the last off-TTY line
        self._closed = False
        self._stack = ExitStack()
        self.bar: Any = None
        if self.interactive:
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._stack.enter_context(logging_redirect_tqdm(console_loggers()))
            # smoothing=0: tqdm's rate is then (n - initial) / elapsed, the real average of this
            # run, and its ETA follows from it.
            self.bar = tqdm(
                total=total,
                initial=initial,
                desc=name,
                unit="img",
                smoothing=0,
                dynamic_ncols=True,
                file=self.file,
            )

    def rate(self) -> float | None:
        """Images per second of this run so far; None before its first image."""
        elapsed = perf_counter() - self.start
        trained = self.done - self.initial
        return trained / elapsed if trained > 0 and elapsed > 0 else None

    def line(self) -> str:
        """The off-TTY line for now, prefixed with the job's name."""
        text = progress_line(self.done, self.total, self.rate(), self.loss)
        return f"[{self.name}] {text}" if self.name else text

    def update(self, images: int = 0, loss: float | None = None) -> None:
        """Count ``images`` more; ``loss`` (if given) becomes the loss shown from now on."""
        self.done += images
        if loss is not None and loss != self.loss:
            self.loss = loss
            if self.bar is not None:
                self.bar.set_postfix_str(f"loss {format_loss(loss)}", refresh=False)
        if self.bar is not None:
            self.bar.update(images)
            return
        last_done, last_time = self._last_line
        due = (
            self.done - last_done >= LINE_EVERY_FRACTION * self.total
            or perf_counter() - last_time >= LINE_EVERY_SECONDS
            or self.done >= self.total
        )
        if images and due:
            self._emit()

    def _emit(self) -> None:
        log.info(self.line())
        self._last_line = (self.done, perf_counter())

    def close(self) -> None:
        """Close the bar (its last state stays on screen) and restore console logging; off a
        TTY, write a last line if images were trained since the previous one."""
        if self._closed:
            return
        self._closed = True
        if self.bar is not None:
            self.bar.close()
        elif self.done != self._last_line[0]:
            self._emit()
        self._stack.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ----------------------------------------------------------------------------------------------
# A sweep: job k of N, the sweep's ETA, the command that resumes it


def sweep_eta(elapsed: float, done: Sequence[float], left: Sequence[float]) -> float | None:
    """Seconds the sweep still needs: the time its ended jobs took, scaled by the work left.

    ``done`` and ``left`` are the ended and the waiting jobs' estimated seconds; only their
    ratio counts, so a machine twice as slow as the estimate's gets an ETA twice as long once a
    job has ended. ``sweep_eta(60, [10, 10], [10, 20])`` -> ``90.0``; None before any job ended.
    """
    work = sum(done)
    if work <= 0:
        return None
    return elapsed * sum(left) / work


# How a job ended, as the sweeper tells it; "skipped": it was already done, nothing ran;
# "held": another histae was running it (the same sweep started twice), nothing ran here.
ENDINGS = ("done", "failed", "diverged", "stopped", "skipped", "held")


class SweepProgress:
    """The lines a sweep prints as each job (or group of jobs run together) starts and ends.

    ``names`` are the jobs' folder names, ``costs`` their estimated seconds (the opening
    estimate's, any positive weights will do), ``estimate`` the opening estimate of the whole
    sweep shown before the first job ends (None: none, as on a GPU). The ETA is
    :func:`sweep_eta` over the jobs ended so far; jobs that were already done (``skipped``)
    took no time and leave the ETA's ratio out.
    """

    def __init__(
        self,
        names: Sequence[str],
        costs: Sequence[float],
        estimate: float | None = None,
        clock: Callable[[], float] = perf_counter,
    ) -> None:
        if len(names) != len(costs):
            raise ValueError(f"{len(names)} job names but {len(costs)} costs")
        self.names = list(names)
        self.costs = [max(float(c), 0.0) for c in costs]
        self.estimate = estimate
        self.clock = clock
        self.ended: dict[int, str] = {}  # job index -> its ending
        self.begun: dict[int, float] = {}  # job index -> when it started
        self.first: float | None = None  # when the first job started

    def _jobs(self, indices: Sequence[int]) -> str:
        n = len(self.names)
        if len(indices) == 1:
            return f"job {indices[0] + 1} of {n}"
        return f"jobs {indices[0] + 1}-{indices[-1] + 1} of {n}"

    def eta(self) -> float | None:
        """Seconds left for the sweep, from the jobs ended so far (None before any ended)."""
        if self.first is None:
            return None
        counted = [i for i, how in self.ended.items() if how not in ("skipped", "held")]
        left = [c for i, c in enumerate(self.costs) if i not in self.ended]
        # Skipped jobs took no time: they leave the elapsed time and the work done alike.
        elapsed = self.clock() - self.first
        return sweep_eta(elapsed, [self.costs[i] for i in counted], left)

    def _eta_text(self) -> str:
        eta = self.eta()
        if eta is not None:
            return f"sweep ETA {format_duration(eta)}"
        if self.estimate is None:
            return "sweep ETA ?"
        # Nothing measured yet (no job ended, or only skipped ones): the opening estimate's
        # share of the jobs left.
        whole = sum(self.costs)
        left = sum(c for i, c in enumerate(self.costs) if i not in self.ended)
        share = left / whole if whole > 0 else 1.0
        return f"sweep ETA {format_duration(self.estimate * share)} (estimated)"

    def started(self, indices: Sequence[int]) -> str:
        """The line for jobs ``indices`` (0-based, consecutive) starting now."""
        now = self.clock()
        if self.first is None:
            self.first = now
        for i in indices:
            self.begun[i] = now
        verb = "starts" if len(indices) == 1 else "start"
        names = ", ".join(self.names[i] for i in indices)
        return f"{self._jobs(indices)} {verb}: {names}; {self._eta_text()}"

    def finished(self, indices: Sequence[int], endings: Sequence[str]) -> str:
        """The line for jobs ``indices`` having ended as ``endings`` (one of :data:`ENDINGS`
        each)."""
        if len(indices) != len(endings):
            raise ValueError(f"{len(indices)} jobs but {len(endings)} endings")
        for i, how in zip(indices, endings, strict=True):
            if how not in ENDINGS:
                raise ValueError(f"a job ends as one of {ENDINGS}, got {how!r}")
            self.ended[i] = how
        now = self.clock()
        took = format_duration(now - min(self.begun.get(i, now) for i in indices))
        if len(indices) == 1:
            what = f"{self._jobs(indices)} {endings[0]} in {took}: {self.names[indices[0]]}"
        else:
            counts = {how: list(endings).count(how) for how in ENDINGS if how in endings}
            told = ", ".join(f"{k} {how}" for how, k in counts.items())
            what = f"{self._jobs(indices)} ended in {took} ({told})"
        total = len(self.names)
        so_far = format_duration(now - (self.first if self.first is not None else now))
        if len(self.ended) == total:
            return f"{what}; all {total} jobs ended in {so_far}"
        return f"{what}; {len(self.ended)} of {total} jobs ended in {so_far}, {self._eta_text()}"


def rerun_command(key: str, folder: str | os.PathLike, argv: Sequence[str] | None = None) -> str:
    """The command that resumes this run or sweep: its own arguments with ``key=folder``.

    ``key`` is ``hydra.run.dir`` or ``hydra.sweep.dir``; a value the command gave it is
    replaced by ``folder`` (made absolute: a default folder's name holds the start time).
    Arguments are quoted for a POSIX shell.

    >>> rerun_command("hydra.sweep.dir", "/o/s", ["/x/histae/__main__.py", "-m", "loss.bins=5,6"])
    'python -m histae -m loss.bins=5,6 hydra.sweep.dir=/o/s'
    >>> rerun_command("hydra.run.dir", "/o/r", ["/venv/bin/histae", "model.channels=[8,8]"])
    "histae 'model.channels=[8,8]' hydra.run.dir=/o/r"
    """
    argv = list(sys.argv if argv is None else argv)
    program = "histae" if argv and Path(argv[0]).name == "histae" else "python -m histae"
    args = [a for a in argv[1:] if a.lstrip("+").partition("=")[0] != key]
    args.append(f"{key}={os.path.abspath(folder)}")
    return " ".join([program, *(shlex.quote(a) for a in args)])
