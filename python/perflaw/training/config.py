"""``TrainConfig``: every setting of one training run, checked on construction.

Torch is not imported here, so configs can be built, validated and stored by
the sweep runner and the law fitter without the training stack.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from perflaw.eval import METRIC_NAMES
from perflaw.sizing import MODELS, AttentionShape, attention_shape
from perflaw.fields import setting
from perflaw.errors import PerflawError, PerflawTypeError

LOSSES = ("ce", "bce", "sampled_softmax")
PROTOCOLS = ("full", "sampled")
PRECISIONS = ("auto", "bf16", "fp32")

# Dropout used when ``dropout=None``: the small public datasets overfit quickly,
# so every model regularises by default (0.5 is SASRec's published setting).
DEFAULT_DROPOUT = {"llama": 0.3, "hstu": 0.3, "sasrec": 0.5}
DEFAULT_SAMPLED_SOFTMAX_NEGATIVES = 100
DEFAULT_EVAL_NEGATIVES = 100
# Device names a run may ask for (whether the device is there is checked when training starts).
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run.

    Attributes
    ----------
    model : {"llama", "hstu", "sasrec"}
        Backbone. ``llama`` is the paper's.
    layers, dim : int
        Number of blocks and embedding size (any ``dim >= 1``).
    heads : int or None
        Attention heads; ``None`` applies :func:`perflaw.sizing.pick_heads`.
    max_len : int
        Longest input sequence (>= 2); longer histories keep their last items.
    loss : {"ce", "bce", "sampled_softmax"}
        Full softmax (default), binary cross-entropy with sampled negatives, or a
        softmax over the target and ``negatives`` sampled items.
    negatives : int or None
        Negatives per position: ``bce`` defaults to 1 (the paper),
        ``sampled_softmax`` to 100; must stay ``None`` for ``ce``.
    epochs, batch_size : int
        Maximum epochs (early stopping may end sooner) and training windows per step.
    lr, weight_decay : float
        AdamW learning rate and decoupled weight decay (matrices only).
    warmup_steps : int
        Linear warm-up steps before the cosine decay.
    min_lr_ratio : float
        Final learning rate of the cosine schedule, relative to ``lr``.
    grad_clip : float or None
        Global gradient-norm clip; ``None`` disables it.
    dropout : float or None
        Dropout probability; ``None`` uses the model's default (``DEFAULT_DROPOUT``).
    seed : int
        Seeds initialisation, batch order, dropout and negatives.
    device : str
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    protocol : {"full", "sampled"}
        Evaluation over the whole catalogue, or against ``eval_negatives`` sampled items.
    eval_negatives : int or None
        Sampled-protocol negatives (2499 reproduces the paper, 100 the SASRec paper;
        default 100). Must stay ``None`` for ``full``.
    patience : int or None
        Stop after this many evaluations without improvement; ``None`` never stops early.
    valid_metric : str
        Metric that picks the best epoch, e.g. ``"ndcg@10"``.
    eval_every : int
        Evaluate on the validation targets every this many epochs.
    eval_batch_size : int
        Users per evaluation batch.
    compile : bool
        Wrap the model in ``torch.compile``.
    precision : {"auto", "bf16", "fp32"}
        ``auto`` is bf16 autocast on CUDA and fp32 elsewhere.
    n_items : int or None
        Size of the item table; ``None`` uses the data's catalogue size.

    Examples
    --------
    >>> TrainConfig(model="sasrec", dim=50).resolved_heads
    2
    >>> TrainConfig(loss="bce").resolved_negatives
    1
    """

    model: str = setting("llama", "backbone; llama is the paper's", choices=MODELS)
    layers: int = setting(2, "number of blocks")
    dim: int = setting(64, "embedding size")
    heads: int | None = setting(None, "attention heads", unset="automatic, head size near 32")
    max_len: int = setting(50, "longest input sequence; longer histories keep their last items")
    loss: str = setting("ce", "training loss", choices=LOSSES)
    negatives: int | None = setting(
        None, "negatives per position", unset=f"bce 1, sampled_softmax {DEFAULT_SAMPLED_SOFTMAX_NEGATIVES}"
    )
    epochs: int = setting(200, "maximum epochs; early stopping (--patience) usually ends sooner")
    batch_size: int = setting(256, "training windows per step")
    lr: float = setting(1e-3, "AdamW learning rate")
    weight_decay: float = setting(0.0, "AdamW decoupled weight decay, on matrices only")
    warmup_steps: int = setting(100, "linear warm-up steps before the cosine decay")
    min_lr_ratio: float = setting(0.1, "final learning rate of the cosine decay, relative to --lr")
    grad_clip: float | None = setting(1.0, "global gradient-norm clip", zero_disables=True)
    dropout: float | None = setting(
        None, "dropout probability", unset=", ".join(f"{m} {p}" for m, p in DEFAULT_DROPOUT.items())
    )
    seed: int = setting(0, "seeds initialisation, batch order, dropout and negatives")
    device: str = setting("auto", "auto (CUDA when available, else CPU), cpu, cuda or cuda:N")
    protocol: str = setting("full", "evaluation over the whole catalogue, or sampled negatives", choices=PROTOCOLS)
    eval_negatives: int | None = setting(
        None, "negatives of the sampled protocol (2499 reproduces the paper, 100 the SASRec paper)",
        unset=f"{DEFAULT_EVAL_NEGATIVES} with --protocol sampled",
    )
    patience: int | None = setting(10, "early-stopping patience, in evaluations", zero_disables=True)
    valid_metric: str = setting("ndcg@10", "metric that picks the best epoch", choices=METRIC_NAMES)
    eval_every: int = setting(1, "validate every this many epochs")
    eval_batch_size: int = setting(1024, "users per evaluation batch")
    compile: bool = setting(False, "wrap the model in torch.compile")
    precision: str = setting("auto", "auto is bf16 autocast on CUDA and fp32 elsewhere", choices=PRECISIONS)
    n_items: int | None = setting(None, "size of the item table", unset="the data's catalogue")

    def __post_init__(self) -> None:
        _choice(self.model, "model", MODELS)
        _choice(self.loss, "loss", LOSSES)
        _choice(self.protocol, "protocol", PROTOCOLS)
        _choice(self.precision, "precision", PRECISIONS)
        _choice(self.valid_metric, "valid_metric", METRIC_NAMES)
        for name, minimum in [
            ("layers", 1), ("dim", 1), ("max_len", 2), ("epochs", 1), ("batch_size", 1),
            ("warmup_steps", 0), ("seed", 0), ("eval_every", 1), ("eval_batch_size", 1),
        ]:
            _int(getattr(self, name), name, minimum)
        for name in ("heads", "patience", "n_items", "negatives", "eval_negatives"):
            if getattr(self, name) is not None:
                _int(getattr(self, name), name, 1)
        # The one place the head count is resolved (raises for a bad one); the
        # model builder and the parameter count take this shape as it is.
        object.__setattr__(self, "_attention", attention_shape(self.model, self.dim, self.heads))
        _number(self.lr, "lr", low=0.0, low_open=True)
        _number(self.weight_decay, "weight_decay", low=0.0)
        _number(self.min_lr_ratio, "min_lr_ratio", low=0.0, high=1.0)
        if self.grad_clip is not None:
            _number(self.grad_clip, "grad_clip", low=0.0, low_open=True)
        if self.dropout is not None:
            _number(self.dropout, "dropout", low=0.0, high=1.0, high_open=True)
        if self.loss == "ce" and self.negatives is not None:
            raise PerflawError(
                f"negatives={self.negatives} has no meaning for loss='ce' (a full softmax); "
                "use loss='sampled_softmax' or leave negatives unset"
            )
        if self.protocol == "full" and self.eval_negatives is not None:
            raise PerflawError(
                f"eval_negatives={self.eval_negatives} needs protocol='sampled'; "
                "the 'full' protocol ranks the whole catalogue"
            )
        if not isinstance(self.device, str) or not self.device:
            raise PerflawTypeError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise PerflawError(f"unknown device {self.device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
        if not isinstance(self.compile, bool):
            raise PerflawTypeError(f"compile must be True or False, got {self.compile!r}")

    # ------------------------------------------------------------ resolved
    @property
    def attention(self) -> AttentionShape:
        """Head count and head size actually used (automatic when ``heads`` is None)."""
        return self._attention  # type: ignore[attr-defined]  # set once by __post_init__

    @property
    def resolved_heads(self) -> int:
        """The head count actually used (automatic when ``heads`` is None)."""
        return self.attention.heads

    @property
    def resolved_negatives(self) -> int | None:
        """Negatives per position actually used (None for ``ce``)."""
        if self.loss == "ce":
            return None
        if self.negatives is not None:
            return self.negatives
        return 1 if self.loss == "bce" else DEFAULT_SAMPLED_SOFTMAX_NEGATIVES

    @property
    def resolved_eval_negatives(self) -> int | None:
        """Evaluation negatives actually used (None for the ``full`` protocol)."""
        if self.protocol == "full":
            return None
        return self.eval_negatives if self.eval_negatives is not None else DEFAULT_EVAL_NEGATIVES

    @property
    def resolved_dropout(self) -> float:
        """Dropout probability actually used."""
        return self.dropout if self.dropout is not None else DEFAULT_DROPOUT[self.model]

    def table_size(self, seqs: Any) -> int:
        """The item table size for ``seqs``, after checking the data fits these settings.

        The sweep calls this for every run before anything is trained, so a
        setting that cannot work with the data fails once, up front.

        Examples
        --------
        >>> from perflaw.sequences import Sequences
        >>> TrainConfig().table_size(Sequences.from_lists([[1, 2, 3]]))
        3
        >>> TrainConfig(protocol="sampled", eval_negatives=5).table_size(Sequences.from_lists([[1, 2, 3]]))
        Traceback (most recent call last):
        ...
        perflaw.errors.PerflawError: eval_negatives=5 is not below the catalogue of 3 items: ...
        """
        if seqs.n_users == 0 or seqs.tokens == 0:
            raise PerflawError(f"the data is empty: {seqs!r}")
        largest = int(seqs.items.max())
        n_items = seqs.n_items if self.n_items is None else self.n_items
        if largest > n_items or int(seqs.items.min()) < 1:
            raise PerflawError(
                f"item id {largest} lies beyond the embedding table of {n_items} items "
                f"(ids must be 1..{n_items}; n_items={self.n_items})"
            )
        negatives = self.resolved_eval_negatives
        if negatives is not None and negatives >= n_items:
            raise PerflawError(
                f"eval_negatives={negatives} is not below the catalogue of {n_items} items: the sampled "
                "ranking would hold (nearly) every item, so every HR@K would be the same; use fewer "
                "negatives or protocol='full'"
            )
        return n_items

    # ------------------------------------------------------------- storage
    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict (JSON-ready).

        Examples
        --------
        >>> TrainConfig.from_dict(TrainConfig(dim=32).to_dict()) == TrainConfig(dim=32)
        True
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build from :meth:`to_dict` output; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise PerflawError(f"unknown TrainConfig field(s) {unknown}; known fields are {sorted(known)}")
        return cls(**values)


def _choice(value: Any, name: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise PerflawError(f"unknown {name} {value!r}; choose one of {list(options)}")


def _int(value: Any, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PerflawTypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise PerflawError(f"{name} must be >= {minimum}, got {value}")


def _number(
    value: Any,
    name: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PerflawTypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise PerflawError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise PerflawError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise PerflawError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
