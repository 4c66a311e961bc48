"""The backtest: can the law predict model sizes it has not seen?

For each data panel the largest configurations (by parameter count, a share
``holdout_fraction`` of them, at least one) are held out with all their seeds.
The law is refitted on the remaining runs and predicts the held-out ones;
so do three baselines a practitioner could use instead:

``scaling``
    the decay-free form w1·ln N + w2·ln d + b (bigger is always better);
``loglinear``
    a + b·ln P in the parameter count P, as HSTU's paper fits accuracy;
``nearest``
    the mean of the measured configuration nearest in (ln N, ln d).

Errors are relative, per held-out run: |predicted − measured| / |measured|.
The law's 90% prediction interval for a held-out run is the 5–95% range of
bootstrap refits on the kept runs, each plus one residual of the kept fit
(drawn at random and inflated for the fitted degrees of freedom), so that it
covers a new run, seed noise included; ``coverage_90`` is the share of
held-out runs inside it. ``seed_noise`` is the pooled standard deviation of
the metric between seeds of one configuration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perflaw.law.forms import FORMS, Spec
from perflaw.law.resampling import bootstrap_mode, relative_errors, resample, trainable
from perflaw.law.solve import solve
from perflaw.law.table import LawData
from perflaw.law.values import bounds_for, clean, clip_to

Array = np.ndarray

BASELINES = ("scaling", "loglinear", "nearest")
# Bootstrap refits on the kept runs for the held-out prediction intervals.
MAX_BACKTEST_BOOT = 100
COVERAGE_LEVEL = 0.90


@dataclass(frozen=True)
class Backtest:
    """Held-out errors of the law and its baselines on one data panel.

    Attributes
    ----------
    panel : str
        The data panel (``"beauty|50"``).
    available : bool
        False when the panel is too small to hold anything out; ``reason`` says why.
    law : dict
        ``mean_relative_error``, ``max_relative_error`` and ``coverage_90``.
    baselines : dict
        Baseline name -> ``mean_relative_error``, ``max_relative_error``
        (None where a baseline cannot be fitted on the kept runs).
    seed_noise : float or None
        Pooled standard deviation between seeds (None with one seed per size).
    held_out : list of dict
        One record per held-out configuration: N, d, size, measured mean and
        runs, the law's prediction with its 90% interval, each baseline's.
    n_kept, n_held : int
        Configurations kept for the refit and held out.
    """

    panel: str
    available: bool
    reason: str | None = None
    law: dict[str, float | None] = field(default_factory=dict)
    baselines: dict[str, dict[str, float | None]] = field(default_factory=dict)
    seed_noise: float | None = None
    held_out: list[dict[str, Any]] = field(default_factory=list)
    n_kept: int = 0
    n_held: int = 0

    @property
    def winner(self) -> str | None:
        """The predictor with the lowest mean relative error (``"law"`` or a baseline)."""
        scores = {"law": self.law.get("mean_relative_error")}
        scores.update({name: b.get("mean_relative_error") for name, b in self.baselines.items()})
        scores = {k: v for k, v in scores.items() if v is not None}
        return min(scores, key=lambda k: (scores[k], k != "law")) if scores else None

    @property
    def best_baseline(self) -> tuple[str, float] | None:
        """The baseline with the lowest mean relative error, and that error."""
        scores = {k: b["mean_relative_error"] for k, b in self.baselines.items()
                  if b.get("mean_relative_error") is not None}
        if not scores:
            return None
        name = min(scores, key=scores.get)
        return name, float(scores[name])

    @property
    def law_wins(self) -> bool:
        """True when the law's mean error is below every baseline's."""
        return self.available and self.winner == "law"

    def to_dict(self) -> dict[str, Any]:
        return clean({
            "panel": self.panel, "available": self.available, "reason": self.reason,
            "law": self.law, "baselines": self.baselines, "seed_noise": self.seed_noise,
            "winner": self.winner, "n_kept": self.n_kept, "n_held": self.n_held, "held_out": self.held_out,
        })


def seed_noise(data: LawData) -> float | None:
    """Pooled within-configuration standard deviation of the metric (None without repeats).

    Examples
    --------
    >>> import pandas as pd
    >>> from perflaw.law.table import build_law_data
    >>> df = pd.DataFrame({"layers": [1, 1, 2, 2], "ndcg@10": [0.1, 0.3, 0.2, 0.2]})
    >>> round(seed_noise(build_law_data(df, "ndcg@10", {"N": ["layers"]})), 6)
    0.1
    """
    sum_sq, dof = 0.0, 0
    for c in np.unique(data.config):
        values = data.y[data.config == c]
        if len(values) >= 2:
            sum_sq += float(np.sum((values - values.mean()) ** 2))
            dof += len(values) - 1
    return math.sqrt(sum_sq / dof) if dof else None


def held_out_mask(data: LawData, fraction: float, shrink: int = 0) -> Array:
    """Runs of the largest configurations of each panel (``ceil(fraction·configs) − shrink``, ≥ 1)."""
    held = np.zeros(data.n, dtype=bool)
    for p in np.unique(data.panel):
        rows = data.panel == p
        configs = np.unique(data.config[rows])
        size = np.array([data.size[data.config == c].mean() for c in configs])
        n_out = max(1, math.ceil(fraction * len(configs)) - shrink)
        largest = configs[np.argsort(-size, kind="stable")[:n_out]]
        held |= np.isin(data.config, largest)
    return held


def run_backtest(spec: Spec, data: LawData, *, fraction: float = 0.25, n_boot: int = MAX_BACKTEST_BOOT,
                 seed: int = 0, loss: str = "linear", n_polish: int = 3,
                 baseline_D: str = "fixed") -> dict[str, Backtest]:
    """Backtest ``spec`` on ``data``: one :class:`Backtest` per panel label.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from perflaw.law import FORMS
    >>> from perflaw.law.table import build_law_data
    >>> N, d = (a.ravel() for a in np.meshgrid([1, 2, 4, 8], [8, 16, 32, 64]))
    >>> y = FORMS["scaling"].predict({"w1": 0.01, "w2": 0.02, "b": 0.05}, N=N, d=d, D=1.0)
    >>> df = pd.DataFrame({"layers": N, "dim": d, "d_prime": 1.0, "ndcg@10": y})
    >>> data = build_law_data(df, "ndcg@10", FORMS["scaling"].columns)
    >>> bt = run_backtest(FORMS["scaling"].specify(data), data, n_boot=0)["all"]
    >>> bt.available, bt.law["mean_relative_error"] < 1e-9
    (True, True)
    """
    held, reason = _holdout(spec, data, fraction)
    if held is None:
        return {label: Backtest(panel=label, available=False, reason=reason,
                                seed_noise=seed_noise(_panel(data, i)))
                for i, label in enumerate(data.panel_labels) if np.any(data.panel == i)}
    train, test = data.subset(np.flatnonzero(~held)), data.subset(np.flatnonzero(held))
    bounds = bounds_for(data.metric, data.y)
    sol = solve(spec, train.X, train.panel, train.y, loss=loss, n_polish=n_polish, polish=False)
    law_pred = clip_to(spec.predict(sol.theta, test.X, test.panel), bounds)
    lower, upper = _prediction_band(spec, train, test, sol.theta, n_boot, seed, bounds)
    predictions = {
        "scaling": _scaling_baseline(train, test, loss, baseline_D),
        "loglinear": _loglinear_baseline(train, test),
        "nearest": _nearest_baseline(train, test),
    }
    predictions = {k: (clip_to(v, bounds) if v is not None else None) for k, v in predictions.items()}
    out = {}
    for i, label in enumerate(data.panel_labels):
        rows = test.panel == i
        if not rows.any():
            continue
        out[label] = _panel_backtest(label, data, train, test, rows, law_pred, lower, upper, predictions)
    return out


def _panel(data: LawData, panel_id: int) -> LawData:
    return data.subset(np.flatnonzero(data.panel == panel_id))


def _holdout(spec: Spec, data: LawData, fraction: float) -> tuple[Array | None, str]:
    """The held-out mask, shrunk until the law can still be fitted on the rest."""
    most = max(math.ceil(fraction * len(np.unique(data.config[data.panel == p]))) for p in np.unique(data.panel))
    reason = "no configuration to hold out"
    for shrink in range(max(most, 1)):
        held = held_out_mask(data, fraction, shrink)
        if held.all():
            reason = "a single model size was trained: nothing is left to refit the law on"
            continue
        why = trainable(spec, data.subset(np.flatnonzero(~held)), data.panel[held])
        if why is None:
            return held, ""
        reason = f"without its largest sizes the law cannot be refitted ({why})"
    return None, reason


def _prediction_band(spec: Spec, train: LawData, test: LawData, theta: Array, n_boot: int, seed: int,
                     bounds: tuple[float, float] | None) -> tuple[Array, Array]:
    """5–95% range of bootstrap refits plus a drawn residual (see the module doc)."""
    n_boot = min(n_boot, MAX_BACKTEST_BOOT)
    if n_boot < 2:
        return np.full(test.n, np.nan), np.full(test.n, np.nan)
    rng = np.random.default_rng(seed)
    resid = train.y - spec.predict(theta, train.X, train.panel)
    dof = max(train.n - spec.n_params, 1)
    resid = resid * math.sqrt(train.n / dof)
    mode = bootstrap_mode(train, "auto")
    draws = []
    for _ in range(n_boot):
        index = resample(train, mode, rng, spec)
        if index is None:
            continue
        sample = train.subset(index)
        try:
            sol = solve(spec, sample.X, sample.panel, sample.y, n_polish=1, extra_starts=[theta],
                        use_grid=False, polish=False)
        except (ValueError, np.linalg.LinAlgError):
            continue
        draws.append(spec.predict(sol.theta, test.X, test.panel) + rng.choice(resid, size=test.n))
    if len(draws) < 2:
        return np.full(test.n, np.nan), np.full(test.n, np.nan)
    draws = np.asarray(draws)
    tail = (1 - COVERAGE_LEVEL) / 2
    lower, upper = np.nanquantile(draws, tail, axis=0), np.nanquantile(draws, 1 - tail, axis=0)
    return clip_to(lower, bounds), clip_to(upper, bounds)


def _scaling_baseline(train: LawData, test: LawData, loss: str, D: str) -> Array | None:
    form = FORMS["scaling"]
    if not {"N", "d"} <= set(train.X):
        return None
    try:
        spec = form.specify(train, D=D if "D" in train.X else "free")
    except ValueError:
        return None
    if trainable(spec, train, test.panel) is not None:
        return None
    sol = solve(spec, train.X, train.panel, train.y, loss=loss, n_polish=1, polish=False)
    X = {k: v for k, v in test.X.items() if k in spec.variables}
    return spec.predict(sol.theta, X, test.panel)


def _loglinear_baseline(train: LawData, test: LawData) -> Array | None:
    """a + b·ln P per panel, least squares on the kept runs."""
    pred = np.full(test.n, np.nan)
    for p in np.unique(test.panel):
        rows = train.panel == p
        lnP = np.log(train.size[rows])
        if len(np.unique(lnP)) < 2:
            return None
        b, a = np.polyfit(lnP, train.y[rows], 1)
        pred[test.panel == p] = a + b * np.log(test.size[test.panel == p])
    return pred


def _nearest_baseline(train: LawData, test: LawData) -> Array | None:
    """The mean of the kept configuration nearest in log-size space (same panel)."""
    variables = [v for v in ("N", "d") if v in train.X] or sorted(train.X)
    pred = np.full(test.n, np.nan)
    for config in np.unique(test.config):  # one look-up per held-out configuration, not per run
        i = int(np.flatnonzero(test.config == config)[0])
        rows = np.flatnonzero(train.panel == test.panel[i])
        if rows.size == 0:
            return None
        dist = sum((np.log(train.X[v][rows]) - math.log(test.X[v][i])) ** 2 for v in variables)
        # ties (common on a log grid; rounded so that they are exact) go to the
        # larger model: the closest to the sizes that are held out
        order = np.lexsort((-train.size[rows], np.round(dist, 9)))
        nearest = train.config[rows[order[0]]]
        pred[test.config == config] = float(train.y[train.config == nearest].mean())
    return pred


def _scores(pred: Array, y: Array) -> dict[str, float | None]:
    errors = relative_errors(pred, y)
    if errors.size == 0 or not np.all(np.isfinite(errors)):
        return {"mean_relative_error": None, "max_relative_error": None}
    return {"mean_relative_error": float(errors.mean()), "max_relative_error": float(errors.max())}


def _panel_backtest(label: str, data: LawData, train: LawData, test: LawData, rows: Array, law_pred: Array,
                    lower: Array, upper: Array, predictions: dict[str, Array | None]) -> Backtest:
    y = test.y[rows]
    law = _scores(law_pred[rows], y)
    inside = (y >= lower[rows]) & (y <= upper[rows])
    law["coverage_90"] = float(inside.mean()) if np.all(np.isfinite(lower[rows])) else None
    baselines = {name: (_scores(pred[rows], y) if pred is not None else
                        {"mean_relative_error": None, "max_relative_error": None})
                 for name, pred in predictions.items()}
    records = []
    for c in np.unique(test.config[rows]):
        sel = rows & (test.config == c)
        first = int(np.flatnonzero(sel)[0])
        record = {v: float(test.X[v][first]) for v in test.X}
        record.update(size=float(test.size[first]), measured=float(test.y[sel].mean()), runs=int(sel.sum()),
                      law=float(law_pred[first]), lower_90=float(lower[first]), upper_90=float(upper[first]))
        record.update({name: (float(pred[first]) if pred is not None else None)
                       for name, pred in predictions.items()})
        records.append(record)
    panel_id = data.panel_labels.index(label)
    return Backtest(
        panel=label, available=True, law=law, baselines=baselines,
        seed_noise=seed_noise(_panel(data, panel_id)), held_out=records,
        n_kept=len(np.unique(train.config[train.panel == panel_id])), n_held=len(records),
    )
