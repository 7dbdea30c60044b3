"""How sure the report is: intervals over seeds, Welch's rule for "best", never a starred noise,
figures whose colours and axes read right, and the rule at work on real tiny sweeps."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from histae.report import write_report
from histae.report.comparisons import (
    colour_span,
    contrast,
    ink_for,
    marginal,
    marginal_span,
    matrix,
    plot_heatmaps,
    plot_marginals,
)
from histae.report.measures import METRICS
from histae.report.reading import read_jobs
from histae.report.settings import Stat, group_settings
from histae.report.verdict import judge, welch_p
from tests.helpers import TINY, run_histae, write_job

W1 = METRICS["hist_w1"]


def results(sweep_dir: Path) -> tuple[dict, list[dict[str, str]]]:
    report = sweep_dir / "report"
    with open(report / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return json.loads((report / "results.json").read_text()), rows


def sweep_of(tmp_path: Path, values: dict[str, list[float]], collapsed: set[str] = ()) -> Path:
    """A sweep over ``loss.sigma`` (one setting per key of ``values``), a job per seed value."""
    sweep_dir = tmp_path / "s"
    for sigma, w1s in values.items():
        for seed, w1 in enumerate(w1s, start=1):
            overrides = [f"loss.sigma={sigma}", f"trainer.seed={seed}"]
            write_job(
                sweep_dir / f"sigma-{sigma}_seed-{seed}",
                overrides,
                w1=w1,
                collapsed=sigma in collapsed,
            )
    return sweep_dir


def settings_of(sweep_dir: Path):
    from histae.report.settings import sort_settings

    return sort_settings(group_settings(read_jobs(sweep_dir)), W1)


# ----------------------------------------------------------------------------------------------
# The statistics


def test_welch_p_is_scipys_and_handles_no_spread() -> None:
    a, b = [0.1, 0.25, 0.3], [0.35, 0.4, 0.52, 0.47]
    p = welch_p(Stat.of(a), Stat.of(b))
    assert p == pytest.approx(scipy.stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9)
    same = Stat.of([0.2, 0.2])
    assert welch_p(same, Stat.of([0.2, 0.2])) == 1.0
    assert welch_p(same, Stat.of([0.3, 0.3])) == 0.0
    assert welch_p(Stat.of([0.2]), Stat.of([0.3, 0.4])) is None  # one seed: no judgement


def test_one_seed_has_no_std_and_no_interval() -> None:
    one = Stat.of([0.25])
    assert one.std is None and one.ci95 is None and one.n == 1
    three = Stat.of([0.1, 0.2, 0.3])
    low, high = scipy.stats.t.interval(0.95, 2, loc=0.2, scale=scipy.stats.sem([0.1, 0.2, 0.3]))
    assert three.ci95 == pytest.approx((low, high))


def test_identical_settings_are_indistinguishable_and_nothing_is_starred(tmp_path: Path) -> None:
    sweep_dir = sweep_of(tmp_path, {"50": [0.2, 0.3, 0.4], "100": [0.2, 0.3, 0.4]})
    verdict = judge(settings_of(sweep_dir), W1)
    assert verdict.best is None and verdict.leader is not None
    assert verdict.sentence.startswith("No setting is distinguishable from another")
    write_report(sweep_dir)
    data, rows = results(sweep_dir)
    assert [r["best"] for r in rows] == ["False", "False"]
    assert [s["indistinguishable_from_best"] for s in data["settings"]] == [True, True]


def test_a_collapsed_setting_is_never_best_even_with_the_best_mean(tmp_path: Path) -> None:
    sweep_dir = sweep_of(
        tmp_path,
        {"50": [0.1, 0.11, 0.12], "100": [0.3, 0.31, 0.32], "200": [0.6, 0.61, 0.6]},
        collapsed={"50"},
    )
    verdict = judge(settings_of(sweep_dir), W1)
    assert verdict.best is not None and verdict.best.label == "sigma=100"
    assert "collapsed jobs and are never best" in verdict.sentence
    write_report(sweep_dir)
    data, rows = results(sweep_dir)
    assert data["verdict"]["best"] == "sigma=100"
    assert [r["loss.sigma"] for r in rows if r["best"] == "True"] == ["100"]


def test_failed_or_unfinished_jobs_leave_their_setting_unranked(tmp_path: Path) -> None:
    sweep_dir = sweep_of(tmp_path, {"50": [0.2, 0.21], "100": [0.4, 0.41]})
    write_job(sweep_dir / "sigma-25_seed-1", ["loss.sigma=25", "trainer.seed=1"], w1=0.01)
    write_job(sweep_dir / "sigma-25_seed-2", ["loss.sigma=25", "trainer.seed=2"], status="stopped")
    verdict = judge(settings_of(sweep_dir), W1)
    assert [s.label for s in verdict.unranked] == ["sigma=25"]
    assert verdict.best is not None and verdict.best.label == "sigma=50"
    write_report(sweep_dir)
    _, rows = results(sweep_dir)
    assert [r["loss.sigma"] for r in rows] == ["50", "100", "25"]  # unranked last
    assert rows[-1]["ranked"] == "False" and rows[-1]["indistinguishable_from_best"] == ""


# ----------------------------------------------------------------------------------------------
# Figures that read right


def test_every_heatmap_cell_text_meets_contrast_4_5_and_ties_are_not_boxed(
    tmp_path: Path,
) -> None:
    values = {"25": [0.1, 0.2, 0.3], "50": [0.2, 0.3, 0.4], "100": [0.5, 0.6, 0.7]}
    sweep_dir = tmp_path / "s"
    for bins in ("50", "200"):
        for sigma, w1s in values.items():
            for seed, w1 in enumerate(w1s, start=1):
                shift = 0.3 if bins == "200" else 0.0
                overrides = [f"loss.bins={bins}", f"loss.sigma={sigma}", f"trainer.seed={seed}"]
                write_job(sweep_dir / f"{bins}-{sigma}-{seed}", overrides, w1=w1 + shift)
    settings = settings_of(sweep_dir)
    metrics = [W1, METRICS["psnr"]]
    verdicts = {m.key: judge(settings, m) for m in metrics}
    drawn = plot_heatmaps(
        settings, ("loss.bins", "loss.sigma"), metrics, {}, tmp_path / "h.png", verdicts=verdicts
    )
    cells = 0
    for m in drawn.values():
        for cell, face in m.face.items():
            if np.isfinite(m.mean[cell]):
                assert contrast(face, m.ink[cell]) >= 4.5, (cell, face, m.ink[cell])
                cells += 1
    assert cells == 6 * 3  # two metrics and the raw loss, 2 x 3 cells each
    boxes = drawn["hist_w1"].boxes
    assert list(boxes.values()).count("best") == 1 and boxes[(0, 0)] == "best"
    assert "tie" in boxes.values() and len(boxes) < 6
    assert drawn["loss"].boxes == {}  # the raw loss is never ranked
    # Every setting ties: nothing is boxed at all.
    same = settings_of(sweep_of(tmp_path / "flat", {"50": [0.2, 0.3], "100": [0.2, 0.3]}))
    tied = plot_heatmaps(
        same,
        ("loss.sigma", "loss.bins"),
        [W1],
        {},
        tmp_path / "flat.png",
        verdicts={"hist_w1": judge(same, W1)},
    )
    assert all(m.boxes == {} for m in tied.values())


def test_ink_is_the_better_of_black_and_white_on_any_colour() -> None:
    for face in [(0.267, 0.005, 0.329), (0.993, 0.906, 0.144), (0.128, 0.567, 0.551), (0.5,) * 3]:
        assert contrast(face, ink_for(face)) >= 4.5


def test_colour_span_is_at_least_two_seed_stds_so_noise_stays_one_colour(tmp_path: Path) -> None:
    # Means 0.300 and 0.301 with a seed std of 0.1: the span must cover ± 0.2, not 0.001.
    sweep_dir = sweep_of(tmp_path, {"50": [0.2, 0.3, 0.4], "100": [0.201, 0.301, 0.401]})
    low, high = colour_span(matrix(settings_of(sweep_dir), "loss.sigma", "loss.bins", W1))
    assert high - low == pytest.approx(4 * 0.1, rel=1e-6)
    # One seed per cell: ± 5% of the middle instead of the tiny range.
    one = sweep_of(tmp_path / "one", {"50": [0.3], "100": [0.301]})
    low, high = colour_span(matrix(settings_of(one), "loss.sigma", "loss.bins", W1))
    assert high - low == pytest.approx(0.1 * 0.3005, rel=1e-6)


def test_marginals_show_intervals_on_an_honest_axis(tmp_path: Path) -> None:
    sweep_dir = sweep_of(tmp_path, {"50": [7.658, 7.66, 7.659], "100": [7.672, 7.671, 7.673]})
    settings = settings_of(sweep_dir)
    values, mean, half = marginal(settings, "loss.sigma", W1)
    assert values == ["50", "100"] and np.all(half > 0)
    assert half[0] == pytest.approx(
        scipy.stats.t.ppf(0.975, 2) * scipy.stats.sem([7.658, 7.66, 7.659])
    )
    drawn = plot_marginals(settings, ["loss.sigma"], W1, {}, tmp_path / "m.png")
    assert list(drawn) == ["loss.sigma"]
    # The axis spans at least ± 5% of the middle: a 0.014 gap is a sliver, not a cliff.
    low, high = marginal_span(mean - half, mean + half)
    assert high - low >= 0.1 * 7.66 and low < mean.min() and high > mean.max()


# ----------------------------------------------------------------------------------------------
# Real tiny sweeps


def real_sweep(sweep_dir: Path, *overrides: str) -> tuple[dict, list[dict[str, str]]]:
    """``python -m histae -m +experiment=smoke OVERRIDES`` into ``sweep_dir`` (it must exit 0);
    its results.json and results.csv rows."""
    assert run_histae("-m", *TINY, *overrides, f"hydra.sweep.dir={sweep_dir}") == 0
    return results(sweep_dir)


@pytest.mark.slow  # a real sweep of 2 jobs and its report
def test_real_one_seed_sweep_has_no_zero_std_and_stars_nothing(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "one"
    data, rows = real_sweep(sweep_dir, "loss=l1", "optimizer.lr=0.003,1e-7")
    assert len(rows) == 2 and {r["seeds"] for r in rows} == {"1"}
    assert {r["hist_w1_std"] for r in rows} == {""} and {r["best"] for r in rows} == {"False"}
    assert "trainer.seed=1,2,3" in data["verdict"]["sentence"]


@pytest.mark.slow  # a real sweep of 2 jobs and its report
def test_real_all_collapsed_sweep_stars_nothing_and_leads_with_the_collapse(
    tmp_path: Path,
) -> None:
    # Outputs start near 0; a histogram range of [4, 5] leaves every one of them outside it.
    sweep_dir = tmp_path / "collapsed"
    data, rows = real_sweep(sweep_dir, "loss.min=4", "loss.max=5", "loss.sigma=50,100")
    assert {r["best"] for r in rows} == {"False"} and {r["collapsed"] for r in rows} == {"1"}
    assert data["verdict"]["best"] is None and data["verdict"]["leader"] is None
    assert data["verdict"]["warnings"][0].startswith("2 of 2 jobs collapsed")
    page = (sweep_dir / "report" / "index.html").read_text()
    assert page.index('class="warning"') < page.index('class="verdict"') < page.index("<table")


@pytest.mark.slow
def test_real_sweep_over_a_key_that_cannot_change_training_is_indistinguishable(
    tmp_path: Path,
) -> None:
    sweep_dir = tmp_path / "same"
    data, rows = real_sweep(
        sweep_dir, "loss=l1", "trainer.log_every_inputs=32,64", "trainer.seed=1,2,3"
    )
    assert len(rows) == 2 and {r["seeds"] for r in rows} == {"3"}
    assert {r["best"] for r in rows} == {"False"}
    assert [s["indistinguishable_from_best"] for s in data["settings"]] == [True, True]
    assert data["verdict"]["sentence"].startswith("No setting is distinguishable")


@pytest.mark.slow
def test_real_sweep_with_a_clearly_worse_setting_stars_a_distinguishable_best(
    tmp_path: Path,
) -> None:
    # A trained l1 network against one whose learning rate leaves it untrained.
    sweep_dir = tmp_path / "worse"
    data, _ = real_sweep(
        sweep_dir,
        "loss=l1",
        "optimizer.lr=0.003,1e-7",
        "trainer.seed=1,2,3",
        "trainer.max_inputs=640",
        "trainer.val_every_inputs=320",
    )
    assert data["verdict"]["best"] == "lr=0.003"
    best, worse = data["settings"]
    assert best["best"] is True and worse["indistinguishable_from_best"] is False
    assert worse["p_vs_best"] < 0.05
    lo, hi = best["metrics"]["hist_w1"]["ci95"]
    assert lo < best["metrics"]["hist_w1"]["mean"] < hi
    assert "every other setting differs from it" in data["verdict"]["sentence"]
