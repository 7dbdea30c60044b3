"""The sweep report: job discovery, swept values, plots (checked by their data), tables, pages.

Most tests build sweep folders by hand with the same helpers the trainer writes with, so every
state a report may meet (done, failed, running, not started) is cheap to set up; the slow ones
run a real tiny multirun in-process.
"""

from __future__ import annotations

import csv
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from histae.atomic import write_json, write_text
from histae.jobdir import METRIC_COLUMNS, JobDir, format_metric_rows, read_metrics
from histae.plots import reconstruction_grid, save_png
from histae.report import (
    Job,
    binned_w1,
    compose_cells,
    find_job_dirs,
    label_jobs,
    load_job,
    main,
    parse_overrides,
    plot_comparison,
    plot_histograms,
    refresh_outputs_index,
    status_text,
    write_outputs_index,
    write_report,
)
from tests.conftest import TINY, run_histae


def write_status(job_dir, status, inputs, wall_time, error=None):
    job = JobDir(job_dir)
    job.inputs, job.wall_time = inputs, wall_time
    job.write_status(status, error=error)


# ----------------------------------------------------------------------------------------------
# Sweep folders written by hand


def fake_rows(scale: float, inputs: int = 256, every: int = 64) -> list[dict]:
    """metrics.csv rows: train every ``every`` inputs, validation every 2 * every; loss falls
    from 4 * scale to scale."""
    rows = []
    steps = inputs // every
    for i in range(1, steps + 1):
        loss = scale * (steps + 1 - i)
        base = {"loss": loss, "loss_reconstruction": loss, "loss_batch_std": 0.4}
        base |= {"loss_batch_mean": 0.01, "pixel_l1": 0.3, "pixel_mse": 0.1, "psnr": 10.0}
        rows.append({"inputs": i * every, "split": "train", "lr": 3e-4, **base, "hist_w1": 0.05})
        if i % 2 == 0:
            rows.append({"inputs": i * every, "split": "val", **base, "hist_w1": 0.04})
    return rows


def fake_samples(n: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    """samples.npz arrays whose reconstructions are the originals' pixels shuffled within each
    image and channel: the same colour histograms, a different picture (the experiment's point)."""
    rng = np.random.default_rng(seed)
    originals = rng.integers(0, 256, (n, 3, 32, 32)).astype(np.float32) / 255
    flat = originals.reshape(n, 3, -1)
    shuffled = np.take_along_axis(
        flat, rng.permuted(np.tile(np.arange(1024), (n, 3, 1)), axis=-1), -1
    )
    reconstructions = shuffled.reshape(originals.shape)
    edges = np.linspace(0.0, 1.0, 257)

    def hist(images: np.ndarray) -> np.ndarray:
        return np.stack(
            [np.histogram(c.ravel(), bins=edges)[0] for c in images.transpose(1, 0, 2, 3)]
        )

    return {
        "inputs": np.array(256),
        "originals": originals,
        "reconstructions": reconstructions,
        "hist_edges": edges,
        "hist_originals": hist(originals),
        "hist_reconstructions": hist(np.clip(reconstructions, 0, 1)),
    }


def make_job(
    job_dir: Path,
    overrides: Sequence[str],
    status: str | None = "done",
    scale: float = 1.0,
    error: str | None = None,
    inputs: int = 256,
) -> Path:
    """A job folder as histae leaves it in ``status`` (None: Hydra's record only, not started)."""
    write_text(job_dir / ".hydra" / "overrides.yaml", yaml.safe_dump(list(overrides)))
    if status is None:
        return job_dir
    rows = fake_rows(scale, inputs) if inputs else []
    write_status(job_dir, status, inputs, 2.0, error=error)
    if not rows:
        return job_dir
    write_text(job_dir / "metrics.csv", format_metric_rows(rows))
    # A stand-in for loss.png: any real PNG does for the report, and matplotlib is slow.
    save_png(np.full((40, 60, 3), 200, np.uint8), job_dir / "loss.png")
    samples = fake_samples()
    np.savez(job_dir / "samples.npz", **samples)
    grid = reconstruction_grid(samples["originals"], samples["reconstructions"])
    save_png(grid, job_dir / "reconstructions.png")
    if status == "done":
        final = {s: [r for r in rows if r["split"] == s][-1] for s in ("train", "val")}
        write_json(
            job_dir / "summary.json",
            {"status": "done", "inputs": inputs, "wall_time": 2.0, "images_per_second": 128.0}
            | {"final": final},
        )
    return job_dir


def make_sweep(sweep_dir: Path) -> Path:
    """A 2x2 sweep over bins x sigma (one value written 1e2, a float, to check numeric sorting):
    two jobs done, one failed, one still running, and one Hydra started but never trained."""
    write_text(
        sweep_dir / "multirun.yaml",
        yaml.safe_dump(
            {"hydra": {"overrides": {"task": ["loss.bins=200,1e2,300", "loss.sigma=50,100"]}}}
        ),
    )
    make_job(sweep_dir / "bins-200_sigma-50", ["loss.bins=200", "loss.sigma=50", "x=1"], scale=1)
    make_job(sweep_dir / "bins-1e2_sigma-50", ["loss.bins=1e2", "loss.sigma=50", "x=1"], scale=20)
    make_job(
        sweep_dir / "bins-1e2_sigma-100",
        ["loss.bins=1e2", "loss.sigma=100", "x=1"],
        status="failed",
        error="ValueError: loss.bins too large\nTraceback follows",
        inputs=0,
    )
    make_job(
        sweep_dir / "bins-200_sigma-100",
        ["loss.bins=200", "loss.sigma=100", "x=1"],
        status="running",
        scale=3,
        inputs=128,
    )
    make_job(sweep_dir / "bins-300_sigma-100", ["loss.bins=300", "loss.sigma=100", "x=1"], None)
    return sweep_dir


# In the order the report sorts them: by bins, then sigma, numbers as numbers.
SWEEP_ORDER = [
    "bins-1e2_sigma-50",
    "bins-1e2_sigma-100",
    "bins-200_sigma-50",
    "bins-200_sigma-100",
    "bins-300_sigma-100",
]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def bare_job(name: str, overrides: dict[str, str] | None = None) -> Job:
    return Job(Path(name), name, overrides or {}, "done", None, None, None, None, None, [])


# ----------------------------------------------------------------------------------------------
# Swept values and order


def test_parse_overrides_strips_prefixes_and_keeps_values() -> None:
    assert parse_overrides(["loss.bins=100", "+extra=a=b", "~gone", "loss=l1"]) == {
        "loss.bins": "100",
        "extra": "a=b",
        "gone": "",
        "loss": "l1",
    }


def test_label_jobs_keeps_varying_keys_and_sorts_numbers_numerically() -> None:
    jobs = [
        bare_job(f"j{b}-{s}", {"loss.bins": b, "loss.sigma": s, "trainer.seed": "0"})
        for b in ("100", "200", "50")
        for s in ("100", "200", "50")
    ]
    ordered = label_jobs(jobs)
    assert [j.swept for j in ordered][:3] == [
        {"loss.bins": "50", "loss.sigma": "50"},
        {"loss.bins": "50", "loss.sigma": "100"},
        {"loss.bins": "50", "loss.sigma": "200"},
    ]
    assert [j.label for j in ordered][-1] == "bins=200, sigma=200"
    assert len({j.color for j in ordered}) == 9


def test_label_jobs_uses_full_keys_when_short_ones_clash() -> None:
    jobs = [bare_job(str(i), {"a.size": str(i), "b.size": str(-i)}) for i in (1, 2)]
    assert label_jobs(jobs)[0].label == "a.size=1, b.size=-1"


def test_label_jobs_falls_back_to_folder_names_in_natural_order() -> None:
    ordered = label_jobs([bare_job(n) for n in ("job-10", "job-2", "job-1")])
    assert [j.label for j in ordered] == ["job-1", "job-2", "job-10"]
    assert all(j.swept == {} for j in ordered)


def test_a_single_job_is_labelled_by_all_its_overrides() -> None:
    (job,) = label_jobs([bare_job("x", {"loss": "l1", "trainer.seed": "3"})])
    assert job.label == "loss=l1, seed=3"


def test_find_job_dirs_outside_a_hydra_sweep_looks_one_level_deep(tmp_path: Path) -> None:
    make_job(tmp_path / "a" / "deep", ["x=1"], None)
    make_job(tmp_path / "b", ["x=2"], None)
    assert find_job_dirs(tmp_path) == [tmp_path / "b"]
    write_text(tmp_path / "multirun.yaml", "{}\n")  # Hydra's sweep: subdirs may be nested
    assert find_job_dirs(tmp_path) == [tmp_path / "a" / "deep", tmp_path / "b"]


# ----------------------------------------------------------------------------------------------
# Plots


def test_histogram_w1_known_answers() -> None:
    edges = np.linspace(0.0, 1.0, 257)
    first, last, second = np.zeros((1, 256)), np.zeros((1, 256)), np.zeros((1, 256))
    first[0, 0], last[0, -1], second[0, 1] = 5, 7, 1
    assert binned_w1(edges, first, first) == pytest.approx([0.0])
    assert binned_w1(edges, first, last) == pytest.approx([255 / 256])
    assert binned_w1(edges, first, second) == pytest.approx([1 / 256])
    # Half the mass moved by 128 bins: half of 0.5.
    half = first.copy()
    half[0, 128] = 5
    assert binned_w1(edges, first, half) == pytest.approx([0.25])


def test_plot_histograms_draws_normalised_channels_of_equal_colours(tmp_path: Path) -> None:
    drawn = plot_histograms(fake_samples(), tmp_path / "h.png", title="t")
    assert drawn["originals"].shape == drawn["reconstructions"].shape == (3, 64)
    assert drawn["edges"].shape == (65,)
    np.testing.assert_allclose(drawn["originals"].sum(axis=1), 1.0)
    # Shuffled pixels: the same colours, so the exact distance is zero in every channel.
    np.testing.assert_allclose(drawn["w1"], 0.0, atol=1e-12)
    with Image.open(tmp_path / "h.png") as image:
        assert image.size == (1290, 560)


def test_plot_histograms_names_mismatched_shapes(tmp_path: Path) -> None:
    samples = fake_samples() | {"hist_reconstructions": np.zeros((3, 100))}
    with pytest.raises(ValueError, match=r"histograms must be \(C, bins\)"):
        plot_histograms(samples, tmp_path / "h.png")


def test_plot_comparison_draws_every_job_in_both_panels(tmp_path: Path) -> None:
    rows = {f"job{i}": fake_rows(scale=10.0**i) for i in range(9)}
    drawn = plot_comparison(rows, tmp_path / "c.png", labels={"job0": "bins=50"})
    assert set(drawn) == set(rows)
    for name, series in drawn.items():
        for split in ("train", "val"):
            x, y = series[split]
            expected = [(r["inputs"], r["loss"]) for r in rows[name] if r["split"] == split]
            np.testing.assert_array_equal(x, [e[0] for e in expected])
            np.testing.assert_allclose(y, [e[1] for e in expected])
    with Image.open(tmp_path / "c.png") as image:
        assert image.size == (1300, 500)


def test_plot_comparison_with_a_job_without_rows(tmp_path: Path) -> None:
    drawn = plot_comparison({"a": fake_rows(1.0), "b": []}, tmp_path / "c.png")
    assert set(drawn) == {"a"}
    assert (tmp_path / "c.png").stat().st_size > 0


def test_compose_cells_lays_out_labelled_grids() -> None:
    grid = np.full((64, 96, 3), 7, np.uint8)
    canvas = compose_cells([("a", grid), ("b", None), ("c", grid)], cols=2, gap=10, label_height=20)
    assert canvas.shape == (2 * (20 + 64 + 10) - 10, 2 * (96 + 10) - 10, 3)
    assert (canvas[20:84, :96] == 7).all()  # first image under its label
    assert (canvas[20:30, 106:116] == 0xDD).all()  # the missing one is a grey box
    assert canvas[:20, :96].min() < 100  # the label is drawn in black on white


# ----------------------------------------------------------------------------------------------
# The report of a sweep in every state


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sweep_dir = make_sweep(tmp_path_factory.mktemp("outputs") / "sweeps" / "2024-01-02_03-04-05")
    index = write_report(sweep_dir)
    assert index == sweep_dir / "index.html"
    return sweep_dir


def test_results_csv_has_one_row_per_job_with_status_and_numbers(report: Path) -> None:
    rows = read_csv(report / "results.csv")
    assert [r["job"] for r in rows] == SWEEP_ORDER
    assert list(rows[0])[:3] == ["job", "loss.bins", "loss.sigma"]  # x=1 does not vary
    by_job = {r["job"]: r for r in rows}
    assert [r["status"] for r in rows] == ["done", "failed", "done", "running", "pending"]
    assert by_job["bins-1e2_sigma-100"]["error"] == "ValueError: loss.bins too large"
    for name in ("bins-1e2_sigma-50", "bins-200_sigma-50"):
        row = by_job[name]
        for key in ("train_loss", "val_loss", "val_pixel_l1", "val_psnr", "val_hist_w1"):
            assert math.isfinite(float(row[key])), (name, key)
        assert float(row["images_per_second"]) == 128.0
    assert float(by_job["bins-200_sigma-50"]["train_loss"]) == 1.0  # the last train row
    assert float(by_job["bins-1e2_sigma-50"]["val_loss"]) == 20.0
    # A running job shows its numbers so far; speed from status.json (128 inputs in 2 s).
    assert float(by_job["bins-200_sigma-100"]["val_loss"]) == 3.0
    assert float(by_job["bins-200_sigma-100"]["images_per_second"]) == 64.0
    assert by_job["bins-300_sigma-100"]["val_loss"] == ""


def test_results_md_is_a_table_with_one_row_per_job(report: Path) -> None:
    lines = (report / "results.md").read_text().splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 2 + 5
    assert table[0].startswith("| bins | sigma | status |")
    assert "failed: ValueError: loss.bins too large" in table[3]
    assert "`python -m histae -m loss.bins=200,1e2,300 loss.sigma=50,100`" in lines


def test_reconstructions_overview_is_a_labelled_matrix(report: Path) -> None:
    with Image.open(report / "reconstructions.png") as image:
        # 5 jobs do not make a full 2x2 matrix: 4 per row, 2 rows of 26 + 256 + 16 pixels.
        # Each 16-image grid at 2x: 4 rows of 64 px, 8 tiles of 64 px.
        assert image.size == (4 * (512 + 16) - 16, 2 * (26 + 256 + 16) - 16)


def test_index_html_shows_every_job_with_relative_existing_images(report: Path) -> None:
    page = (report / "index.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert "comparison.png" in sources and "reconstructions.png" in sources
    for src in sources:
        assert not re.match(r"[a-z]+:", src) and not src.startswith("/"), src
        assert (report / src).is_file(), src
    assert not re.search(r'(src|href)="(https?:)?//', page)  # self-contained
    headings = re.findall(r'<h2 id="job-[^"]*">.*?</span>([^<]*)</h2>', page)
    assert headings == [
        "bins=1e2, sigma=50",
        "bins=1e2, sigma=100",
        "bins=200, sigma=50",
        "bins=200, sigma=100",
        "bins=300, sigma=100",
    ]
    table = page.split('<table id="results">')[1].split("</table>")[0]
    assert table.count("<tr>") == 1 + 5
    assert "5 of 6 jobs: 2 done, 1 failed, 1 running, 1 pending" in page
    assert 'href="../../index.html"' in page


def test_write_report_refreshes_the_outputs_index(report: Path) -> None:
    page = (report.parent.parent / "index.html").read_text()
    assert "sweeps/2024-01-02_03-04-05/index.html" in page


def test_report_is_rewritten_as_the_sweep_goes_on(tmp_path: Path) -> None:
    sweep_dir = make_sweep(tmp_path / "sweep")
    write_report(sweep_dir)
    make_job(sweep_dir / "bins-200_sigma-100", ["loss.bins=200", "loss.sigma=100", "x=1"], "done")
    write_report(sweep_dir)
    statuses = {r["job"]: r["status"] for r in read_csv(sweep_dir / "results.csv")}
    assert statuses["bins-200_sigma-100"] == "done"
    assert not any(p.name.endswith(".tmp") for p in sweep_dir.iterdir())


def test_load_job_of_a_job_with_nothing_written(tmp_path: Path) -> None:
    job = load_job(make_job(tmp_path / "j", ["a=1"], None), tmp_path)
    assert (job.status, job.rows, job.inputs, job.overrides) == ("pending", [], None, {"a": "1"})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", r"missing does not exist or is not a folder"),
        (lambda p: p, r"is not a sweep folder: no job folders with status.json"),
        (lambda p: make_job(p / "job", ["a=1"]), r"job is a single job's folder"),
    ],
)
def test_write_report_names_a_bad_folder(tmp_path: Path, make, message: str) -> None:
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        write_report(make(tmp_path))
    assert not (tmp_path / "index.html").exists()


def test_a_sweep_without_jobs_yet_gets_an_empty_report(tmp_path: Path) -> None:
    write_text(tmp_path / "multirun.yaml", "hydra: {overrides: {task: [a=1,2]}}\n")
    write_report(tmp_path)
    assert read_csv(tmp_path / "results.csv") == []
    assert "No jobs yet." in (tmp_path / "index.html").read_text()


# ----------------------------------------------------------------------------------------------
# outputs/index.html and the command line


def test_outputs_index_lists_sweeps_and_runs_newest_first(tmp_path: Path) -> None:
    make_sweep(tmp_path / "sweeps" / "2024-01-02_00-00-00")
    make_job(tmp_path / "runs" / "2024-01-03_00-00-00", ["loss=l1"], "done", scale=0.5)
    make_job(tmp_path / "runs" / "2024-01-01_00-00-00", ["loss=mse"], "failed", inputs=0)
    (tmp_path / "runs" / "not-a-run").mkdir()
    page = write_outputs_index(tmp_path).read_text()
    rows = page.split("<tbody>")[1].split("</tbody>")[0].strip().splitlines()
    assert len(rows) == 3
    assert "runs/2024-01-03_00-00-00" in rows[0] and ">0.5<" in rows[0]
    assert "sweeps/2024-01-02_00-00-00" in rows[1] and "2 done" in rows[1]
    assert "runs/2024-01-01_00-00-00" in rows[2] and "failed" in rows[2]


def test_refresh_outputs_index_only_in_the_default_layout(tmp_path: Path) -> None:
    run = make_job(tmp_path / "outputs" / "runs" / "2024-01-01_00-00-00", ["loss=l1"])
    assert refresh_outputs_index(run) == (tmp_path / "outputs" / "index.html").resolve()
    assert "runs/2024-01-01_00-00-00" in (tmp_path / "outputs" / "index.html").read_text()
    assert refresh_outputs_index(make_job(tmp_path / "elsewhere", ["loss=l1"])) is None


def test_outputs_index_names_a_folder_without_sweeps_or_runs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"is not an outputs folder: no sweeps/ or runs/"):
        write_outputs_index(tmp_path)


def test_cli_writes_reports_and_indexes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sweep_dir = tmp_path / "sweeps" / "s"
    make_job(sweep_dir / "a-1", ["a=1"], "failed", error="boom", inputs=0)
    make_job(sweep_dir / "a-2", ["a=2"], None)
    assert main([str(sweep_dir), str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [str(sweep_dir / "index.html"), str(tmp_path / "index.html")]
    assert [r["status"] for r in read_csv(sweep_dir / "results.csv")] == ["failed", "pending"]


def test_cli_bad_folder_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main([str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: {tmp_path / 'nope'} does not exist or is not a folder: pass a sweep folder"
    ]


def test_module_runs_as_a_script(tmp_path: Path) -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "histae.report", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "is not a sweep folder" in done.stderr


# ----------------------------------------------------------------------------------------------
# A real sweep, in-process


def run_sweep(sweep_dir: Path, *overrides: str) -> int:
    """``python -m histae -m hydra.sweep.dir=SWEEP_DIR +experiment=smoke OVERRIDES`` in-process."""
    return run_histae("-m", f"hydra.sweep.dir={sweep_dir}", *TINY, *overrides)


@pytest.mark.slow
def test_real_2x2_sweep_report(real_sweep: Path) -> None:
    jobs = sorted(p.name for p in real_sweep.iterdir() if p.is_dir())
    assert jobs == [
        "loss-l1_lr-0.0003",
        "loss-l1_lr-0.001",
        "loss-mse_lr-0.0003",
        "loss-mse_lr-0.001",
    ]
    # The sweeper wrote the report when the sweep ended.
    rows = read_csv(real_sweep / "results.csv")
    assert len(rows) == 4
    assert [(r["loss"], r["optimizer.lr"]) for r in rows] == [
        ("l1", "0.0003"),
        ("l1", "0.001"),
        ("mse", "0.0003"),
        ("mse", "0.001"),
    ]
    for row in rows:
        assert row["status"] == "done" and row["inputs"] == "192"
        for key in ("train_loss", "val_loss", "val_pixel_l1", "val_psnr", "val_hist_w1"):
            assert math.isfinite(float(row[key])), (row["job"], key)
        assert float(row["images_per_second"]) > 0 and float(row["wall_time"]) > 0
        # The table's numbers are the job's last validation row.
        val = [
            r for r in read_metrics(real_sweep / row["job"] / "metrics.csv") if r["split"] == "val"
        ]
        assert float(row["val_loss"]) == pytest.approx(val[-1]["loss"], rel=1e-5)
    # The comparison plot draws four curves per panel, each the job's metrics.csv.
    loaded = label_jobs([load_job(d, real_sweep) for d in find_job_dirs(real_sweep)])
    drawn = plot_comparison({j.name: j.rows for j in loaded}, real_sweep / "check.png")
    assert len(drawn) == 4 and all(set(s) == {"train", "val"} for s in drawn.values())
    for job in loaded:
        x, _ = drawn[job.name]["val"]
        assert list(x) == [96, 192]
        assert len(drawn[job.name]["train"][0]) == 6  # 192 inputs, a row every 32
    for job in loaded:
        assert set(METRIC_COLUMNS) <= set(job.rows[-1]) | {"lr"}
        with Image.open(job.path / "histograms.png") as image:
            assert image.size == (1290, 560)


@pytest.mark.slow
def test_real_sweep_with_a_failing_job_still_reports(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    code = run_sweep(sweep_dir, "loss=l1", "trainer.batch_size=16,100000")
    assert code != 0  # the sweep says a job failed, after finishing the others
    rows = {r["job"]: r for r in read_csv(sweep_dir / "results.csv")}
    assert set(rows) == {"batch_size-16", "batch_size-100000"}
    assert rows["batch_size-16"]["status"] == "done"
    assert math.isfinite(float(rows["batch_size-16"]["val_loss"]))
    failed = rows["batch_size-100000"]
    assert failed["status"] == "failed"
    assert failed["error"].startswith("ValueError: trainer.batch_size=100000 is larger than")
    page = (sweep_dir / "index.html").read_text()
    assert "failed: ValueError: trainer.batch_size=100000" in page


def test_a_killed_job_shows_as_stopped(tmp_path: Path) -> None:
    import json
    import subprocess

    sweep = make_sweep(tmp_path / "sweep")
    job = next(p for p in sorted(sweep.iterdir()) if (p / "status.json").exists())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that has exited
    status = json.loads((job / "status.json").read_text())
    status.update(status="running", error=None, pid=dead.pid)
    (job / "status.json").write_text(json.dumps(status))
    loaded = load_job(job, sweep)
    assert loaded.status == "stopped"
    assert f"process {dead.pid} exited" in status_text(loaded)
