"""README's commands stay true: CI runs the test command word for word, and the main command
sets up what CI sets up."""

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
