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

__all__ = ["Grouped", "RawGroups", "group_rows", "group_raw", "dense_ids", "stable_argsort", "run_heads"]


class Grouped(NamedTuple):
    """Users' item sequences in CSR form, items relabelled densely."""

    offsets: np.ndarray  # int64, users + 1
    items: np.ndarray  # int64 dense item indices 1..n_items, per user in order
    user_ids: np.ndarray  # the raw id of each user
    item_vocab: np.ndarray  # the raw id of each dense item, sorted


class RawGroups(NamedTuple):
    """Users' item sequences in CSR form, items as they were (not relabelled)."""

    offsets: np.ndarray  # int64, users + 1
    items: np.ndarray  # the raw item ids, per user in order
    user_ids: np.ndarray  # the raw id of each user


def group_rows(users: np.ndarray, items: np.ndarray, times: np.ndarray | None, user_order: str) -> Grouped:
    """Group rows into users: ``"first"`` (first appearance) or ``"sorted"`` id order.

    Within a user, items are ordered by ``times`` with a stable sort, so rows
    with equal times (or without times) keep their order. Items are numbered
    1..n_items in sorted raw-id order.
    """
    raw = group_raw(users, items, times, user_order)
    dense, vocabulary = dense_ids(raw.items)
    return Grouped(raw.offsets, dense, raw.user_ids, vocabulary)


def group_raw(
    users: np.ndarray,
    items: np.ndarray,
    times: np.ndarray | None,
    user_order: str,
    one_run_heads: np.ndarray | None = None,
) -> RawGroups:
    """:func:`group_rows` without the dense relabelling of the items.

    Rows whose users already form one run each, in time order (a log sorted by
    user, as most are), are only cut at the runs: nothing is sorted or copied.
    ``one_run_heads``, where the caller has checked that every user is one run
    (a grouped file read in order), are the runs' heads, not found again.

    Examples
    --------
    >>> g = group_raw(np.array([5, 5, 3, 5]), np.array([10, 11, 12, 13]), None, "first")
    >>> g.offsets.tolist(), g.items.tolist(), g.user_ids.tolist()
    ([0, 3, 4], [10, 11, 13, 12], [5, 3])
    """
    heads = run_heads(users, None) if one_run_heads is None else one_run_heads
    run_users = users[heads]
    one_run_each = one_run_heads is not None or _one_run_each(run_users, user_order)
    if one_run_each and _in_time_order(times, heads):
        return RawGroups(np.append(heads, len(users)).astype(np.int64), items, run_users)
    key, user_ids = _user_keys(users, user_order)
    order = _grouping_order(key, len(user_ids), times)
    ordered = items if order is None else items[order]
    offsets = np.zeros(len(user_ids) + 1, dtype=np.int64)
    np.cumsum(np.bincount(key, minlength=len(user_ids)), out=offsets[1:])
    return RawGroups(offsets, ordered, user_ids)


def _one_run_each(run_users: np.ndarray, user_order: str) -> bool:
    """Whether no user has two runs (and, for "sorted", the runs are in id order)."""
    if bool((run_users[1:] > run_users[:-1]).all()):
        return True
    return user_order == "first" and _distinct(run_users)


def _in_time_order(times: np.ndarray | None, heads: np.ndarray) -> bool:
    """Whether ``times`` never decrease within a run (always, without times)."""
    if times is None or len(times) < 2:
        return True
    rising = times[1:] >= times[:-1]  # compared, never subtracted: unsigned times would wrap
    rising[heads[1:] - 1] = True  # a new run may start earlier
    return bool(rising.all())


def run_heads(users: np.ndarray, previous_last: object) -> np.ndarray:
    """Positions where a new run of equal users starts (none at 0 if it continues ``previous_last``).

    Examples
    --------
    >>> run_heads(np.array([4, 4, 7, 4]), None).tolist(), run_heads(np.array([4, 7]), 4).tolist()
    ([0, 2, 3], [1])
    """
    later = np.flatnonzero(users[1:] != users[:-1]) + 1
    if len(users) == 0 or (previous_last is not None and users[0] == previous_last):
        return later
    return np.concatenate([np.zeros(1, dtype=later.dtype), later])


def _user_keys(users: np.ndarray, user_order: str) -> tuple[np.ndarray, np.ndarray]:
    """(index of each row's user, the user ids), users in ``user_order``."""
    heads = run_heads(users, None)
    run_users = users[heads]
    if _one_run_each(run_users, user_order):
        return _run_index(heads, len(users)), run_users  # one run per user, in the order wanted
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
