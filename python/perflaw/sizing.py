"""Model sizes without torch: head-count rule and exact parameter counts.

The law fitter and the budget optimum need a model's parameter count for a
given (layers, dim) without building the model, so the formulas live here in
plain Python. ``tests/test_train_sizing.py`` checks that they equal
``sum(p.numel() for p in model.parameters())`` of the real torch models.

Head-count rule
---------------
* ``llama`` rotates channel pairs (RoPE), so its head size must be even. The
  attention width is ``dim`` when ``dim`` is even and ``dim + 1`` when it is odd
  (no even head size divides an odd number): q, k, v project ``dim -> width``
  and the output projects ``width -> dim``.
* ``sasrec`` and ``hstu`` have no rotary embedding: their attention width is
  ``dim`` and any head count dividing it is valid.
* Automatic choice (``heads=None``): among the valid head counts, the one whose
  head size is closest to 32, ties going to fewer heads. For example
  ``llama``: d=25 -> 1 head of 26, d=50 -> 1 x 50, d=64 -> 2 x 32,
  d=75 -> 2 x 38, d=100 -> 5 x 20.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from perflaw.errors import PerflawError, PerflawTypeError

MODELS = ("llama", "hstu", "sasrec")

# Preferred head size for the automatic head count.
TARGET_HEAD_DIM = 32


@dataclass(frozen=True)
class AttentionShape:
    """Head count and head size of a model's attention.

    Examples
    --------
    >>> attention_shape("llama", 75)
    AttentionShape(heads=2, head_dim=38)
    >>> attention_shape("llama", 75).width
    76
    """

    heads: int
    head_dim: int

    @property
    def width(self) -> int:
        """Total attention width, ``heads * head_dim``."""
        return self.heads * self.head_dim


def attention_width(model: str, dim: int) -> int:
    """Width of the attention projections for ``model`` at embedding size ``dim``.

    Examples
    --------
    >>> attention_width("llama", 25), attention_width("sasrec", 25)
    (26, 25)
    """
    _check_model(model)
    dim = _check_int(dim, "dim", 1)
    if model == "llama" and dim % 2:
        return dim + 1
    return dim


def valid_heads(model: str, dim: int) -> list[int]:
    """All head counts the rule allows for ``model`` at ``dim``, ascending.

    Examples
    --------
    >>> valid_heads("llama", 64)
    [1, 2, 4, 8, 16, 32]
    >>> valid_heads("sasrec", 6)
    [1, 2, 3, 6]
    """
    width = attention_width(model, dim)
    need_even = model == "llama"
    return [
        h
        for h in range(1, width + 1)
        if width % h == 0 and (not need_even or (width // h) % 2 == 0)
    ]


def pick_heads(dim: int, model: str = "llama") -> int:
    """The automatic head count: valid, with head size closest to 32 (ties: fewer heads).

    Examples
    --------
    >>> [pick_heads(d) for d in (25, 50, 64, 75, 100)]
    [1, 1, 2, 2, 5]
    >>> pick_heads(64, model="sasrec")
    2
    """
    width = attention_width(model, dim)
    return min(valid_heads(model, dim), key=lambda h: (abs(width // h - TARGET_HEAD_DIM), h))


def attention_shape(model: str, dim: int, heads: "int | AttentionShape | None" = None) -> AttentionShape:
    """Resolve the head count (automatic when ``None``) and check it against the rule.

    A shape resolved before (an ``AttentionShape``) is passed through after a
    check of its width, so that a config resolves its heads once and hands the
    result on to the model builder and the parameter count.

    Raises
    ------
    ValueError
        When ``heads`` does not fit ``dim`` under the rule; the message lists the valid counts.

    Examples
    --------
    >>> attention_shape("sasrec", 64, heads=4)
    AttentionShape(heads=4, head_dim=16)
    """
    width = attention_width(model, dim)
    if isinstance(heads, AttentionShape):
        if heads.width != width:
            raise PerflawError(f"{heads} does not fit model={model!r} with dim={dim} (attention width {width})")
        return heads
    if heads is None:
        heads = pick_heads(dim, model)
    heads = _check_int(heads, "heads", 1)
    allowed = valid_heads(model, dim)
    if heads not in allowed:
        why = "an even head size dividing" if model == "llama" else "a head count dividing"
        raise PerflawError(
            f"heads={heads} is not valid for model={model!r} with dim={dim}: the rule needs "
            f"{why} the attention width {width}; valid head counts are {allowed}"
        )
    return AttentionShape(heads=heads, head_dim=width // heads)


def swiglu_hidden(dim: int) -> int:
    """Hidden width of llama's SwiGLU feed-forward: 2/3 of 4*dim, rounded up to a multiple of 8.

    Examples
    --------
    >>> swiglu_hidden(64), swiglu_hidden(25)
    (176, 72)
    """
    dim = _check_int(dim, "dim", 1)
    return 8 * -(-dim // 3)  # ceil(8 * dim / 3 / 8) * 8 == ceil(dim / 3) * 8


def param_count(
    model: str,
    layers: int,
    dim: int,
    n_items: int,
    max_len: int = 50,
    heads: "int | AttentionShape | None" = None,
    include_embedding: bool = True,
) -> int:
    """Exact number of trainable parameters of a model built by :func:`perflaw.train`.

    The item table has ``n_items + 1`` rows (row 0 is padding) and is tied to the
    output layer, so it is counted once. ``include_embedding=False`` leaves out
    the item table and, for ``sasrec``, the learned position table (the
    "non-embedding" count of the scaling-law literature).

    Parameters
    ----------
    model : {"llama", "hstu", "sasrec"}
    layers, dim : int
        Number of blocks and embedding size.
    n_items : int
        Catalogue size (dense ids 1..n_items).
    max_len : int
        Longest input sequence (sets sasrec's position table and hstu's bias table).
    heads : int, AttentionShape or None
        Head count (or a shape resolved already); ``None`` applies :func:`pick_heads`.
    include_embedding : bool
        Count the embedding tables.

    Examples
    --------
    >>> param_count("llama", 2, 64, n_items=100)
    107136
    >>> param_count("llama", 2, 64, n_items=100, include_embedding=False)
    100672
    """
    _check_model(model)
    layers = _check_int(layers, "layers", 1)
    dim = _check_int(dim, "dim", 1)
    n_items = _check_int(n_items, "n_items", 1)
    max_len = _check_int(max_len, "max_len", 2)
    shape = attention_shape(model, dim, heads)
    body = layers * _block_params(model, dim, shape, max_len) + _final_norm_params(model, dim)
    if not include_embedding:
        return body
    embeddings = (n_items + 1) * dim
    if model == "sasrec":
        embeddings += max_len * dim
    return body + embeddings


def _block_params(model: str, dim: int, shape: AttentionShape, max_len: int) -> int:
    width = shape.width
    if model == "llama":
        hidden = swiglu_hidden(dim)
        norms = 2 * dim  # two RMSNorm weights
        attention = 3 * dim * width + width * dim  # q, k, v and output, no biases
        return norms + attention + 3 * dim * hidden  # gate, up, down
    if model == "sasrec":
        norms = 2 * 2 * dim  # two LayerNorms, weight and bias
        attention = 4 * dim * width + 3 * width + dim  # q, k, v, out with biases
        ffn = 2 * (dim * dim + dim)  # two pointwise layers of width dim, with biases
        return norms + attention + ffn
    # hstu: one fused U,V,Q,K projection (no bias), the output projection (with
    # bias) and a relative position bias table; its layer norms have no weights.
    return dim * 4 * width + width * dim + dim + max_len


def _final_norm_params(model: str, dim: int) -> int:
    return dim if model == "llama" else 2 * dim  # RMSNorm weight / LayerNorm weight+bias


def _check_model(model: Any) -> None:
    if model not in MODELS:
        raise PerflawError(f"unknown model {model!r}; choose one of {list(MODELS)}")


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, np.integer):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PerflawTypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise PerflawError(f"{name} must be >= {minimum}, got {value}")
    return value
