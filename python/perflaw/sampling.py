"""Exact uniform draws of items outside a per-row exclusion set, on NumPy or torch.

Shared by the evaluator (sampled-protocol negatives) and the trainer (negatives
of the ``bce`` and ``sampled_softmax`` losses). :class:`ExclusionIndex` turns
each row's excluded items into one sorted key array, so a draw is a single
``searchsorted``; :func:`hash_bits` is a counter-based generator, a pure
function of (seed, tag, user, draw index), so a draw never depends on the
device or the batch. Arrays in, the same kind of arrays out; torch is never
imported here unless a tensor is passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from perflaw.errors import PerflawError

_MASK32 = 0xFFFFFFFF


@dataclass(frozen=True)
class ExclusionIndex:
    """Per-row sets of excluded items, laid out for exact uniform draws from the rest.

    For row ``r`` with sorted excluded items ``e_0 < e_1 < ...`` (0-based), the
    ``x``-th allowed item is ``x + #{i : e_i - i <= x}``, so one sorted array of
    keys ``r * (n_items + 1) + (e_i - i)`` answers every row with one
    ``searchsorted``: no loops, no rejection, no host round trip.

    Attributes are NumPy arrays or torch tensors (see :meth:`to`).
    """

    keys: Any
    starts: Any
    counts: Any
    n_items: int

    @classmethod
    def build(cls, rows: Any, items: Any, n_rows: int, n_items: int) -> "ExclusionIndex":
        """From (row, item) pairs, items in 1..n_items; duplicates are fine.

        Examples
        --------
        >>> index = ExclusionIndex.build([0, 0, 1], [2, 2, 1], n_rows=2, n_items=3)
        >>> index.counts.tolist()
        [1, 1]
        """
        rows = np.asarray(rows, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        if items.size and (items.min() < 1 or items.max() > n_items):
            raise PerflawError(f"excluded items must lie in 1..{n_items}, got {items.min()}..{items.max()}")
        order = np.lexsort((items, rows))
        rows, items = rows[order], items[order]
        first = np.ones(len(rows), dtype=bool)
        first[1:] = (rows[1:] != rows[:-1]) | (items[1:] != items[:-1])
        rows, items = rows[first], items[first]
        counts = np.bincount(rows, minlength=n_rows).astype(np.int64)
        starts = np.zeros(n_rows, dtype=np.int64)
        np.cumsum(counts[:-1], out=starts[1:])
        rank_in_row = np.arange(len(rows), dtype=np.int64) - starts[rows]
        keys = rows * (n_items + 1) + (items - 1 - rank_in_row)
        return cls(keys=keys, starts=starts, counts=counts, n_items=int(n_items))

    def to(self, device: Any) -> "ExclusionIndex":
        """The same index as torch tensors on ``device``."""
        import torch

        move = lambda a: torch.tensor(np.asarray(a), dtype=torch.int64, device=device)  # noqa: E731
        return ExclusionIndex(move(self.keys), move(self.starts), move(self.counts), self.n_items)

    def draw(self, rows: Any, bits: Any, n_bits: int) -> Any:
        """Allowed items (1-based) for ``rows`` from uniform integers ``bits`` in [0, 2**n_bits).

        A row whose exclusion covers the whole catalogue draws from all items.
        ``rows`` and ``bits`` broadcast; NumPy in, NumPy out; torch in, torch out.
        """
        n = self.n_items
        allowed = n - self.counts[rows]
        has_room = allowed > 0
        offset = (bits * _maximum(allowed, 1)) >> n_bits  # uniform in [0, allowed)
        query = rows * (n + 1) + offset
        skipped = _searchsorted(self.keys, query) - self.starts[rows]
        anywhere = ((bits * n) >> n_bits) + 1
        return _where(has_room, offset + skipped + 1, anywhere)


def hash_bits(seed: int, tag: int, users: Any, draws: Any) -> Any:
    """32-bit pseudo-random integers, a pure function of (seed, tag, user, draw index).

    Works on int64 NumPy arrays or torch tensors (broadcasting ``users`` against
    ``draws``), so sampled negatives are identical on every device and batch size.

    Examples
    --------
    >>> a = hash_bits(0, 1, np.array([[3]]), np.arange(4)[None, :])
    >>> bool((a == hash_bits(0, 1, np.array([[3]]), np.arange(4)[None, :])).all()), int(a.max()) < 2**32
    (True, True)
    """
    base = _mix32((int(seed) * 0x9E3779B1 + int(tag) * 0x85EBCA77) & _MASK32)
    state = _mix32((users * 0x2C1B3C6D + base) & _MASK32)
    return _mix32((state + draws * 0x297A2D39) & _MASK32)


def _mix32(x: Any) -> Any:
    # Two xor-shift-multiply rounds on 32-bit values held in int64; the
    # multiplier is < 2**27, so no product overflows.
    x = (((x >> 16) ^ x) * 0x45D9F3B) & _MASK32
    x = (((x >> 16) ^ x) * 0x45D9F3B) & _MASK32
    return (x >> 16) ^ x


def is_torch(x: Any) -> bool:
    """Whether ``x`` is a torch tensor (checked without importing torch)."""
    return type(x).__module__.startswith("torch")


def _searchsorted(keys: Any, query: Any) -> Any:
    if is_torch(keys):
        import torch

        return torch.searchsorted(keys, query.contiguous(), right=True)
    return np.searchsorted(keys, query, side="right")


def _where(condition: Any, a: Any, b: Any) -> Any:
    if is_torch(condition):
        import torch

        return torch.where(condition, a, b)
    return np.where(condition, a, b)


def _maximum(a: Any, value: int) -> Any:
    return a.clamp(min=value) if is_torch(a) else np.maximum(a, value)
