"""Baselines the benches compare the Rust kernels against (never used by the package)."""

from __future__ import annotations

import numpy as np


def apen_numpy(offsets: np.ndarray, items: np.ndarray, m: int = 2) -> np.ndarray:
    """Batch exact-match ApEn(m), fully vectorised NumPy: the fastest we could write.

    Windows are given dense ids level by level (user and items folded into one
    int64 code, then ``np.unique``), so that equal windows of the same user
    share an id; Φ per user is a weighted bincount of ln(count / W).
    """
    lengths = np.diff(offsets)
    users = len(lengths)
    user_of = np.repeat(np.arange(users, dtype=np.int64), lengths)
    position = np.arange(len(items), dtype=np.int64) - np.repeat(offsets[:-1], lengths)
    base = int(items.max()) + 1 if len(items) else 1
    _, ids = np.unique(user_of * base + items, return_inverse=True)
    ids = ids.reshape(-1).astype(np.int64)
    phis = {}
    for level in range(1, m + 2):
        if level > 1:
            # window starting at p of this level = (window of level-1 at p, item at p+level-1)
            ok = position + level <= lengths[user_of]
            start = np.flatnonzero(ok)
            code = ids[start] * base + items[start + level - 1]
            _, new = np.unique(code, return_inverse=True)
            ids = np.full(len(items), -1, dtype=np.int64)
            ids[start] = new.reshape(-1)
        if level in (m, m + 1):
            phis[level] = _phi(ids, user_of, lengths - level + 1)
    out = phis[m] - phis[m + 1]
    out[lengths <= m] = np.nan
    return out


def _phi(ids: np.ndarray, user_of: np.ndarray, windows: np.ndarray) -> np.ndarray:
    valid = ids >= 0
    counts = np.bincount(ids[valid])
    per_window = np.log(counts[ids[valid]] / windows[user_of[valid]])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.bincount(user_of[valid], weights=per_window, minlength=len(windows)) / windows


def apen_antropy(offsets: np.ndarray, items: np.ndarray, m: int = 2) -> np.ndarray:
    """antropy's app_entropy per sequence, with a tolerance below 1 so only exact matches count."""
    import antropy

    out = np.full(len(offsets) - 1, np.nan)
    for u in range(len(out)):
        seq = items[offsets[u] : offsets[u + 1]].astype(np.float64)
        if len(seq) > m + 1:
            out[u] = antropy.app_entropy(seq, order=m, tolerance=1e-9)
    return out


def zipf_batch(users: int, length: int, n_items: int = 100_000, exponent: float = 1.2, seed: int = 0):
    """CSR arrays of ``users`` sequences of ``length`` Zipf-distributed items."""
    rng = np.random.default_rng(seed)
    items = (rng.zipf(exponent, size=users * length) % n_items + 1).astype(np.int64)
    offsets = np.arange(0, users * length + 1, length, dtype=np.int64)
    return offsets, items
