"""``python -m histae.report FOLDER... [--lead KEY]``: (re)write reports at any time."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from histae.jobdir import is_job_dir
from histae.report.build import write_job_page, write_report
from histae.report.index import is_outputs_root, write_outputs_index
from histae.report.measures import DEFAULT_LEAD, METRICS


def main(argv: Sequence[str] | None = None) -> int:
    """Write the report of each sweep folder, the page of each run folder or the index of each
    outputs folder; print what was written. Returns 0, or 1 if any folder was bad."""
    parser = argparse.ArgumentParser(
        prog="python -m histae.report",
        description="Write a sweep's report (<sweep>/report/), at any time, also while it runs.",
    )
    parser.add_argument(
        "folders",
        nargs="+",
        type=Path,
        metavar="FOLDER",
        help="a sweep folder (multirun.yaml and one folder per job), a single run's folder, or "
        "an outputs folder (sweeps/ and runs/) whose index.html to refresh",
    )
    parser.add_argument(
        "--lead",
        default=None,
        choices=list(METRICS),
        help="the metric the results are sorted by (default: the sweep's "
        f"hydra.sweeper.report_lead, else {DEFAULT_LEAD})",
    )
    args = parser.parse_args(argv)
    failed = False
    for folder in args.folders:
        try:
            if folder.is_dir() and is_outputs_root(folder):
                print(write_outputs_index(folder))
            elif folder.is_dir() and is_job_dir(folder):
                print(write_job_page(folder))
            else:
                print(write_report(folder, lead=args.lead))
        except (OSError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
