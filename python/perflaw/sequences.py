"""``Sequences``: every user's item history in one CSR layout.

``offsets`` (int64, users + 1) and ``items`` (int64 dense item indices
1..n_items; 0 is reserved for padding) are C-contiguous, so they cross into the
Rust kernels without a copy. The original user ids and the item vocabulary are
kept so that results map back to the raw data.

Input is normalised here, in Python, before it reaches Rust: raw ids are typed
by the one id policy (:mod:`perflaw.ids`), rows are grouped into users by the one
grouping (:mod:`perflaw.grouping`), offsets are validated, ids are relabelled densely.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence as TypingSequence

import numpy as np

from perflaw.grouping import dense_ids, group_rows
from perflaw.ids import MAX_RAW_ID, arrow_times, column_values, raw_ids, tabular
from perflaw.errors import PerflawError, PerflawTypeError, require

__all__ = ["MAX_RAW_ID", "Sequences", "combine_fingerprints", "positive_int"]


@dataclass(frozen=True, eq=False)
class Sequences:
    """Users' item sequences in CSR form.

    Attributes
    ----------
    offsets : numpy.ndarray
        int64, shape (n_users + 1,); user ``u`` owns ``items[offsets[u]:offsets[u+1]]``.
    items : numpy.ndarray
        int64 dense item indices in 1..n_items, in time order per user.
    user_ids : numpy.ndarray
        The original id of each user, shape (n_users,).
    item_vocab : numpy.ndarray
        The original id of each dense item: dense index ``k`` is ``item_vocab[k - 1]``.

    Examples
    --------
    >>> seqs = Sequences.from_lists([[10, 20, 10], [20, 30]])
    >>> seqs.n_users, seqs.n_items, seqs.tokens
    (2, 3, 5)
    >>> seqs[0].tolist()
    [1, 2, 1]
    """

    offsets: np.ndarray
    items: np.ndarray
    user_ids: np.ndarray
    item_vocab: np.ndarray

    def __post_init__(self) -> None:
        _check_offsets(self.offsets, len(self.items))
        if self.items.dtype != np.int64 or not self.items.flags.c_contiguous:
            raise PerflawTypeError("Sequences.items must be a C-contiguous int64 array")
        if len(self.user_ids) != self.n_users:
            raise PerflawError(
                f"user_ids has {len(self.user_ids)} entries but offsets describe {self.n_users} users"
            )
        if len(self.items) and (self.items.min() < 1 or self.items.max() > len(self.item_vocab)):
            raise PerflawError(
                f"dense item indices must lie in 1..{len(self.item_vocab)}, "
                f"got range {self.items.min()}..{self.items.max()}"
            )
        # Freeze read-only views, so the caller's own arrays stay writeable.
        for name in ("offsets", "items", "user_ids", "item_vocab"):
            view = getattr(self, name).view()
            view.setflags(write=False)
            object.__setattr__(self, name, view)

    # ------------------------------------------------------------------ sizes
    @property
    def n_users(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_items(self) -> int:
        return len(self.item_vocab)

    @property
    def tokens(self) -> int:
        return int(self.offsets[-1])

    @property
    def lengths(self) -> np.ndarray:
        """Length of each user's sequence (int64)."""
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return self.n_users

    def __getitem__(self, user: int) -> np.ndarray:
        if not -self.n_users <= user < self.n_users:
            raise IndexError(f"user index {user} out of range for {self.n_users} users")
        user %= self.n_users
        return self.items[self.offsets[user] : self.offsets[user + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        for user in range(self.n_users):
            yield self.items[self.offsets[user] : self.offsets[user + 1]]

    def __repr__(self) -> str:
        return f"Sequences(users={self.n_users}, items={self.n_items}, tokens={self.tokens})"

    def to_lists(self, original_ids: bool = False) -> list[list[Any]]:
        """The sequences as Python lists, of dense indices or of original ids."""
        values = self.item_vocab[self.items - 1] if original_ids else self.items
        return [values[a:b].tolist() for a, b in zip(self.offsets[:-1], self.offsets[1:])]

    def positions(self) -> np.ndarray:
        """Each token's 0-based position in its user's history (int64, one per token).

        Examples
        --------
        >>> Sequences.from_lists([[10, 20, 10], [20]]).positions().tolist()
        [0, 1, 2, 0]
        """
        return np.arange(self.tokens, dtype=np.int64) - np.repeat(self.offsets[:-1], self.lengths)

    def to_arrow(self) -> Any:
        """One row per interaction as a ``pyarrow.Table``: columns user, item, position.

        ``user`` and ``item`` hold the original ids (``user_ids``, ``item_vocab``),
        int64 or string; ``position`` is the 0-based place of the item in the
        user's history. Users without items have no row.

        Examples
        --------
        >>> t = Sequences.from_lists([["a", "b"], ["b"]], user_ids=[7, 9]).to_arrow()
        >>> t.column_names, t.column("user").to_pylist(), t.column("item").to_pylist()
        (['user', 'item', 'position'], [7, 7, 9], ['a', 'b', 'b'])
        """
        import pyarrow as pa

        users, items, positions = self._interaction_columns()
        return pa.table({"user": users, "item": items, "position": positions})

    def to_pandas(self) -> Any:
        """One row per interaction as a ``pandas.DataFrame`` (columns as :meth:`to_arrow`).

        Examples
        --------
        >>> Sequences.from_lists([[10, 20], [30]]).to_pandas().to_dict("list")
        {'user': [0, 0, 1], 'item': [10, 20, 30], 'position': [0, 1, 0]}
        """
        import pandas as pd

        users, items, positions = self._interaction_columns()
        return pd.DataFrame({"user": users, "item": items, "position": positions})

    def to_polars(self) -> Any:
        """One row per interaction as a ``polars.DataFrame`` (columns as :meth:`to_arrow`).

        Examples
        --------
        >>> Sequences.from_lists([[10, 20], [30]]).to_polars()["item"].to_list()
        [10, 20, 30]
        """
        pl: Any = require("polars", "Sequences.to_polars", "dev")
        return pl.from_arrow(self.to_arrow())

    def _interaction_columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user id, item id, position) of every token, ids typed by the id policy."""
        users = self.user_ids
        if len(users) == 0 and users.dtype.kind not in "iuU":
            users = np.zeros(0, dtype=np.int64)  # np.asarray([]) is float64
        users = raw_ids(users, "user", "Sequences.user_ids")
        vocab = raw_ids(self.item_vocab, "item", "Sequences.item_vocab") if self.n_items else np.zeros(0, np.int64)
        return np.repeat(users, self.lengths), vocab[self.items - 1], self.positions()

    # ----------------------------------------------------------- constructors
    @classmethod
    def from_lists(
        cls, lists: Iterable[TypingSequence[Any]], user_ids: TypingSequence[Any] | None = None
    ) -> "Sequences":
        """Build from one list of raw item ids per user.

        Examples
        --------
        >>> Sequences.from_lists([[5, 6], [6]], user_ids=["a", "b"]).user_ids.tolist()
        ['a', 'b']
        """
        lists = [list(seq) for seq in lists]
        lengths = np.fromiter((len(seq) for seq in lists), dtype=np.int64, count=len(lists))
        offsets = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = [item for seq in lists for item in seq]
        dense, vocab = dense_ids(raw_ids(flat, "item", "Sequences.from_lists"))
        return cls.from_arrays(offsets, dense, user_ids=user_ids, item_vocab=vocab)

    @classmethod
    def from_arrays(
        cls,
        offsets: Any,
        items: Any,
        user_ids: Any = None,
        item_vocab: Any = None,
    ) -> "Sequences":
        """Build from CSR arrays of raw item ids (relabelled densely).

        When ``item_vocab`` is given, ``items`` are taken to be dense indices
        into it already (1-based) and are only validated.

        Examples
        --------
        >>> s = Sequences.from_arrays([0, 2, 3], [7, 9, 7])
        >>> s.item_vocab.tolist(), s.items.tolist()
        ([7, 9], [1, 2, 1])
        """
        offsets = _as_int64(offsets, "offsets")
        if item_vocab is None:
            raw = raw_ids(items, "item", "Sequences.from_arrays")
            _check_offsets(offsets, len(raw))
            dense, vocab = dense_ids(raw)
        else:
            vocab = np.asarray(item_vocab)
            dense = _as_int64(items, "items")
        if user_ids is None:
            user_ids = np.arange(len(offsets) - 1, dtype=np.int64)
        return cls(
            offsets=np.ascontiguousarray(offsets),
            items=np.ascontiguousarray(dense),
            user_ids=np.asarray(user_ids),
            item_vocab=vocab,
        )

    @classmethod
    def from_table(
        cls,
        table: Any,
        user: str = "user",
        item: str = "item",
        timestamp: str | None = None,
    ) -> "Sequences":
        """Build from a table of one row per interaction.

        ``table`` is a pandas or polars DataFrame, a pyarrow Table, RecordBatch
        or RecordBatchReader, any object exporting an Arrow stream
        (``__arrow_c_stream__``, the Arrow PyCapsule interface), or a dict of columns.

        Rows are grouped by user (users in sorted id order); within a user they
        are ordered by ``timestamp`` with a stable sort, so ties keep file order.

        Examples
        --------
        >>> t = {"user": [2, 1, 2], "item": [5, 6, 7], "ts": [9, 0, 3]}
        >>> Sequences.from_table(t, timestamp="ts").to_lists(original_ids=True)
        [[6], [7, 5]]
        """
        columns = _columns(table, [user, item] + ([timestamp] if timestamp else []))
        if len(columns[user]) == 0:
            raise PerflawError("the table has no rows")
        where = "the table"
        users = raw_ids(columns[user], "user", where, name=user)
        items = raw_ids(columns[item], "item", where, name=item)
        times = None
        if timestamp:
            times = arrow_times(column_values(columns[timestamp], "timestamp", timestamp, where), timestamp, where, 1)
        grouped = group_rows(users, items, times, "sorted")
        return cls.from_arrays(grouped.offsets, grouped.items, user_ids=grouped.user_ids, item_vocab=grouped.item_vocab)

    # ------------------------------------------------------------- operations
    def select(self, users: Any) -> "Sequences":
        """The given users (indices or a boolean mask), in the order given.

        Examples
        --------
        >>> Sequences.from_lists([[1], [2, 3], [4]]).select([2, 0]).lengths.tolist()
        [1, 1]
        """
        users = np.asarray(users)
        if users.size == 0:
            users = users.astype(np.int64)  # [] would otherwise be a float index
        index = np.arange(self.n_users)[users]
        lengths = self.lengths[index]
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        gather = _ranges(self.offsets[index], lengths)
        return Sequences(offsets, self.items[gather], self.user_ids[index], self.item_vocab)

    def min_length(self, k: int) -> "Sequences":
        """Keep users with at least ``k`` items."""
        return self.select(self.lengths >= positive_int(k, "k", allow_zero=True))

    def truncate(self, max_len: int) -> "Sequences":
        """Keep each user's last ``max_len`` items.

        Examples
        --------
        >>> Sequences.from_lists([[1, 2, 3], [4]]).truncate(2).to_lists(original_ids=True)
        [[2, 3], [4]]
        """
        max_len = positive_int(max_len, "max_len")
        lengths = np.minimum(self.lengths, max_len)
        offsets = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        gather = _ranges(self.offsets[1:] - lengths, lengths)
        return Sequences(offsets, self.items[gather], self.user_ids, self.item_vocab)

    def kcore(self, k: int) -> "Sequences":
        """Iteratively drop items and users with fewer than ``k`` interactions.

        Items are relabelled densely afterwards; the result is a fixed point: every
        remaining user and item has at least ``k`` interactions.

        Examples
        --------
        >>> s = Sequences.from_lists([[1, 2], [1, 2], [1, 3]]).kcore(2)
        >>> s.n_users, s.n_items
        (2, 2)
        """
        k = positive_int(k, "k")
        seqs = self
        while True:
            item_counts = np.bincount(seqs.items, minlength=seqs.n_items + 1)
            keep_item = item_counts[seqs.items] >= k
            user_of_token = np.repeat(np.arange(seqs.n_users), seqs.lengths)
            kept_per_user = np.bincount(user_of_token[keep_item], minlength=seqs.n_users)
            keep_user = kept_per_user >= k
            keep_token = keep_item & keep_user[user_of_token]
            if keep_token.all() and keep_user.all():
                return seqs._relabel_items()
            offsets = np.zeros(int(keep_user.sum()) + 1, dtype=np.int64)
            np.cumsum(kept_per_user[keep_user], out=offsets[1:])
            seqs = Sequences(offsets, seqs.items[keep_token], seqs.user_ids[keep_user], seqs.item_vocab)

    def sample_users(self, fraction: float, seed: int = 0) -> "Sequences":
        """A seeded random subset of ``round(fraction * users)`` users, in original order."""
        if not 0.0 < fraction <= 1.0:
            raise PerflawError(f"fraction must be in (0, 1], got {fraction}")
        n_keep = max(1, round(fraction * self.n_users))
        chosen = np.random.default_rng(seed).choice(self.n_users, size=n_keep, replace=False)
        return self.select(np.sort(chosen))

    def _relabel_items(self) -> "Sequences":
        used, inverse = np.unique(self.items, return_inverse=True)
        if len(used) == self.n_items:
            return self
        return Sequences(
            self.offsets,
            inverse.reshape(-1).astype(np.int64) + 1,
            self.user_ids,
            self.item_vocab[used - 1],
        )

    def fingerprint(self) -> str:
        """A stable 16-hex-digit hash of the data: each user's raw item ids in order.

        It depends neither on user order nor on how the data was loaded or split
        into batches (see :meth:`fingerprint_state`), and not on the dense
        relabelling; user ids are not part of it.

        Examples
        --------
        >>> a = Sequences.from_lists([[1, 2], [3]]); b = Sequences.from_lists([[3], [1, 2]])
        >>> a.fingerprint() == b.fingerprint(), a.fingerprint() == Sequences.from_lists([[2, 1], [3]]).fingerprint()
        (True, False)
        """
        return combine_fingerprints([self.fingerprint_state()])

    def fingerprint_state(self) -> tuple[int, int, int]:
        """(sum of per-user hashes mod 2**64, users, tokens). The states of
        disjoint parts of a dataset combine, by :func:`combine_fingerprints`, into the whole's fingerprint."""
        from perflaw import _core

        hashes = _core.sequence_hashes(self.offsets, self.stable_item_keys())
        return int(hashes.sum(dtype=np.uint64)), self.n_users, self.tokens

    def stable_item_keys(self) -> np.ndarray:
        """Each token's raw item id as int64 (strings replaced by a stable 64-bit
        BLAKE2b hash), so that ids agree across batches, shards and processes.

        Examples
        --------
        >>> Sequences.from_lists([[30, 10], [10]]).stable_item_keys().tolist()
        [30, 10, 10]
        """
        vocab = self.item_vocab
        if vocab.dtype.kind in "iu":
            keys = vocab.astype(np.int64)
        else:
            keys = np.array(
                [int.from_bytes(hashlib.blake2b(str(v).encode(), digest_size=8).digest(), "little", signed=True)
                 for v in vocab.tolist()],
                dtype=np.int64,
            )
        return np.ascontiguousarray(keys[self.items - 1]) if len(self.items) else np.zeros(0, dtype=np.int64)


def combine_fingerprints(states: Iterable[tuple[int, int, int]]) -> str:
    """The fingerprint of the union of disjoint parts, from their ``fingerprint_state()``."""
    total_hash, users, tokens = 0, 0, 0
    for part_hash, part_users, part_tokens in states:
        total_hash = (total_hash + part_hash) % 2**64
        users += part_users
        tokens += part_tokens
    text = f"perflaw-fingerprint-v1:{total_hash}:{users}:{tokens}"
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


# ------------------------------------------------------------------ helpers
def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + n)`` for each (s, n), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    index = np.arange(total, dtype=np.int64)
    first = np.repeat(ends - lengths, lengths)
    return index - first + np.repeat(starts, lengths)


def _check_offsets(offsets: np.ndarray, n_items: int) -> None:
    if offsets.dtype != np.int64 or offsets.ndim != 1:
        raise PerflawTypeError(f"offsets must be a 1-D int64 array, got {offsets.dtype} with {offsets.ndim} dims")
    if len(offsets) == 0:
        raise PerflawError("offsets must hold at least one entry (0)")
    if offsets[0] != 0:
        raise PerflawError(f"offsets must start at 0, got {offsets[0]}")
    steps = np.diff(offsets)
    if len(steps) and steps.min() < 0:
        bad = int(np.argmax(steps < 0))
        raise PerflawError(f"offsets must be non-decreasing: offsets[{bad + 1}]={offsets[bad + 1]} < offsets[{bad}]={offsets[bad]}")
    if offsets[-1] != n_items:
        raise PerflawError(f"offsets end at {offsets[-1]} but there are {n_items} items")


def _as_int64(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise PerflawError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype == np.uint64 and array.max() > MAX_RAW_ID:
        raise PerflawError(f"{name} hold a value {array.max()} >= 2**63")
    if array.dtype.kind not in "iu":
        raise PerflawTypeError(f"{name} must be integers, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def _columns(table: Any, names: list[Any]) -> dict[Any, Any]:
    """Named columns of a pandas/polars/pyarrow table, an Arrow stream or a dict, as given (typed by perflaw.ids)."""
    table = tabular(table)
    if isinstance(table, dict):
        available = list(table)
        getter = table.__getitem__
    elif hasattr(table, "column_names") and hasattr(table, "column"):  # pyarrow
        available = list(table.column_names)
        getter = table.column
    elif hasattr(table, "columns") and hasattr(table, "__getitem__"):  # pandas, polars
        available = list(table.columns)
        getter = table.__getitem__
    else:
        raise PerflawTypeError(
            "expected a pandas, polars or pyarrow table, an object with __arrow_c_stream__ or a dict, "
            f"got {type(table).__name__}"
        )
    missing = [name for name in names if name not in available]
    if missing:
        raise PerflawError(f"missing column(s) {missing}; the table has {available}")
    return {name: getter(name) for name in names}


def positive_int(value: Any, name: str, allow_zero: bool = False, maximum: int | None = None) -> int:
    """``value`` as an int, or a TypeError/ValueError naming ``name`` and the value.

    Examples
    --------
    >>> positive_int(3, "m", maximum=10)
    3
    >>> positive_int(2**64, "m", maximum=10)
    Traceback (most recent call last):
    ...
    perflaw.errors.PerflawError: m must be at most 10, got 18446744073709551616
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise PerflawTypeError(f"{name} must be an integer, got {value!r}")
    if value < (0 if allow_zero else 1):
        raise PerflawError(f"{name} must be {'>= 0' if allow_zero else '>= 1'}, got {value}")
    if maximum is not None and value > maximum:
        raise PerflawError(f"{name} must be at most {maximum}, got {value}")
    return int(value)
