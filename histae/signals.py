"""Stopping a job cleanly: SIGTERM, Ctrl-C and a cluster's requeue signal end the loop at a step.

The loop checks :func:`stop_signals`'s list after every step; when it holds a signal, the job
checkpoints the step it reached and raises :class:`histae.jobdir.JobStopped`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

from histae.jobdir import JobStopped

log = logging.getLogger("histae")


def submitit_requeue_signal(env: dict[str, str] | None = None) -> int | None:
    """The signal a submitit SLURM job gets before its time limit, or None outside one.

    submitit asks SLURM for SIGUSR2 (``SUBMITIT_PREEMPT_SIGNAL`` names another) ``signal_delay_s``
    before the limit; its handler saves the job and runs ``scontrol requeue``, then exits at once,
    mid-step. :func:`stop_signals` catches it like SIGTERM instead and hands over to submitit only
    after the step is checkpointed, so the requeued job resumes where it stopped.
    """
    env = os.environ if env is None else env
    if env.get("SUBMITIT_EXECUTOR") != "slurm":
        return None
    return getattr(signal, "SIG" + env.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), None)


@contextlib.contextmanager
def stop_signals() -> Iterator[list[int]]:
    """SIGTERM and SIGINT ask the loop to stop at the next step (the list gets the signal).

    A second signal stops at once. Outside the main thread (a launcher's worker thread) signals
    cannot be caught, and the block runs with the process's own handling. In a submitit SLURM
    job its requeue signal stops the loop too, then goes on to submitit's own handler.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: Any) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(signum)
        log.warning(f"got signal {signum}: stopping after this step with a checkpoint")

    requeue = submitit_requeue_signal()
    caught = (signal.SIGTERM, signal.SIGINT, *([requeue] if requeue else []))
    previous = {s: signal.signal(s, handler) for s in caught}

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h)

    try:
        yield received
    except JobStopped as stopped:
        handover = previous.get(stopped.signum) if stopped.signum == requeue else None
        if callable(handover):
            # submitit's SIGTERM handling back first: the requeue below makes SLURM send one.
            restore()
            handover(stopped.signum, None)  # saves the job, `scontrol requeue`, exits
        raise
    finally:
        restore()
