"""The answer: which model size to train on a dataset, and how sure we are.

:func:`recommend` turns a fitted law into one :class:`Recommendation` per data
panel, by the rule written down in docs/law.md:

1. Candidates are the sizes a user can train inside the trained range: every
   integer N, and the trained dims plus the multiples of a step (8 for dims of
   16 and more) between them. ``reach > 1`` extends the upper end by that
   factor; such an answer is marked ``extrapolated`` when it lies beyond the
   trained sizes, and is never of high confidence.
2. The law's best candidate is the answer, unless one of these holds, in which
   case confidence is **low** and the answer falls back to the best measured
   configuration: the fit did not converge; a parameter is not identified by
   the runs; the backtest was switched off, or a baseline predicts the held-out
   largest sizes at least as well as the law; the law's predictions vary across
   the trained sizes by less than the seed-to-seed noise (size does not matter
   measurably).
3. Confidence is **medium** when the answer stands but: it lies on the edge of
   the searched sizes (accuracy may still rise beyond); bootstrap refits put the
   best size more than a factor 2 apart; a parameter ended on its bound; the law
   explains less than half of the variance (R² < 0.5); the 90% backtest intervals cover fewer than half of the
   held-out runs; there is one seed per size (noise unknown); or the search
   went beyond the trained sizes. Otherwise it is **high**.
4. The gain is the law's predicted difference between its best size and the best
   measured configuration. With two or more seeds, a gain smaller than the
   seed-to-seed noise is no gain (without seeds: a gain of zero or less): the
   answer is then the best measured configuration itself, which the law does not
   expect to beat.
5. No answer at all (no number presented) when a single size was trained, every
   run measured the same value, or there are too few sizes to hold any out for
   the backtest.
6. When confidence is not high, ``next_runs`` names up to three configurations
   to train next: one size beyond an edge optimum, the sizes where bootstrap
   refits put the optimum most often, a second seed when there is none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from perflaw.law.backtest import seed_noise
from perflaw.law.optimum import default_param_counter
from perflaw.law.options import DEFAULT_REACH
from perflaw.law.values import clean, clip_to
from perflaw.errors import PerflawError

if TYPE_CHECKING:  # pragma: no cover
    from perflaw.law.fitting import Fit

Array = np.ndarray

CONFIDENCE_LEVELS = ("high", "medium", "low")
MIN_R2 = 0.5
MIN_COVERAGE = 0.5
# Bootstrap refits whose optimal sizes span more than this factor disagree.
MAX_OPTIMUM_SPREAD = 2.0
MAX_NEXT_RUNS = 3


@dataclass(frozen=True)
class Recommendation:
    """The model size to train on one dataset, with an honest confidence.

    Attributes
    ----------
    panel, dataset : str
        The data panel's label (``"beauty|50"``) and a readable name
        (``"beauty (max_len 50)"``).
    metric : str
        The accuracy metric the answer is about.
    layers, dim : int or None
        The configuration to train (None when the runs allow no answer).
    params : float or None
        Its parameter count (from the table's model and catalogue size).
    predicted : float or None
        Expected metric of that configuration.
    interval : (float, float) or None
        Interval of ``predicted`` at the fit's ``ci`` level, inside the metric's range.
    best_measured : dict
        ``layers``, ``dim``, ``value`` (mean over its seeds), ``runs`` and ``params``.
    gain, relative_gain : float or None
        What the law expects the answer to gain over the best measured
        configuration (both predicted by the law, so that its bias cancels);
        0 when the answer is that configuration.
    extrapolated : bool
        True when the answer lies beyond the trained sizes.
    confidence : {"high", "medium", "low"}
    source : {"law", "best measured", "none"}
        Where the answer comes from: the law's optimum; the best measured
        configuration (the fallback of a low-confidence answer, or because the
        law promises no gain over it); or no answer.
    reasons : tuple of str
        Plain sentences: why this answer, and why this confidence.
    next_runs : tuple of dict
        ``layers``, ``dim`` and ``why`` of the runs worth training next.
    """

    panel: str
    dataset: str
    metric: str
    layers: int | None
    dim: int | None
    params: float | None
    predicted: float | None
    interval: tuple[float, float] | None
    best_measured: dict[str, Any]
    gain: float | None
    relative_gain: float | None
    extrapolated: bool
    confidence: str
    source: str
    reasons: tuple[str, ...]
    next_runs: tuple[dict[str, Any], ...] = ()
    ci: float = 0.95
    reach: float = DEFAULT_REACH
    seed_noise: float | None = None
    optimum_range: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return clean({
            "panel": self.panel, "dataset": self.dataset, "metric": self.metric,
            "layers": self.layers, "dim": self.dim, "params": self.params,
            "predicted": self.predicted, "interval": list(self.interval) if self.interval else None,
            "ci": self.ci, "best_measured": self.best_measured, "gain": self.gain,
            "relative_gain": self.relative_gain, "extrapolated": self.extrapolated,
            "confidence": self.confidence, "source": self.source, "reasons": list(self.reasons),
            "next_runs": [dict(r) for r in self.next_runs], "reach": self.reach,
            "seed_noise": self.seed_noise,
            "optimum_range": {k: list(v) for k, v in self.optimum_range.items()},
        })

    def headline(self) -> str:
        """The answer in one line, as every summary starts.

        Examples
        --------
        >>> r = Recommendation(panel="b|50", dataset="b (max_len 50)", metric="ndcg@10", layers=2, dim=64,
        ...                    params=1.2e6, predicted=0.052, interval=(0.049, 0.055),
        ...                    best_measured={"layers": 2, "dim": 32, "value": 0.049, "runs": 2},
        ...                    gain=0.003, relative_gain=0.06, extrapolated=False, confidence="medium",
        ...                    source="law", reasons=("one seed per size",))
        >>> r.headline()
        'b (max_len 50): train N = 2, d = 64 (1.2M parameters): expected NDCG@10 0.0520 [0.0490, 0.0550], 6.0% above the best size trained (N = 2, d = 32); confidence medium: one seed per size'
        """
        metric = self.metric.upper() if "@" in self.metric or len(self.metric) <= 4 else self.metric
        if self.source == "none":
            best = self.best_measured
            evidence = (f" (best size trained, as evidence only: N = {best['layers']}, d = {best['dim']}, "
                        f"measured {_fmt(best['value'])})" if best else "")
            return f"{self.dataset}: no recommendation; confidence low: {self.reasons[0]}{evidence}"
        size = f" ({_count(self.params)} parameters)" if self.params else ""
        interval = f" [{_fmt(self.interval[0])}, {_fmt(self.interval[1])}]" if self.interval else ""
        best = self.best_measured
        best_cfg = f"N = {best['layers']}, d = {best['dim']}"
        if self.source == "best measured":
            gain = f"the best size trained (measured {_fmt(best['value'])})"
        elif not self.gain:
            gain = f"no gain over the best size trained ({best_cfg})"
        else:
            gain = f"{100 * abs(self.relative_gain or 0):.1f}% {'above' if self.gain > 0 else 'below'} the best size trained ({best_cfg})"
        where = ", beyond the trained sizes" if self.extrapolated else ""
        return (f"{self.dataset}: train N = {self.layers}, d = {self.dim}{size}{where}: expected {metric} "
                f"{_fmt(self.predicted)}{interval}, {gain}; confidence {self.confidence}: {self.reasons[0]}")


def _fmt(x: float | None) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.4f}"


def _count(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.0f}"


# ---------------------------------------------------------------------------
# the rule


@dataclass
class _Panel:
    """The measured configurations of one panel and the law's view of them."""

    label: str
    index: int
    configs: list[dict[str, Any]]  # layers, dim, value, runs, size
    best: dict[str, Any]
    noise: float | None

    @property
    def top_N(self) -> int:
        """The largest trained number of layers."""
        return max(c["layers"] for c in self.configs)

    @property
    def top_d(self) -> int:
        """The largest trained dimension."""
        return max(c["dim"] for c in self.configs)


def recommend(fit: "Fit", *, panel: str | None = None, reach: float = DEFAULT_REACH) -> Recommendation:
    """The configuration to train on a panel, by the rule of the module doc.

    Parameters
    ----------
    fit : Fit
        A fitted law (its backtest is part of the fit unless ``holdout=False``).
    panel : str, optional
        The data panel; needed when the law covers several.
    reach : float
        Search up to ``reach`` times the largest trained N and d (1: inside the
        trained range, the default). Beyond 1 the answer is never of high confidence.

    Returns
    -------
    Recommendation

    Examples
    --------
    >>> import numpy as np, pandas as pd, perflaw
    >>> from perflaw.law.synthetic import synthetic_runs
    >>> law = perflaw.fit(synthetic_runs(noise=0.00005, seeds=2, seed=1), form="performance", n_boot=40)
    >>> rec = law.recommend()
    >>> (rec.layers, rec.dim, rec.source, rec.confidence)
    (12, 56, 'law', 'high')
    """
    if not (isinstance(reach, (int, float)) and math.isfinite(reach) and reach >= 1):
        raise PerflawError(f"reach must be a number >= 1 (1 keeps the search inside the trained sizes), got {reach!r}")
    if set(fit.model_variables) != {"N", "d"}:
        raise PerflawError(f"a recommendation needs a law in N and d; this one is in {list(fit.model_variables)}")
    data = _panel_data(fit, panel)
    dataset = _display(fit, data.label)
    blocked = _degenerate(fit, data) or _unchecked(fit, data)
    if blocked:
        return _no_answer(fit, data, dataset, blocked, reach)

    grid = _candidates(data, reach)
    key = {"panel": fit.panels[data.index]} if len(fit.panels) > 1 else {}
    X, panel_ids = fit.inputs(**key, N=grid["N"], d=grid["d"])
    sign = 1.0 if fit.direction == "max" else -1.0
    values = clip_to(fit.spec.predict(fit.theta, X, panel_ids), fit.bounds)
    replicates = [clip_to(fit.spec.predict(t, X, panel_ids), fit.bounds) for t in fit.replicates()]
    best_i = int(np.nanargmax(sign * values))
    rep_best = [int(np.nanargmax(sign * r)) for r in replicates if np.any(np.isfinite(r))]

    blockers = _blockers(fit, data, grid, values)
    cautions, optimum_range = _cautions(fit, data, grid, rep_best, reach)
    notes: list[str] = []
    if blockers:
        answer = _fallback(fit, data)
        cautions = []
    else:
        answer = _law_answer(fit, data, grid, values, replicates, best_i)
        no_gain = _no_gain(data, answer)
        if no_gain:
            # The law expects nothing better than what was measured: train the measured best.
            answer = _fallback(fit, data)
            notes.append(no_gain)
        cautions = _edge_cautions(grid, answer["layers"], answer["dim"]) + cautions
    confidence = "low" if blockers else "medium" if cautions else "high"
    # the reasons for the confidence come first (the headline shows the first one)
    reasons = blockers + cautions + notes if confidence != "high" else notes + _strengths(fit, data)
    next_runs = () if confidence == "high" else _next_runs(data, grid, rep_best, answer)
    return Recommendation(
        panel=data.label, dataset=dataset, metric=fit.metric, confidence=confidence, reasons=tuple(reasons),
        next_runs=tuple(next_runs), ci=fit.options.ci, reach=float(reach), seed_noise=data.noise,
        best_measured=_with_params(fit, data, data.best), optimum_range=optimum_range, **answer,
    )


def _panel_data(fit: "Fit", panel: str | None) -> _Panel:
    if panel is None:
        if len(fit.panels) > 1:
            raise PerflawError(f"this law covers several data panels; give panel= (one of {list(fit.panels)})")
        panel = fit.panels[0]
    if panel not in fit.panels:
        raise PerflawError(f"unknown panel {panel!r}; panels: {list(fit.panels)}")
    index = fit.panels.index(panel)
    rows = fit.data.panel == index
    data = fit.data.subset(np.flatnonzero(rows))
    configs = []
    for c in np.unique(data.config):
        sel = data.config == c
        first = int(np.flatnonzero(sel)[0])
        configs.append({"layers": int(round(data.X["N"][first])), "dim": int(round(data.X["d"][first])),
                        "value": float(data.y[sel].mean()), "runs": int(sel.sum()),
                        "size": float(data.size[first])})
    sign = 1.0 if fit.direction == "max" else -1.0
    # the best mean; ties go to the smaller model
    best = max(configs, key=lambda c: (sign * c["value"], -c["size"]))
    return _Panel(label=panel, index=index, configs=configs, best=best, noise=seed_noise(data))


def _display(fit: "Fit", label: str) -> str:
    return display_name(label, [c for c in fit.options.panel_by if c in fit.data.source.columns])


def display_name(label: str, columns: list[str]) -> str:
    """A panel label in words: ``("beauty|50", ["dataset", "max_len"])`` -> ``"beauty (max_len 50)"``."""
    parts = label.split("|")
    if len(parts) != len(columns) or not columns:
        return label
    extra = ", ".join(f"{c} {v}" for c, v in zip(columns[1:], parts[1:]))
    return parts[0] + (f" ({extra})" if extra else "")


def _degenerate(fit: "Fit", data: _Panel) -> str | None:
    """Why the runs of this panel allow no answer at all (None when they do)."""
    if len(data.configs) < 2:
        return "a single model size was trained, so there is nothing to compare"
    values = np.array([c["value"] for c in data.configs])
    if np.ptp(values) == 0:
        return (f"every size measured the same {fit.metric} ({values[0]:g}): the runs say nothing "
                "about which size is better")
    return None


def _unchecked(fit: "Fit", data: _Panel) -> str | None:
    """Too few sizes to check the law on held-out ones: no answer (None when the backtest ran)."""
    bt = fit.backtest.get(data.label)
    if bt is not None and not bt.available:
        return f"the law could not be checked on held-out sizes ({bt.reason}); train more sizes"
    return None


def _no_answer(fit: "Fit", data: _Panel, dataset: str, reason: str, reach: float) -> Recommendation:
    return Recommendation(
        panel=data.label, dataset=dataset, metric=fit.metric, layers=None, dim=None, params=None,
        predicted=None, interval=None, best_measured=_with_params(fit, data, data.best), gain=None,
        relative_gain=None, extrapolated=False, confidence="low", source="none", reasons=(reason,),
        next_runs=(), ci=fit.options.ci, reach=float(reach), seed_noise=data.noise,
    )


def _dim_step(low: float) -> int:
    """8 for dims of 16 and more, smaller steps for tiny models."""
    return int(min(8, max(1, 2 ** math.floor(math.log2(max(low, 1) / 2)))))


def _candidates(data: _Panel, reach: float) -> dict[str, Array]:
    layers = sorted({c["layers"] for c in data.configs})
    dims = sorted({c["dim"] for c in data.configs})
    top_N, top_d = int(math.floor(layers[-1] * reach)), int(math.floor(dims[-1] * reach))
    step = _dim_step(dims[0])
    N_axis = np.arange(layers[0], top_N + 1)
    d_axis = np.array(sorted(set(dims) | set(range(step * math.ceil(dims[0] / step), top_d + 1, step))))
    d_axis = d_axis[(d_axis >= dims[0]) & (d_axis <= top_d)]
    N, d = np.meshgrid(N_axis, d_axis, indexing="ij")
    return {"N": N.ravel().astype(np.float64), "d": d.ravel().astype(np.float64)}


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _blockers(fit: "Fit", data: _Panel, grid: dict[str, Array], values: Array) -> list[str]:
    """Reasons that make the law's answer unusable: confidence low, fall back to the best measured."""
    out = []
    if not fit.converged:
        out.append(f"the law's fit did not converge ({fit.convergence.get('message')})")
    if fit.unidentified:
        out.append(f"the runs do not pin down the law's parameters {', '.join(fit.unidentified)} "
                   "(only a combination of them), so its optimum is arbitrary")
    bt = fit.backtest.get(data.label)
    if bt is None:
        out.append("the law was not checked on held-out sizes (holdout=False)")
    elif not bt.law_wins:
        name, error = bt.best_baseline or ("baseline", float("nan"))
        out.append(f"on the largest sizes, held out, the law predicts no better than the simpler {name} "
                   f"baseline (error {_pct(bt.law['mean_relative_error'])} against {_pct(error)})")
    trained = _inside_trained(data, grid)
    spread = float(np.nanmax(values[trained]) - np.nanmin(values[trained])) if trained.any() else 0.0
    if data.noise is not None and spread < data.noise:
        out.append(f"across the trained sizes the law's {fit.metric} varies by {spread:.4f}, less than the "
                   f"seed-to-seed noise ({data.noise:.4f}): size makes no measurable difference here")
    return out


def _inside_trained(data: _Panel, grid: dict[str, Array]) -> Array:
    return (grid["N"] <= data.top_N) & (grid["d"] <= data.top_d)


_NAMES = {"N": "layers N", "d": "dimension d"}


def _edge_cautions(grid: dict[str, Array], layers: int, dim: int) -> list[str]:
    """The answer on the edge of the searched sizes: the best may lie beyond."""
    out = []
    for var, x in (("N", layers), ("d", dim)):
        axis = np.unique(grid[var])
        if len(axis) > 1 and x >= axis[-1]:
            out.append(f"the best size is the largest {_NAMES[var]} searched ({x:g}): accuracy may still rise beyond it")
        elif len(axis) > 1 and x <= axis[0] and not (var == "N" and x <= 1):  # one layer is the floor
            out.append(f"the best size is the smallest {_NAMES[var]} searched ({x:g}): a smaller model may do as well")
    return out


def _cautions(fit: "Fit", data: _Panel, grid: dict[str, Array], rep_best: list[int],
              reach: float) -> tuple[list[str], dict[str, tuple[float, float]]]:
    """Reasons that keep the answer but cap its confidence at medium; and the replicates' optimum range."""
    out = []
    optimum_range = {}
    if len(rep_best) >= 2:
        tail = (1 - fit.options.ci) / 2
        for var in ("N", "d"):
            lo, hi = np.quantile(grid[var][rep_best], [tail, 1 - tail])
            optimum_range[var] = (float(lo), float(hi))
        spread = [f"{_NAMES[v]} from {lo:g} to {hi:g}" for v, (lo, hi) in optimum_range.items()
                  if hi > MAX_OPTIMUM_SPREAD * lo]
        if spread:
            out.append("bootstrap refits disagree on the best size: " + ", ".join(spread))
    else:
        out.append("no bootstrap refits, so the uncertainty of the answer is unknown")
    if fit.at_bound:
        out.append(f"the fit pushed {', '.join(fit.at_bound)} to the edge of the allowed range, so the law's "
                   "shape there is forced rather than measured")
    if math.isfinite(fit.r2) and fit.r2 < MIN_R2:
        out.append(f"the law explains only {100 * max(fit.r2, 0):.0f}% of the differences between runs (R² {fit.r2:.2f})")
    bt = fit.backtest.get(data.label)
    coverage = bt.law.get("coverage_90") if bt is not None and bt.available else None
    if coverage is not None and coverage < MIN_COVERAGE:
        out.append(f"the law's 90% intervals held only {100 * coverage:.0f}% of the held-out runs")
    if data.noise is None:
        out.append("one seed per size: the seed-to-seed noise is unknown, so small differences may be chance")
    if reach > 1:
        out.append(f"the search went beyond the trained sizes (up to {reach:g}× the largest), where no run checks the law")
    return out, optimum_range


def _strengths(fit: "Fit", data: _Panel) -> list[str]:
    bt = fit.backtest[data.label]
    name, error = bt.best_baseline or ("baseline", float("nan"))
    return [
        f"the law predicts the held-out largest sizes better than every baseline "
        f"(error {_pct(bt.law['mean_relative_error'])}, best baseline {name} {_pct(error)})",
        "its optimum lies inside the trained sizes and bootstrap refits agree on it",
    ]


def _fallback(fit: "Fit", data: _Panel) -> dict[str, Any]:
    """The best measured configuration, with an interval for its mean from the noise."""
    best = data.best
    z = NormalDist().inv_cdf(0.5 + fit.options.ci / 2)
    noise = data.noise if data.noise is not None else fit.rmse
    half = z * noise / math.sqrt(best["runs"])
    lo, hi = clip_to(best["value"] - half, fit.bounds), clip_to(best["value"] + half, fit.bounds)
    return {"layers": best["layers"], "dim": best["dim"], "params": _params(fit, data, best["layers"], best["dim"]),
            "predicted": best["value"], "interval": (float(lo), float(hi)), "gain": 0.0, "relative_gain": 0.0,
            "extrapolated": False, "source": "best measured"}


def _law_answer(fit: "Fit", data: _Panel, grid: dict[str, Array], values: Array, replicates: list[Array],
                best_i: int) -> dict[str, Any]:
    layers, dim = int(grid["N"][best_i]), int(grid["d"][best_i])
    predicted = float(values[best_i])
    interval = None
    if len(replicates) >= 2:
        tail = (1 - fit.options.ci) / 2
        at_best = np.array([r[best_i] for r in replicates])
        interval = tuple(float(v) for v in np.nanquantile(at_best, [tail, 1 - tail]))
    # The gain is the law's own difference between the two sizes, so that its bias
    # at the peak (it may sit above or below every measured point) cancels.
    sign = 1.0 if fit.direction == "max" else -1.0
    at_best = (grid["N"] == data.best["layers"]) & (grid["d"] == data.best["dim"])
    reference = float(values[at_best][0]) if at_best.any() else data.best["value"]
    gain = sign * (predicted - reference)
    return {"layers": layers, "dim": dim, "params": _params(fit, data, layers, dim), "predicted": predicted,
            "interval": interval, "gain": float(gain),
            "relative_gain": float(gain / abs(reference)) if reference else None,
            "extrapolated": bool(layers > data.top_N or dim > data.top_d), "source": "law"}


def _no_gain(data: _Panel, answer: dict[str, Any]) -> str | None:
    """Why the law's best size promises no gain over the best measured one (None when it does)."""
    if (answer["layers"], answer["dim"]) == (data.best["layers"], data.best["dim"]):
        return None
    law_best = f"the law's best size (N = {answer['layers']}, d = {answer['dim']}, expected {answer['predicted']:.4f})"
    if data.noise is not None and answer["gain"] < data.noise:
        return (f"{law_best} promises no gain beyond the seed-to-seed noise ({data.noise:.4f}) over the best "
                "size trained, so train that one")
    if answer["gain"] <= 0:
        return f"{law_best} promises no gain over the best size trained, so train that one"
    return None


def _params(fit: "Fit", data: _Panel, layers: int, dim: int) -> float | None:
    for c in data.configs:
        if (c["layers"], c["dim"]) == (layers, dim) and "params" in fit.data.source.columns:
            return c["size"]
    try:
        count, _ = default_param_counter(fit, panel=fit.panels[data.index] if len(fit.panels) > 1 else None)
    except (ValueError, ImportError):
        return None
    return float(count(layers, dim))


def _with_params(fit: "Fit", data: _Panel, config: dict[str, Any]) -> dict[str, Any]:
    return {"layers": config["layers"], "dim": config["dim"], "value": config["value"], "runs": config["runs"],
            "params": _params(fit, data, config["layers"], config["dim"])}


def _next_runs(data: _Panel, grid: dict[str, Array], rep_best: list[int],
               answer: dict[str, Any]) -> list[dict[str, Any]]:
    """Up to three runs that would most reduce the uncertainty about the best size."""
    measured = {(c["layers"], c["dim"]) for c in data.configs}
    out: list[dict[str, Any]] = []

    def add(layers: int, dim: int, why: str) -> None:
        if (layers, dim) not in [(r["layers"], r["dim"]) for r in out] and len(out) < MAX_NEXT_RUNS:
            out.append({"layers": int(layers), "dim": int(dim), "why": why})

    layers, dim = answer["layers"], answer["dim"]
    top_N, top_d = data.top_N, data.top_d
    if layers >= top_N:
        add(2 * top_N, dim, f"one step beyond the largest trained N ({top_N}): does accuracy keep rising?")
    if dim >= top_d:
        add(layers, 2 * top_d, f"one step beyond the largest trained d ({top_d}): does accuracy keep rising?")
    counts: dict[tuple[int, int], int] = {}
    for i in rep_best:
        cfg = (int(grid["N"][i]), int(grid["d"][i]))
        if cfg not in measured:
            counts[cfg] = counts.get(cfg, 0) + 1
    for (n, d), k in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        add(n, d, f"{k} of {len(rep_best)} bootstrap refits put the best size here, and it was never trained")
    if data.noise is None:
        add(layers, dim, "a second seed of the recommended size: measures the seed-to-seed noise")
    return out


def unfitted(panel: str, dataset: str, metric: str, runs: Any, reason: str) -> Recommendation:
    """The no-answer recommendation of a panel whose law could not be fitted.

    ``runs`` is the panel's table (``layers``, ``dim`` and the metric); the best
    measured configuration is still reported, as evidence, not as an answer.
    """
    best: dict[str, Any] = {}
    if {"layers", "dim", metric} <= set(runs.columns) and len(runs):
        means = runs.groupby(["layers", "dim"])[metric].agg(["mean", "size"]).reset_index()
        top = means.sort_values(["mean", "layers", "dim"], ascending=[False, True, True]).iloc[0]
        best = {"layers": int(top["layers"]), "dim": int(top["dim"]), "value": float(top["mean"]),
                "runs": int(top["size"]), "params": None}
    return Recommendation(
        panel=panel, dataset=dataset, metric=metric, layers=None, dim=None, params=None, predicted=None,
        interval=None, best_measured=best, gain=None, relative_gain=None, extrapolated=False,
        confidence="low", source="none", reasons=(f"no recommendation from a law: {reason}",),
    )
