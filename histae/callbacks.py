"""Hydra callbacks: histae's sweep report from any sweeper.

histae's own sweeper writes the report when a sweep ends (also when jobs failed). A sweep run
by another sweeper (Hydra's basic one, ``hydra/sweeper=basic``, or an optimizer's such as
Optuna's) gets it from :class:`SweepReport`, which ``conf/config.yaml`` registers under
``hydra.callbacks``. Imported on every start: nothing heavy at module level.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("histae")

HISTAE_SWEEPER = "hydra_plugins.histae_sweeper.histae_sweeper.HistaeSweeper"


class SweepReport(Callback):
    """Write histae's sweep report into ``<sweep folder>/report/`` at the end of a multirun.

    Skipped under histae's own sweeper, which writes it itself (and honours
    ``hydra.sweeper.report=false``). Hydra 1.3 calls ``on_multirun_end`` only when no job
    raised: a sweep with failed jobs under another sweeper gets its report from
    ``python -m histae.report <sweep folder>``.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Write the report of the sweep in ``config.hydra.sweep.dir``; a failure is logged, not
        raised (the sweep's jobs are done and their folders are whole)."""
        if str(config.hydra.sweeper.get("_target_", "")) == HISTAE_SWEEPER:
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            from histae.report import write_report

            path = write_report(sweep_dir)
        except Exception as err:  # the report must not turn a finished sweep into a failure
            log.error(f"Could not write the sweep report for {sweep_dir}: {err}")
            return
        log.info(f"Sweep report: {path}")
