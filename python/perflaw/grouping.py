"""Rows of interactions grouped into users, as plain CSR arrays.

One grouping serves the file readers (:mod:`perflaw.ingest`) and
:meth:`perflaw.sequences.Sequences.from_table`. Ids are hashed (pyarrow's
dictionary encoding) rather than sorted, only the distinct values are sorted,
and rows that are already in order are not sorted at all.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow.compute as pc

from perflaw.arrays import arrow_view, numpy_view, string_array

__all__ = ["Grouped", "group_rows", "dense_ids", "stable_argsort", "run_heads"]


class Grouped(NamedTuple):
    """Users' item sequences in CSR form, items relabelled densely."""

    offsets: np.ndarray  # int64, users + 1
    items: np.ndarray  # int64 dense item indices 1..n_items, per user in order
    user_ids: np.ndarray  # the raw id of each user
    item_vocab: np.ndarray  # the raw id of each dense item, sorted


def group_rows(users: np.ndarray, items: np.ndarray, times: np.ndarray | None, user_order: str) -> Grouped:
    """Group rows into users: ``"first"`` (first appearance) or ``"sorted"`` id order.

    Within a user, items are ordered by ``times`` with a stable sort, so rows
    with equal times (or without times) keep their order. Items are numbered
    1..n_items in sorted raw-id order.
    """
    key, user_ids = _user_keys(users, user_order)
    order = _grouping_order(key, len(user_ids), times)
    ordered = items if order is None else items[order]
    offsets = np.zeros(len(user_ids) + 1, dtype=np.int64)
    np.cumsum(np.bincount(key, minlength=len(user_ids)), out=offsets[1:])
    dense, vocabulary = dense_ids(ordered)
    return Grouped(offsets, dense, user_ids, vocabulary)


def run_heads(users: np.ndarray, previous_last: object) -> np.ndarray:
    """Positions where a new run of equal users starts (none at 0 if it continues ``previous_last``)."""
    change = np.ones(len(users), dtype=bool)
    change[1:] = users[1:] != users[:-1]
    if previous_last is not None and len(users) and users[0] == previous_last:
        change[0] = False
    return np.flatnonzero(change)


def _user_keys(users: np.ndarray, user_order: str) -> tuple[np.ndarray, np.ndarray]:
    """(index of each row's user, the user ids), users in ``user_order``."""
    heads = run_heads(users, None)
    run_users = users[heads]
    if user_order == "sorted" and bool((run_users[1:] > run_users[:-1]).all()):
        return _run_index(heads, len(users)), run_users  # sorted runs: nothing to do
    if user_order == "first" and _distinct(run_users):
        return _run_index(heads, len(users)), run_users  # one run per user: file order
    codes, first_seen = dense_ids(users, sort=user_order == "sorted")
    return codes - 1, first_seen


def _run_index(heads: np.ndarray, n: int) -> np.ndarray:
    """For each of ``n`` rows, the number of the run it belongs to."""
    starts = np.zeros(n, dtype=np.int64)
    starts[heads[1:]] = 1
    return np.cumsum(starts)


def _distinct(values: np.ndarray) -> bool:
    return len(values) == 0 or pc.count_distinct(arrow_view(values)).as_py() == len(values)


def _grouping_order(key: np.ndarray, n_keys: int, times: np.ndarray | None) -> np.ndarray | None:
    """The stable order that groups rows by ``key``, then time; None when rows are in order."""
    steps = np.diff(key)
    if (steps >= 0).all():
        # Compare neighbours, never subtract them: a difference of unsigned
        # times wraps around and would make any order look sorted.
        if times is None or ((times[1:] >= times[:-1]) | (steps != 0)).all():
            return None
    if times is None:
        return stable_argsort(key, n_keys)
    by_time = np.argsort(times, kind="stable")
    return by_time[stable_argsort(key[by_time], n_keys)]


def stable_argsort(key: np.ndarray, n_keys: int) -> np.ndarray:
    """``argsort(key, kind="stable")`` for keys in [0, n_keys), by 16-bit radix passes.

    NumPy radix-sorts 16-bit integers in linear time; two passes cover keys
    below 2**32 (least significant half first, so the result stays stable).
    """
    if n_keys <= 1 << 16:
        return np.argsort(key.astype(np.uint16), kind="stable")
    if n_keys > 1 << 32:
        return np.argsort(key, kind="stable")
    low = np.argsort((key & 0xFFFF).astype(np.uint16), kind="stable")
    return low[np.argsort((key[low] >> 16).astype(np.uint16), kind="stable")]


# Up to this many numbers, NumPy's full sort is quicker than hashing.
_SMALL = 1 << 15


def dense_ids(values: np.ndarray, sort: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(1-based dense index of each value, the distinct values).

    The distinct values are sorted, as ``np.unique`` would give them, or in
    order of first appearance when ``sort`` is False. Hashing (pyarrow's
    dictionary encoding) replaces the full sort of ``np.unique``; only the
    distinct values are sorted.
    """
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64), values[:0].copy()
    numeric = values.dtype.kind in "iu"
    if sort and numeric and len(values) <= _SMALL:
        distinct, inverse = np.unique(values, return_inverse=True)
        return inverse.reshape(-1).astype(np.int64) + 1, distinct
    encoded = pc.dictionary_encode(arrow_view(values))
    indices = numpy_view(encoded.indices).astype(np.int64)
    if numeric:
        distinct = numpy_view(encoded.dictionary).astype(values.dtype, copy=False)
    else:
        distinct = string_array(encoded.dictionary)
    if sort:
        # The values are distinct, so any sort gives the one order; NumPy's
        # default sort of numbers is several times quicker than pyarrow's.
        by_value = np.argsort(distinct) if numeric else numpy_view(pc.array_sort_indices(encoded.dictionary))
        rank = np.empty(len(by_value), dtype=np.int64)
        rank[by_value] = np.arange(len(by_value))
        indices = rank[indices]
        distinct = distinct[by_value]
    return indices + 1, distinct
