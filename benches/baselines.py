"""Baselines the benches compare the Rust kernels against (never used by the package)."""

from __future__ import annotations

import time

import numpy as np

INT64_MAX = np.iinfo(np.int64).max
CHUNK_TOKENS = 1 << 15


def apen_numpy(offsets: np.ndarray, items: np.ndarray, m: int = 2) -> np.ndarray:
    """Batch exact-match ApEn(m) in NumPy with packed int64 window keys: the strongest simple NumPy.

    With K = max id - min id + 1, the window of length L starting at token i of user u
    is the key u·K^L + Σ_k x_{i+k}·K^k; one ``np.unique(..., return_counts=True)`` per
    level counts every window of every user at once, and Σ c·ln c per user is one
    ``np.bincount``. Users are taken in chunks small enough that u·K^(m+1) fits in
    int64 (u counted within the chunk); where K^(m+1) alone would not fit, the key of
    level m+1 is built from the dense id of the level-m window (id·K + last item).
    Chunks of about 32k tokens keep each sort in cache.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    lengths = np.diff(offsets)
    users = len(lengths)
    out = np.full(users, np.nan)
    if len(items) == 0:
        return out
    low = int(items.min())
    K = int(items.max()) - low + 1
    x = items - low if low else items
    chunk = INT64_MAX // K ** (m + 1) if K ** (m + 1) <= INT64_MAX else 1
    # about 32k tokens a chunk keeps np.unique's sort in cache (2.5x faster than one big sort)
    chunk = min(chunk, max(1, CHUNK_TOKENS * users // len(items)))
    for first in range(0, users, max(chunk, 1)):
        last = min(first + max(chunk, 1), users)
        out[first:last] = _apen_chunk(offsets[first : last + 1], x, K, m, packed=K ** (m + 1) <= INT64_MAX)
    return out


def _apen_chunk(offsets, x, K, m, packed):
    lengths = np.diff(offsets)
    users = len(lengths)
    x = x[offsets[0] : offsets[-1]]
    user_of = np.repeat(np.arange(users, dtype=np.int64), lengths)
    position = np.arange(len(x), dtype=np.int64) - np.repeat(offsets[:-1] - offsets[0], lengths)
    remaining = lengths[user_of] - position  # tokens from i to the end of its sequence
    sums = {}
    for level in (m, m + 1):
        start = np.flatnonzero(remaining >= level)
        if packed or level == m:
            key = user_of[start] * K**level
            for k in range(level):
                key += x[start + k] * K**k
            if packed:
                uniq, counts = np.unique(key, return_counts=True)
            else:
                uniq, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
                ids = np.full(len(x), -1, dtype=np.int64)
                ids[start] = inverse.reshape(-1)
            owner = uniq // K**level
        else:  # K^(m+1) overflows int64: extend the dense ids of level m by the last item
            key = ids[start] * K + x[start + level - 1]
            uniq, counts = np.unique(key, return_counts=True)
            owner = owner[uniq // K]
        c = counts.astype(np.float64)
        sums[level] = np.bincount(owner, weights=c * np.log(c), minlength=users)
    out = np.full(users, np.nan)
    ok = lengths > m
    w_m = (lengths[ok] - m + 1).astype(np.float64)
    w_m1 = (lengths[ok] - m).astype(np.float64)
    out[ok] = (sums[m][ok] / w_m - np.log(w_m)) - (sums[m + 1][ok] / w_m1 - np.log(w_m1))
    return out


def lz_sums_numpy(offsets: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Σ_i Λ_i per sequence (``_core.lz_lambda_sums``) in NumPy, level by level.

    Λ_i − 1 is the number of lengths L whose window at i also starts earlier in the
    sequence, so Σ_i Λ_i = N + Σ_L (W_L − D_L) (W_L windows of length L, D_L distinct
    ones). Level 1 ranks (user, item) pairs with one ``np.unique``; each next level
    keeps only the windows that repeat and ranks (id of the window, next item). The
    strongest simple NumPy: only the repeated windows go on, so levels shrink fast.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    x = np.asarray(items, dtype=np.int64)
    lengths = np.diff(offsets)
    users = len(lengths)
    sums = lengths.copy()
    if len(x) == 0:
        return sums.astype(np.uint64)
    x = x - x.min()
    K = int(x.max()) + 1
    user_of = np.repeat(np.arange(users, dtype=np.int64), lengths)
    end = np.repeat(offsets[1:], lengths)  # one past each token's sequence
    start = np.arange(len(x), dtype=np.int64)
    key = user_of * K + x
    level = 1
    while len(start):
        _, first, ids, counts = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
        ids = ids.reshape(-1)
        repeated = counts[ids] > 1
        repeated_ids = np.flatnonzero(counts > 1)
        sums += np.bincount(user_of[start[repeated]], minlength=users)
        sums -= np.bincount(user_of[start[first[repeated_ids]]], minlength=users)
        start, ids = start[repeated], ids[repeated]
        grows = start + level < end[start]  # the window can take one more item
        start, ids = start[grows], ids[grows]
        key = ids * K + x[start + level]
        level += 1
    return sums.astype(np.uint64)


def block_entropy_numpy(offsets: np.ndarray, items: np.ndarray, m: int = 2, counter: str = "numpy") -> float:
    """H(X_{m+1} | X_1..X_m) over all windows of all sequences, with packed int64 keys.

    Each window of m + 1 items is one key Σ x_{i+k}·K^(m−k) (K = id range), so its
    m-prefix is key // K; the counts come from ``np.unique(return_counts=True)``
    (``counter="numpy"``, a sort), ``pyarrow.compute.value_counts`` (``"pyarrow"``,
    a hash table) or one parallel polars sort whose runs give both (``"polars"``: the
    prefixes of sorted keys are sorted too). Needs K^(m+1) < 2^63.
    """
    key, K = packed_windows(offsets, items, m)
    if counter == "polars":
        joint, prefix = _sorted_run_lengths(key, K)
    else:
        joint, prefix = _counts(key, counter), _counts(key // K, counter)
    total = float(len(key))
    c_ln_c = lambda c: float(np.sum(c * np.log(c)))  # noqa: E731
    return (c_ln_c(prefix) - c_ln_c(joint)) / total


def packed_windows(offsets: np.ndarray, items: np.ndarray, m: int = 2) -> tuple[np.ndarray, int]:
    """Every window of m + 1 items within one sequence as one int64 key Σ x_{i+k}·K^(m−k),
    x = id − smallest id and K = the ids' span (so the key's m-prefix is key // K), and K.
    Needs K^(m+1) < 2^63."""
    offsets = np.asarray(offsets, dtype=np.int64)
    x = np.asarray(items, dtype=np.int64)
    x = x - x.min()
    K = int(x.max()) + 1
    if K ** (m + 1) > INT64_MAX:
        raise ValueError(f"ids span {K}: windows of {m + 1} do not pack into int64")
    lengths = np.diff(offsets)
    position = np.arange(len(x)) - np.repeat(offsets[:-1], lengths)
    start = np.flatnonzero(position + m < np.repeat(lengths, lengths))
    key = np.zeros(len(start), dtype=np.int64)
    for k in range(m + 1):
        key = key * K + x[start + k]
    return key, K


def _sorted_run_lengths(keys: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts of the distinct keys and of their prefixes (key // K), from one polars sort."""
    import polars as pl

    ordered = pl.Series(keys).sort()
    runs = lambda series: series.rle().struct.field("len").to_numpy().astype(np.float64)  # noqa: E731
    return runs(ordered), runs(ordered // K)


def _counts(keys: np.ndarray, counter: str) -> np.ndarray:
    if counter == "pyarrow":
        import pyarrow as pa
        import pyarrow.compute as pc

        return pc.value_counts(pa.array(keys)).field("counts").to_numpy().astype(np.float64)
    return np.unique(keys, return_counts=True)[1].astype(np.float64)


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


def best_of(fn, repeats: int) -> float:
    """The shortest wall time of ``repeats`` calls of ``fn``, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
