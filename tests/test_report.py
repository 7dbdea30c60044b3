"""The sweep report: labels, comparable metrics, replicates, the data behind each figure, files.

Job folders are written with the job's own writer (:class:`histae.jobdir.JobDir`) and a config
Hydra composes, so the report meets what a real job leaves; the slow tests run real sweeps.
"""

from __future__ import annotations

import csv
import html
import json
import math
import os
import re
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import yaml

from histae.jobdir import JobDir, read_metrics
from histae.labels import describe_config, short_keys, varying_keys
from histae.report import layout, write_job_page, write_outputs_index, write_report
from histae.report.__main__ import main
from histae.report.comparisons import marginal, matrix, plot_heatmaps, plot_parallel
from histae.report.curves import plot_curves
from histae.report.measures import METRICS, normalised_loss, tv_scale
from histae.report.reading import read_jobs
from histae.report.settings import group_settings, sort_settings
from tests.helpers import (
    TINY,
    job_config,
    run_histae,
    write_job,
    write_sweep,
)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def report_files(sweep_dir: Path) -> Path:
    return sweep_dir / layout.REPORT


# ----------------------------------------------------------------------------------------------
# Labels (shared with the sweeper) and titles


def test_varying_keys_and_short_keys() -> None:
    jobs = [
        {"loss.bins": "50", "x": "1", "hydra.sweep.subdir": "a"},
        {"loss.bins": "200", "x": "1"},
    ]
    assert varying_keys(jobs) == ["loss.bins"]
    assert varying_keys(jobs[:1]) == ["loss.bins", "x"]
    assert short_keys(["a.size", "b.size", "loss.bins"]) == {
        "a.size": "a.size",
        "b.size": "b.size",
        "loss.bins": "bins",
    }


def test_titles_come_from_the_config() -> None:
    assert describe_config(job_config("loss.bins=200", "trainer.max_inputs=48000")) == (
        "l1, bins 200, sigma 100, 48,000 inputs, seed 1"
    )
    assert describe_config(job_config("loss=l1")).startswith("pixel L1, 192 inputs")


# ----------------------------------------------------------------------------------------------
# Comparable metrics and collapse


def test_normalised_loss_is_total_variation_on_the_same_scale_at_every_bins() -> None:
    for bins in (50, 100, 200):
        config = job_config(f"loss.bins={bins}")
        assert tv_scale(config) == pytest.approx(bins / (2 * 3072))
        # Outputs all out of range: loss = 3072/bins at every bins, one TV of 0.5.
        assert normalised_loss({"loss_reconstruction": 3072 / bins}, config) == pytest.approx(0.5)
    assert tv_scale(job_config("loss.per_channel=true")) == pytest.approx(100 / (2 * 1024))
    assert tv_scale(job_config("loss.normalize=true")) == pytest.approx(50.0)
    assert tv_scale(job_config("loss=emd")) is None
    # Only the histogram loss's counts: the joint histogram's l1 and a composite have other totals.
    assert tv_scale(job_config("loss=joint_histogram")) is None
    assert tv_scale(job_config("loss=composite")) is None
    assert tv_scale(job_config("loss=l1")) is None  # the pixel loss has no histogram


def test_a_collapsed_job_is_flagged_in_the_table(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_job(sweep / "seed-0", ["trainer.seed=0"], loss=30.3, collapsed=True)
    write_job(sweep / "seed-1", ["trainer.seed=1"], loss=5.0)
    write_report(sweep)
    rows = {r["trainer.seed"]: r for r in read_csv(report_files(sweep) / "results.csv")}
    assert rows["0"]["status"] == "done, collapsed" and rows["0"]["collapsed"] == "1"
    assert rows["1"]["status"] == "done" and rows["1"]["collapsed"] == "0"


@pytest.mark.slow
def test_a_real_seed_0_job_is_detected_as_collapsed(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "seed0"
    args = ["trainer.seed=0", "trainer.max_inputs=2000", "trainer.val_every_inputs=1000"]
    assert run_histae(f"hydra.run.dir={run}", *args) == 0
    (job,) = read_jobs(run.parent)
    assert job.collapsed
    assert normalised_loss(job.record.final("val"), job.config) == pytest.approx(0.5, abs=0.01)
    # The single run wrote its own page, which says so.
    assert "done, collapsed" in (run / "index.html").read_text()


# ----------------------------------------------------------------------------------------------
# The data behind the table and the figures


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sweep_dir = write_sweep(tmp_path_factory.mktemp("outputs") / "sweeps" / "2024-01-02_03-04-05")
    write_report(sweep_dir)
    return sweep_dir


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sweep_dir = write_sweep(tmp_path_factory.mktemp("rep") / "sweep", seeds=(1, 2, 3))
    write_report(sweep_dir)
    return sweep_dir


def test_one_seed_is_sorted_but_stars_nothing_and_says_how_to_judge(sweep: Path) -> None:
    rows = read_csv(report_files(sweep) / "results.csv")
    assert list(rows[0])[:2] == ["loss.bins", "loss.sigma"]
    w1 = [float(r["hist_w1"]) for r in rows]
    assert w1 == sorted(w1) and len(rows) == 4
    assert (rows[0]["loss.bins"], rows[0]["loss.sigma"]) == ("50", "50")
    # One seed: no uncertainty, so no best and no fake zero std (empty, not 0).
    assert [r["best"] for r in rows] == ["False"] * 4
    assert {r["hist_w1_std"] for r in rows} == {""} and {r["hist_w1_ci95_low"] for r in rows} == {
        ""
    }
    assert {r["indistinguishable_from_best"] for r in rows} == {""}
    # The raw loss points the other way (3072/bins scale) and is kept, labelled.
    assert float(rows[0]["raw_loss"]) > float(rows[-1]["raw_loss"])
    md = (report_files(sweep) / "results.md").read_text()
    assert "raw loss (not comparable across bins)" in md and "| ★ |" not in md
    assert "trainer.seed=1,2,3" in md and "|  | 50 | 50 |" in md
    page = (report_files(sweep) / "index.html").read_text()
    assert "with one seed the report cannot tell" in page and ">★ " not in page  # no row starred


@pytest.mark.slow  # reports rebuilt for each lead: about 4 s of CPU
def test_the_lead_metric_is_choosable(tmp_path: Path) -> None:
    sweep_dir = write_sweep(tmp_path / "s")
    assert main([str(sweep_dir), "--lead", "psnr"]) == 0
    psnr = [float(r["psnr"]) for r in read_csv(report_files(sweep_dir) / "results.csv")]
    assert psnr == sorted(psnr, reverse=True)  # higher is better
    with pytest.raises(ValueError, match=r"lead metric must be one of hist_w1, .*got 'nope'"):
        write_report(sweep_dir, lead="nope")
    # The sweep's own choice (hydra.sweeper.report_lead in multirun.yaml) is the default ...
    record = yaml.safe_load((sweep_dir / "multirun.yaml").read_text())
    record["hydra"]["sweeper"] = {"report_lead": "psnr"}
    (sweep_dir / "multirun.yaml").write_text(yaml.safe_dump(record))
    assert main([str(sweep_dir)]) == 0
    assert (
        json.loads((report_files(sweep_dir) / "results.json").read_text())["lead_metric"] == "psnr"
    )
    # ... and --lead still wins.
    assert main([str(sweep_dir), "--lead", "hist_w1"]) == 0
    data = json.loads((report_files(sweep_dir) / "results.json").read_text())
    assert data["lead_metric"] == "hist_w1"


def test_heatmap_cells_equal_the_table(sweep: Path, tmp_path: Path) -> None:
    settings = group_settings(read_jobs(sweep))
    metrics = [METRICS[k] for k in ("hist_w1", "psnr", "hist_tv")]
    drawn = plot_heatmaps(settings, ("loss.bins", "loss.sigma"), metrics, {}, tmp_path / "h.png")
    table = {
        (r["loss.bins"], r["loss.sigma"]): r for r in read_csv(report_files(sweep) / "results.csv")
    }
    assert set(drawn) == {"hist_w1", "psnr", "hist_tv", "loss"}  # and the raw loss, unranked
    for key, m in drawn.items():
        assert (m.rows, m.cols) == (["50", "200"], ["50", "100"])
        column = "raw_loss" if key == "loss" else key
        for (i, j), value in np.ndenumerate(m.mean):
            assert value == pytest.approx(float(table[(m.rows[i], m.cols[j])][column]), rel=1e-5)
    assert drawn["hist_w1"].mean[0, 0] == pytest.approx(0.10)
    # hist_tv from the raw loss: 3072/bins * 0.5 * 0.99 -> 0.5 * 0.99 / 2 at every bins.
    np.testing.assert_allclose(drawn["hist_tv"].mean, 0.2475)
    assert (report_files(sweep) / "heatmaps.png").is_file()


def test_replicates_are_mean_and_std_over_seeds(replicated: Path) -> None:
    rows = read_csv(report_files(replicated) / "results.csv")
    assert len(rows) == 4 and "trainer.seed" not in rows[0]
    assert all(r["seeds"] == "3" for r in rows)
    for row in rows:
        jobs = [
            p
            for p in replicated.iterdir()
            if p.name.startswith(f"bins-{row['loss.bins']}_sigma-{row['loss.sigma']}_seed")
        ]
        finals = [
            [r for r in read_metrics(p / "metrics.csv") if r["split"] == "val"][-1] for p in jobs
        ]
        w1 = [f["hist_w1"] for f in finals]
        assert float(row["hist_w1"]) == pytest.approx(np.mean(w1), rel=1e-5)
        assert float(row["hist_w1_std"]) == pytest.approx(np.std(w1, ddof=1), rel=1e-5)
        low, high = scipy.stats.t.interval(0.95, 2, loc=np.mean(w1), scale=scipy.stats.sem(w1))
        assert float(row["hist_w1_ci95_low"]) == pytest.approx(low, rel=1e-5)
        assert float(row["hist_w1_ci95_high"]) == pytest.approx(high, rel=1e-5)
    page = (report_files(replicated) / "index.html").read_text()
    # std 0.1 over 3 seeds: the 95% half width is t(0.975, 2) * 0.1 / sqrt(3) = 0.248.
    assert "4 settings × 3 seeds" in page and "0.2 ± 0.25" in page


def test_replicates_judge_the_best_by_welch_and_mark_the_indistinguishable(
    replicated: Path,
) -> None:
    rows = read_csv(report_files(replicated) / "results.csv")
    by = {(r["loss.bins"], r["loss.sigma"]): r for r in rows}
    # Means 0.20 / 0.25 / 0.40 / 0.45, std 0.1 each over 3 seeds.
    for key, row in by.items():
        if key == ("50", "50"):
            continue
        a = [0.1, 0.2, 0.3]
        b = [v + float(row["hist_w1"]) - 0.2 for v in a]
        p = scipy.stats.ttest_ind(a, b, equal_var=False).pvalue
        assert float(row["p_vs_best"]) == pytest.approx(p, rel=1e-6)
        assert row["indistinguishable_from_best"] == str(p > 0.05)
    assert by[("50", "50")]["best"] == "True"
    assert [by[k]["indistinguishable_from_best"] for k in (("50", "100"), ("200", "50"))] == [
        "True",
        "True",
    ]
    assert by[("200", "100")]["indistinguishable_from_best"] == "False"
    data = json.loads((report_files(replicated) / "results.json").read_text())
    assert data["verdict"]["best"] == "bins=50, sigma=50"
    assert data["verdict"]["sentence"].startswith(
        "bins=50, sigma=50 is best on colour W1 (hist_w1) (0.2); 2 other settings are "
        "indistinguishable from it (3 seeds, Welch's t-test, p > 0.05)"
    )
    record = next(s for s in data["settings"] if s["setting"] == "bins=200, sigma=100")
    assert record["indistinguishable_from_best"] is False and record["best"] is False
    w1 = record["metrics"]["hist_w1"]
    assert w1["n"] == 3 and w1["ci95"][0] < w1["mean"] < w1["ci95"][1] and w1["std"] > 0
    page = (report_files(replicated) / "index.html").read_text()
    assert data["verdict"]["sentence"] in html.unescape(page)


def test_replicate_curves_are_the_mean_and_band_of_the_seeds(
    replicated: Path, tmp_path: Path
) -> None:
    settings = group_settings(read_jobs(replicated))
    drawn = plot_curves(settings, METRICS["hist_w1"], tmp_path / "c.png")
    x, mean, low, high = drawn["hist_w1"]["bins=50, sigma=50"]["val"]
    assert list(x) == [96, 192]
    np.testing.assert_allclose(mean, [0.4, 0.2])  # seeds' w1 0.1, 0.2, 0.3 (twice at 96)
    np.testing.assert_allclose([low[-1], high[-1]], [0.1, 0.3])
    assert set(drawn["hist_tv"]["bins=50, sigma=50"]) == {"train", "val"}  # one axis, both


def test_more_than_two_keys_get_marginals_and_parallel_coordinates(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    for bins in (50, 200):
        for sigma in (50, 100):
            for lr in ("0.001", "0.0003"):
                w1 = 0.1 + (bins == 200) * 0.2 + (sigma == 100) * 0.05 + (lr == "0.001") * 0.01
                overrides = [f"loss.bins={bins}", f"loss.sigma={sigma}", f"optimizer.lr={lr}"]
                write_job(sweep_dir / f"{bins}-{sigma}-{lr}", overrides, w1=w1)
    write_report(sweep_dir)
    assert {"marginals.png", "parallel.png"} <= {p.name for p in report_files(sweep_dir).iterdir()}
    settings = group_settings(read_jobs(sweep_dir))
    values, mean, _ = marginal(settings, "loss.bins", METRICS["hist_w1"])
    assert values == ["50", "200"]
    np.testing.assert_allclose(mean, [0.1 + 0.025 + 0.005, 0.3 + 0.025 + 0.005])
    drawn = plot_parallel(
        settings,
        ["loss.bins", "loss.sigma", "optimizer.lr"],
        METRICS["hist_w1"],
        {},
        tmp_path / "p.png",
    )
    assert drawn["bins=50, sigma=50, lr=0.0003"] == pytest.approx([0.0, 0.0, 0.0, 0.1])


def test_sort_puts_settings_without_values_last(tmp_path: Path) -> None:
    sweep_dir = write_sweep(tmp_path / "s")
    write_job(
        sweep_dir / "bins-100_sigma-50",
        ["loss.bins=100", "loss.sigma=50", "trainer.seed=1"],
        "failed",
        error="ValueError: boom",
    )
    settings = sort_settings(group_settings(read_jobs(sweep_dir)), METRICS["hist_w1"])
    assert settings[-1].label == "bins=100, sigma=50"
    assert matrix(settings, "loss.bins", "loss.sigma", METRICS["hist_w1"]).n.sum() == 4


# ----------------------------------------------------------------------------------------------
# Files: results.json, job pages, the report only reads, replaced together


def test_results_json_has_one_record_per_job(sweep: Path) -> None:
    data = json.loads((report_files(sweep) / "results.json").read_text())
    assert data["lead_metric"] == "hist_w1" and len(data["jobs"]) == 4
    record = next(j for j in data["jobs"] if j["job"] == "bins-200_sigma-100")
    assert record["overrides"] == ["loss.bins=200", "loss.sigma=100", "trainer.seed=1"]
    assert record["folder"] == str(sweep / "bins-200_sigma-100")
    assert record["status"] == "done" and record["collapsed"] is False
    assert record["final"]["val"]["hist_w1"] == pytest.approx(0.35)


def test_the_report_writes_nothing_into_job_folders(tmp_path: Path) -> None:
    sweep_dir = write_sweep(tmp_path / "s")

    def listing() -> dict[str, float]:
        return {
            str(p): p.stat().st_mtime
            for job in sweep_dir.iterdir()
            if job.is_dir() and not job.name.startswith(".") and job.name != layout.REPORT
            for p in job.rglob("*")
        }

    before = listing()
    write_report(sweep_dir)
    assert listing() == before


def test_every_report_file_is_replaced_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep_dir = write_sweep(tmp_path / "s")
    first = write_report(sweep_dir)
    assert first == sweep_dir / "report" / "index.html" and (sweep_dir / "report").is_symlink()
    old = {p.name: p.read_bytes() for p in report_files(sweep_dir).iterdir() if p.is_file()}
    write_job(sweep_dir / "bins-100_sigma-50", ["loss.bins=100", "loss.sigma=50", "trainer.seed=1"])

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("histae.report.build.plot_raw_loss", broken)  # after curves.png
    with pytest.raises(RuntimeError):
        write_report(sweep_dir)
    now = {p.name: p.read_bytes() for p in report_files(sweep_dir).iterdir() if p.is_file()}
    assert now == old  # the whole old report, no new curves.png beside an old table
    assert [p.name for p in sweep_dir.glob(".report-*")] == [os.readlink(sweep_dir / "report")]
    monkeypatch.undo()
    write_report(sweep_dir)
    assert len(read_csv(report_files(sweep_dir) / "results.csv")) == 5
    assert len(list(sweep_dir.glob(".report-*"))) == 1


@pytest.mark.parametrize(
    ("file", "content", "why"),
    [
        ("status.json", b"[1, 2]", "status.json: not a JSON object but a list"),
        ("status.json", b'"done"', "status.json: not a JSON object but a str"),
        ("summary.json", b'{"config": ', "summary.json: not JSON"),
        ("metrics.csv", b"inputs,split,loss\n1,train," + b"9" * 200_000 + b"\n", "metrics.csv: "),
        ("samples.npz", b"", "samples.npz: not a samples archive"),
        ("status.json", b"absurd pid", "status.json: pid 100000000000000000000 is not a"),
    ],
)
def test_a_broken_file_makes_one_job_unreadable_and_the_report_whole(
    tmp_path: Path, file: str, content: bytes, why: str
) -> None:
    sweep_dir = write_sweep(tmp_path / "s")
    if content == b"absurd pid":  # written by this host, by a process no pid can name
        content = json.dumps({"status": "running", "host": socket.gethostname(), "pid": 10**20})
        content = content.encode()
    (sweep_dir / "bins-200_sigma-50" / file).write_bytes(content)
    write_report(sweep_dir)
    rows = {
        (r["loss.bins"], r["loss.sigma"]): r
        for r in read_csv(report_files(sweep_dir) / "results.csv")
    }
    assert len(rows) == 4
    broken = rows[("200", "50")]["status"]
    assert broken.startswith(f"unreadable: {why}"), broken
    assert all(r["status"] == "done" for k, r in rows.items() if k != ("200", "50"))
    page = (report_files(sweep_dir) / "index.html").read_text()
    assert page.count('<tr class="') + page.count("<tr>") >= 1 + 4


def test_a_summary_whose_config_is_not_a_config_still_reports(tmp_path: Path) -> None:
    sweep_dir = write_sweep(tmp_path / "s")
    odd = {"status": "done", "config": {"loss": "l1", "model": 3, "trainer": []}, "final": 7}
    JobDir(sweep_dir / "bins-50_sigma-50").write_summary(odd)
    write_report(sweep_dir)
    rows = read_csv(report_files(sweep_dir) / "results.csv")
    assert len(rows) == 4 and all(r["status"] == "done" for r in rows)
    assert (report_files(sweep_dir) / "jobs" / "bins-50_sigma-50.html").is_file()


def test_a_sweep_with_a_failed_job_reports_whole(tmp_path: Path) -> None:
    sweep_dir = write_sweep(tmp_path / "s")
    write_job(
        sweep_dir / "bins-400_sigma-50", ["loss.bins=400", "loss.sigma=50"], "failed", error="E: x"
    )
    write_report(sweep_dir)
    data = json.loads((report_files(sweep_dir) / "results.json").read_text())
    states = {j["job"]: j["status"] for j in data["jobs"]}
    assert states["bins-400_sigma-50"] == "failed" and len(states) == 5
    unranked = [s for s in data["settings"] if not s["ranked"]]
    assert [s["setting"] for s in unranked] == ["bins=400, sigma=50"]


def test_runs_csv_is_long_format_one_row_per_job_for_pandas(replicated: Path) -> None:
    pandas = pytest.importorskip("pandas")
    runs = pandas.read_csv(report_files(replicated) / "runs.csv")
    assert len(runs) == 12  # 4 settings x 3 seeds
    assert {"loss.bins", "loss.sigma", "trainer.seed", "hist_w1", "train_loss"} <= set(runs)
    one = runs[
        (runs["loss.bins"] == 200) & (runs["loss.sigma"] == 100) & (runs["trainer.seed"] == 3)
    ]
    assert len(one) == 1 and one["hist_w1"].item() == pytest.approx(0.55)
    assert set(runs.groupby(["loss.bins", "loss.sigma"]).size()) == {3}
    pytest.importorskip("pyarrow")
    parquet = pandas.read_parquet(report_files(replicated) / "runs.parquet")
    assert len(parquet) == 12 and list(parquet.columns) == list(runs.columns)


def test_the_sweep_folders_index_is_the_report_page_without_a_redirect(sweep: Path) -> None:
    top = (sweep / "index.html").read_text()
    assert 'http-equiv="refresh"' not in top and '<base href="report/">' in top
    assert (
        top.replace('<base href="report/">\n', "")
        == (report_files(sweep) / "index.html").read_text()
    )


def test_a_job_page_shows_its_final_metrics_beside_the_sweeps_best(replicated: Path) -> None:
    page = (report_files(replicated) / "jobs" / "bins-200_sigma-100_seed-3.html").read_text()
    final = page.split("<h2>Final metrics</h2>")[1].split("</table>")[0]
    row = next(r for r in final.split("<tr>") if "colour W1" in r)
    # This job's hist_w1 (0.55) and the best setting's mean (0.2, bins=50, sigma=50).
    assert ">0.55<" in row and "0.2 (bins=50, sigma=50)" in row


def test_each_job_gets_a_page_reached_from_the_sweep_page(sweep: Path) -> None:
    page = (report_files(sweep) / "index.html").read_text()
    links = re.findall(r'href="(jobs/[^"]+\.html)"', page)
    assert len(set(links)) == 4
    for link in set(links):
        job_page = (report_files(sweep) / link).read_text()
        assert "l1, bins " in job_page and "<h2>Config</h2>" in job_page
        for src in re.findall(r'src="([^"]+)"', job_page):
            assert (report_files(sweep) / "jobs" / src).resolve().is_file(), src


def test_a_single_run_gets_the_same_page(tmp_path: Path) -> None:
    run = write_job(tmp_path / "outputs" / "runs" / "2024-01-01_00-00-00", ["loss.bins=50"])
    path = write_job_page(run)
    assert path == run / "index.html"
    assert "<h1>l1, bins 50, sigma 100, 192 inputs, seed 1</h1>" in path.read_text()
    index = (tmp_path / "outputs" / "index.html").read_text()
    assert "runs/2024-01-01_00-00-00/index.html" in index


def test_outputs_index_has_thumbnails_and_status_and_no_losses(tmp_path: Path, sweep: Path) -> None:
    write_sweep(tmp_path / "sweeps" / "2024-01-02_00-00-00")
    write_report(tmp_path / "sweeps" / "2024-01-02_00-00-00")
    write_job(tmp_path / "runs" / "2024-01-03_00-00-00", ["loss=l1"])
    write_job(tmp_path / "runs" / "2024-01-01_00-00-00", ["loss=mse"], "failed", error="E: x")
    page = write_outputs_index(tmp_path).read_text()
    rows = page.split("<tbody>")[1].split("</tbody>")[0].strip().splitlines()
    assert len(rows) == 3
    assert "runs/2024-01-03_00-00-00" in rows[0] and "pixel L1" in rows[0]
    assert "sweeps/2024-01-02_00-00-00/report/reconstructions.png" in rows[1]
    assert ">4 done<" in rows[1] and "failed: E: x" in rows[2]
    assert "val loss" not in page
    # The data option as the user typed it, not the function behind it.
    assert "data=procedural" in rows[1] and "procedural_tiles" not in page


def test_sweeps_page_lists_exactly_the_report_files() -> None:
    # The table is generated from layout.REPORT_FILES (python -m histae.docs --check in test_docs).
    page = (Path(__file__).parents[1] / "docs" / "sweeps.md").read_text()
    section = page.split("<!-- BEGIN generated:report-files -->", 1)[1].split("<!-- END", 1)[0]
    listed = re.findall(r"^\| `([^`]+)` \|", section, flags=re.M)
    assert listed == list(layout.REPORT_FILES)


# ----------------------------------------------------------------------------------------------
# The command line


def test_cli_writes_reports_pages_and_indexes(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sweep_dir = write_sweep(tmp_path / "sweeps" / "s")
    run = write_job(tmp_path / "runs" / "r", ["loss.bins=50"])
    assert main([str(sweep_dir), str(run), str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        str(sweep_dir / "report" / "index.html"),
        str(run / "index.html"),
        str(tmp_path / "index.html"),
    ]


def test_cli_bad_folder_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main([str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
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
    assert done.returncode == 1 and "is not a sweep folder" in done.stderr


# ----------------------------------------------------------------------------------------------
# Real sweeps, in-process


@pytest.mark.slow
def test_real_2x2_sweep_report(real_sweep: Path) -> None:
    rows = read_csv(real_sweep / "report" / "results.csv")  # the sweeper wrote it
    assert len(rows) == 4 and list(rows[0])[:2] == ["loss", "optimizer.lr"]
    w1 = [float(r["hist_w1"]) for r in rows]
    assert w1 == sorted(w1)
    for row in rows:
        job = f"loss-{row['loss']}_lr-{row['optimizer.lr']}"
        val = [r for r in read_metrics(real_sweep / job / "metrics.csv") if r["split"] == "val"]
        assert float(row["hist_w1"]) == pytest.approx(val[-1]["hist_w1"], rel=1e-5)
        assert row["status"] == "done" and row["inputs"] == "192"
    assert math.isfinite(float(rows[0]["psnr"]))


@pytest.mark.slow
def test_real_sweep_over_seeds_reports_replicates(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    code = run_histae(
        "-m", f"hydra.sweep.dir={sweep_dir}", *TINY, "loss.bins=50,200", "trainer.seed=1,2"
    )
    assert code == 0
    rows = read_csv(sweep_dir / "report" / "results.csv")
    assert [
        (r["loss.bins"], r["seeds"]) for r in sorted(rows, key=lambda r: int(r["loss.bins"]))
    ] == [
        ("50", "2"),
        ("200", "2"),
    ]
    data = json.loads((sweep_dir / "report" / "results.json").read_text())
    assert sorted(j["seed"] for j in data["jobs"]) == ["1", "1", "2", "2"]


def test_marginals_of_named_options_draw_no_trend_line(monkeypatch, tmp_path: Path) -> None:
    import histae.report.comparisons as comparisons
    from histae.report.settings import Setting

    figures = []
    monkeypatch.setattr(comparisons, "save_figure", lambda fig, path: figures.append(fig))
    arms = [Setting({"arm": a}, a, []) for a in ("pooled", "joint", "sliced_w", "rgbuv")]
    bins = [Setting({"bins": b}, b, []) for b in ("50", "100", "200")]
    for settings, key, line in ((arms, "arm", "None"), (bins, "bins", "-")):
        comparisons.plot_marginals(settings, [key], METRICS["psnr"], {}, tmp_path / "m.png")
        ax = figures[-1].axes[0]
        # Named options have no order: markers only, labels turned to stay readable.
        assert ax.get_lines()[0].get_linestyle() == line
        assert {t.get_text() for t in ax.get_xticklabels()} == {s.label for s in settings}
        assert (ax.get_xticklabels()[0].get_rotation() > 0) == (line == "None")


def test_setting_colours_are_distinct_and_never_grey() -> None:
    from histae.report.settings import colors

    # Grey is the train-average and band colour of every plot: no setting may wear it.
    for n in (1, 8, 9, 10, 18, 19, 30):
        chosen = colors(n)
        assert len(chosen) == len(set(chosen)) == n
        assert not any(c[1:3] == c[3:5] == c[5:7] for c in chosen), (n, chosen)
