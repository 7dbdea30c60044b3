"""What a job shows on the terminal while it trains.

On a TTY: one tqdm bar per job, counting images up to the real number the job will see, with the
latest train loss beside it; log lines print above the bar (tqdm's logging redirection), never
glued onto it. Off a TTY (a log file, CI) or in a pool's worker process (jobs run in parallel by
joblib): a line every tenth of the job or every minute, whichever comes first, and one at the
end::

    [bins-100_sigma-50] 12,000/48,000 images, 410 img/s, ETA 1m28s, loss 24.3

Both show the real rate: this run's images over this run's wall time (validation included), so a
resumed job's earlier images do not inflate it, and neither does a smoothed burst.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import sys
from contextlib import ExitStack
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
