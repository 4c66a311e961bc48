"""Slow, literal pure-Python references for the kernels (no numpy tricks, no Rust).

Each follows the textbook definition directly, so the tests compare the fast
kernels against something written independently of them.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Sequence

import numpy as np


def apen_reference(seq: list[int], m: int) -> float:
    """Pincus' ApEn with r = 0: Φ^k = mean_i ln(#{j: window_j == window_i} / (N-k+1))."""
    n = len(seq)
    if n <= m:
        return math.nan

    def phi(k: int) -> float:
        windows = [tuple(seq[i : i + k]) for i in range(n - k + 1)]
        total = 0.0
        for w in windows:
            matches = sum(1 for v in windows if v == w)
            total += math.log(matches / len(windows))
        return total / len(windows)

    return phi(m) - phi(m + 1)


def lz_lambdas_reference(seq: list[int]) -> list[int]:
    """Λ_i: shortest substring starting at i that does not start at any j < i."""
    n = len(seq)
    lambdas = []
    for i in range(n):
        length = 1
        while i + length <= n and any(
            seq[j : j + length] == seq[i : i + length] for j in range(i) if j + length <= n
        ):
            length += 1
        lambdas.append(length)
    return lambdas


def block_entropy_reference(seqs: list[list[int]], m: int) -> float:
    """H(X_{m+1} | X_1..X_m) from the empirical joint of all (m+1)-windows."""
    joint: Counter = Counter()
    for seq in seqs:
        for i in range(len(seq) - m):
            joint[tuple(seq[i : i + m + 1])] += 1
    prefix: Counter = Counter()
    for window, count in joint.items():
        prefix[window[:m]] += count
    total = sum(joint.values())
    return -sum(c / total * math.log(c / prefix[w[:m]]) for w, c in joint.items())


# ------------------------------------------- vectorised ranking references
# Plain NumPy forms of the ranking rules (ties against the target, NaN as -inf,
# history masked except the target), checked in test_eval.py against per-user
# loops and used there as the reference for the batched device evaluator.


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def ranks_full(scores: Any, targets: Any, history: Sequence[Any] | None = None) -> np.ndarray:
    """Ranks of each user's target among items 1..n, with the user's history masked.

    Parameters
    ----------
    scores : array (users, n_items + 1)
        Column ``i`` scores item ``i``; column 0 (padding) is ignored.
    targets : array (users,)
        Target item of each user, in 1..n_items.
    history : list of int arrays, optional
        Items to mask per user (the target is never masked).

    Examples
    --------
    >>> s = np.array([[0.0, 0.9, 0.5, 0.7]])
    >>> ranks_full(s, [2]).tolist(), ranks_full(s, [2], history=[[1]]).tolist()
    ([2], [1])
    """
    scores = np.array(_numpy(scores), dtype=np.float64)  # a copy we may overwrite
    targets = _numpy(targets).astype(np.int64)
    users, width = _check_scores(scores, targets)
    rows = np.arange(users)
    scores[np.isnan(scores)] = -np.inf
    target_scores = scores[rows, targets]
    # masked entries become NaN, which is never >= anything, even a -inf target
    scores[:, 0] = np.nan
    if history is not None:
        if len(history) != users:
            raise ValueError(f"history has {len(history)} entries for {users} users")
        lengths = [len(h) for h in history]
        flat = np.concatenate([np.asarray(h, dtype=np.int64).reshape(-1) for h in history]) if users else []
        flat = np.asarray(flat, dtype=np.int64)
        if flat.size and (flat.min() < 1 or flat.max() >= width):
            raise ValueError(f"history items must lie in 1..{width - 1}, got {flat.min()}..{flat.max()}")
        scores[np.repeat(rows, lengths), flat] = np.nan
    scores[rows, targets] = target_scores
    return (scores >= target_scores[:, None]).sum(axis=1) - 1


def ranks_sampled(target_scores: Any, negative_scores: Any) -> np.ndarray:
    """Ranks of targets against their sampled negatives (ties count against the target).

    Examples
    --------
    >>> ranks_sampled([0.5, 0.1], [[0.1, 0.7], [0.1, 0.0]]).tolist()
    [1, 1]
    """
    target = np.array(_numpy(target_scores), dtype=np.float64)
    negatives = np.array(_numpy(negative_scores), dtype=np.float64)
    if negatives.ndim != 2 or target.shape != (negatives.shape[0],):
        raise ValueError(
            f"expected target_scores (users,) and negative_scores (users, k), got {target.shape} and {negatives.shape}"
        )
    target[np.isnan(target)] = -np.inf
    negatives[np.isnan(negatives)] = -np.inf
    return (negatives >= target[:, None]).sum(axis=1)



def _check_scores(scores: np.ndarray, targets: np.ndarray) -> tuple[int, int]:
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (users, n_items + 1), got shape {scores.shape}")
    users, width = scores.shape
    if targets.shape != (users,):
        raise ValueError(f"targets must have shape ({users},), got {targets.shape}")
    if users and (targets.min() < 1 or targets.max() >= width):
        raise ValueError(f"targets must lie in 1..{width - 1}, got {targets.min()}..{targets.max()}")
    return users, width
