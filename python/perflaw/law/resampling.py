"""Resampling the runs: which subsets can still be fitted, bootstrap samples, errors.

Shared by the fitter's bootstrap and held-out errors and by the backtest.
"""

from __future__ import annotations

import numpy as np

from perflaw.law.forms import Spec
from perflaw.law.table import LawData
from perflaw.errors import PerflawError

Array = np.ndarray


def trainable(spec: Spec, train: LawData, test_panels: Array | None = None) -> str | None:
    """Why ``spec`` cannot be refitted on ``train`` (None when it can)."""
    for var in spec.variables:
        if var in spec.held or var not in train.X:
            continue
        if len(np.unique(train.X[var])) < 2:
            return f"a single value of {var} remains"
    if train.n_configs < spec.n_params:
        return f"{train.n_configs} configurations for {spec.n_params} parameters"
    if spec.per_panel:
        needed = np.unique(test_panels) if test_panels is not None else np.arange(len(spec.panel_labels))
        if not np.all(np.isin(needed, train.panel)):
            return "a panel with per-panel parameters would have no runs"
    return None


def relative_errors(pred: Array, y: Array) -> Array:
    keep = y != 0
    return np.abs(pred[keep] - y[keep]) / np.abs(y[keep])


def bootstrap_mode(data: LawData, requested: str) -> str:
    """``seeds`` when asked for (or ``auto`` and every configuration has two or
    more runs), ``runs`` otherwise."""
    if requested in ("runs", "seeds", "none"):
        if requested == "seeds":
            counts = np.bincount(data.config)
            if counts[counts > 0].min() < 2:
                raise PerflawError(
                    "bootstrap='seeds' needs at least two runs (seeds) of every configuration; "
                    f"{int(np.sum(counts == 1))} configuration(s) have one"
                )
        return requested
    counts = np.bincount(data.config)
    return "seeds" if counts[counts > 0].min() >= 2 else "runs"


def resample(data: LawData, mode: str, rng: np.random.Generator, spec: Spec, tries: int = 100) -> Array | None:
    """Indices of one bootstrap sample (None when no valid sample was drawn).

    ``runs``: n runs drawn with replacement from all runs, redrawn until the
    sample can still be fitted. ``seeds``: within each configuration, its runs
    drawn with replacement, so every configuration keeps its count.
    """
    if mode == "seeds":
        groups = [np.flatnonzero(data.config == c) for c in np.unique(data.config)]
        return np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
    for _ in range(tries):
        index = rng.integers(0, data.n, size=data.n)
        if trainable(spec, data.subset(index)) is None:
            return index
    return None
