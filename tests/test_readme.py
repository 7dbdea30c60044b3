"""README and docs/ stay true without pinning their prose: CI runs README's test command word for
word, the main command sets up what CI sets up, README's Python runs, every relative link and
anchor resolves, quoted benchmark output is the saved run's, and no page speaks of development
history."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from tests.helpers import ROOT

# Pages other work adds; README's docs map already links them. Their links are skipped only
# while the page is absent: once it lands it is walked like every other page.

README_MAX_BYTES = 12_000


def bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci_lines = [
        ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln.startswith("apt-get")
    ]
    assert len(ci_lines) == 1
    assert ci_lines[0] in bash_blocks(readme)
    # ... and the whole suite: its pytest steps' marker expressions are complementary
    runs = [step for step in ci_lines[0].split(" && ") if step.startswith("pytest")]
    marks = [re.search(r'-m ("[^"]+"|\S+)', run) for run in runs]
    assert sorted(m.group(1).strip('"') for m in marks if m) == ["not slow", "slow"], runs


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


def pages() -> list[Path]:
    """README.md, CHANGELOG.md and every Markdown page under docs/."""
    return [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]


def slug(heading: str) -> str:
    """A heading's anchor as code hosts make it: lower case, punctuation dropped, spaces -> -."""
    text = re.sub(r"[`*_]|<[^>]+>", lambda m: "_" if m.group() == "_" else "", heading.strip())
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[str]:
    """Every Markdown link and picture target in ``path``, outside code blocks and spans."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return re.findall(r"\]\(([^)\s]+)\)", text)


def test_every_relative_link_and_anchor_resolves() -> None:
    checked = 0
    for page in pages():
        for target in links(page):
            where = f"{page.relative_to(ROOT)} -> {target}"
            assert not re.match(r"[a-z]+:", target), f"{where}: no links outside the repository"
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            assert dest.is_relative_to(ROOT), f"{where}: leaves the repository"
            assert dest.exists(), f"{where}: no such file"
            if anchor:
                assert dest.suffix == ".md" and anchor in anchors(dest), f"{where}: no such heading"
            checked += 1
    assert checked >= 20  # README's docs map alone has 10; the pages link each other and pictures


def test_slug_follows_code_hosts() -> None:
    assert slug("Where results go") == "where-results-go"
    assert slug("`loss=histogram`") == "losshistogram"
    assert slug("The experiment: which loss makes colour depend on the input?") == (
        "the-experiment-which-loss-makes-colour-depend-on-the-input"
    )


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])


def test_pictures_are_real_pngs() -> None:
    pictures = [
        (page.parent / target).resolve()
        for page in pages()
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text())
    ]
    assert len(pictures) >= 7
    for picture in pictures:
        width, height = png_size(picture)
        assert width >= 64 and height >= 64, (picture, width, height)


def test_readme_is_a_front_door() -> None:
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail to docs/"


ROUND = re.compile(
    r"\b(?:this|last|next|earlier|previous|a later|an earlier) round\b|\brounds?\b(?![-\w])|\bissue #?\d+|#\d{1,3}\b",
    re.I,
)


@pytest.mark.parametrize("name", ["README.md", "docs"])
def test_no_development_history_in_user_docs(name: str) -> None:
    files = [ROOT / name] if name.endswith(".md") else sorted((ROOT / name).rglob("*.md"))
    for path in files:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            assert not ROUND.search(line), f"{path.relative_to(ROOT)}:{n}: {line.strip()}"


def test_round_wording_is_caught() -> None:
    for line in ("as this round measured", "Last round: 1.04x", "(issue #13)", "two rounds ago"):
        assert ROUND.search(line), line
    for line in ("float64 rounding", "ground truth", "round-trip"):
        assert not ROUND.search(line), line


def test_readme_python_blocks_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert blocks
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)
    # The example's objects are what it says they are: the reference's defaults, no Hydra.
    loss, model = namespace["loss"], namespace["model"]
    assert (loss.bins, loss.sigma, loss.loss, loss.normalize) == (50, 100.0, "l1", False)
    assert sum(p.numel() for p in model.parameters()) == 5_053_491
    assert tuple(namespace["hist"].shape) == (4, 50)
    assert namespace["x"].grad is None and namespace["value"].item() > 0
    assert all(p.grad is not None for p in model.parameters())


def test_benchmark_blocks_are_saved_benchmark_output() -> None:
    # A block under `<!-- output: docs/perf/NAME.txt -->` quotes lines of that saved run of a
    # benchmark verbatim (the file holds the whole run, load average included).
    blocks = [
        block
        for page in pages()
        for block in re.findall(
            r"<!-- output: (docs/perf/[\w.-]+) -->\n```\n(.*?)```", page.read_text(), flags=re.S
        )
    ]
    assert len(blocks) >= 4
    for path, block in blocks:
        saved = {line.rstrip() for line in (ROOT / path).read_text().splitlines()}
        quoted = [line.rstrip() for line in block.splitlines() if line.strip()]
        assert quoted, path
        for line in quoted:
            assert line in saved, f"{path} has no line {line!r}"
