"""Every use of Hydra's internals, in one place, pinned by tests/test_hydra_compat.py.

histae relies on three things hydra-core 1.3 does not promise: the function that reports errors
(``hydra._internal.utils.run_and_report``, swapped for a one-line reporter), the basic sweeper's
class (subclassed by histae's sweeper), and a failed job's exception (``JobReturn._return_value``).
A Hydra release that moves any of them breaks that test, not the command line.

It also holds what differs between Hydra 1.3 and 1.4 (with OmegaConf 2.3 and 2.4): the
``version_base`` argument (:data:`VERSION_BASE`), 1.4's execution whitelist for the config's
``_target_`` values (:data:`MAIN_KWARGS`, :func:`trusted_targets`), how a resolver is registered
(:func:`register_resolver`), the sweeper's config being writable (:func:`basic_sweeper`), and
an experiment that makes itself a sweep (:func:`experiment_mode_args`).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import hydra
import omegaconf
from hydra.core.utils import JobReturn
from omegaconf import OmegaConf

__all__ = [
    "HYDRA_14",
    "MAIN_KWARGS",
    "TRUSTED_TARGETS",
    "VERSION_BASE",
    "basic_sweeper",
    "experiment_mode_args",
    "job_error",
    "one_line_errors",
    "register_resolver",
    "trusted_targets",
]


def _minor(text: str) -> tuple[int, int]:
    """``"1.4.0rc3"`` -> ``(1, 4)``."""
    match = re.match(r"(\d+)\.(\d+)", text)
    assert match is not None, text
    return int(match.group(1)), int(match.group(2))


HYDRA_14 = _minor(hydra.__version__) >= (1, 4)
VERSION_BASE: dict[str, Any] = {} if HYDRA_14 else {"version_base": "1.3"}
"""Keyword arguments for ``hydra.main`` and ``initialize_config_dir``: ``version_base="1.3"`` on
Hydra 1.3 (without it 1.3 falls back to 1.1's defaults, changing the working directory), nothing on
1.4, which deprecates the argument (a warning on every start) and has 1.3's defaults."""

TRUSTED_TARGETS = ["histae.*", "torch.optim.*", "torch.nn.*"]
"""The ``_target_`` values histae's configs name (``conf/``). Hydra 1.4 instantiates only
whitelisted targets without a warning (1.5 will refuse the rest); a whitelist, once given, refuses
any other target with Hydra's own message."""

MAIN_KWARGS: dict[str, Any] = (
    {"execution_whitelist": TRUSTED_TARGETS} if HYDRA_14 else {}
) | VERSION_BASE
"""Keyword arguments for ``hydra.main``: :data:`VERSION_BASE`, and on 1.4 the whitelist, which
also covers the callbacks Hydra instantiates itself (``hydra.callbacks``)."""


def trusted_targets() -> contextlib.AbstractContextManager[Any]:
    """A context in which ``instantiate`` may build :data:`TRUSTED_TARGETS` (Hydra 1.4; nothing
    on 1.3): for instantiating outside ``hydra.main`` (``build_option``, a launcher's worker)."""
    if not HYDRA_14:
        return contextlib.nullcontext()
    from hydra.utils import execution_whitelist  # type: ignore[attr-defined]

    return execution_whitelist(TRUSTED_TARGETS)


def register_resolver(name: str, resolver: Callable[..., Any]) -> None:
    """``OmegaConf.register_resolver`` on OmegaConf 2.4, ``register_new_resolver`` before it (2.4
    deprecates that with a warning on every start; 2.3's ``register_resolver`` is an older API
    that passes every argument as a string)."""
    if _minor(omegaconf.__version__) >= (2, 4):
        OmegaConf.register_resolver(name, resolver)
    else:
        OmegaConf.register_new_resolver(name, resolver)


def basic_sweeper() -> type:
    """Hydra's basic sweeper class, looked up when called; on Hydra 1.4, a subclass whose config
    is writable, as 1.3's was.

    Hydra's plugin scan re-executes its core plugin modules, so a class imported before the scan
    is a stale copy; a sweeper subclassing it fails in ``super().__init__``.

    Hydra 1.4 installs the multirun's config as ``HydraConfig`` before making the sweeper, which
    marks its ``hydra`` node read-only; 1.3 left the sweeper's config writable, and histae's
    sweeper writes ``hydra.sweeper.params`` into its copy for multirun.yaml. The flag is cleared
    on the same object (not a copy: ``${now:...}`` in ``hydra.sweep.dir`` is cached per config,
    and the callbacks must see the folder the sweeper used).
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    if not HYDRA_14:
        return BasicSweeper

    class WritableConfigSweeper(BasicSweeper):  # type: ignore[misc,valid-type]
        def setup(self, *args: Any, config: Any, **kwargs: Any) -> None:
            OmegaConf.set_readonly(config.hydra, None)  # inherit the root's flag, as on 1.3
            super().setup(*args, config=config, **kwargs)

    return WritableConfigSweeper


def job_error(result: JobReturn) -> BaseException | None:
    """The exception a failed job raised (Hydra keeps it privately; ``return_value`` re-raises)."""
    error = getattr(result, "_return_value", None)
    return error if isinstance(error, BaseException) else None


@contextlib.contextmanager
def one_line_errors(
    condense: Callable[[BaseException], str], exit_status: Callable[[BaseException], int]
) -> Iterator[None]:
    """Swap Hydra 1.3's error reporter (a trimmed traceback, several lines) for one line.

    ``histae: error: <condense(err)>`` on stderr and ``exit_status(err)``.
    ``HYDRA_FULL_ERROR=1`` keeps Hydra's own, with the full traceback.
    """
    import hydra._internal.utils as hydra_utils

    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        yield
        return

    def run_and_report(func: Callable[[], Any]) -> Any:
        try:
            return func()
        except Exception as err:
            sys.stderr.write(f"histae: error: {condense(err)}\n")
            sys.exit(exit_status(err))

    original = hydra_utils.run_and_report
    hydra_utils.run_and_report = run_and_report
    try:
        yield
    finally:
        hydra_utils.run_and_report = original


# Flags that pick Hydra's command themselves: with any of them, -m is not added.
_COMMAND_FLAGS = {"-m", "--multirun", "-r", "--run", "-c", "--cfg", "-i", "--info", "-h", "--help"}
_COMMAND_FLAGS |= {"--hydra-help", "-sc", "--shell-completion"}


def experiment_mode_args(args: Sequence[str], conf_dir: str | Path) -> list[str]:
    """The command line's arguments, with ``-m`` added on Hydra 1.4 when the chosen experiment
    makes itself a sweep (``hydra: {mode: MULTIRUN}`` in ``conf/experiment/<name>.yaml``).

    Hydra 1.3 takes the run mode from the composed config, so ``python -m histae
    +experiment=histloss`` is a sweep; 1.4 takes it from the command line or the primary config
    only, and refuses a mode an experiment changes. Adding the flag keeps that command working.

    >>> experiment_mode_args(["+experiment=nope", "loss.bins=50"], "conf")
    ['+experiment=nope', 'loss.bins=50']
    """
    args = list(args)
    if not HYDRA_14 or _COMMAND_FLAGS & {a.split("=", 1)[0] for a in args}:
        return args
    for arg in args:
        key, _, name = arg.lstrip("+").partition("=")
        path = Path(conf_dir) / "experiment" / f"{name}.yaml"
        if key == "experiment" and path.is_file():
            mode = OmegaConf.select(OmegaConf.load(path), "hydra.mode", default=None)
            if str(mode) == "MULTIRUN":
                return ["-m", *args]
    return args
