"""Whether each user's rows form one run: spotted chunk by chunk, cheaply."""

from __future__ import annotations

from typing import Any

import numpy as np

from perflaw.grouping import run_heads

__all__ = ["SeenUsers", "ContiguityCheck"]


class SeenUsers:
    """Which user ids have been seen, to spot a user that comes back.

    Files sorted by user (the common case) only need the last id; the sorted
    set of all ids is built the first time the order breaks.
    """

    def __init__(self) -> None:
        self._pieces: list[np.ndarray] = []
        self._last: Any = None
        self._sorted: np.ndarray | None = None

    def add(self, values: np.ndarray) -> int:
        """Record ``values``; return the index of the first repeated one, or -1."""
        if len(values) == 0:
            return -1
        if self._sorted is None:
            increasing = bool((values[1:] > values[:-1]).all())
            if increasing and (self._last is None or values[0] > self._last):
                self._pieces.append(values.copy())
                self._last = values[-1]
                return -1
            self._sorted = np.sort(np.concatenate(self._pieces)) if self._pieces else values[:0].copy()
            self._pieces = []
        repeat = _first_repeat(values, self._sorted)
        if repeat < 0:
            self._sorted = np.sort(np.concatenate([self._sorted, np.unique(values)]), kind="stable")
        return repeat


def _first_repeat(values: np.ndarray, seen: np.ndarray) -> int:
    """Index of the first value that is in ``seen`` or occurs earlier in ``values``."""
    candidates = []
    if len(seen):
        position = np.searchsorted(seen, values).clip(max=len(seen) - 1)
        found = seen[position] == values
        if found.any():
            candidates.append(int(np.argmax(found)))
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    later_duplicates = order[1:][ordered[1:] == ordered[:-1]]
    if len(later_duplicates):
        candidates.append(int(later_duplicates.min()))
    return min(candidates) if candidates else -1


class ContiguityCheck:
    """Verifies, chunk by chunk, that each user's rows form one run."""

    def __init__(self) -> None:
        self._seen = SeenUsers()
        self._last: Any = None
        self.rows = 0

    def add(self, users: np.ndarray, heads: np.ndarray | None = None) -> int:
        """Return the index in ``users`` of the first row breaking contiguity, or -1.

        ``heads`` may give ``run_heads(users, None)``, computed already.
        """
        if heads is None:
            heads = run_heads(users, self._last)
        elif len(heads) and self._last is not None and users[0] == self._last:
            heads = heads[1:]  # the first run goes on from the chunk before
        repeat = self._seen.add(users[heads])
        if len(users):
            self._last = users[-1]
        if repeat >= 0:
            return int(heads[repeat])
        self.rows += len(users)
        return -1
