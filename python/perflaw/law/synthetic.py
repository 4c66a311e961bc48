"""Results tables drawn from a known law, for tests, benches and docs.

The table has the columns the sweep runner writes (dataset, max_len, model,
layers, dim, d_prime, seed, the metric, status …), so everything downstream
treats it like real runs. Deterministic given ``seed``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from perflaw.law.custom import get_form
from perflaw.errors import PerflawError

PAPER_LAYERS = (4, 8, 12, 16, 24, 32)
PAPER_DIMS = (25, 50, 75, 100)

# A Performance Law with an interior optimum near N = 12, d = 60 and
# NDCG-like values (about 0.03–0.07) over the paper's grid.
PEAKED = {"w1": 0.03, "w2": 0.02, "w3": -1.0, "w4": -0.7, "p1": -1.0 / 12.0, "b": -0.03, "p2": 0.0, "w5": 1.0}
# A decay-free law: keeps rising in N and d (no optimum inside any range).
DECAY_FREE = {"w1": 0.01, "w2": 0.015, "b": -0.02}


def synthetic_runs(
    form: str = "performance",
    params: Mapping[str, float] | None = None,
    *,
    layers: Sequence[int] = PAPER_LAYERS,
    dims: Sequence[int] = PAPER_DIMS,
    d_primes: Sequence[float] = (1.0,),
    seeds: int = 1,
    noise: float = 0.0,
    seed: int = 0,
    metric: str = "ndcg@10",
    max_len: int = 50,
    n_items: int = 1000,
    model: str = "llama",
) -> pd.DataFrame:
    """One row per (D′, N, d, seed) with the law's value plus Gaussian noise.

    Parameters
    ----------
    form : str
        Law form that generates the metric (``performance``, ``scaling`` …).
    params : mapping, optional
        Its parameters (default :data:`PEAKED` for the performance forms,
        :data:`DECAY_FREE` for ``scaling``).
    layers, dims : sequences of int
        The grid of N and d (default: the paper's 6 × 4 grid).
    d_primes : sequence of float
        One data panel (dataset ``syn0``, ``syn1`` …) per D′ value.
    seeds : int
        Runs per configuration.
    noise : float
        Standard deviation of the additive noise per run.
    seed : int
        Seed of the noise.

    Examples
    --------
    >>> df = synthetic_runs(noise=0.001, seeds=2)
    >>> len(df), sorted(df.columns)[:4]
    (48, ['d_prime', 'dataset', 'dim', 'layers'])
    """
    if seeds < 1:
        raise PerflawError(f"seeds must be at least 1, got {seeds}")
    if noise < 0:
        raise PerflawError(f"noise must be non-negative, got {noise}")
    law = get_form(form)
    if params is None:
        params = DECAY_FREE if law.name == "scaling" else PEAKED
    rng = np.random.default_rng(seed)
    rows = []
    for panel, d_prime in enumerate(d_primes):
        for n in layers:
            for d in dims:
                value = float(law.predict(dict(params), N=n, d=d, D=d_prime)[0])
                for s in range(seeds):
                    rows.append({
                        "dataset": f"syn{panel}", "max_len": max_len, "model": model, "layers": int(n),
                        "dim": int(d), "d_prime": float(d_prime), "n_items": n_items, "seed": s,
                        metric: value + (rng.normal(0.0, noise) if noise else 0.0), "status": "ok",
                    })
    return pd.DataFrame(rows)
