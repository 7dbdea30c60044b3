"""A checkpoint is a plain dict: weights, optimizer, scheduler, counters, RNG states, config.

It is written atomically, so a job killed at any moment keeps its last complete checkpoint, and it
holds everything the loop's future depends on, so a resumed job continues bitwise as if it had
never stopped (on CPU, with the same seed).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from histae.artifacts import atomic_write

FORMAT_VERSION = 1


def rng_state() -> dict[str, Any]:
    """Every random generator's state: python, numpy, torch CPU and (if present) CUDA."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, checkpoint: dict[str, Any]) -> Path:
    """Atomically ``torch.save`` a checkpoint dict (a temp file, then a rename)."""
    return atomic_write(path, lambda f: torch.save({"version": FORMAT_VERSION, **checkpoint}, f))


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint dict onto the CPU; a clear error names an unreadable file."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ValueError(
            f"checkpoint {path} cannot be read ({type(err).__name__}); delete it or run with "
            "trainer.resume=false to start over"
        ) from err
    if not isinstance(checkpoint, dict) or checkpoint.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"checkpoint {path} is not a histae checkpoint of format {FORMAT_VERSION}; "
            "run with trainer.resume=false to start over"
        )
    return checkpoint
