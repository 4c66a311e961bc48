"""Slow, literal pure-Python references for the kernels (no numpy tricks, no Rust).

Each follows the textbook definition directly, so the tests compare the fast
kernels against something written independently of them.
"""

from __future__ import annotations

import math
from collections import Counter


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
