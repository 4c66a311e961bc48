"""The sequential recommenders: ``llama`` (default), ``hstu`` and ``sasrec``.

Every model maps left-padded item ids (B, L), 0 = padding, to hidden states
(B, L, dim), and scores items by a dot product with its item table, which is
tied to the output layer. The padding mask is derived from the ids, and no
real position ever attends to a padded or a future one, so outputs do not
depend on how much left padding a window carries.

Parameter counts equal :func:`perflaw.sizing.param_count`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from perflaw.sizing import AttentionShape, attention_shape, swiglu_hidden
from perflaw.errors import PerflawError

INIT_STD = 0.02


def attention_mask(valid: torch.Tensor) -> torch.Tensor:
    """Boolean (B, 1, L, L) mask, True where query i may attend to key j.

    Keys must be real and not in the future. A padded query may attend to
    itself only, so no softmax row is empty (its output is never used).
    """
    length = valid.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=valid.device).tril()
    eye = torch.eye(length, dtype=torch.bool, device=valid.device)
    return ((causal & valid[:, None, :]) | eye)[:, None]


class SequentialRecommender(nn.Module):
    """Shared interface: ``forward`` gives hidden states, ``score_last`` next-item scores."""

    item_embedding: nn.Embedding
    max_len: int

    def item_table(self) -> torch.Tensor:
        """The (n_items + 1, dim) item table used for scoring (row 0 is padding)."""
        return self.item_embedding.weight

    def score_last(self, items: torch.Tensor) -> torch.Tensor:
        """Scores (B, n_items + 1) of every item as the next one after each row of ``items``.

        The final product runs in float32, so bf16 rounding does not create ties.
        """
        last = self(items)[:, -1, :]
        with torch.autocast(device_type=last.device.type, enabled=False):  # autocast would recast to bf16
            return last.float() @ self.item_table().float().T

    def _check_input(self, items: torch.Tensor) -> None:
        if items.dim() != 2:
            raise PerflawError(f"items must be (batch, length), got shape {tuple(items.shape)}")
        if items.shape[1] > self.max_len:
            raise PerflawError(f"sequence length {items.shape[1]} exceeds max_len={self.max_len}")


# ======================================================================= llama
class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned scale and no bias (computed in float32)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


def rope_tables(length: int, head_dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables (length, head_dim) for rotary embedding, rotate-half layout."""
    inverse = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.arange(length, dtype=torch.float64)[:, None] * inverse[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (i, i + head_dim/2) of ``x`` (B, H, L, head_dim) by position."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


class LlamaBlock(nn.Module):
    """Pre-RMSNorm block: causal rotary attention, then a SwiGLU feed-forward."""

    def __init__(self, dim: int, heads: int, head_dim: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.head_dim, self.dropout = heads, head_dim, dropout
        width = heads * head_dim
        hidden = swiglu_hidden(dim)
        self.attn_norm = RMSNorm(dim)
        self.qkv = nn.Linear(dim, 3 * width, bias=False)
        self.out = nn.Linear(width, dim, bias=False)
        self.ffn_norm = RMSNorm(dim)
        self.gate = nn.Linear(dim, hidden, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        qkv = self.qkv(self.attn_norm(x)).view(batch, length, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, L, head_dim)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        x = x + self.drop(self.out(attended.transpose(1, 2).reshape(batch, length, -1)))
        h = self.ffn_norm(x)
        return x + self.drop(self.down(F.silu(self.gate(h)) * self.up(h)))


class Llama(SequentialRecommender):
    """Decoder-only LLaMA-style recommender (the paper's backbone).

    Pre-RMSNorm, rotary positions, SwiGLU, tied item embeddings, no biases, and
    depth-scaled initialisation of the projections that write into the residual
    stream (std 0.02 / sqrt(2 * layers)).
    """

    def __init__(self, n_items: int, layers: int, dim: int, shape: AttentionShape, max_len: int, dropout: float) -> None:
        super().__init__()
        self.max_len = max_len
        self.item_embedding = nn.Embedding(n_items + 1, dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(LlamaBlock(dim, shape.heads, shape.head_dim, dropout) for _ in range(layers))
        self.norm = RMSNorm(dim)
        cos, sin = rope_tables(max_len, shape.head_dim)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self._init(layers)

    def _init(self, layers: int) -> None:
        residual_std = INIT_STD / math.sqrt(2 * layers)
        for name, param in self.named_parameters():
            if param.dim() < 2:
                continue  # norm scales stay at one
            std = residual_std if name.endswith(("out.weight", "down.weight")) else INIT_STD
            nn.init.normal_(param, mean=0.0, std=std)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        self._check_input(items)
        length = items.shape[1]
        mask = attention_mask(items != 0)
        cos, sin = self.rope_cos[:length], self.rope_sin[:length]
        x = self.drop(self.item_embedding(items))
        for block in self.blocks:
            x = block(x, mask, cos, sin)
        return self.norm(x)


# ====================================================================== sasrec
class SASRecBlock(nn.Module):
    """The classic SASRec block (Kang & McAuley, 2018).

    Queries are layer-normed, keys and values are not; the attention output is
    added to the normed queries; a two-layer pointwise ReLU feed-forward of width
    ``dim`` follows, after its own layer norm, with a residual.
    """

    def __init__(self, dim: int, heads: int, head_dim: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.head_dim, self.dropout = heads, head_dim, dropout
        width = heads * head_dim
        self.attn_norm = nn.LayerNorm(dim, eps=1e-8)
        self.q = nn.Linear(dim, width)
        self.k = nn.Linear(dim, width)
        self.v = nn.Linear(dim, width)
        self.out = nn.Linear(width, dim)
        self.ffn_norm = nn.LayerNorm(dim, eps=1e-8)
        self.ffn_in = nn.Linear(dim, dim)
        self.ffn_out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        queries = self.attn_norm(x)
        attended = F.scaled_dot_product_attention(
            self._heads(self.q(queries)), self._heads(self.k(x)), self._heads(self.v(x)),
            attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
        )
        x = queries + self.drop(self.out(attended.transpose(1, 2).reshape(batch, length, -1)))
        x = self.ffn_norm(x)
        x = x + self.drop(self.ffn_out(self.drop(F.relu(self.ffn_in(x)))))
        return x * keep


class SASRec(SequentialRecommender):
    """SASRec: learned absolute positions, embeddings scaled by sqrt(dim), dropout.

    Positions count back from the end of the window (the last input item always
    has position ``max_len - 1``), as in the reference implementation's
    left-padded batches.
    """

    def __init__(self, n_items: int, layers: int, dim: int, shape: AttentionShape, max_len: int, dropout: float) -> None:
        super().__init__()
        self.max_len, self.dim = max_len, dim
        self.item_embedding = nn.Embedding(n_items + 1, dim)
        self.position_embedding = nn.Embedding(max_len, dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(SASRecBlock(dim, shape.heads, shape.head_dim, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim, eps=1e-8)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        self._check_input(items)
        length = items.shape[1]
        valid = items != 0
        keep = valid[..., None].to(self.item_embedding.weight.dtype)
        positions = torch.arange(self.max_len - length, self.max_len, device=items.device)
        x = self.item_embedding(items) * math.sqrt(self.dim) + self.position_embedding(positions)
        x = self.drop(x) * keep
        mask = attention_mask(valid)
        for block in self.blocks:
            x = block(x, mask, keep)
        return self.norm(x)


# ======================================================================== hstu
class HSTUBlock(nn.Module):
    """HSTU layer (Zhai et al., 2024): pointwise SiLU attention with a U gate, no FFN.

    ``U, V, Q, K = SiLU(W x)``; attention weights are ``SiLU(QK^T + rab) / n``
    on causal, real keys (``n`` = ``max_len``, fixed, so padding never changes
    an output); the attended values are layer-normed, gated by U, projected and
    added to the residual. The layer norms have no weights, as in the reference.
    """

    def __init__(self, dim: int, heads: int, head_dim: int, max_len: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.head_dim, self.max_len = heads, head_dim, max_len
        self.width = heads * head_dim
        self.uvqk = nn.Linear(dim, 4 * self.width, bias=False)
        self.out = nn.Linear(self.width, dim)
        self.relative_bias = nn.Parameter(torch.zeros(max_len))  # by distance i - j
        self.drop = nn.Dropout(dropout)
        nn.init.xavier_uniform_(self.uvqk.weight)
        nn.init.xavier_uniform_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        nn.init.normal_(self.relative_bias, std=INIT_STD)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        normed = F.layer_norm(x, (dim,))
        u, v, q, k = F.silu(self.uvqk(normed)).split(self.width, dim=-1)
        split = lambda t: t.view(batch, length, self.heads, self.head_dim).transpose(1, 2)  # noqa: E731
        logits = split(q) @ split(k).transpose(-1, -2) + self.relative_bias[distance]
        weights = F.silu(logits) / self.max_len * allowed
        attended = (weights @ split(v)).transpose(1, 2).reshape(batch, length, self.width)
        attended = F.layer_norm(attended, (self.width,))
        return x + self.out(self.drop(u * attended))


class HSTU(SequentialRecommender):
    """A stack of HSTU layers over sqrt(dim)-scaled item embeddings, with a final layer norm."""

    def __init__(self, n_items: int, layers: int, dim: int, shape: AttentionShape, max_len: int, dropout: float) -> None:
        super().__init__()
        self.max_len, self.dim = max_len, dim
        self.item_embedding = nn.Embedding(n_items + 1, dim)
        nn.init.normal_(self.item_embedding.weight, std=INIT_STD)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            HSTUBlock(dim, shape.heads, shape.head_dim, max_len, dropout) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)
        offsets = torch.arange(max_len)
        self.register_buffer("distance", (offsets[:, None] - offsets[None, :]).clamp(min=0), persistent=False)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        self._check_input(items)
        length = items.shape[1]
        valid = items != 0
        causal = torch.ones(length, length, dtype=torch.bool, device=items.device).tril()
        x = self.drop(self.item_embedding(items) * math.sqrt(self.dim))
        allowed = (causal & valid[:, None, :])[:, None].to(x.dtype)
        distance = self.distance[:length, :length]
        for block in self.blocks:
            x = block(x, allowed, distance)
        return self.norm(x)


MODEL_CLASSES = {"llama": Llama, "hstu": HSTU, "sasrec": SASRec}


def build_model(
    model: str,
    n_items: int,
    layers: int,
    dim: int,
    heads: int | AttentionShape | None,
    max_len: int,
    dropout: float = 0.0,
) -> SequentialRecommender:
    """Construct a model by name.

    ``heads`` is a head count, ``None`` for the automatic one, or the
    ``AttentionShape`` a ``TrainConfig`` resolved already; the head count
    is resolved here once and the models take the shape as given.

    Examples
    --------
    >>> m = build_model("llama", n_items=10, layers=1, dim=8, heads=None, max_len=5)
    >>> m.score_last(torch.tensor([[0, 3, 4]])).shape
    torch.Size([1, 11])
    """
    if model not in MODEL_CLASSES:
        raise PerflawError(f"unknown model {model!r}; choose one of {list(MODEL_CLASSES)}")
    return MODEL_CLASSES[model](n_items, layers, dim, attention_shape(model, dim, heads), max_len, dropout)
