"""``TrainResult``: what one training run produced and how it was made (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from perflaw.eval import METRIC_NAMES
from perflaw.training.config import TrainConfig


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`perflaw.train`.

    Attributes
    ----------
    config : TrainConfig
        The settings used.
    metrics : dict
        Test metrics at the best validation epoch ("hr@10", "ndcg@10", "mrr", ...).
    valid_metrics : dict
        Validation metrics at the best epoch.
    params, params_non_embedding : int
        Parameter counts with and without the embedding tables.
    heads : int
        Attention heads used.
    best_epoch, epochs_run : int
        1-based epoch of the best validation metric; epochs trained in total.
    wall_s, train_s : float
        Whole run and training steps only (seconds, summed over resumed parts).
    tokens_per_s : float
        Training targets per second of training time.
    eval_users_per_s : float
        Users ranked per second in validation (the configured protocol).
    peak_memory_bytes : int
        Peak device memory (CUDA) or peak resident memory of the process (CPU).
    n_items, n_users, tokens : int
        Catalogue size (the item table), users and interactions of the data.
    train_tokens : int
        Training targets per epoch.
    eval_users : int
        Users with validation and test targets.
    data_fingerprint : str
        ``Sequences.fingerprint()`` of the data.
    device, precision : str
        Where and in what precision it trained.
    history : list of dict
        One entry per epoch: loss, learning rate, tokens/s and validation metrics.
    perflaw_version : str
        Package version.
    """

    config: TrainConfig
    metrics: dict[str, float]
    valid_metrics: dict[str, float]
    params: int
    params_non_embedding: int
    heads: int
    best_epoch: int
    epochs_run: int
    wall_s: float
    train_s: float
    tokens_per_s: float
    eval_users_per_s: float
    peak_memory_bytes: int
    n_items: int
    n_users: int
    tokens: int
    train_tokens: int
    eval_users: int
    data_fingerprint: str
    device: str
    precision: str
    perflaw_version: str
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """One flat, JSON-ready row: settings, sizes, data, timing and test metrics.

        Test metrics are top-level keys ("hr@10", "ndcg@10", "mrr", ...);
        ``valid_metrics``, ``config`` and ``history`` are nested.
        """
        config = self.config
        row: dict[str, Any] = {
            "model": config.model,
            "layers": config.layers,
            "dim": config.dim,
            "heads": self.heads,
            "max_len": config.max_len,
            "loss": config.loss,
            "negatives": config.resolved_negatives,
            "protocol": config.protocol,
            "eval_negatives": config.resolved_eval_negatives,
            "seed": config.seed,
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "lr": config.lr,
            "dropout": config.resolved_dropout,
            "params": self.params,
            "params_non_embedding": self.params_non_embedding,
            "n_items": self.n_items,
            "n_users": self.n_users,
            "tokens": self.tokens,
            "train_tokens": self.train_tokens,
            "eval_users": self.eval_users,
            "data_fingerprint": self.data_fingerprint,
            "wall_s": self.wall_s,
            "train_s": self.train_s,
            "tokens_per_s": self.tokens_per_s,
            "eval_users_per_s": self.eval_users_per_s,
            "peak_memory_bytes": self.peak_memory_bytes,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "device": self.device,
            "precision": self.precision,
            "perflaw_version": self.perflaw_version,
        }
        row.update({name: self.metrics[name] for name in METRIC_NAMES})
        row["valid_metrics"] = dict(self.valid_metrics)
        row["config"] = config.to_dict()
        row["history"] = [dict(entry) for entry in self.history]
        return row
