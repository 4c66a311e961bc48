"""The training loop behind :func:`perflaw.train`.

One run: leave-one-out split, model, AdamW with warm-up and cosine decay,
gradient clipping, bf16 autocast on GPU, validation every ``eval_every`` epochs
with early stopping, test metrics at the best validation epoch.

With a ``checkpoint_dir`` the run keeps ``best.pt`` (the best model) and
``last.pt`` (everything needed to continue: model, optimiser, scheduler, random
states, history), both written atomically at the end of each epoch; calling
:func:`train` again with the same directory resumes where it stopped and ends
exactly where an uninterrupted run would.
"""

from __future__ import annotations

import math
import os
import resource
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

import torch

from perflaw.atomic import atomic_path
from perflaw.errors import PerflawError, PerflawTypeError, TrainingDiverged
from perflaw.progress import log_line, progress_bar
from perflaw.eval import RankingTask, evaluate, leave_one_out, ranking_task
from perflaw.sequences import Sequences
from perflaw.training.config import TrainConfig
from perflaw.training.data import build_train_data, epoch_batches
from perflaw.training.losses import draw_negatives, next_item_loss
from perflaw.training.models import SequentialRecommender, build_model
from perflaw.training.result import TrainResult
from perflaw.sizing import param_count

CHECKPOINT_FORMAT = 1
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
# Settings that may change between an interrupted run and its resumption.
RESUMABLE_CHANGES = ("compile",)


def train(
    seqs: Sequences,
    config: TrainConfig | None = None,
    progress: bool = True,
    checkpoint_dir: str | os.PathLike | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train a sequential recommender on ``seqs`` and evaluate it leave-one-out.

    Parameters
    ----------
    seqs : Sequences
        Users' item histories (time-ordered).
    config : TrainConfig, optional
        Settings; the defaults train llama 2 x 64 with CE on the best device.
    progress : bool
        Show a progress bar on stderr (epoch, loss, validation metric, tokens/s, ETA).
    checkpoint_dir : path, optional
        Keep ``best.pt`` and ``last.pt`` here, and resume from ``last.pt`` if present.
    callback : callable, optional
        Called with each epoch's log entry after its checkpoint is written.

    Returns
    -------
    TrainResult
        Test metrics at the best validation epoch, sizes, timing and provenance.

    Examples
    --------
    >>> seqs = Sequences.from_lists([[1, 2, 3, 4, 5]] * 8)
    >>> cfg = TrainConfig(layers=1, dim=8, max_len=4, epochs=2, device="cpu")
    >>> result = train(seqs, cfg, progress=False)
    >>> sorted(result.metrics)[:2], result.epochs_run
    (['hr@1', 'hr@10'], 2)
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise PerflawTypeError(f"config must be a perflaw.TrainConfig, got {type(config).__name__}")
    if not isinstance(seqs, Sequences):
        raise PerflawTypeError(f"seqs must be perflaw.Sequences, got {type(seqs).__name__}")
    started = time.perf_counter()
    device = resolve_device(config.device)
    n_items = config.table_size(seqs)  # checks the data against the config first
    split = leave_one_out(seqs)
    rng_devices = [device.index or 0] if device.type == "cuda" else []
    # Seed inside a forked RNG so the caller's random state is left alone.
    with torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(config.seed)
        run = _Run(seqs, split, config, device, n_items, checkpoint_dir)
        return run.fit(progress, callback, started)


def resolve_device(spec: str) -> torch.device:
    """``"auto"`` means CUDA when available, else CPU; other names are checked.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError) as exc:
        raise PerflawError(f"unknown device {spec!r}: {exc}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise PerflawError(f"device {spec!r} was requested but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise PerflawError(f"device {spec!r} does not exist: {torch.cuda.device_count()} CUDA device(s)")
    elif device.type not in ("cpu", "mps"):
        raise PerflawError(f"unsupported device {spec!r}; use 'auto', 'cpu' or 'cuda[:N]'")
    return device


def lr_factor(step: int, warmup: int, total: int, floor: float) -> float:
    """Linear warm-up to 1, then cosine decay to ``floor`` at ``total`` steps.

    Examples
    --------
    >>> [round(lr_factor(s, 2, 10, 0.1), 3) for s in (0, 1, 2, 10)]
    [0.5, 1.0, 1.0, 0.1]
    """
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def load_checkpoint(path: str | os.PathLike, device: str = "cpu") -> tuple[SequentialRecommender, TrainConfig]:
    """Rebuild the model saved in ``best.pt`` (or ``last.pt``) and its config.

    Examples
    --------
    >>> # model, config = load_checkpoint("runs/beauty/best.pt")
    """
    payload = read_checkpoint(Path(path), device)
    config = TrainConfig.from_dict(payload["config"])
    model = _build(config, payload["n_items"]).to(device)
    model.load_state_dict(payload["model"])
    model.eval()
    return model, config


# ===================================================================== helpers
def fixed_shapes(device: torch.device) -> bool:
    """Whether training batches keep a fixed shape (GPU) or are trimmed and compacted (CPU)."""
    return device.type == "cuda"


def _build(config: TrainConfig, n_items: int) -> SequentialRecommender:
    return build_model(
        config.model, n_items, config.layers, config.dim, config.attention, config.max_len, config.resolved_dropout
    )


def _peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux


def read_checkpoint(path: Path, device: torch.device | str) -> dict[str, Any]:
    """A checkpoint written by this module, or :class:`PerflawError` naming the file.

    Only tensors and plain containers are unpickled (``weights_only``), so a
    foreign or damaged file fails here instead of running code or failing later.
    """
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a damaged file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PerflawError(
            f"{path} is not a readable perflaw checkpoint ({type(error).__name__}: {reason[:160]}); "
            "delete it to start afresh or use another output folder"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise PerflawError(f"{path} is not a perflaw training checkpoint (format {CHECKPOINT_FORMAT})")
    return payload


def _save_atomic(payload: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)


@dataclass
class _Progress:
    """Everything about a run's progress that a checkpoint must restore."""

    epoch: int = 0  # epochs completed
    best_metric: float = -math.inf
    best_epoch: int = 0
    best_valid: dict[str, float] = field(default_factory=dict)
    bad_evals: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    train_s: float = 0.0
    tokens_seen: int = 0
    eval_s: float = 0.0
    eval_users: int = 0
    wall_s: float = 0.0  # wall time of earlier, interrupted parts
    done: bool = False


class _Run:
    """One training run's state and steps."""

    def __init__(
        self,
        seqs: Sequences,
        split: Any,
        config: TrainConfig,
        device: torch.device,
        n_items: int,
        checkpoint_dir: str | os.PathLike | None,
    ) -> None:
        self.seqs, self.config, self.device, self.n_items = seqs, config, device, n_items
        self.fingerprint = seqs.fingerprint()
        self.model = _build(config, n_items).to(device)
        self.forward = torch.compile(self.model) if config.compile else self.model
        # CPU: skip padding positions and trim batches (host syncs cost nothing there);
        # GPU: fixed shapes and no host sync per step.
        self.compact = not fixed_shapes(device)
        self.data = build_train_data(split.train, config.max_len, n_items, device, config.loss != "ce")
        self.eval_users = len(split.eval_users)
        self.tasks: dict[str, RankingTask] = {
            which: ranking_task(split, which, config.max_len, device, config.protocol, n_items)
            for which in ("valid", "test")
        }
        self.steps_per_epoch = self.data.steps(config.batch_size)
        self.optimizer = self._optimizer()
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            partial(lr_factor, warmup=config.warmup_steps, total=config.epochs * self.steps_per_epoch,
                    floor=config.min_lr_ratio),
        )
        self.generator = torch.Generator(device=device).manual_seed(config.seed)
        self.bad_gradients = torch.zeros((), dtype=torch.int64, device=device)  # see _train_epoch
        use_bf16 = config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda")
        self.amp_dtype = torch.bfloat16 if use_bf16 else None
        self.progress = _Progress()
        self.best_state: dict[str, torch.Tensor] | None = None
        self.directory = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.resumed_from: int | None = None
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            if (self.directory / LAST_CHECKPOINT).exists():
                self._resume(self.directory / LAST_CHECKPOINT)

    # ------------------------------------------------------------------ setup
    def _optimizer(self) -> torch.optim.Optimizer:
        # Decay matrices (projections and the item table), not norms or biases.
        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": self.config.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        fused = {"fused": True} if self.device.type == "cuda" else {}
        return torch.optim.AdamW(groups, lr=self.config.lr, betas=(0.9, 0.98), **fused)

    def _autocast(self) -> Any:
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    # ------------------------------------------------------------------- loop
    def fit(self, progress: bool, callback: Callable[[dict[str, Any]], None] | None, started: float) -> TrainResult:
        config, state = self.config, self.progress
        desc = f"train {config.model} {config.layers}x{config.dim}"
        bar = progress_bar(progress, total=config.epochs * self.steps_per_epoch,
                           initial=state.epoch * self.steps_per_epoch, unit="step", desc=desc)
        plain = progress and bar.disable  # no terminal: one plain line per epoch instead of a bar
        if self.resumed_from is not None and progress:
            log_line(f"resuming from {self.directory / LAST_CHECKPOINT} after epoch {self.resumed_from}")
        try:
            while not state.done:
                log = self._epoch(bar)
                postfix = self._postfix(log)
                bar.set_postfix(postfix, refresh=True)
                if plain:
                    log_line(f"{desc}: " + " ".join(f"{k} {v}" for k, v in postfix.items()))
                self._save(started)
                if callback is not None:
                    callback(dict(log))
        finally:
            bar.close()
        return self._result(started)

    def _epoch(self, bar: Any) -> dict[str, Any]:
        config, state = self.config, self.progress
        loss, seconds = self._train_epoch(bar)
        state.epoch += 1
        state.train_s += seconds
        state.tokens_seen += self.data.n_targets
        log: dict[str, Any] = {
            "epoch": state.epoch,
            "loss": loss,
            "lr": float(self.scheduler.get_last_lr()[0]),
            "train_s": seconds,
            "tokens_per_s": self.data.n_targets / seconds if seconds > 0 else math.nan,
            "valid": None,
        }
        last_epoch = state.epoch == config.epochs
        if state.epoch % config.eval_every == 0 or last_epoch:
            valid = self._evaluate("valid")
            log["valid"] = valid
            if valid[config.valid_metric] > state.best_metric:
                state.best_metric, state.best_epoch, state.best_valid = valid[config.valid_metric], state.epoch, valid
                state.bad_evals = 0
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                self._save_best()
            else:
                state.bad_evals += 1
        state.history.append(log)
        patience_out = config.patience is not None and state.bad_evals >= config.patience
        state.done = last_epoch or patience_out
        return log

    def _train_epoch(self, bar: Any) -> tuple[float, float]:
        self.model.train()
        started = time.perf_counter()
        total = torch.zeros((), device=self.device)
        # Steps whose gradient norm was not finite, counted on the device (no sync per step).
        self.bad_gradients = torch.zeros((), dtype=torch.int64, device=self.device)
        for inputs, targets, users in epoch_batches(self.data, self.config.batch_size, self.generator, self.compact):
            total += self._step(inputs, targets, users)
            bar.update(1)
        loss = total.item() / self.data.n_targets  # the one host sync of the epoch
        self._check_health(loss)
        return loss, time.perf_counter() - started

    def _check_health(self, loss: float) -> None:
        """Stop a run whose loss, gradients or parameters are no longer finite.

        A diverged model still ranks items (its NaN scores tie), so without this
        check its metrics would look like a result. The checkpoint of the last
        healthy epoch is kept, as this runs before the epoch is saved.
        """
        epoch = self.progress.epoch + 1
        bad_gradients = int(self.bad_gradients.item())
        finite_parameters = all(bool(torch.isfinite(p).all()) for p in self.model.parameters())
        if math.isfinite(loss) and finite_parameters and not bad_gradients:
            return
        what = [] if math.isfinite(loss) else [f"the mean loss is {loss}"]
        if bad_gradients:
            what.append(f"{bad_gradients} step(s) had a non-finite gradient norm")
        if not finite_parameters:
            what.append("the parameters hold NaN or infinite values")
        config = self.config
        raise TrainingDiverged(
            f"training diverged in epoch {epoch}: {'; '.join(what)} (lr={config.lr}, grad_clip={config.grad_clip}, "
            f"precision={config.precision}); lower the learning rate or keep gradient clipping on"
        )

    def _step(self, inputs: torch.Tensor, targets: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """One optimiser step; returns the summed (not averaged) loss, detached."""
        config = self.config
        with self._autocast():
            hidden = self.forward(inputs)
        valid = inputs != 0
        users = users[:, None].expand_as(inputs)
        if self.compact:
            hidden, targets, users, weight = hidden[valid], targets[valid], users[valid], None
        else:  # fixed shapes, no host sync: padding positions get weight 0
            hidden, targets, users = hidden.flatten(0, 1), targets.flatten(), users.flatten()
            weight = valid.flatten().float()
        negatives = None
        if config.loss != "ce":
            negatives = draw_negatives(self.data.exclusion, users, config.resolved_negatives, self.generator)
        with self._autocast():
            loss = next_item_loss(config.loss, hidden, targets, self.model.item_table(), negatives, weight)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
            self.bad_gradients += ~torch.isfinite(norm)
        self.optimizer.step()
        self.scheduler.step()
        return loss.detach() * valid.sum()

    def _evaluate(self, which: str) -> dict[str, float]:
        started = time.perf_counter()
        task = self.tasks[which]
        metrics = evaluate(
            self.model, task, self.config.protocol, self.config.resolved_eval_negatives,
            self.config.seed, self.config.eval_batch_size, self.amp_dtype,
        )
        if which == "valid":
            self.progress.eval_s += time.perf_counter() - started
            self.progress.eval_users += task.n_users
        return metrics

    def _postfix(self, log: dict[str, Any]) -> dict[str, str]:
        postfix = {"epoch": f"{log['epoch']}/{self.config.epochs}", "loss": f"{log['loss']:.4f}"}
        if log["valid"] is not None:
            postfix[self.config.valid_metric] = f"{log['valid'][self.config.valid_metric]:.4f}"
        postfix["best"] = f"{self.progress.best_metric:.4f}@{self.progress.best_epoch}"
        postfix["tok/s"] = f"{log['tokens_per_s']:,.0f}"
        return postfix

    # ------------------------------------------------------------ checkpoints
    def _identity(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "device": str(self.device),
            "n_items": self.n_items,
            "fingerprint": self.fingerprint,
        }

    def _save_best(self) -> None:
        if self.directory is None:
            return
        from perflaw import __version__

        payload = self._identity() | {
            "model": self.best_state,
            "epoch": self.progress.best_epoch,
            "valid_metrics": self.progress.best_valid,
            "perflaw_version": __version__,
        }
        _save_atomic(payload, self.directory / BEST_CHECKPOINT)

    def _save(self, started: float) -> None:
        if self.directory is None:
            return
        rng = {"torch": torch.get_rng_state(), "generator": self.generator.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        progress = vars(self.progress) | {"wall_s": self.progress.wall_s + time.perf_counter() - started}
        payload = self._identity() | {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng,
            "progress": progress,
            "best_model": self.best_state,
        }
        _save_atomic(payload, self.directory / LAST_CHECKPOINT)

    def _resume(self, path: Path) -> None:
        payload = read_checkpoint(path, self.device)
        self._check_compatible(payload, path)
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        torch.set_rng_state(payload["rng"]["torch"].cpu())
        self.generator.set_state(payload["rng"]["generator"].cpu())
        if "cuda" in payload["rng"]:
            torch.cuda.set_rng_state(payload["rng"]["cuda"].cpu(), self.device)
        self.progress = _Progress(**payload["progress"])
        self.best_state = payload["best_model"]
        self.resumed_from = self.progress.epoch

    def _check_compatible(self, payload: dict[str, Any], path: Path) -> None:
        if payload["fingerprint"] != self.fingerprint:
            raise PerflawError(
                f"{path} was made from different data (fingerprint {payload['fingerprint']}, "
                f"this data {self.fingerprint}); use another checkpoint directory"
            )
        saved = {k: v for k, v in payload["config"].items() if k not in RESUMABLE_CHANGES}
        current = {k: v for k, v in self.config.to_dict().items() if k not in RESUMABLE_CHANGES}
        differing = sorted(k for k in current if saved.get(k) != current[k])
        if payload["device"] != str(self.device):
            differing.append(f"device ({payload['device']} -> {self.device})")
        if differing:
            raise PerflawError(
                f"{path} was made with different settings ({', '.join(differing)}); "
                "resume with the same config or use another checkpoint directory"
            )

    # ----------------------------------------------------------------- result
    def _result(self, started: float) -> TrainResult:
        from perflaw import __version__

        state, config = self.progress, self.config
        self.model.load_state_dict(self.best_state)
        test = self._evaluate("test")
        seqs = self.seqs
        size = partial(
            param_count, config.model, config.layers, config.dim, self.n_items, config.max_len, config.attention
        )
        return TrainResult(
            config=config,
            metrics=test,
            valid_metrics=dict(state.best_valid),
            params=size(include_embedding=True),
            params_non_embedding=size(include_embedding=False),
            heads=config.resolved_heads,
            best_epoch=state.best_epoch,
            epochs_run=state.epoch,
            wall_s=state.wall_s + time.perf_counter() - started,
            train_s=state.train_s,
            tokens_per_s=state.tokens_seen / state.train_s if state.train_s > 0 else math.nan,
            eval_users_per_s=state.eval_users / state.eval_s if state.eval_s > 0 else math.nan,
            peak_memory_bytes=_peak_memory(self.device),
            n_items=self.n_items,
            n_users=seqs.n_users,
            tokens=seqs.tokens,
            train_tokens=self.data.n_targets,
            eval_users=self.eval_users,
            data_fingerprint=self.fingerprint,
            device=str(self.device),
            precision="bf16" if self.amp_dtype is not None else "fp32",
            perflaw_version=__version__,
            history=[dict(entry) for entry in state.history],
        )
