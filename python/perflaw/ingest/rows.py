"""Rows: interactions in file order, as the format readers produce them.

Rows are grouped into users by :func:`perflaw.grouping.group_rows` (the same
grouping as ``Sequences.from_table``); ids are typed by :mod:`perflaw.ids`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from perflaw.grouping import group_rows
from perflaw.ids import IdKinds, arrow_ids, arrow_times
from perflaw.sequences import Sequences
from perflaw.errors import PerflawError

__all__ = ["Rows", "to_sequences", "table_rows", "check_columns"]


@dataclass
class Rows:
    """A run of interactions in file order."""

    users: np.ndarray
    items: np.ndarray
    times: np.ndarray | None = None

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
