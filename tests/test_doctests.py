"""Every docstring example in histae runs and gives what it says."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import histae

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(histae.__path__, "histae.")
    if m.name not in ("histae.__main__",)  # runs the app on import
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_pass(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"


def test_the_examples_are_found() -> None:
    attempted = sum(doctest.testmod(importlib.import_module(n)).attempted for n in MODULES)
    assert attempted >= 15, attempted
