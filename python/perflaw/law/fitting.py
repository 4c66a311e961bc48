"""``fit()``: from a table of finished runs to a :class:`Fit`.

A fit is made in five steps, each recorded in the result:

1. read and check the table (:mod:`perflaw.law.table`) and specify the form
   against it (:mod:`perflaw.law.forms`): what is fitted, fixed or held;
2. multi-start fit with exact linear solves and a least-squares polish
   (:mod:`perflaw.law.solve`), with convergence, parameters at a bound, and
   parameters the data cannot identify (a flat direction of the Jacobian);
3. honest held-out error: leave-one-configuration-out and leave-largest-out,
   each re-running the whole multi-start fit on the remaining runs;
4. bootstrap over runs (or over seeds within each configuration) for
   intervals on parameters and on every prediction;
5. the same quality numbers for the decay-free ``scaling`` baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from perflaw.law.backtest import Backtest, run_backtest
from perflaw.law.custom import get_form
from perflaw.law.forms import FORMS, Form, Spec, auto_form
from perflaw.law.recommend import Recommendation, recommend
from perflaw.law.options import DEFAULT_REACH, FitOptions
from perflaw.law.solve import Solution, solve, with_small_blas
from perflaw.law.table import LawData, build_law_data, read_table
from perflaw.law.resampling import bootstrap_mode, relative_errors, resample, trainable
from perflaw.law.values import bounds_for, clean, clip_to
from perflaw.errors import PerflawError, PerflawTypeError
from perflaw.progress import progress_bar

Array = np.ndarray

# A direction of the (column-normalised) Jacobian with a singular value below
# this fraction of the largest is treated as flat: the data cannot tell the
# parameters along it apart.
FLAT_DIRECTION_TOL = 1e-7


def _version() -> str:
    try:
        from perflaw import __version__

        return str(__version__)
    except Exception:  # pragma: no cover - partial source tree
        return "unknown"


@dataclass(frozen=True)
class Prediction:
    """Predicted values with bootstrap interval bounds (NaN without a bootstrap)."""

    value: Array
    lower: Array
    upper: Array

    def __iter__(self):  # allows ``value, lo, hi = fit.predict(..., interval=True)``
        return iter((self.value, self.lower, self.upper))


@dataclass
class Fit:
    """A fitted law: parameters with intervals, fit quality, and its uses.

    Attributes
    ----------
    form, formula, metric : str
        What was fitted to what.
    direction : {"max", "min"}
        Whether larger predictions are better.
    params : dict
        Fitted parameter values (fixed ones included, see ``fixed``).
    intervals : dict
        Bootstrap percentile interval per parameter; NaN where the data cannot
        identify the parameter or no bootstrap was run.
    fixed, held : dict
        Parameters held at a value, variables held at their single value.
    unidentified : list of str
        Parameters on a flat direction of the fit (only a combination of them
        is determined by the data).
    at_bound : list of str
        Parameters that ended on a bound.
    converged : bool
        Whether the optimiser reported success.
    r2, rmse : float
        In-sample fit quality.
    loo_error, extrapolation_error : float or None
        Mean relative error leaving one configuration out, and predicting the
        largest models from the smaller ones (``*_max_error``: the worst run).
    baseline : dict or None
        The same scores for the decay-free ``scaling`` form.
    bootstrap : dict
        Mode, number of refits and failures.
    trust_region : dict
        Variable -> (low, high) used by ``optimum`` and friends.
    """

    form: str
    formula: str
    metric: str
    direction: str
    params: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    fixed: dict[str, float]
    held: dict[str, float]
    unidentified: list[str]
    at_bound: list[str]
    converged: bool
    convergence: dict[str, Any]
    r2: float
    rmse: float
    n_runs: int
    n_configs: int
    n_params: int
    loo_error: float | None
    loo_max_error: float | None
    extrapolation_error: float | None
    extrapolation_max_error: float | None
    heldout: dict[str, Any]
    backtest: dict[str, Backtest]
    baseline: dict[str, Any] | None
    bootstrap: dict[str, Any]
    trust_region: dict[str, tuple[float, float]]
    panels: tuple[str, ...]
    notes: list[str]
    options: FitOptions
    fingerprint: str
    version: str
    spec: Spec = field(repr=False)
    theta: Array = field(repr=False)
    samples: Array = field(repr=False)
    data: LawData = field(repr=False)
    form_obj: Form = field(repr=False)

    # -- prediction -----------------------------------------------------

    @property
    def bounds(self) -> tuple[float, float] | None:
        """The metric's range, where predictions and intervals are clipped into it.

        (0, 1) for a ranking metric (HR, NDCG, MRR …, by name) whose measured
        values all lie in that range; None otherwise (a loss, or a table of
        values on another scale, such as law-space test data).
        """
        return bounds_for(self.metric, self.data.y)

    @property
    def model_variables(self) -> tuple[str, ...]:
        """The variables that describe the model size (searched by ``optimum``)."""
        return tuple(v for v in ("N", "d") if v in self.spec.variables) or tuple(
            v for v in self.spec.variables if v not in self.held and v != "D"
        ) or tuple(v for v in self.spec.variables if v not in self.held)

    def predict(self, interval: bool = False, *, panel: str | None = None, **variables: Any) -> Any:
        """Predict the metric at the given variables.

        Parameters
        ----------
        interval : bool
            Also return bootstrap interval bounds (a :class:`Prediction`).
        panel : str, optional
            Data panel label (``"dataset|max_len"``) when the law has per-panel
            parameters, or to take D′ from that panel.
        **variables
            ``N``, ``d``, ``D`` (or the table's column names ``layers``, ``dim``,
            ``d_prime``, ``tokens``), scalars or arrays.

        Returns
        -------
        float, ndarray or Prediction
            A float when every variable is a scalar, else an array; with
            ``interval`` a :class:`Prediction` of value, lower and upper.

        Examples
        --------
        >>> import math, numpy as np, pandas as pd, perflaw
        >>> N, d = (a.ravel() for a in np.meshgrid([2, 4, 8, 16], [16, 32, 64]))
        >>> df = pd.DataFrame({"layers": N, "dim": d, "d_prime": 10.0,
        ...                    "ndcg@10": 0.01 * np.log(N) + 0.02 * np.log(d) - 2.0})
        >>> law = perflaw.fit(df, form="scaling", n_boot=0, holdout=False)
        >>> round(law.predict(N=4, d=32), 6) == round(0.01 * math.log(4) + 0.02 * math.log(32) - 2.0, 6)
        True
        """
        X, panel_ids = self.inputs(panel=panel, **variables)
        value = clip_to(self.spec.predict(self.theta, X, panel_ids), self.bounds)
        scalar = all(np.ndim(v) == 0 for v in variables.values() if v is not None)
        if not interval:
            return float(value[0]) if scalar else value
        lower, upper = self._band(X, panel_ids)
        if scalar:
            return Prediction(value=float(value[0]), lower=float(lower[0]), upper=float(upper[0]))
        return Prediction(value=value, lower=lower, upper=upper)

    def inputs(self, *, panel: str | None = None, **variables: Any) -> tuple[dict[str, Array], Array]:
        """Normalise user variables to arrays the spec can evaluate (and panel ids)."""
        aliases = {col.lower(): var for var, cols in self.form_obj.columns.items() for col in cols}
        given: dict[str, Any] = {}
        for key, value in variables.items():
            if value is None:
                continue
            var = key if key in self.form_obj.columns or key == "D" else aliases.get(key.lower())
            if var is None:
                raise PerflawTypeError(
                    f"unknown variable {key!r}; this law takes {list(self.form_obj.columns)} "
                    f"(or the columns {sorted(aliases)})"
                )
            if var in given:
                raise PerflawTypeError(f"variable {var} given twice (as {key!r} and an alias)")
            given[var] = value
        arrays = {k: np.atleast_1d(np.asarray(v, dtype=np.float64)) for k, v in given.items()}
        for var, arr in arrays.items():
            if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
                raise PerflawError(f"variable {var} must be finite and positive, got {float(arr[~(arr > 0) | ~np.isfinite(arr)][0])!r}")
        panel_id = self._panel_id(panel)
        if "D" not in arrays and "D" in self.form_obj.columns and "D" not in self.held and not self.spec.per_panel:
            if panel_id is None:
                measured = sorted({float(x) for x in np.unique(self.data.X["D"])})[:8]
                raise PerflawError(
                    f"this law was fitted over several D′ values; give D= (measured: {measured}) "
                    f"or panel= (one of {list(self.panels)})"
                )
            arrays["D"] = np.array([float(np.mean(self.data.X["D"][self.data.panel == panel_id]))])
        for var, value in self.held.items():
            if var in arrays and not np.allclose(arrays[var], value, rtol=1e-9):
                raise PerflawError(
                    f"this law saw a single {var} = {value:g}; it cannot predict at {var} = "
                    f"{float(arrays[var][0]):g} (fit several {var} values to vary it)"
                )
            arrays.pop(var, None)
        missing = [v for v in self.spec.variables if v not in arrays and v not in self.held]
        if missing:
            raise PerflawError(f"missing variable(s) {missing} for predict(); this law takes {list(self.spec.variables)}")
        if self.spec.per_panel and "D" not in arrays and panel_id is None:
            if len(self.panels) > 1:
                raise PerflawError(f"this law has per-panel parameters; give panel= (one of {list(self.panels)})")
            panel_id = 0
        n = max(len(a) for a in arrays.values()) if arrays else 1
        try:
            X = {k: np.broadcast_to(a, (n,)).astype(np.float64) for k, a in arrays.items()}
        except ValueError as exc:
            raise PerflawError(f"variables have incompatible shapes: { {k: a.shape for k, a in arrays.items()} }") from exc
        return X, np.full(n, 0 if panel_id is None else panel_id, dtype=np.int64)

    def _panel_id(self, panel: str | None) -> int | None:
        if panel is None:
            return None
        if panel not in self.panels:
            raise PerflawError(f"unknown panel {panel!r}; panels: {list(self.panels)}")
        return self.panels.index(panel)

    def _band(self, X: Mapping[str, Array], panel: Array) -> tuple[Array, Array]:
        rows = self.replicates()
        n = len(panel)
        if len(rows) == 0:
            return np.full(n, np.nan), np.full(n, np.nan)
        preds = np.array([self.spec.predict(t, X, panel) for t in rows])
        alpha = (1 - self.options.ci) / 2
        lower, upper = np.nanquantile(preds, alpha, axis=0), np.nanquantile(preds, 1 - alpha, axis=0)
        return clip_to(lower, self.bounds), clip_to(upper, self.bounds)

    def replicates(self) -> Array:
        """Bootstrap parameter vectors that converged to finite values."""
        if self.samples.size == 0:
            return self.samples
        return self.samples[np.all(np.isfinite(self.samples), axis=1)]

    # -- uses (see perflaw.law.optimum) ---------------------------------

    def recommend(self, *, panel: str | None = None, reach: float = DEFAULT_REACH) -> Recommendation:
        """The configuration to train, with its confidence; see :func:`perflaw.law.recommend.recommend`."""
        return recommend(self, panel=panel, reach=reach)

    def optimum(self, **kwargs: Any) -> Any:
        """Best (N, d) inside the trust region; see :func:`perflaw.law.optimum.optimum`."""
        from perflaw.law.optimum import optimum

        return optimum(self, **kwargs)

    def budget_optimum(self, max_params: float | None = None, **kwargs: Any) -> Any:
        """Best (N, d) under a parameter budget; see :func:`perflaw.law.optimum.budget_optimum`."""
        from perflaw.law.optimum import budget_optimum

        return budget_optimum(self, max_params, **kwargs)

    def scaling_potential(self, **kwargs: Any) -> Any:
        """Gain of the best larger model; see :func:`perflaw.law.optimum.scaling_potential`."""
        from perflaw.law.optimum import scaling_potential

        return scaling_potential(self, **kwargs)

    # -- reporting --------------------------------------------------------

    def to_dict(self, *, uses: bool = True, budget: float | None = None, **budget_kwargs: Any) -> dict[str, Any]:
        """Everything about the fit as plain JSON-ready values.

        With ``uses`` the optimum and the scaling potential are included (or
        the reason they cannot be computed), and the budget optimum when
        ``budget`` is given.
        """
        out: dict[str, Any] = {
            "form": self.form,
            "formula": self.formula,
            "metric": self.metric,
            "direction": self.direction,
            "params": clean(self.params),
            "intervals": {k: clean(list(v)) for k, v in self.intervals.items()},
            "ci": self.options.ci,
            "fixed": clean(self.fixed),
            "held": clean(self.held),
            "unidentified": list(self.unidentified),
            "at_bound": list(self.at_bound),
            "converged": self.converged,
            "convergence": clean(self.convergence),
            "r2": clean(self.r2),
            "rmse": clean(self.rmse),
            "n_runs": self.n_runs,
            "n_configs": self.n_configs,
            "n_params": self.n_params,
            "loo_error": clean(self.loo_error),
            "loo_max_error": clean(self.loo_max_error),
            "extrapolation_error": clean(self.extrapolation_error),
            "extrapolation_max_error": clean(self.extrapolation_max_error),
            "heldout": clean(self.heldout),
            "backtest": {label: bt.to_dict() for label, bt in self.backtest.items()},
            "baseline": clean(self.baseline),
            "bootstrap": clean(self.bootstrap),
            "trust_region": {k: list(v) for k, v in self.trust_region.items()},
            "panels": list(self.panels),
            "notes": list(self.notes),
            "options": clean(self.options.to_dict()),
            "columns": dict(self.data.columns),
            "fingerprint": self.fingerprint,
            "version": self.version,
        }
        if uses:
            # one answer per panel when the law needs to know the panel (D′)
            for label in self.use_panels():
                key = {} if label is None else {"panel": label}
                uses_out = {
                    "optimum": _use_or_reason(lambda: self.optimum(**key).to_dict()),
                    "scaling_potential": _use_or_reason(lambda: self.scaling_potential(**key).to_dict()),
                }
                if budget is not None:
                    uses_out["budget_optimum"] = _use_or_reason(
                        lambda: self.budget_optimum(budget, **key, **budget_kwargs).to_dict()
                    )
                if label is None:
                    out.update(uses_out)
                else:
                    for name, value in uses_out.items():
                        out.setdefault(name, {"by_panel": {}})["by_panel"][label] = value
        return out

    def use_panels(self) -> list[str | None]:
        """``[None]`` when optimum & co. need no panel, else every panel label."""
        needs = self.spec.per_panel or ("D" in self.data.X and "D" not in self.held)
        return list(self.panels) if needs and len(self.panels) > 1 else [None]

    def summary(self, **kwargs: Any) -> str:
        """A plain-text table of the fit (what ``perflaw fit`` prints); keywords
        go to :func:`perflaw.law.report.summary` (``budget=``, ``uses=``)."""
        from perflaw.law.report import summary

        return summary(self, **kwargs)


def _use_or_reason(make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return make()
    except (ValueError, ImportError) as exc:
        return {"error": str(exc)}


# ---------------------------------------------------------------------------
# entry points


def fit(
    table: pd.DataFrame | str | Path,
    form: str | Form | Callable[..., Any] = "auto",
    metric: str | None = None,
    **options: Any,
) -> Fit:
    """Fit a law to a table of finished runs.

    Parameters
    ----------
    table : DataFrame or path
        One row per run (CSV, JSONL or Parquet path, or a DataFrame); rows
        whose ``status`` is not ``"ok"`` are ignored. The performance forms
        read ``layers``, ``dim`` and ``d_prime`` (or ``tokens``); ``chinchilla``
        reads ``N`` (or ``params``), ``D`` (or ``tokens``) and ``loss``.
    form : str, Form or callable
        ``"performance"``, ``"performance_code"``, ``"scaling"``,
        ``"chinchilla"``, ``"auto"`` (:func:`~perflaw.law.forms.auto_form`: the
        identified default for the table), a :class:`~perflaw.law.forms.Form`,
        or a callable (see :func:`~perflaw.law.forms.custom_form`).
    metric : str, optional
        Metric column (``"ndcg@10"`` by default, ``"loss"`` for chinchilla).
    **options
        Fields of :class:`FitOptions` (``n_boot``, ``seed``, ``loss``, ``D`` …).

    Returns
    -------
    Fit

    Examples
    --------
    >>> import numpy as np, pandas as pd, perflaw
    >>> N, d = (a.ravel() for a in np.meshgrid([4, 8, 12, 16, 24, 32], [25, 50, 75, 100]))
    >>> truth = {"w1": 0.03, "w2": 0.02, "w3": -1.0, "w4": -0.7, "p1": -1 / 12, "b": -2.0}
    >>> from perflaw.law import FORMS
    >>> y = FORMS["performance"].predict(truth, N=N, d=d, D=1.0)
    >>> df = pd.DataFrame({"layers": N, "dim": d, "d_prime": 1.0, "ndcg@10": y})
    >>> law = perflaw.fit(df, form="performance", n_boot=0, holdout=False)
    >>> law.r2 > 0.999
    True
    """
    opts = FitOptions(**options)
    frame = read_table(table)
    form_obj = get_form(auto_form(frame) if isinstance(form, str) and form == "auto" else form)
    metric = metric or form_obj.default_metric
    data = build_law_data(
        frame, metric, form_obj.required_columns(D=opts.D), columns=opts.columns, panel_by=opts.panel_by
    )
    return fit_data(data, form_obj, opts)


def fit_groups(
    table: pd.DataFrame | str | Path,
    by: Sequence[str] | str,
    form: str | Form | Callable[..., Any] = "auto",
    metric: str | None = None,
    **options: Any,
) -> dict[str, Fit]:
    """One fit per group of rows (e.g. ``by=("dataset", "max_len")``).

    Returns a dict from the group label (``"beauty|50"``) to its :class:`Fit`.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> N, d = (a.ravel() for a in np.meshgrid([2, 4, 8], [16, 32]))
    >>> rows = [pd.DataFrame({"dataset": name, "layers": N, "dim": d, "d_prime": 2.0,
    ...                       "ndcg@10": 0.01 * np.log(N) + 0.02 * np.log(d) + shift})
    ...         for name, shift in (("a", 0.1), ("b", 0.2))]
    >>> fits = fit_groups(pd.concat(rows), by="dataset", form="scaling", n_boot=0, holdout=False)
    >>> sorted(fits)
    ['a', 'b']
    """
    keys = [c.strip() for c in by.split(",")] if isinstance(by, str) else [str(c) for c in by]
    if not keys or not all(keys):
        raise PerflawError(f"by must name one or more columns, got {by!r}")
    frame = read_table(table)
    missing = [k for k in keys if k not in frame.columns]
    if missing:
        raise PerflawError(f"--by columns {missing} are not in the table; columns present: {list(frame.columns)}")
    fits: dict[str, Fit] = {}
    for label_values, group in frame.groupby(keys, sort=True):
        values = label_values if isinstance(label_values, tuple) else (label_values,)
        label = "|".join(str(v) for v in values)
        fits[label] = fit(group.reset_index(drop=True).copy(), form=form, metric=metric, **options)
    return fits


@with_small_blas
def fit_data(data: LawData, form: Form, options: FitOptions) -> Fit:
    """Fit ``form`` to already-checked ``data`` (see :func:`fit`)."""
    spec = form.specify(data, D=options.D)
    _check_enough(spec, data)
    if options.n_boot > 0:
        bootstrap_mode(data, options.bootstrap)  # fail early on an impossible request
    solution = solve(spec, data.X, data.panel, data.y, loss=options.loss, f_scale=options.f_scale, n_polish=options.n_starts)
    theta = solution.theta
    pred = spec.predict(theta, data.X, data.panel)
    r2, rmse = _quality(data.y, pred)

    unidentified = _unidentified(spec, theta, data)
    at_bound = _at_bound(spec, theta)
    notes = list(spec.notes)
    if unidentified:
        notes.append(
            f"unidentified parameters {unidentified}: the data fix only a combination of them; "
            "their intervals are reported as NaN"
        )
    if at_bound:
        notes.append(f"parameters at a bound: {at_bound}")
    if not solution.converged:
        notes.append(f"the optimiser did not report convergence: {solution.message}")
    if np.ptp(data.y) == 0:
        notes.append(f"every run measured the same {data.metric} ({data.y[0]:g}): there is nothing for a law "
                     "to learn, R² is undefined and no size is better than another")

    backtests = _backtest(spec, data, options) if options.holdout else {}
    heldout = {"loo": _leave_one_config_out(spec, data, options) if options.holdout else None,
               "extrapolation": _pooled(backtests, "law")}
    rng = np.random.default_rng(options.seed)
    samples, boot_info = _bootstrap(spec, data, theta, options, rng, solution)
    intervals = _intervals(spec, samples, options.ci, unidentified)
    baseline = _baseline(form, data, options, _pooled(backtests, "scaling")) if options.baseline else None

    direction = options.direction or ("min" if "loss" in data.metric.lower() or "perplexity" in data.metric.lower() else "max")
    params = spec.param_dict(theta)
    intervals.update({name: (value, value) for name, value in spec.fixed.items()})
    loo, ext = heldout["loo"], heldout["extrapolation"]
    return Fit(
        form=spec.form,
        formula=spec.formula,
        metric=data.metric,
        direction=direction,
        params=params,
        intervals=intervals,
        fixed=dict(spec.fixed),
        held=dict(spec.held),
        unidentified=unidentified,
        at_bound=at_bound,
        converged=solution.converged,
        convergence={
            "message": solution.message,
            "nfev": solution.nfev,
            "grid_points": solution.n_grid,
            "starts_polished": solution.n_polished,
            "starts_agreeing": solution.n_agree,
            "cost": solution.cost,
            "f_scale": solution.f_scale,
            "loss": options.loss if spec.objective == "least_squares" else "huber(log L), delta=1e-3",
            # With the linear loss the runs of one configuration are fitted as their
            # weighted mean (the same fit, at the cost of the distinct points only).
            "fitted_points": data.n_configs if options.loss == "linear" and spec.objective == "least_squares"
            else data.n,
        },
        r2=r2,
        rmse=rmse,
        n_runs=data.n,
        n_configs=data.n_configs,
        n_params=spec.n_params,
        loo_error=loo["mean"] if loo else None,
        loo_max_error=loo["max"] if loo else None,
        extrapolation_error=ext["mean"] if ext else None,
        extrapolation_max_error=ext["max"] if ext else None,
        heldout=heldout,
        backtest=backtests,
        baseline=baseline,
        bootstrap=boot_info,
        trust_region=_trust_region(spec, data, options),
        panels=data.panel_labels,
        notes=notes,
        options=options,
        fingerprint=data.fingerprint,
        version=_version(),
        spec=spec,
        theta=theta,
        samples=samples,
        data=data,
        form_obj=form,
    )


# ---------------------------------------------------------------------------
# checks and diagnostics


def _check_enough(spec: Spec, data: LawData) -> None:
    if data.n < spec.n_params:
        raise PerflawError(
            f"{spec.form}: {data.n} runs are fewer than its {spec.n_params} parameters {list(spec.names)}"
        )
    if data.n_configs < spec.n_params:
        raise PerflawError(
            f"{spec.form}: {data.n_configs} distinct configurations are fewer than its "
            f"{spec.n_params} parameters {list(spec.names)} (seeds of one configuration do not count twice)"
        )


def _quality(y: Array, pred: Array) -> tuple[float, float]:
    resid = pred - y
    ss_res = float(resid @ resid)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    return r2, math.sqrt(ss_res / len(y))


def prediction_jacobian(spec: Spec, theta: Array, data: LawData) -> Array:
    """d prediction / d theta: analytic where the form has it, else central differences."""
    if spec.has_jacobian:
        return spec.jacobian(theta, data.X, data.panel)
    columns = []
    for i in range(spec.n_params):
        step = 1e-6 * max(1.0, abs(theta[i]))
        up, down = theta.copy(), theta.copy()
        up[i] += step
        down[i] -= step
        columns.append((spec.predict(up, data.X, data.panel) - spec.predict(down, data.X, data.panel)) / (2 * step))
    return np.column_stack(columns)


def _unidentified(spec: Spec, theta: Array, data: LawData) -> list[str]:
    """Parameters with a component on a flat direction of the Jacobian."""
    with np.errstate(all="ignore"):
        J = prediction_jacobian(spec, theta, data)
    if not np.all(np.isfinite(J)):
        return []
    norms = np.linalg.norm(J, axis=0)
    dead = norms <= 1e-12 * max(float(norms.max()), 1e-300)
    flagged = set(np.flatnonzero(dead))
    live = np.flatnonzero(~dead)
    if live.size:
        # Only the right singular vectors are needed: no n × n factor for a long table.
        _, s, vt = np.linalg.svd(J[:, live] / norms[live], full_matrices=len(J) < live.size)
        s_full = np.zeros(live.size)
        s_full[: len(s)] = s
        flat = s_full < FLAT_DIRECTION_TOL * max(float(s_full[0]), 1e-300)
        if flat.any():
            weight = np.sum(vt[flat] ** 2, axis=0)
            flagged.update(live[weight > 1e-2])
    return [spec.names[i] for i in sorted(flagged)]


def _at_bound(spec: Spec, theta: Array) -> list[str]:
    out = []
    for i, name in enumerate(spec.names):
        for bound in (spec.lower[i], spec.upper[i]):
            if np.isfinite(bound) and abs(theta[i] - bound) <= 1e-6 * max(1.0, abs(bound)):
                out.append(name)
                break
    return out


def _trust_region(spec: Spec, data: LawData, options: FitOptions) -> dict[str, tuple[float, float]]:
    region = {
        var: (float(data.X[var].min()), float(data.X[var].max()))
        for var in spec.variables
        if var in data.X and var not in spec.held and data.X[var].min() < data.X[var].max()
    }
    if options.trust_region:
        unknown = sorted(set(options.trust_region) - set(spec.variables))
        if unknown:
            raise PerflawError(f"trust_region names unknown variables {unknown}; variables: {list(spec.variables)}")
        region.update(options.trust_region)
    return region


# ---------------------------------------------------------------------------
# held-out error


def _refit_predict(spec: Spec, train: LawData, test: LawData, options: FitOptions) -> Array:
    sol = solve(spec, train.X, train.panel, train.y, loss=options.loss, f_scale=options.f_scale,
                n_polish=options.holdout_starts, polish=False)
    return spec.predict(sol.theta, test.X, test.panel)


def _summarise(errors: list[Array], **extra: Any) -> dict[str, Any] | None:
    if not errors:
        return None
    flat = np.concatenate(errors)
    if flat.size == 0:
        return None
    return {"mean": float(flat.mean()), "max": float(flat.max()), "n_runs": int(flat.size), **extra}


def _backtest(spec: Spec, data: LawData, options: FitOptions) -> dict[str, Backtest]:
    baseline_D = "free" if spec.form == "performance_code" and options.D == "free" else "fixed"
    return run_backtest(spec, data, fraction=options.holdout_fraction, n_boot=options.n_boot, seed=options.seed,
                        loss=options.loss, n_polish=options.holdout_starts, baseline_D=baseline_D)


def _pooled(backtests: Mapping[str, Backtest], name: str) -> dict[str, Any] | None:
    """Mean and worst backtest error of ``name`` ("law" or a baseline) over every panel's held-out runs."""
    total, weight, worst, held = 0.0, 0, 0.0, 0
    for bt in backtests.values():
        scores = bt.law if name == "law" else bt.baselines.get(name, {})
        if not bt.available or scores.get("mean_relative_error") is None:
            continue
        runs = sum(r["runs"] for r in bt.held_out)
        total += scores["mean_relative_error"] * runs
        weight += runs
        worst = max(worst, scores["max_relative_error"])
        held += bt.n_held
    if not weight:
        return None
    return {"mean": total / weight, "max": worst, "n_runs": weight, "n_configs_held": held}


def _leave_one_config_out(spec: Spec, data: LawData, options: FitOptions) -> dict[str, Any] | None:
    """Refit without each configuration (all its seeds) and predict it."""
    errors: list[Array] = []
    skipped = 0
    configs = np.unique(data.config)
    for c in configs:
        out = data.config == c
        train, test = data.subset(np.flatnonzero(~out)), data.subset(np.flatnonzero(out))
        if trainable(spec, train, test.panel) is not None:
            skipped += 1
            continue
        errors.append(relative_errors(_refit_predict(spec, train, test, options), test.y))
    return _summarise(errors, n_folds=len(configs) - skipped, skipped=skipped)


# ---------------------------------------------------------------------------
# bootstrap


def _bootstrap(
    spec: Spec, data: LawData, theta: Array, options: FitOptions, rng: np.random.Generator, solution: Solution
) -> tuple[Array, dict[str, Any]]:
    mode = bootstrap_mode(data, options.bootstrap) if options.n_boot > 0 else "none"
    info: dict[str, Any] = {"mode": mode, "n": 0, "failed": 0, "not_converged": 0, "seed": options.seed}
    if mode == "none":
        return np.empty((0, spec.n_params)), info
    samples = np.full((options.n_boot, spec.n_params), np.nan)
    bar = progress_bar(options.progress, iterable=range(options.n_boot), desc=f"bootstrap {spec.form}", unit="fit",
                       leave=False)
    for b in bar:
        index = resample(data, mode, rng, spec)
        if index is None:
            info["failed"] += 1
            continue
        sample = data.subset(index)
        try:
            # Warm start from the full-data fit: the standard bootstrap
            # shortcut; each refit still polishes to its own optimum.
            sol = solve(
                spec, sample.X, sample.panel, sample.y, loss=options.loss, f_scale=solution.f_scale,
                n_polish=1, extra_starts=[theta], use_grid=False, polish=False,
            )
        except (ValueError, np.linalg.LinAlgError):
            info["failed"] += 1
            continue
        if not sol.converged:
            info["not_converged"] += 1
        samples[b] = sol.theta
    info["n"] = int(np.sum(np.all(np.isfinite(samples), axis=1)))
    return samples, info


def _intervals(spec: Spec, samples: Array, ci: float, unidentified: Sequence[str]) -> dict[str, tuple[float, float]]:
    finite = samples[np.all(np.isfinite(samples), axis=1)] if samples.size else samples
    alpha = (1 - ci) / 2
    out: dict[str, tuple[float, float]] = {}
    for i, name in enumerate(spec.names):
        if name in unidentified or len(finite) < 2:
            out[name] = (float("nan"), float("nan"))
        else:
            lo, hi = np.quantile(finite[:, i], [alpha, 1 - alpha])
            out[name] = (float(lo), float(hi))
    return out


# ---------------------------------------------------------------------------
# baseline


def _baseline(form: Form, data: LawData, options: FitOptions, ext: dict[str, Any] | None) -> dict[str, Any] | None:
    """The decay-free ``scaling`` form on the same runs, scored the same way."""
    if form.name in ("scaling", "chinchilla") or not {"N", "d"} <= set(data.X):
        return None
    scaling = FORMS["scaling"]
    mode = "fixed" if "D" in data.X and not (form.name == "performance_code" and options.D == "free") else "free"
    spec = scaling.specify(data, D=mode)
    if data.n_configs < spec.n_params:
        return None
    sol = solve(spec, data.X, data.panel, data.y, loss=options.loss, f_scale=options.f_scale, n_polish=1)
    r2, rmse = _quality(data.y, spec.predict(sol.theta, data.X, data.panel))
    loo = _leave_one_config_out(spec, data, options) if options.holdout else None
    return {
        "form": "scaling",
        "formula": spec.formula,
        "params": spec.param_dict(sol.theta),
        "n_params": spec.n_params,
        "r2": r2,
        "rmse": rmse,
        "loo_error": loo["mean"] if loo else None,
        "loo_max_error": loo["max"] if loo else None,
        "extrapolation_error": ext["mean"] if ext else None,
        "extrapolation_max_error": ext["max"] if ext else None,
    }
