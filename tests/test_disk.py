"""What a sweep leaves on disk: a finished job keeps its weights, not its optimizer state."""

from __future__ import annotations

from pathlib import Path

import pytest

from histae.jobdir import is_job_dir, read_status
from tests.helpers import TINY, run_histae

# The reference network (conf/model/conv_ae.yaml), which smoke shrinks: its size is the point.
REFERENCE_MODEL = ["model.code_size=128", "model.channels=[24,32,48]"]
MB = 2**20


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow
def test_a_finished_nine_job_sweep_of_the_reference_network_fits_its_bound(tmp_path) -> None:
    sweep = tmp_path / "sweep"
    code = run_histae(
        "-m",
        *TINY,
        *REFERENCE_MODEL,
        "trainer.max_inputs=32",
        "loss.bins=50,100,200",
        "loss.sigma=50,100,200",
        f"hydra.sweep.dir={sweep}",
    )
    assert code == 0
    jobs = sorted(p for p in sweep.iterdir() if is_job_dir(p))
    assert len(jobs) == 9 and all(read_status(j)["status"] == "done" for j in jobs)
    sizes = {j.name: folder_bytes(j) for j in jobs}
    total = folder_bytes(sweep)
    for name, size in sizes.items():
        print(
            f"{name}: {size / MB:.1f} MB (checkpoint.pt {(sweep / name / 'checkpoint.pt').stat().st_size / MB:.1f} MB)"
        )
    print(f"the 9-job sweep folder: {total / MB:.1f} MB")
    assert max(sizes.values()) <= 25 * MB  # weights (19.3 MB) and the small files
    assert total <= 250 * MB
