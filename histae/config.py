"""Typed schemas for the config groups, registered in Hydra's ConfigStore.

Each YAML option in ``conf/`` extends one of these (``defaults: [/schema/<group>/<name>@_here_]``),
so a wrong type (``loss.bins=abc``) or a misspelled key fails at composition, before any training.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


@dataclass
class ModelConf:
    _target_: str = "histae.model.ConvAutoencoder"
    shape: list[int] = field(default_factory=lambda: [3, 32, 32])
    code_size: int = 128
    channels: list[int] = field(default_factory=lambda: [24, 32, 48])
    kernel_size: int = 5
    activation: str = "relu"


@dataclass
class HistogramLossConf:
    _target_: str = "histae.loss.HistogramLoss"
    bins: int = 100
    min: float = 0.0
    max: float = 1.0
    sigma: float = 100.0
    loss: str = "l1"
    # false, true or a p-norm order; OmegaConf has no Union of bool and float, hence Any.
    normalize: Any = False
    per_channel: bool = False
    kernel: str = "sigmoid"


@dataclass
class PixelLossConf:
    _target_: str = MISSING
    reduction: str = "mean"


@dataclass
class AdamWConf:
    _target_: str = "torch.optim.AdamW"
    _partial_: bool = True
    lr: float = 3e-4
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class AdamConf:
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    lr: float = 3e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class SGDConf:
    _target_: str = "torch.optim.SGD"
    _partial_: bool = True
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0


@dataclass
class CosineConf:
    _target_: str = "torch.optim.lr_scheduler.CosineAnnealingLR"
    _partial_: bool = True
    T_max: int = MISSING
    eta_min: float = 0.0


@dataclass
class ConstantConf:
    _target_: str = "torch.optim.lr_scheduler.ConstantLR"
    _partial_: bool = True
    factor: float = 1.0
    total_iters: int = 0


@dataclass
class TrainerConf:
    batch_size: int = 64
    max_inputs: int = 48_000
    val_every_inputs: int = 12_000
    log_every_inputs: int = 1_000
    val_images: int = 32
    seed: int = 1
    device: str = "auto"
    threads: int = 0
    code_reg_weight: float = 1e-4
    resume: bool = True
    save_checkpoint: bool = True


@dataclass
class LoggerConf:
    _target_: str = "histae.loggers.make_logger"
    name: str = "csv"


SCHEMAS: dict[str, dict[str, type]] = {
    "model": {"conv_ae": ModelConf},
    "loss": {"histogram": HistogramLossConf, "pixel": PixelLossConf},
    "optimizer": {"adamw": AdamWConf, "adam": AdamConf, "sgd": SGDConf},
    "scheduler": {"cosine": CosineConf, "constant": ConstantConf},
    "trainer": {"default": TrainerConf},
    "logger": {"default": LoggerConf},
}


def _floordiv(a: int, b: int) -> int:
    return int(a) // max(int(b), 1)


# conf/ sits beside the package in a checkout; an installed wheel carries it as histae/conf.
_HERE = Path(__file__).resolve().parent
CONFIG_DIR = str(_HERE.parent / "conf" if (_HERE.parent / "conf").is_dir() else _HERE / "conf")


def user_groups(conf_dir: str = CONFIG_DIR) -> str:
    """``--help``'s list of the groups a user picks from, one per line: ``loss: emd, histogram``.

    Read from the folders of ``conf/``, so it cannot drift; the typed schemas under
    ``schema/`` are what options extend, not choices, and are left out.
    """
    lines = []
    for group in sorted(p for p in Path(conf_dir).iterdir() if p.is_dir() and p.name[0].isalpha()):
        options = sorted(f.stem for f in group.glob("*.yaml"))
        if options:
            lines.append(f"{group.name}: {', '.join(options)}")
    return "\n".join(lines)


def distance_names() -> str:
    """The values ``loss.loss`` takes, for ``--help``."""
    from histae.loss import LOSS_NAMES

    return ", ".join(LOSS_NAMES)


def register() -> None:
    """Register the schemas and histae's resolvers; safe to call more than once."""
    cs = ConfigStore.instance()
    for group, options in SCHEMAS.items():
        for name, node in options.items():
            cs.store(group=f"schema/{group}", name=name, node=node)
    if not OmegaConf.has_resolver("floordiv"):
        OmegaConf.register_new_resolver("floordiv", _floordiv)
    if not OmegaConf.has_resolver("histae_groups"):
        OmegaConf.register_new_resolver("histae_groups", user_groups)
        OmegaConf.register_new_resolver("histae_distances", distance_names)


register()
