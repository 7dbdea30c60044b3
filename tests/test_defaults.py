"""The YAML under conf/ and the constructors' signature defaults say the same thing.

Every option of the groups whose targets are histae's own (loss, model, data) is composed
and compared, key by key, with its target's signature: a default changed in one place and not the
other fails here, naming the option and the key.
"""

from __future__ import annotations

import inspect

import pytest
import yaml
from hydra.utils import get_method
from omegaconf import OmegaConf

from histae.build import build, option_config
from histae.loss import CompositeLoss, HistogramLoss
from histae.model import ConvAutoencoder
from tests.helpers.paths import CONF

GROUPS = ("loss", "model", "data")
OPTIONS = sorted(f"{g}/{p.stem}" for g in GROUPS for p in (CONF / g).glob("*.yaml"))
REQUIRED = {"root"}  # data=image_folder's folder: no default can be right


def plain(value: object) -> object:
    """Tuples as lists, so a signature's ``(3, 32, 32)`` equals YAML's ``[3, 32, 32]``."""
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def parent_option(option: str) -> str | None:
    """The option of the same group this one extends (``loss/emd`` extends ``loss/histogram``)."""
    group, name = option.split("/")
    defaults = yaml.safe_load((CONF / group / f"{name}.yaml").read_text()).get("defaults", [])
    for entry in defaults:
        if isinstance(entry, str) and not entry.startswith("/") and entry != "_self_":
            return f"{group}/{entry}"
    return None


@pytest.fixture(autouse=True)
def _no_cache_env(monkeypatch) -> None:
    # data.cache_dir reads HISTAE_CACHE_DIR; its default is the value without it.
    monkeypatch.delenv("HISTAE_CACHE_DIR", raising=False)


@pytest.mark.parametrize("option", OPTIONS)
def test_each_yaml_value_is_its_targets_signature_default(option: str) -> None:
    node = OmegaConf.to_container(option_config(option), resolve=True)
    assert isinstance(node, dict)
    target = node.pop("_target_")
    node.pop("_partial_", None)
    signature = inspect.signature(get_method(target))
    params = {n: p for n, p in signature.parameters.items() if p.kind is p.POSITIONAL_OR_KEYWORD}
    assert set(node) <= set(params), f"{option}: keys its target does not take"
    if not target.startswith("histae."):
        return  # torch's own classes: the YAML may pick other values than torch's defaults
    missing = sorted(set(params) - set(node))
    assert not missing, f"{option}: {target} takes {missing}, which the YAML does not set"
    without_default = sorted(
        n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in REQUIRED
    )
    assert not without_default, f"{target} has no default for {without_default}"
    if target == "histae.loss.CompositeLoss":
        return  # its terms are built modules: test_composite_default_is_the_yaml
    parent = parent_option(option)
    stated = set(yaml.safe_load((CONF / f"{option}.yaml").read_text())) - {"defaults"}
    for key, value in node.items():
        if key in REQUIRED or (parent is not None and key in stated):
            continue  # a variant (loss/emd) states what it changes
        default = params[key].default
        assert plain(default) == plain(value), (
            f"{option}: {key} is {value!r} in the YAML, {default!r} in {target}"
        )


def test_composite_default_is_the_yaml() -> None:
    from_yaml, default = build(option_config("loss/composite")), CompositeLoss()
    assert from_yaml.weights == default.weights == {"histogram": 1.0, "l1": 0.1}
    assert repr(from_yaml) == repr(default)


def test_defaults_equal_building_the_yaml() -> None:
    assert repr(ConvAutoencoder()) == repr(build(option_config("model/conv_ae")))
    assert repr(HistogramLoss()) == repr(build(option_config("loss/histogram")))
