"""Next-item losses over the tied item table.

* ``ce``: softmax over the whole catalogue (items 1..n; padding is never a class).
* ``bce``: the target against sampled negatives, each a separate binary
  example: ``softplus(-s_pos) + sum_j softplus(s_neg_j)``. With one negative per
  position this is SASRec's and the paper's loss.
* ``sampled_softmax``: softmax over the target and its sampled negatives.

Negatives are drawn uniformly from the items outside the user's training
items (:meth:`perflaw.sampling.ExclusionIndex.draw`). Losses are computed in
float32 and averaged over real positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from perflaw.sampling import ExclusionIndex
from perflaw.errors import PerflawError

NEGATIVE_BITS = 31


def draw_negatives(
    exclusion: ExclusionIndex, users: torch.Tensor, k: int, generator: torch.Generator
) -> torch.Tensor:
    """``k`` negatives (P, k) per position of ``users`` (P,), outside each user's training items."""
    bits = torch.randint(
        0, 2**NEGATIVE_BITS, (users.shape[0], k), generator=generator, device=users.device
    )
    return exclusion.draw(users[:, None], bits, NEGATIVE_BITS)


def next_item_loss(
    kind: str,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    table: torch.Tensor,
    negatives: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean loss over positions.

    Parameters
    ----------
    kind : {"ce", "bce", "sampled_softmax"}
    hidden : (P, dim)
        Model outputs at the positions.
    targets : (P,)
        Next items (1..n_items); entries with zero ``weight`` may be 0.
    table : (n_items + 1, dim)
        Item table (row 0 is padding).
    negatives : (P, k), optional
        Required by ``bce`` and ``sampled_softmax``.
    weight : (P,), optional
        1 for real positions, 0 for padding; ``None`` means all are real.

    Examples
    --------
    >>> table = torch.eye(3)
    >>> h = torch.tensor([[0.0, 0.0, 5.0]])
    >>> round(next_item_loss("ce", h, torch.tensor([2]), table).item(), 4)
    0.0067
    """
    if kind == "ce":
        logits = (hidden @ table[1:].T).float()
        per_position = F.cross_entropy(logits, (targets - 1).clamp(min=0), reduction="none")
    elif kind in ("bce", "sampled_softmax"):
        if negatives is None:
            raise PerflawError(f"loss {kind!r} needs negatives")
        positive = (hidden * table[targets]).sum(-1).float()
        negative = torch.einsum("pd,pkd->pk", hidden, table[negatives]).float()
        if kind == "bce":
            per_position = F.softplus(-positive) + F.softplus(negative).sum(-1)
        else:
            logits = torch.cat([positive[:, None], negative], dim=1)
            per_position = torch.logsumexp(logits, dim=1) - positive
    else:
        raise PerflawError(f"unknown loss {kind!r}; choose one of ['ce', 'bce', 'sampled_softmax']")
    if weight is None:
        return per_position.mean()
    return (per_position * weight).sum() / weight.sum().clamp(min=1)
