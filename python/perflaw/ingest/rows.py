"""Rows: interactions in file order, as the format readers produce them.

Rows are grouped into users by :func:`perflaw.grouping.group_rows` (the same
grouping as ``Sequences.from_table``); ids are typed by :mod:`perflaw.ids`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from perflaw.grouping import group_raw, group_rows
from perflaw.ids import IdKinds, arrow_ids, arrow_times
from perflaw.sequences import Sequences
from perflaw.errors import PerflawError

__all__ = ["Rows", "UserRuns", "to_sequences", "to_user_runs", "table_rows", "check_columns"]


@dataclass
class Rows:
    """A run of interactions in file order."""

    users: np.ndarray
    items: np.ndarray
    times: np.ndarray | None = None
    # where each user's run starts, when the reader has checked that every
    # user is one run (None: not known)
    one_run_heads: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.users)

    def slice(self, start: int, stop: int | None = None) -> "Rows":
        times = None if self.times is None else self.times[start:stop]
        return Rows(self.users[start:stop], self.items[start:stop], times)

    def take(self, index: np.ndarray) -> "Rows":
        times = None if self.times is None else self.times[index]
        return Rows(self.users[index], self.items[index], times)

    @staticmethod
    def concat(parts: list["Rows"]) -> "Rows":
        parts = [part for part in parts if len(part)]
        if not parts:
            return Rows(np.zeros(0, np.int64), np.zeros(0, np.int64))
        if len(parts) == 1:
            return parts[0]
        times = None
        if parts[0].times is not None:
            times = np.concatenate([part.times for part in parts])
        return Rows(
            np.concatenate([part.users for part in parts]),
            np.concatenate([part.items for part in parts]),
            times,
        )


def to_sequences(rows: Rows, user_order: str) -> Sequences:
    """Group rows into users: ``"first"`` (first appearance) or ``"sorted"`` id order.

    Within a user, items are ordered by timestamp with a stable sort, so rows
    with equal timestamps (or no timestamps at all) keep file order. For
    "sorted", the result equals ``Sequences.from_table``.
    """
    grouped = group_rows(rows.users, rows.items, rows.times, user_order)
    return Sequences.from_arrays(grouped.offsets, grouped.items, user_ids=grouped.user_ids, item_vocab=grouped.item_vocab)


@dataclass
class UserRuns:
    """Whole users as CSR arrays of raw item keys: what corpus statistics need, no relabelling.

    ``keys`` are ``Sequences.stable_item_keys()`` of the same users: integer ids
    as they are, text ids by their stable 64-bit hash.
    """

    offsets: np.ndarray  # int64, users + 1
    keys: np.ndarray  # int64, one per token

    @property
    def n_users(self) -> int:
        return len(self.offsets) - 1

    @property
    def tokens(self) -> int:
        return len(self.keys)


def to_user_runs(rows: Rows) -> UserRuns:
    """The users of ``rows`` (grouped as :func:`to_sequences` groups them), items as raw keys.

    Integer ids are grouped without relabelling; text ids go through
    :class:`Sequences` for their stable hash.
    """
    if rows.items.dtype.kind not in "iu":
        seqs = to_sequences(rows, "first")
        return UserRuns(seqs.offsets, seqs.stable_item_keys())
    grouped = group_raw(rows.users, rows.items, rows.times, "first", rows.one_run_heads)
    return UserRuns(grouped.offsets, np.ascontiguousarray(grouped.items, dtype=np.int64))


def table_rows(
    table: pa.Table | pa.RecordBatch,
    where: str,
    names: tuple[str, str, str | None],
    how: str,
    first_row: int,
    kinds: IdKinds,
    columns: str,
) -> Rows:
    """Rows from a table whose columns were already checked to exist.

    ``columns="users"`` reads the user column only (the items are then the users).
    """
    user, item, timestamp = names
    users = arrow_ids(table.column(user), "user", user, how, where, first_row, kinds)
    if columns == "users":
        return Rows(users, users)
    items = arrow_ids(table.column(item), "item", item, how, where, first_row, kinds)
    times = arrow_times(table.column(timestamp), timestamp, where, first_row) if timestamp else None
    return Rows(users, items, times)


def check_columns(wanted: list[str], present: list[str], path: Path) -> None:
    missing = [name for name in wanted if name not in present]
    if missing:
        raise PerflawError(f"{path}: missing column(s) {missing}; the file has columns {present}")
