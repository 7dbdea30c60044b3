"""README's commands stay true: CI runs the test command word for word, and the main command
sets up what CI sets up."""

from __future__ import annotations

import csv
import re

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from tests.helpers import CONF, ROOT


def bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci_lines = [
        ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln.startswith("apt-get")
    ]
    assert len(ci_lines) == 1
    assert ci_lines[0] in bash_blocks(readme)
    assert ci_lines[0].endswith("pytest")


def test_readme_main_command_sets_up_as_ci_does_and_runs_the_default_job() -> None:
    blocks = bash_blocks((ROOT / "README.md").read_text())
    (main,) = [b for b in blocks if b.endswith("python -m histae")]
    steps = main.split(" && ")
    ci_line = next(ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if "venv" in ln)
    ci_steps = ci_line.split(" && ")
    # The same virtual environment and the same torch pin as the tested command ...
    venv = ci_steps.index(steps[0])
    assert steps[:2] == ci_steps[venv : venv + 2]
    pins = [re.findall(r"torch==\S+", text) for text in (steps[2], ci_steps[venv + 2])]
    assert pins[0] == pins[1] and len(pins[0]) == 1
    # ... installing this project (CI adds extras it declares) ...
    assert steps[2].endswith(" -e .")
    extras = re.search(r'-e "\.\[([^\]]*)\]"', ci_line).group(1).split(",")
    # (tomllib is Python 3.11+; the project supports 3.10)
    section = (ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]")[1]
    declared = re.findall(r"^([\w-]+) = \[", section.split("\n[", 1)[0], flags=re.M)
    assert extras and set(extras) <= set(declared), (extras, declared)
    # ... then the default job: the package's entry point, no overrides.
    assert steps[3:] == ["python -m histae"] and (ROOT / "histae" / "__main__.py").is_file()


def test_readme_pictures_exist_and_are_pngs() -> None:
    readme = (ROOT / "README.md").read_text()
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert len(pictures) >= 5
    for picture in pictures:
        assert (ROOT / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", picture


def yaml_value(cell: str):
    """A README cell or parenthesis (``48000``, `` `auto` ``, ``0.0001``) as the YAML value."""
    return yaml.safe_load(cell.strip().strip("`;"))


def test_every_default_readme_states_is_the_configs() -> None:
    readme = (ROOT / "README.md").read_text()
    cfg = OmegaConf.to_container(compose_default(), resolve=True)
    tables = re.findall(r"^\| key \| default \| meaning \|\n((?:\|.*\n)+)", readme, flags=re.M)
    rows = re.findall(r"^\| `(\w+)\.(\w+)` \| ([^|]+) \|", "".join(tables), flags=re.M)
    checked = 0
    for group, key, cell in rows:
        if group in cfg and group != "hydra":
            assert key in cfg[group], f"README names {group}.{key}, which the config lacks"
            assert yaml_value(cell) == cfg[group][key], f"README: {group}.{key} = {cell.strip()}"
            checked += 1
    assert checked == 20  # the trainer (14) and loss (6) tables
    # The colour-loss table: "`key` (value" against that option's YAML.
    for option, keys in re.findall(r"^\| `(\w+)` \| \*\*.*\| (.+) \|$", readme, flags=re.M):
        node = OmegaConf.load(CONF / "loss" / f"{option}.yaml")
        for key, value in re.findall(r"`(\w+)` \((`[^`]+`|-?[\d.]+)(?=[):;,\s])", keys):
            if key in node:
                assert yaml_value(value) == node[key], f"README: loss={option} {key} ({value})"
                checked += 1
    assert checked == 20 + 8  # and 8 values in the colour-loss table


def test_readme_group_table_lists_every_option_and_the_default() -> None:
    readme = (ROOT / "README.md").read_text()
    defaults = {
        group: name
        for entry in OmegaConf.load(CONF / "config.yaml").defaults
        if isinstance(entry, DictConfig)
        for group, name in entry.items()
    }
    rows = re.findall(r"^\| `(\w+)` \| ((?:`\w+`[^|]*)) \| [^|]+ \|$", readme, flags=re.M)
    groups = {p.name for p in CONF.iterdir() if p.is_dir()}
    listed = {group: cell for group, cell in rows if group in groups}
    assert set(listed) == groups
    for group, cell in listed.items():
        assert set(re.findall(r"`([\w.]+)`", cell)) == {
            p.stem for p in (CONF / group).glob("*.yaml")
        }
        marked = re.findall(r"`([\w.]+)` \(default\)", cell)
        assert marked == ([defaults[group]] if group in defaults and len(marked) else marked)
        if group in defaults and group not in ("trainer", "model"):
            assert marked == [defaults[group]], f"README: {group}'s default"


def compose_default() -> DictConfig:
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(CONF), version_base="1.3"):
            return compose("config")
    finally:
        GlobalHydra.instance().clear()


def test_readme_python_blocks_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert blocks
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)
        if "loss" in namespace:
            assert namespace["loss"].bins == 50


def _pm(row: dict, key: str, digits: int) -> str:
    return f"{float(row[key]):.{digits}f} ± {float(row[key + '_std']):.{digits}f}"


def label(row: dict) -> str:
    """A results row's arm: ``colour_arm`` of colour_losses, the pixel weight of the follow-up."""
    if "colour_arm" in row:
        return f"`{row['colour_arm']}`"
    return f"`composite`, l1 weight {row['loss.terms.l1.weight']}"


def findings_rows(rows: list[dict]) -> list[str]:
    """README's findings table, from the report's results.csv of the run it describes."""
    return [
        f"| {label(r)} | {_pm(r, 'retrieval_rank_joint', 1)} | "
        f"{_pm(r, 'retrieval_top1_joint', 3)} | {_pm(r, 'spread_ratio', 2)} | "
        f"{_pm(r, 'hist_w1', 3)} | {_pm(r, 'psnr', 1)} | {float(r['images_per_second']):.0f} |"
        for r in rows
    ]


def test_readme_findings_table_is_the_runs_results() -> None:
    # docs/colour_losses.csv is the report's results.csv of the run README describes.
    with open(ROOT / "docs" / "colour_losses.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(list((CONF / "colour_arm").glob("*.yaml")))
    with open(ROOT / "docs" / "composite_weights.csv") as f:
        weights = list(csv.DictReader(f))
    assert len(weights) == 2
    readme = (ROOT / "README.md").read_text()
    for line in findings_rows(rows) + findings_rows(weights):
        assert line in readme, line


def test_readme_500k_figures_are_the_runs() -> None:
    # docs/reference_500k.csv: the validation rows of the 500,000-image job's metrics.csv.
    with open(ROOT / "docs" / "reference_500k.csv") as f:
        rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    readme = (ROOT / "README.md").read_text()
    at = {int(r["inputs"]): r for r in rows}
    last = rows[-1]
    ranks = [r["retrieval_rank_joint"] for r in rows if r["inputs"] >= 125_000]
    claims = {
        f"mean rank\ngoes from {at[25024]['retrieval_rank_joint']:.1f} at 25,000 images",
        f"to {at[125056]['retrieval_rank_joint']:.1f} at 125,000",
        f"within {min(ranks):.1f}-{max(ranks):.1f} to the end ({last['retrieval_rank_joint']:.1f})",
        f"top-1 reaches {last['retrieval_top1_joint']:.3f}",
        f"the spread stays at {last['spread_ratio']:.2f}",
        f"`hist_w1` {last['hist_w1']:.3f}",
        f"PSNR {last['psnr']:.1f} dB",
    }
    flat = " ".join(readme.split())
    for claim in claims:
        assert " ".join(claim.split()) in flat, claim


def test_readme_benchmark_tables_are_saved_benchmark_output() -> None:
    # A block under `<!-- output: docs/perf/NAME.txt -->` quotes lines of that saved run of a
    # benchmark verbatim (the file holds the whole run, load average included).
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"<!-- output: (docs/perf/[\w.-]+) -->\n```\n(.*?)```", readme, flags=re.S)
    assert len(blocks) >= 4
    for path, block in blocks:
        saved = {line.rstrip() for line in (ROOT / path).read_text().splitlines()}
        quoted = [line.rstrip() for line in block.splitlines() if line.strip()]
        assert quoted, path
        for line in quoted:
            assert line in saved, f"{path} has no line {line!r}"
