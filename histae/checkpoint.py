"""A checkpoint is a plain dict: weights, optimizer, scheduler, training state, RNG states, config.

While a job can still go on (running, stopped, killed) it holds everything the loop's future
depends on, so a resumed job continues bitwise as if it had never stopped (on CPU, with the same
seed): ``model`` (the weights), ``optimizer`` (AdamW's two moments: twice the weights),
``scheduler``, ``criterion`` (a loss's own state), ``state`` (counters and metrics rows), ``rng``
and ``config``. A finished job keeps only what a user needs, ``model``, ``state`` and ``config``
with ``weights_only: True`` (a third of the size), unless ``trainer.keep_state=true``.

On disk it is safe to receive: only tensors and plain Python values
(``torch.load(weights_only=True)``, no code runs), wrapped with a SHA-256 digest of its payload
(a uint8 tensor) so a truncated or altered file is refused rather than half-loaded. This module also
owns the resume policy: which config keys may differ between a checkpoint and the job resuming it.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from histae.atomic import write_bytes

FORMAT = "histae-checkpoint"
VERSION = 2

# Config keys that change where or how fast a job runs, or how it is watched or launched, not
# what it computes; a bare name is a whole top-level node.
RUNTIME_KEYS = (
    "trainer.resume",
    "trainer.device",
    "trainer.threads",
    "trainer.deterministic",
    "trainer.channels_last",
    "trainer.compile",
    "trainer.keep_state",
    "logger",
    "sweep",
)

# What only a job that goes on needs; a finished job's checkpoint drops them (weights_only).
RESUME_ONLY = ("optimizer", "scheduler", "criterion", "rng")


def rng_state() -> dict[str, Any]:
    """Every random generator's state as tensors and plain values (loadable without pickles)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, checkpoint: dict[str, Any]) -> Path:
    """Atomically write ``checkpoint`` with its digest; the previous file survives a full disk."""
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    # As a uint8 tensor, stored raw: pickled ``bytes`` grow by ~45% (latin-1 text in UTF-8).
    raw = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
    wrapped = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, "sha256": digest, "payload": raw}, wrapped)
    return write_bytes(path, wrapped.getvalue(), what="the checkpoint")


class CheckpointError(ValueError):
    """A checkpoint cannot be resumed from: one line naming the file and what is wrong. The job
    refuses before it records anything, so its status stays what it was."""


def _refuse(path: str | os.PathLike, why: str) -> CheckpointError:
    return CheckpointError(
        f"{path} {why}; delete it or run with trainer.resume=false to start over"
    )


def refuse(path: str | os.PathLike, why: str) -> CheckpointError:
    """The error for a checkpoint whose ``why`` part is wrong (see :class:`CheckpointError`)."""
    return _refuse(path, why)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint onto the CPU without running any code from the file.

    Raises:
        ValueError: one line naming the file: not a histae checkpoint, truncated, altered, or
            missing what a resume needs.
    """
    try:
        wrapped = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated zip, a pickle with code, random bytes
        raise _refuse(
            path, f"cannot be read as a histae checkpoint ({type(err).__name__})"
        ) from None
    if not isinstance(wrapped, dict) or wrapped.get("format") != FORMAT:
        raise _refuse(path, "is not a histae checkpoint")
    if wrapped.get("version") != VERSION:
        raise _refuse(
            path, f"has format version {wrapped.get('version')}, this histae reads {VERSION}"
        )
    payload = wrapped.get("payload")
    if isinstance(payload, torch.Tensor) and payload.dtype == torch.uint8 and payload.ndim == 1:
        payload = payload.numpy().tobytes()
    if not isinstance(payload, bytes) or hashlib.sha256(payload).hexdigest() != wrapped.get(
        "sha256"
    ):
        raise _refuse(path, "does not match its recorded digest (altered or damaged)")
    try:
        checkpoint = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as err:
        raise _refuse(path, f"holds an unreadable payload ({type(err).__name__})") from None
    weights_only = isinstance(checkpoint, dict) and checkpoint.get("weights_only") is True
    for key, what in (
        ("model", "no model weights"),
        ("optimizer", "no optimizer state"),
        ("scheduler", "no scheduler state"),
        ("state", "no training state"),
        ("rng", "no random generator states"),
        ("config", "no config"),
    ):
        if weights_only and key in RESUME_ONLY:
            continue
        if not isinstance(checkpoint, dict) or key not in checkpoint:
            raise _refuse(path, f"has {what}; it was not written by this version of histae")
    return checkpoint


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: tree}


def typed_keys(overrides: Iterable[str]) -> set[str]:
    """The config keys a command line's ``overrides`` name: ``+loss.bins=5`` -> ``loss.bins``,
    ``loss=l1`` -> ``loss`` (a group: every key under it). Hydra's own keys are left out.

    >>> sorted(typed_keys(["trainer.max_inputs=3000", "+experiment=smoke", "loss=l1"]))
    ['experiment', 'loss', 'trainer.max_inputs']
    """
    keys = set()
    for override in overrides:
        key = str(override).partition("=")[0].lstrip("+~")
        key = key.split("@", 1)[-1]  # group@package: the package is where its keys live
        if key and not key.startswith("hydra"):
            keys.add(key.replace("/", "."))
    return keys


def first_difference(
    old: dict[str, Any], new: dict[str, Any], typed: Iterable[str] = ()
) -> tuple[str, Any, Any] | None:
    """The first dotted key whose value differs between two job configs, ignoring runtime keys.

    Keys under ``typed`` (:func:`typed_keys` of the commands that made either config) come
    first: a changed ``trainer.max_inputs`` is named, not the ``scheduler.T_max`` derived from
    it, which the user never typed. Then model keys, as a different network is the likeliest
    and least recoverable mismatch.
    """
    a, b = _flatten(old), _flatten(new)
    named = tuple(typed)

    def is_typed(key: str) -> bool:
        return any(key == t or key.startswith(t + ".") for t in named)

    keys = sorted(set(a) | set(b), key=lambda k: (not is_typed(k), not k.startswith("model."), k))
    for key in keys:
        runtime = key in RUNTIME_KEYS or key.split(".", 1)[0] in RUNTIME_KEYS
        if not runtime and a.get(key) != b.get(key):
            return key, a.get(key), b.get(key)
    return None


def check_resumable(
    checkpoint: dict[str, Any], config: dict[str, Any], path: Path, typed: Iterable[str] = ()
) -> None:
    """A checkpoint resumes only the job it was made for; name the first key that differs
    (``typed``: the keys the command line named, first)."""
    difference = first_difference(checkpoint.get("config", {}), config, typed)
    if difference is not None:
        key, old, new = difference
        raise ValueError(
            f"{path} was made with {key}={old}, the config says {key}={new}; "
            "use trainer.resume=false to start over, or another output folder"
        )
