"""Typed schemas for the config groups, registered in Hydra's ConfigStore.

Schemas hold types only: every value is ``MISSING`` here and written once, with its one-line
comment, in the option's YAML under ``conf/``.

Each YAML option in ``conf/`` extends one of these (``defaults: [/schema/<group>/<name>@_here_]``),
so a wrong type (``loss.bins=abc``) or a misspelled key fails at composition, before any training.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from histae.hydra_compat import register_resolver


@dataclass
class ModelConf:
    _target_: str = MISSING
    shape: list[int] = MISSING
    code_size: int = MISSING
    channels: list[int] = MISSING
    kernel_size: int = MISSING
    activation: str = MISSING


@dataclass
class HistogramLossConf:
    _target_: str = MISSING
    bins: int = MISSING
    min: float = MISSING
    max: float = MISSING
    sigma: float = MISSING
    loss: str = MISSING
    # false, true or a p-norm order; OmegaConf has no Union of bool and float, hence Any.
    normalize: Any = MISSING
    per_channel: bool = MISSING
    kernel: str = MISSING


@dataclass
class PixelLossConf:
    _target_: str = MISSING
    reduction: str = MISSING


@dataclass
class SlicedWassersteinConf:
    _target_: str = MISSING
    directions: int = MISSING
    seed: int = MISSING


@dataclass
class JointHistogramConf:
    _target_: str = MISSING
    bins: int = MISSING
    min: float = MISSING
    max: float = MISSING
    sigma: float = MISSING
    loss: str = MISSING
    normalize: Any = MISSING  # false, true or a p-norm order (see HistogramLossConf)


@dataclass
class RGBuvConf:
    _target_: str = MISSING
    bins: int = MISSING
    min: float = MISSING
    max: float = MISSING
    tau: float = MISSING
    loss: str = MISSING


@dataclass
class CompositeTermConf:
    weight: float = MISSING
    # Any loss option's node, composed from conf/loss/ by the option's defaults list.
    loss: Any = MISSING


@dataclass
class CompositeLossConf:
    _target_: str = MISSING
    terms: dict[str, CompositeTermConf] = MISSING


@dataclass
class AdamConf:
    _target_: str = MISSING
    _partial_: bool = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING
    betas: list[float] = MISSING


@dataclass
class SGDConf:
    _target_: str = MISSING
    _partial_: bool = MISSING
    lr: float = MISSING
    momentum: float = MISSING
    weight_decay: float = MISSING


@dataclass
class CosineConf:
    _target_: str = MISSING
    _partial_: bool = MISSING
    T_max: int = MISSING
    eta_min: float = MISSING


@dataclass
class ConstantLRConf:
    _target_: str = MISSING
    _partial_: bool = MISSING
    factor: float = MISSING
    total_iters: int = MISSING


@dataclass
class TrainerConf:
    batch_size: int = MISSING
    max_inputs: int = MISSING
    val_every_inputs: int = MISSING
    log_every_inputs: int = MISSING
    val_images: int = MISSING
    seed: int = MISSING
    device: str = MISSING
    threads: int = MISSING
    code_reg_weight: float = MISSING
    resume: bool = MISSING
    save_checkpoint: bool = MISSING
    keep_state: bool = MISSING  # a finished job's checkpoint.pt keeps optimizer and RNG states
    deterministic: bool = MISSING  # torch.use_deterministic_algorithms (histae.perf)
    channels_last: bool = MISSING  # the model and batches in channels-last layout (histae.perf)
    compile: bool = MISSING  # torch.compile encoder and decoder (histae.perf)


@dataclass
class LoggerConf:
    _target_: str = MISSING
    name: str = MISSING


@dataclass
class MlflowLoggerConf:
    _target_: str = MISSING
    name: str = MISSING
    tracking_uri: Optional[str] = MISSING  # noqa: UP045  (OmegaConf needs typing forms)


SCHEMAS: dict[str, dict[str, type]] = {
    "model": {"conv_ae": ModelConf},
    "loss": {
        "histogram": HistogramLossConf,
        "pixel": PixelLossConf,
        "sliced_w": SlicedWassersteinConf,
        "joint_histogram": JointHistogramConf,
        "rgbuv": RGBuvConf,
        "composite": CompositeLossConf,
    },
    "optimizer": {"adam": AdamConf, "sgd": SGDConf},  # adam: Adam and AdamW alike
    "scheduler": {"cosine": CosineConf, "none": ConstantLRConf},
    "trainer": {"default": TrainerConf},
    "logger": {"default": LoggerConf, "mlflow": MlflowLoggerConf},
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
    from histae.names import LOSS_NAMES

    return ", ".join(LOSS_NAMES)


def _stored(cs: ConfigStore, group: str, name: str) -> bool:
    try:
        return f"{name}.yaml" in cs.list(group)
    except OSError:  # the group is not there yet
        return False


JOB_LOGGING: dict[str, Any] = {
    # Hydra's default job logging, except that the log file opens on its first line
    # (``delay``): the job checks its folder first, so a received folder whose log is a link
    # to a file elsewhere is refused before anything is opened through it.
    "version": 1,
    "formatters": {"simple": {"format": "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "simple",
            "stream": "ext://sys.stdout",
        },
        "file": {
            "class": "logging.FileHandler",
            "formatter": "simple",
            "filename": "${hydra.runtime.output_dir}/${hydra.job.name}.log",
            "delay": True,
        },
    },
    "root": {"level": "INFO", "handlers": ["console", "file"]},
    "disable_existing_loggers": False,
}
"""``hydra/job_logging=histae``, conf/config.yaml's choice."""


def register() -> None:
    """Register the schemas, the job logging and histae's resolvers; safe to call again."""
    cs = ConfigStore.instance()
    if not _stored(cs, "hydra/job_logging", "histae"):
        cs.store(group="hydra/job_logging", name="histae", node=JOB_LOGGING)
    for group, options in SCHEMAS.items():
        for name, node in options.items():
            # Stored once: Hydra 1.4 warns about a second store of the same name.
            if not _stored(cs, f"schema/{group}", name):
                cs.store(group=f"schema/{group}", name=name, node=node)
    if not OmegaConf.has_resolver("floordiv"):
        register_resolver("floordiv", _floordiv)
    if not OmegaConf.has_resolver("histae_groups"):
        register_resolver("histae_groups", user_groups)
        register_resolver("histae_distances", distance_names)


register()
