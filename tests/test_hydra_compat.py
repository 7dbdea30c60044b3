"""Hydra's internals histae relies on, pinned: a Hydra release that moves them fails here."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import hydra._internal.utils as hydra_utils
import pytest
from hydra.core.utils import JobReturn, JobStatus

from histae.hydra_compat import basic_sweeper, job_error, one_line_errors
from tests.helpers import ROOT


def test_hydra_core_is_in_the_range_pyproject_pins() -> None:
    pin = re.search(r'"hydra-core>=([\d.]+),<([\d.]+)"', (ROOT / "pyproject.toml").read_text())
    low, high = (tuple(int(p) for p in v.split(".")) for v in pin.groups())
    have = tuple(int(p) for p in re.findall(r"\d+", version("hydra-core"))[:3])
    assert low <= have < high, (low, have, high)


def test_the_error_reporter_is_swapped_and_restored(capsys, monkeypatch) -> None:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    original = hydra_utils.run_and_report

    def boom() -> None:
        raise ValueError("loss.bins must be >= 1, got 0\nsecond line")

    with one_line_errors(lambda e: str(e).splitlines()[0], lambda e: 7):
        assert hydra_utils.run_and_report is not original
        with pytest.raises(SystemExit) as exit_:
            hydra_utils.run_and_report(boom)
    assert exit_.value.code == 7
    assert capsys.readouterr().err == "histae: error: loss.bins must be >= 1, got 0\n"
    assert hydra_utils.run_and_report is original


def test_the_basic_sweeper_and_a_failed_jobs_error_are_where_histae_looks() -> None:
    sweeper = basic_sweeper()
    assert callable(sweeper.split_arguments) and callable(sweeper.sweep)
    error = ValueError("bad")
    result = JobReturn(status=JobStatus.FAILED, _return_value=error)
    assert job_error(result) is error
    assert job_error(JobReturn(status=JobStatus.COMPLETED, _return_value=1.0)) is None


def test_no_module_but_hydra_compat_imports_hydra_internals() -> None:
    users = [
        path.relative_to(ROOT).as_posix()
        for folder in ("histae", "hydra_plugins")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "hydra._internal" in path.read_text()
    ]
    assert users == ["histae/hydra_compat.py"], users


def test_the_plugin_folder_is_the_one_in_this_checkout() -> None:
    import hydra_plugins.histae_sweeper.histae_sweeper as plugin

    assert Path(plugin.__file__).resolve().is_relative_to(ROOT)


def test_hydra_14_gets_no_version_base_and_a_whitelist_13_gets_version_base() -> None:
    from histae.hydra_compat import HYDRA_14, MAIN_KWARGS, TRUSTED_TARGETS, VERSION_BASE

    have = tuple(int(p) for p in re.findall(r"\d+", version("hydra-core"))[:2])
    assert HYDRA_14 is (have >= (1, 4))
    if HYDRA_14:
        assert VERSION_BASE == {} and MAIN_KWARGS == {"execution_whitelist": TRUSTED_TARGETS}
    else:
        assert VERSION_BASE == MAIN_KWARGS == {"version_base": "1.3"}
    # Every _target_ in conf/ is trusted (Hydra 1.4 refuses the others once a whitelist is set).
    targets = {
        line.split(":", 1)[1].split("#")[0].strip()
        for path in (ROOT / "conf").rglob("*.yaml")
        for line in path.read_text().splitlines()
        if line.strip().startswith("_target_:")
    }
    prefixes = [p.removesuffix("*") for p in TRUSTED_TARGETS]
    assert targets and all(t.startswith(tuple(prefixes)) for t in targets), targets


def test_a_sweep_experiment_gets_minus_m_on_hydra_14_only(tmp_path: Path) -> None:
    from histae.hydra_compat import HYDRA_14, experiment_mode_args

    conf = ROOT / "conf"
    args = ["+experiment=histloss", "data=procedural"]
    assert experiment_mode_args(args, conf) == (["-m", *args] if HYDRA_14 else args)
    for unchanged in (["+experiment=smoke"], ["-m", *args], ["--cfg", "job", *args], ["loss=l1"]):
        assert experiment_mode_args(unchanged, conf) == unchanged


def test_registering_twice_warns_of_nothing() -> None:
    import warnings

    from histae.config import register

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        register()
        register()
