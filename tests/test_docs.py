"""python -m histae.docs: the generated parts of README and docs/ are current, and go stale (and
--check says which file) when conf/ or a saved run changes without regeneration; every picture
has a record of what made it, and the README's pictures' job still produces what it recorded."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from histae import docs
from histae.atomic import FAULT_ENV
from histae.jobdir import read_metrics
from tests.helpers import ROOT, histae


def test_check_passes_on_the_tree(capsys: pytest.CaptureFixture) -> None:
    assert docs.main(["--check"]) == 0, capsys.readouterr().err


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of what the generator reads and writes."""
    for name in ("conf", "docs"):
        shutil.copytree(ROOT / name, tmp_path / name)
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    assert docs.main(["--check", "--root", str(tmp_path)]) == 0
    return tmp_path


def check(root: Path, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    rc = docs.main(["--check", "--root", str(root)])
    return rc, capsys.readouterr().err


def test_a_changed_conf_comment_makes_check_fail_until_regenerated(
    tree: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tree / "conf" / "trainer" / "default.yaml"
    before = (tree / "docs" / "configuration.md").read_text()
    text = path.read_text()
    assert "# images per step" in text
    path.write_text(text.replace("# images per step", "# images per optimiser step"))
    rc, err = check(tree, capsys)
    assert rc == 1 and "docs/configuration.md" in err and "README.md" not in err
    assert (tree / "docs" / "configuration.md").read_text() == before  # --check writes nothing
    assert docs.main(["--root", str(tree)]) == 0
    assert "| `batch_size` | `64` | images per optimiser step |" in (
        (tree / "docs" / "configuration.md").read_text()
    )
    assert check(tree, capsys)[0] == 0


def test_a_changed_default_and_a_new_group_appear_on_regeneration(
    tree: Path, capsys: pytest.CaptureFixture
) -> None:
    (tree / "conf" / "widget").mkdir()
    (tree / "conf" / "widget" / "knob.yaml").write_text(
        "# A knob.\n_target_: x.Knob\nturns: 3  # how far\nparts:\n  inner:\n    size: 2  # mm\n"
    )
    assert check(tree, capsys)[0] == 1
    docs.main(["--root", str(tree)])
    page = (tree / "docs" / "configuration.md").read_text()
    assert "| `widget` | `knob` | `+widget=<option>` |" in page
    assert "#### `widget=knob`" in page
    assert "| `turns` | `3` | how far |" in page and "| `parts.inner.size` | `2` | mm |" in page


def edit_csv(path: Path, column: str, value: str) -> list[dict[str, str]]:
    """Set ``column`` of the first row of a saved CSV to ``value``; the rows as written."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    rows[0][column] = value
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def test_a_changed_saved_csv_makes_check_fail(tree: Path, capsys: pytest.CaptureFixture) -> None:
    edit_csv(tree / "docs" / "colour_losses.csv", "psnr", "99.0")
    rc, err = check(tree, capsys)
    assert rc == 1 and "docs/experiment.md" in err
    docs.main(["--root", str(tree)])
    assert "| 99.0 ± " in (tree / "docs" / "experiment.md").read_text()


def test_findings_rows_are_the_csvs_rows() -> None:
    with open(ROOT / "docs" / "colour_losses.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    table = docs.findings_table(ROOT / "docs" / "colour_losses.csv").splitlines()
    assert (
        len(table) == 2 + len(rows) == 2 + len(list((ROOT / "conf" / "colour_arm").glob("*.yaml")))
    )
    assert table[2].startswith(f"| `{rows[0]['colour_arm']}` | ")
    assert f"{float(rows[0]['retrieval_rank_joint']):.1f} ± " in table[2]


def test_an_unknown_part_is_refused_naming_the_file(
    tree: Path, capsys: pytest.CaptureFixture
) -> None:
    page = tree / "docs" / "data.md"
    page.write_text(
        page.read_text() + "\n<!-- BEGIN generated:nope -->\n<!-- END generated:nope -->\n"
    )
    rc, err = check(tree, capsys)
    assert rc == 1 and "docs/data.md" in err and "'nope'" in err


def test_yaml_rows_keep_comments_nesting_lists_and_quotes() -> None:
    head, rows = docs.yaml_rows(
        "# @package _global_\n# What it is.\n# More.\ndefaults:\n  - /schema/x@_here_\n"
        "  - override /data: rpg  # real tiles\n  - _self_\n"
        'a: 1  # one\nb: "x # y"  # quoted hash\nc:\n  d: [1, 2]  # a list\n'
        "  e: 2  # first line\n       # second line\n"
        "src:\n  - path: p  # a file\n    size: 4\n  - path: q\n"
    )
    assert head == "What it is. More."
    assert rows == [
        ("defaults[0]", "/schema/x@_here_", ""),
        ("defaults[1]", "override /data: rpg", "real tiles"),
        ("defaults[2]", "_self_", ""),
        ("a", "1", "one"),
        ("b", '"x # y"', "quoted hash"),
        ("c.d", "[1, 2]", "a list"),
        ("c.e", "2", "first line second line"),
        ("src[0].path", "p", "a file"),
        ("src[0].size", "4", ""),
        ("src[1].path", "q", ""),
    ]


# ----------------------------------------------------------------------------------------------
# Pictures: each has a record of what made it, and the hero pictures' job still runs the same


def linked_pictures() -> set[str]:
    """Every picture under docs/ that README or a docs page shows or links."""
    found = set()
    for page in docs.doc_files(ROOT):
        for target in re.findall(r"\]\(([^)\s]+\.png)\)", page.read_text()):
            path = (page.parent / target).resolve()
            if path.parent == (ROOT / "docs").resolve():
                found.add(path.name)
    return found


def test_every_picture_shown_has_its_command_commit_and_date() -> None:
    figures = json.loads((ROOT / "docs" / "figures.json").read_text())
    shown = linked_pictures()
    on_disk = {p.name for p in (ROOT / "docs").glob("*.png")}
    assert shown == set(figures["pictures"]) == on_disk, (shown, set(figures["pictures"]), on_disk)
    for name, record in figures["pictures"].items():
        record = figures["jobs"][record["job"]] if "job" in record else record
        assert record["command"].startswith("python "), name
        assert re.fullmatch(r"[0-9a-f]{7,40}(-dirty)?", record["commit"]), name
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", record["date"]), name


def test_the_hero_caption_says_which_command_and_commit_made_it() -> None:
    job = json.loads((ROOT / "docs" / "figures.json").read_text())["jobs"]["default-job"]
    readme = (ROOT / "README.md").read_text()
    caption = readme.split("<!-- BEGIN generated:hero-caption -->", 1)[1].split("<!-- END", 1)[0]
    assert f"`{job['command']}` at commit `{job['commit'][:10]}`" in caption
    assert f"PSNR {job['final_val']['psnr']:.2f} dB" in caption
    # The picture is the recorded job's: same size as a job's grid (32 tiles, 8 per row, 4x).
    with Image.open(ROOT / "docs" / "reconstructions.png") as img:
        assert img.size[0] > 8 * 32 * 4 and img.size[1] > 8 * 32 * 4


@pytest.mark.slow
def test_the_hero_job_still_produces_its_recorded_first_steps(tmp_path: Path) -> None:
    """The default job at the recorded thread count, stopped after its first recorded train
    rows (the fault hook's TERM at the next write of metrics.csv), logs the recorded losses."""
    job = json.loads((ROOT / "docs" / "figures.json").read_text())["jobs"]["default-job"]
    rows = job["train_rows"]
    run_dir = tmp_path / "hero"
    proc = histae(
        f"hydra.run.dir={run_dir}",
        f"trainer.threads={job['threads']}",
        env={FAULT_ENV: f"metrics.csv:TERM:{len(rows) + 1}"},  # rows 1..n are written
    )
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 143, err
    got = [r for r in read_metrics(run_dir / "metrics.csv") if r["split"] == "train"]
    assert [r["inputs"] for r in got[: len(rows)]] == [r["inputs"] for r in rows]
    for new, old in zip(got, rows, strict=False):
        # metrics.csv keeps 6 significant digits; a change in the code moves the loss far more.
        assert new["loss"] == pytest.approx(old["loss"], rel=2e-5), (
            "docs/figures.json's default job no longer matches what the code produces: rerun "
            "`python -m histae` and `python docs/make_figures.py default-job <its folder>`"
        )


def test_the_search_example_follows_its_saved_files(tree: Path, capsys) -> None:
    keys = docs.search_example(tree).count("\n| `")  # one row per searched key
    # the leading key no longer told from no effect
    rows = edit_csv(tree / "docs" / "colour_search" / "importance.csv", "p", "0.5")
    assert keys == len(rows)
    rc, err = check(tree, capsys)
    assert rc == 1 and "docs/sweeps.md" in err
    docs.main(["--root", str(tree)])
    assert f"| `{rows[0]['key']}` | " in (tree / "docs" / "sweeps.md").read_text()
    assert "| 0.5 | no |" in (tree / "docs" / "sweeps.md").read_text()


def test_the_matrix_is_judged_by_the_reports_rule(tmp_path: Path) -> None:
    columns = ["job", "loss.bins", "loss.sigma", "trainer.seed", "status", "collapsed", "wall_time"]
    columns += list(docs.MATRIX_METRICS)
    # (bins, sigma): hist_w1 per seed; 50/50 best, 100/50 the same within noise, 200/50 worse,
    # 50/100 better still but one seed collapsed (never best), 100/100 one seed unfinished.
    values = {
        (50, 50): [0.10, 0.11, 0.12],
        (100, 50): [0.10, 0.12, 0.13],
        (200, 50): [0.30, 0.31, 0.32],
        (50, 100): [0.01, 0.02, 0.03],
        (100, 100): [0.05, 0.05, 0.05],
    }
    path = tmp_path / "runs.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for (bins, sigma), w1 in values.items():
            for seed, value in enumerate(w1, 1):
                row = {k: "1.0" for k in docs.MATRIX_METRICS} | {"hist_w1": str(value)}
                row |= {"job": f"b{bins}s{sigma}s{seed}", "loss.bins": bins, "loss.sigma": sigma}
                row |= {"trainer.seed": seed, "wall_time": "10", "status": "done"}
                row["collapsed"] = str((bins, sigma, seed) == (50, 100, 2))
                if (bins, sigma, seed) == (100, 100, 3):
                    row["status"] = "stopped"
                writer.writerow(row)
    settings, summary = docs.matrix_judgement(path)
    by = {(s["bins"], s["sigma"]): s for s in settings}
    assert summary["hist_w1"]["best"] is by[(50, 50)]
    assert by[(100, 50)]["hist_w1_tie"] is True and by[(200, 50)]["hist_w1_tie"] is False
    assert by[(50, 100)]["collapsed"] == 1 and not by[(100, 100)]["ranked"]
    assert by[(100, 100)]["hist_w1_p"] is None  # unfinished: not judged
    assert summary["hist_w1"]["distinguishable"] >= 1
    assert by[(50, 50)]["wall_time"] == 30.0
