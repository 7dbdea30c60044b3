"""``python -m histae``: the Hydra entry point. All the work is in :func:`histae.train.train`."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import histae.config  # noqa: F401  (registers the schemas and resolvers before composition)
from histae.train import train

# conf/ sits beside the package in a checkout; an installed wheel carries it as histae/conf.
_HERE = Path(__file__).resolve().parent
CONFIG_DIR = str(_HERE.parent / "conf" if (_HERE.parent / "conf").is_dir() else _HERE / "conf")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Train one job in Hydra's job folder; return the final validation loss (for sweepers)."""
    summary = train(cfg, HydraConfig.get().runtime.output_dir)
    final = summary.get("final", {}).get("val") or {}
    return final.get("loss")


if __name__ == "__main__":
    main()
