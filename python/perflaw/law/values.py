"""Small helpers shared by the law's modules: JSON-ready values, region checks."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
from perflaw.errors import PerflawError, PerflawTypeError


def check_region(region: Mapping[str, Sequence[float]]) -> dict[str, tuple[float, float]]:
    """Validate a trust region: variable -> (low, high), 0 < low < high."""
    if not isinstance(region, Mapping):
        raise PerflawTypeError(f"trust_region must be a mapping variable -> (low, high), got {type(region).__name__}")
    out: dict[str, tuple[float, float]] = {}
    for var, bounds in region.items():
        try:
            lo, hi = (float(b) for b in bounds)
        except (TypeError, ValueError) as exc:
            raise PerflawError(f"trust_region[{var!r}] must be (low, high), got {bounds!r}") from exc
        if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < hi):
            raise PerflawError(f"trust_region[{var!r}] must satisfy 0 < low < high, got ({lo!r}, {hi!r})")
        out[str(var)] = (lo, hi)
    return out


def clean(value: Any) -> Any:
    """JSON-ready copy: numpy scalars to Python, NaN/inf to None."""
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [clean(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    return value


# Metrics that are shares or averages of per-user scores in [0, 1]: hit rate,
# NDCG, MRR, recall, precision, MAP, AUC.
_BOUNDED_PREFIXES = ("hr", "hit", "ndcg", "mrr", "recall", "precision", "map", "auc")


def metric_bounds(metric: str) -> tuple[float, float] | None:
    """(0, 1) for a ranking metric that cannot leave that range, else None.

    Examples
    --------
    >>> metric_bounds("ndcg@10"), metric_bounds("loss")
    ((0.0, 1.0), None)
    """
    name = metric.strip().lower().split("@")[0]
    return (0.0, 1.0) if name in _BOUNDED_PREFIXES else None


def clip_to(values: Any, bounds: tuple[float, float] | None) -> Any:
    """``values`` clipped into ``bounds`` (unchanged when bounds is None); NaN stays NaN."""
    if bounds is None:
        return values
    clipped = np.clip(values, bounds[0], bounds[1])
    return float(clipped) if np.ndim(clipped) == 0 else clipped


def bounds_for(metric: str, measured: Any) -> tuple[float, float] | None:
    """:func:`metric_bounds`, or None when a measured value lies outside them."""
    bounds = metric_bounds(metric)
    values = np.asarray(measured, dtype=np.float64)
    if bounds is None or np.any((values < bounds[0]) | (values > bounds[1])):
        return None
    return bounds
