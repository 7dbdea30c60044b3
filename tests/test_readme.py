"""README's two commands stay true: CI runs the test command word for word."""

from __future__ import annotations

import re

from tests.conftest import ROOT


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


def test_readme_main_command_sets_up_and_runs_the_default_job() -> None:
    blocks = bash_blocks((ROOT / "README.md").read_text())
    main = [b for b in blocks if b.endswith("python -m histae")]
    assert main == [
        "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 -e . && python -m histae"
    ]


def test_readme_pictures_exist_and_are_pngs() -> None:
    readme = (ROOT / "README.md").read_text()
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert len(pictures) >= 5
    for picture in pictures:
        assert (ROOT / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", picture
