"""Training and evaluating sequential recommenders (needs ``perflaw[train]``, i.e. torch).

Importing this package does not import torch: ``TrainConfig``, ``TrainResult``
and :mod:`perflaw.sizing` are torch-free; torch loads when :func:`train`
(or :mod:`perflaw.training.loop`, ``models``, ``losses``, ``data``) is first used.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from perflaw.errors import require
from perflaw.training.config import TrainConfig
from perflaw.training.result import TrainResult
from perflaw.sizing import param_count, pick_heads

__all__ = ["train", "TrainConfig", "TrainResult", "param_count", "pick_heads", "load_checkpoint"]


def train(
    seqs: Any,
    config: TrainConfig | None = None,
    progress: bool = True,
    checkpoint_dir: str | os.PathLike | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train a model on ``seqs`` and evaluate it leave-one-out (see :func:`perflaw.training.loop.train`).

    Examples
    --------
    >>> import perflaw
    >>> seqs = perflaw.Sequences.from_lists([[1, 2, 3, 4, 5]] * 8)
    >>> cfg = perflaw.TrainConfig(layers=1, dim=8, max_len=4, epochs=1, device="cpu")
    >>> perflaw.train(seqs, cfg, progress=False).epochs_run
    1
    """
    require("torch", "perflaw.train", "train")
    from perflaw.training.loop import train as _train

    return _train(seqs, config, progress=progress, checkpoint_dir=checkpoint_dir, callback=callback)


def load_checkpoint(path: str | os.PathLike, device: str = "cpu") -> Any:
    """Rebuild a saved model and its config (see :func:`perflaw.training.loop.load_checkpoint`)."""
    require("torch", "perflaw.training.load_checkpoint", "train")
    from perflaw.training.loop import load_checkpoint as _load

    return _load(path, device)
