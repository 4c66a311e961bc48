"""Using a fitted law: the best model size, under a budget, and the gain left.

Every answer is computed for the point estimate and again for each
bootstrap replicate, so it comes with an interval. The search stays inside a
declared trust region (by default the measured range of each variable):
outside it the law is an extrapolation nobody checked.

An optimum on the edge of the trust region is not a peak, only the best
corner of the box. Each coordinate therefore gets a status:

``interior``
    inside the region, and at most ``1 − ci`` of the bootstrap replicates
    put it on the edge;
``boundary``
    the point estimate sits on the edge (the law keeps improving outward);
``uncertain``
    inside for the point estimate, but too many replicates disagree;
``flat``
    the law predicts the same value over the whole region (to 1e-9 of it),
    as for a metric that did not change with size: there is no best point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np
from scipy.optimize import minimize

from perflaw.law.values import check_region, clean
from perflaw.sizing import param_count
from perflaw.law.solve import with_small_blas
from perflaw.errors import PerflawError, PerflawTypeError

if TYPE_CHECKING:  # pragma: no cover
    from perflaw.law.fitting import Fit

Array = np.ndarray
Evaluator = Callable[[dict[str, Array]], Array]

GRID_PER_AXIS = {1: 401, 2: 41, 3: 13}
# Integer searches enumerate every configuration; beyond this many, refuse.
MAX_INTEGER_POINTS = 2_000_000
# Relative distance (in log space, as a share of the region's log-width)
# below which a coordinate counts as on the edge.
EDGE_TOL = 1e-3


@dataclass(frozen=True)
class Optimum:
    """The best configuration inside the trust region.

    Attributes
    ----------
    point : dict
        Variable -> value at the optimum (point estimate).
    value : float
        Predicted metric there.
    interval : (float, float)
        Bootstrap interval of the optimal value (each replicate's own optimum).
    point_intervals : dict
        Bootstrap interval of each coordinate of the optimum.
    status : dict
        ``interior``, ``boundary``, ``uncertain`` or ``flat`` per variable (module doc).
    edge_share : dict
        Share of bootstrap replicates whose optimum is on the edge, per variable.
    trust_region : dict
        The box searched.
    inputs : dict
        Inputs held fixed during the search (D′, panel).
    """

    point: dict[str, float]
    value: float
    interval: tuple[float, float]
    point_intervals: dict[str, tuple[float, float]]
    status: dict[str, str]
    edge_share: dict[str, float]
    trust_region: dict[str, tuple[float, float]]
    inputs: dict[str, Any]
    integer: bool
    n_replicates: int

    @property
    def interior(self) -> bool:
        """True when every coordinate is a genuine interior optimum."""
        return all(s == "interior" for s in self.status.values())

    def to_dict(self) -> dict[str, Any]:
        return clean({
            "point": self.point, "value": self.value, "interval": list(self.interval),
            "point_intervals": {k: list(v) for k, v in self.point_intervals.items()},
            "status": self.status, "interior": self.interior, "edge_share": self.edge_share,
            "trust_region": {k: list(v) for k, v in self.trust_region.items()},
            "inputs": self.inputs, "integer": self.integer, "n_replicates": self.n_replicates,
        })


@dataclass(frozen=True)
class BudgetOptimum:
    """The best configuration whose parameter count fits a budget.

    Attributes
    ----------
    point : dict
        Variable -> value (integers for N and d).
    params : float
        Its parameter count.
    value, interval :
        Predicted metric and the bootstrap interval of each replicate's best.
    agreement : float
        Share of replicates that pick the same configuration.
    binding : bool
        Whether the budget excludes the unconstrained best in the region.
    param_count : str
        How parameters were counted.
    """

    max_params: float | None
    point: dict[str, float]
    params: float
    value: float
    interval: tuple[float, float]
    point_intervals: dict[str, tuple[float, float]]
    agreement: float
    binding: bool
    n_feasible: int
    param_count: str
    trust_region: dict[str, tuple[float, float]]
    inputs: dict[str, Any]
    n_replicates: int
    flops: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return clean({
            "max_params": self.max_params, "flops": self.flops, "point": self.point, "params": self.params,
            "value": self.value, "interval": list(self.interval),
            "point_intervals": {k: list(v) for k, v in self.point_intervals.items()},
            "agreement": self.agreement, "binding": self.binding, "n_feasible": self.n_feasible,
            "param_count": self.param_count,
            "trust_region": {k: list(v) for k, v in self.trust_region.items()},
            "inputs": self.inputs, "n_replicates": self.n_replicates,
        })


@dataclass(frozen=True)
class ScalingPotential:
    """Predicted gain of the best larger configuration over the current one.

    ``gain`` is positive when the best larger model is better (higher metric,
    or lower loss); ``relative_gain`` divides it by the current prediction.
    ``at_edge`` is True when the current configuration already sits at the top
    of the trust region in every variable: nothing larger is trusted, so the
    gain is zero until a larger trust region is declared.
    """

    current: dict[str, float]
    current_value: float
    best: dict[str, float]
    best_value: float
    gain: float
    gain_interval: tuple[float, float]
    relative_gain: float
    relative_gain_interval: tuple[float, float]
    trust_region: dict[str, tuple[float, float]]
    inputs: dict[str, Any]
    n_replicates: int
    at_edge: bool = False

    def to_dict(self) -> dict[str, Any]:
        return clean({
            "at_edge": self.at_edge, "current": self.current, "current_value": self.current_value, "best": self.best,
            "best_value": self.best_value, "gain": self.gain, "gain_interval": list(self.gain_interval),
            "relative_gain": self.relative_gain, "relative_gain_interval": list(self.relative_gain_interval),
            "trust_region": {k: list(v) for k, v in self.trust_region.items()},
            "inputs": self.inputs, "n_replicates": self.n_replicates,
        })


# ---------------------------------------------------------------------------
# shared machinery


@dataclass
class _Context:
    """What a search needs: the variables searched, what is held, how to evaluate."""

    fit: "Fit"
    variables: tuple[str, ...]
    region: dict[str, tuple[float, float]]
    fixed_X: dict[str, float]
    panel_id: int
    inputs: dict[str, Any] = field(default_factory=dict)

    def evaluator(self, theta: Array) -> Evaluator:
        spec = self.fit.spec

        def evaluate(points: dict[str, Array]) -> Array:
            n = len(next(iter(points.values())))
            X = {k: np.full(n, v) for k, v in self.fixed_X.items()}
            X.update(points)
            with np.errstate(all="ignore"):
                return spec.predict(theta, X, np.full(n, self.panel_id, dtype=np.int64))

        return evaluate

    def thetas(self) -> list[Array]:
        return [self.fit.theta] + list(self.fit.replicates())

    @property
    def sign(self) -> float:
        return 1.0 if self.fit.direction == "max" else -1.0


def _context(
    fit: "Fit",
    trust_region: Mapping[str, tuple[float, float]] | None,
    D: float | None,
    panel: str | None,
    **fixed: Any,
) -> _Context:
    variables = tuple(v for v in fit.model_variables if v not in fixed)
    region = {v: fit.trust_region[v] for v in variables if v in fit.trust_region}
    if trust_region:
        user = check_region(trust_region)
        unknown = sorted(set(user) - set(fit.spec.variables))
        if unknown:
            raise PerflawError(f"trust_region names unknown variables {unknown}; variables: {list(fit.spec.variables)}")
        region.update({k: v for k, v in user.items() if k in variables})
    missing = [v for v in variables if v not in region]
    if missing:
        raise PerflawError(f"no trust region for {missing}: give trust_region={{{missing[0]!r}: (low, high)}}")
    # Resolve the held inputs (D′ or the panel) once, through predict's checks.
    probe = {v: region[v][0] for v in variables}
    probe.update(fixed)
    X, panel_ids = fit.inputs(panel=panel, D=D, **probe)
    fixed_X = {k: float(v[0]) for k, v in X.items() if k not in variables}
    inputs: dict[str, Any] = dict(fixed_X)
    if panel is not None:
        inputs["panel"] = panel
    return _Context(fit, variables, region, fixed_X, int(panel_ids[0]), inputs)


def _grid(region: Mapping[str, tuple[float, float]], variables: tuple[str, ...], integer: bool) -> dict[str, Array]:
    axes = []
    for v in variables:
        lo, hi = region[v]
        if integer:
            axis = np.arange(math.ceil(lo), math.floor(hi) + 1, dtype=np.float64)
            if axis.size == 0:
                raise PerflawError(f"trust region for {v} ({lo:g}, {hi:g}) holds no integer")
        else:
            axis = np.geomspace(lo, hi, GRID_PER_AXIS.get(len(variables), 9))
        axes.append(axis)
    total = int(np.prod([len(a) for a in axes]))
    if total > MAX_INTEGER_POINTS:
        raise PerflawError(
            f"the trust region holds {total:,} integer configurations (limit {MAX_INTEGER_POINTS:,}); "
            "narrow it, or search continuously (integer=False)"
        )
    mesh = np.meshgrid(*axes, indexing="ij")
    return {v: m.reshape(-1) for v, m in zip(variables, mesh)}


def _best_on(evaluate: Evaluator, points: dict[str, Array], sign: float) -> tuple[int, float]:
    values = sign * evaluate(points)
    values = np.where(np.isfinite(values), values, -np.inf)
    i = int(np.argmax(values))
    return i, float(sign * values[i])


def _search(evaluate: Evaluator, region: Mapping[str, tuple[float, float]], variables: tuple[str, ...],
            sign: float, integer: bool, grid: dict[str, Array] | None = None) -> tuple[dict[str, float], float]:
    """Best point: the grid's best, then (continuous) an L-BFGS-B polish in log space."""
    grid = grid if grid is not None else _grid(region, variables, integer)
    i, value = _best_on(evaluate, grid, sign)
    point = {v: float(grid[v][i]) for v in variables}
    if integer or not variables:
        return point, value
    lo = np.log([region[v][0] for v in variables])
    hi = np.log([region[v][1] for v in variables])

    def objective(z: Array) -> float:
        out = evaluate({v: np.array([math.exp(z[j])]) for j, v in enumerate(variables)})[0]
        return float(-sign * out) if np.isfinite(out) else 1e300

    z0 = np.log([point[v] for v in variables])
    res = minimize(objective, z0, method="L-BFGS-B", bounds=list(zip(lo, hi)), options={"ftol": 1e-15, "gtol": 1e-12})
    polished = float(-sign * res.fun)  # undo the sign flip of the objective
    if np.isfinite(res.fun) and sign * polished >= sign * value:
        point = {}
        for j, v in enumerate(variables):
            z = float(np.clip(res.x[j], lo[j], hi[j]))
            # on a bound, report the bound itself (exp(log(x)) is not always x)
            edge = region[v][0] if z - lo[j] <= 1e-12 else region[v][1] if hi[j] - z <= 1e-12 else math.exp(z)
            point[v] = float(edge)
        value = polished
    return point, value


def _is_flat(values: Array, best: float) -> bool:
    """Whether the law is the same everywhere on the grid (a metric that did not vary)."""
    finite = values[np.isfinite(values)]
    return finite.size > 0 and float(np.ptp(finite)) <= 1e-9 * max(abs(best), 1e-12)


def _on_edge(x: float, lo: float, hi: float, integer: bool) -> bool:
    if integer:
        return x <= math.ceil(lo) or x >= math.floor(hi)
    width = math.log(hi / lo)
    return min(math.log(x / lo), math.log(hi / x)) <= EDGE_TOL * width


def _interval(values: Array, ci: float) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return (float("nan"), float("nan"))
    alpha = (1 - ci) / 2
    lo, hi = np.quantile(values, [alpha, 1 - alpha])
    return float(lo), float(hi)


# ---------------------------------------------------------------------------
# optimum


@with_small_blas
def optimum(
    fit: "Fit",
    *,
    trust_region: Mapping[str, tuple[float, float]] | None = None,
    D: float | None = None,
    panel: str | None = None,
    integer: bool = False,
) -> Optimum:
    """The best model size (N*, d*) inside the trust region, with intervals.

    Parameters
    ----------
    fit : Fit
        A fitted law.
    trust_region : mapping, optional
        Variable -> (low, high); default the fit's (the measured range).
    D : float, optional
        D′ to optimise at (needed when the law was fitted over several D′).
    panel : str, optional
        Data panel, for per-panel parameters or to take D′ from it.
    integer : bool
        Search integer N and d only (what can actually be trained).

    Returns
    -------
    Optimum

    Examples
    --------
    >>> import numpy as np, pandas as pd, perflaw
    >>> N, d = (a.ravel() for a in np.meshgrid([4, 8, 12, 16, 24, 32], [25, 50, 75, 100]))
    >>> truth = {"w1": 0.03, "w2": 0.02, "w3": -1.0, "w4": -0.7, "p1": -1 / 12, "b": -2.0}
    >>> from perflaw.law import FORMS
    >>> y = FORMS["performance"].predict(truth, N=N, d=d, D=1.0)
    >>> law = perflaw.fit(pd.DataFrame({"layers": N, "dim": d, "d_prime": 1.0, "ndcg@10": y}),
    ...                   form="performance", n_boot=0, holdout=False)
    >>> best = law.optimum()
    >>> round(best.point["N"]), best.status["N"]
    (12, 'interior')
    """
    ctx = _context(fit, trust_region, D, panel)
    thetas = ctx.thetas()
    grid = _grid(ctx.region, ctx.variables, integer)
    points, values = [], []
    for theta in thetas:
        p, v = _search(ctx.evaluator(theta), ctx.region, ctx.variables, ctx.sign, integer, grid)
        points.append(p)
        values.append(v)
    best, value = points[0], values[0]
    ci = fit.options.ci
    flat = _is_flat(ctx.evaluator(thetas[0])(grid), value)
    status, share, point_intervals = {}, {}, {}
    for v in ctx.variables:
        lo, hi = ctx.region[v]
        edges = [_on_edge(p[v], lo, hi, integer) for p in points[1:]]
        share[v] = float(np.mean(edges)) if edges else float("nan")
        if flat:
            status[v] = "flat"
        elif _on_edge(best[v], lo, hi, integer):
            status[v] = "boundary"
        elif not edges or share[v] <= 1 - ci:
            status[v] = "interior"
        else:
            status[v] = "uncertain"
        point_intervals[v] = _interval(np.array([p[v] for p in points[1:]]), ci)
    return Optimum(
        point=best, value=value, interval=_interval(np.array(values[1:]), ci),
        point_intervals=point_intervals, status=status, edge_share=share,
        trust_region={v: ctx.region[v] for v in ctx.variables}, inputs=ctx.inputs, integer=integer,
        n_replicates=len(thetas) - 1,
    )


# ---------------------------------------------------------------------------
# budget optimum


def default_param_counter(
    fit: "Fit",
    *,
    model: str | None = None,
    n_items: int | None = None,
    max_len: int | None = None,
    heads: int | None = None,
    include_embedding: bool = True,
    panel: str | None = None,
) -> tuple[Callable[[int, int], int], str]:
    """The model's real parameter formula, ``perflaw.sizing.param_count``.

    ``model``, ``n_items`` and ``max_len`` default to the table's columns when
    they hold a single value (within ``panel`` when given); ``model`` falls
    back to ``"llama"`` and ``max_len`` to 50.
    """
    frame = fit.data.frame
    if panel is not None:
        frame = frame[fit.data.panel == fit.panels.index(panel)]

    def single(column: str) -> Any:
        if column not in frame.columns:
            return None
        values = frame[column].dropna().unique()
        if len(values) > 1:
            raise PerflawError(
                f"the table has several {column} values {list(values)[:6]}; pass {column}= "
                "(or panel=) to budget_optimum"
            )
        return values[0] if len(values) else None

    model = model or single("model") or "llama"
    n_items = n_items if n_items is not None else single("n_items")
    if n_items is None:
        raise PerflawError("budget_optimum needs n_items (no n_items column in the table); pass n_items=")
    max_len = max_len if max_len is not None else (single("max_len") or 50)
    n_items, max_len = int(n_items), int(max_len)

    def count(layers: int, dim: int) -> int:
        return int(param_count(str(model), int(layers), int(dim), n_items, max_len=max_len, heads=heads,
                               include_embedding=include_embedding))

    label = (f"perflaw.sizing.param_count(model={model!r}, n_items={n_items}, max_len={max_len}, "
             f"heads={heads}, include_embedding={include_embedding})")
    return count, label


@with_small_blas
def budget_optimum(
    fit: "Fit",
    max_params: float | None = None,
    *,
    params_fn: Callable[[int, int], float] | None = None,
    model: str | None = None,
    n_items: int | None = None,
    max_len: int | None = None,
    heads: int | None = None,
    include_embedding: bool = True,
    trust_region: Mapping[str, tuple[float, float]] | None = None,
    D: float | None = None,
    panel: str | None = None,
    d_step: int = 1,
    flops: float | None = None,
) -> BudgetOptimum:
    """The best integer (N, d) whose parameter count is at most ``max_params``.

    Parameters are counted with the model's real formula
    (:func:`default_param_counter`) or with ``params_fn(layers, dim)``.
    Candidates are the integer N and d (every ``d_step``-th) in the trust
    region. For ``chinchilla`` fits, pass ``flops`` instead: the answer is the
    compute-optimal (N, D) under C = 6·N·D.

    Examples
    --------
    >>> import numpy as np, pandas as pd, perflaw
    >>> N, d = (a.ravel() for a in np.meshgrid([4, 8, 12, 16, 24, 32], [25, 50, 75, 100]))
    >>> truth = {"w1": 0.03, "w2": 0.02, "w3": -1.0, "w4": -0.7, "p1": -1 / 12, "b": -2.0}
    >>> from perflaw.law import FORMS
    >>> y = FORMS["performance"].predict(truth, N=N, d=d, D=1.0)
    >>> law = perflaw.fit(pd.DataFrame({"layers": N, "dim": d, "d_prime": 1.0, "ndcg@10": y}),
    ...                   form="performance", n_boot=0, holdout=False)
    >>> best = law.budget_optimum(50_000, params_fn=lambda n, d: 12 * n * d * d)
    >>> best.params <= 50_000
    True
    """
    if fit.form == "chinchilla":
        return _compute_optimum(fit, flops, D)
    if max_params is None:
        raise PerflawError("budget_optimum needs max_params (the largest parameter count allowed)")
    if not (isinstance(max_params, (int, float, np.integer, np.floating)) and max_params > 0):
        raise PerflawError(f"max_params must be a positive number, got {max_params!r}")
    if isinstance(d_step, bool) or not isinstance(d_step, (int, np.integer)) or d_step < 1:
        raise PerflawError(f"d_step must be a positive integer, got {d_step!r}")
    if set(fit.model_variables) != {"N", "d"}:
        raise PerflawError(f"budget_optimum needs a law in N and d; this one is in {list(fit.model_variables)}")
    if params_fn is None:
        params_fn, label = default_param_counter(
            fit, model=model, n_items=n_items, max_len=max_len, heads=heads,
            include_embedding=include_embedding, panel=panel,
        )
    else:
        if not callable(params_fn):
            raise PerflawTypeError(f"params_fn must be callable (layers, dim) -> int, got {type(params_fn).__name__}")
        label = getattr(params_fn, "__name__", "params_fn")

    ctx = _context(fit, trust_region, D, panel)
    grid = _grid(ctx.region, ctx.variables, integer=True)
    if d_step > 1:
        keep = (grid["d"] - grid["d"].min()) % d_step == 0
        grid = {k: v[keep] for k, v in grid.items()}
    counts = np.array([float(params_fn(int(n), int(d))) for n, d in zip(grid["N"], grid["d"])])
    feasible = counts <= max_params
    if not feasible.any():
        i = int(np.argmin(counts))
        raise PerflawError(
            f"no configuration in the trust region fits max_params={max_params:g}; the smallest, "
            f"N={grid['N'][i]:g}, d={grid['d'][i]:g}, has {counts[i]:g} parameters"
        )
    candidates = {k: v[feasible] for k, v in grid.items()}
    picks, values = [], []
    for theta in ctx.thetas():
        i, v = _best_on(ctx.evaluator(theta), candidates, ctx.sign)
        picks.append(i)
        values.append(v)
    j = picks[0]
    unconstrained, _ = _best_on(ctx.evaluator(fit.theta), grid, ctx.sign)
    point = {k: float(candidates[k][j]) for k in ctx.variables}
    reps = picks[1:]
    return BudgetOptimum(
        max_params=float(max_params), point=point, params=float(counts[feasible][j]), value=values[0],
        interval=_interval(np.array(values[1:]), fit.options.ci),
        point_intervals={k: _interval(candidates[k][reps], fit.options.ci) for k in ctx.variables} if reps
        else {k: (float("nan"), float("nan")) for k in ctx.variables},
        agreement=float(np.mean(np.array(reps) == j)) if reps else float("nan"),
        binding=bool(counts[unconstrained] > max_params), n_feasible=int(feasible.sum()),
        param_count=label, trust_region={v: ctx.region[v] for v in ctx.variables}, inputs=ctx.inputs,
        n_replicates=len(reps),
    )


def _compute_optimum(fit: "Fit", flops: float | None, D: float | None) -> BudgetOptimum:
    """Chinchilla: minimise E + A/N^α + B/D^β subject to 6·N·D = C (closed form)."""
    if flops is None or not flops > 0:
        raise PerflawError(
            "for a chinchilla fit the budget optimum is compute-optimal: pass flops=C (C = 6·N·D), "
            f"got flops={flops!r}"
        )
    names = fit.spec.names

    def allocate(theta: Array) -> tuple[float, float, float]:
        p = dict(zip(names, theta))
        a, b = p["alpha"], p["beta"]
        if not (a > 0 and b > 0 and p["A"] > 0 and p["B"] > 0):
            return float("nan"), float("nan"), float("nan")
        G = (a * p["A"] / (b * p["B"])) ** (1 / (a + b))
        N = G * (flops / 6) ** (b / (a + b))
        Dopt = flops / 6 / N
        return N, Dopt, p["E"] + p["A"] * N ** -a + p["B"] * Dopt ** -b

    N, Dopt, loss = allocate(fit.theta)
    if not np.isfinite(N):
        raise PerflawError("the fitted exponents or coefficients are not positive; no compute-optimal allocation")
    reps = np.array([allocate(t) for t in fit.replicates()]).reshape(-1, 3)
    ci = fit.options.ci
    return BudgetOptimum(
        max_params=None, flops=float(flops), point={"N": N, "D": Dopt}, params=N, value=loss,
        interval=_interval(reps[:, 2], ci),
        point_intervals={"N": _interval(reps[:, 0], ci), "D": _interval(reps[:, 1], ci)},
        agreement=float("nan"), binding=True, n_feasible=0, param_count="C = 6·N·D",
        trust_region={}, inputs={}, n_replicates=len(reps),
    )


# ---------------------------------------------------------------------------
# scaling potential


@with_small_blas
def scaling_potential(
    fit: "Fit",
    *,
    current: Mapping[str, float] | None = None,
    trust_region: Mapping[str, tuple[float, float]] | None = None,
    D: float | None = None,
    panel: str | None = None,
    **variables: float,
) -> ScalingPotential:
    """How much the best larger configuration would gain over the current one.

    "Larger" means no variable smaller than the current value. The current
    configuration defaults to the largest one measured (by parameter count,
    or N·d² without it), in ``panel`` when given.

    Examples
    --------
    >>> import numpy as np, pandas as pd, perflaw
    >>> N, d = (a.ravel() for a in np.meshgrid([2, 4, 8, 16], [16, 32, 64]))
    >>> df = pd.DataFrame({"layers": N, "dim": d, "d_prime": 3.0,
    ...                    "ndcg@10": 0.01 * np.log(N) + 0.02 * np.log(d)})
    >>> law = perflaw.fit(df, form="scaling", n_boot=0, holdout=False)
    >>> sp = law.scaling_potential(N=4, d=32)
    >>> sp.best, bool(round(sp.gain, 6) == round(0.01 * np.log(4) + 0.02 * np.log(2), 6))
    ({'N': 16.0, 'd': 64.0}, True)
    """
    current = dict(current or {})
    current.update({k: v for k, v in variables.items() if v is not None})
    base = _context(fit, trust_region, D, panel)
    if not current:
        current, panel = _largest_measured(fit, panel, D)
        base = _context(fit, trust_region, D, panel)
    unknown = sorted(set(current) - set(base.variables))
    if unknown or set(current) != set(base.variables):
        raise PerflawError(f"current must give {list(base.variables)}, got {sorted(current)}")
    for v, x in current.items():
        if not (isinstance(x, (int, float, np.integer, np.floating)) and x > 0):
            raise PerflawError(f"current {v} must be positive, got {x!r}")
    region = {v: (float(current[v]), max(float(current[v]), base.region[v][1])) for v in base.variables}
    free = tuple(v for v in base.variables if region[v][1] > region[v][0] * (1 + 1e-12))
    gains, rel, bests, best_values, current_values = [], [], [], [], []
    for theta in base.thetas():
        evaluate = base.evaluator(theta)
        now = float(evaluate({v: np.array([float(current[v])]) for v in base.variables})[0])
        if free:
            fixed = {v: float(current[v]) for v in base.variables if v not in free}

            def partial(points: dict[str, Array], evaluate: Evaluator = evaluate, fixed: dict = fixed) -> Array:
                n = len(next(iter(points.values())))
                return evaluate({**{k: np.full(n, x) for k, x in fixed.items()}, **points})

            point, value = _search(partial, region, free, base.sign, integer=False)
            point.update(fixed)
        else:
            point, value = dict(current), now
        gain = max(base.sign * (value - now), 0.0)
        gains.append(gain)
        rel.append(gain / abs(now) if now != 0 else float("nan"))
        bests.append(point)
        best_values.append(value)
        current_values.append(now)
    ci = fit.options.ci
    return ScalingPotential(
        current={k: float(v) for k, v in current.items()}, current_value=current_values[0], best=bests[0],
        best_value=best_values[0], gain=gains[0], gain_interval=_interval(np.array(gains[1:]), ci),
        relative_gain=rel[0], relative_gain_interval=_interval(np.array(rel[1:]), ci),
        trust_region=region, inputs=base.inputs, n_replicates=len(gains) - 1, at_edge=not free,
    )


def _largest_measured(fit: "Fit", panel: str | None, D: float | None) -> tuple[dict[str, float], str | None]:
    data = fit.data
    rows = np.ones(data.n, dtype=bool)
    if panel is not None:
        rows &= data.panel == fit.panels.index(panel)
    if D is not None and "D" in data.X:
        rows &= np.isclose(data.X["D"], D, rtol=1e-9)
    if not rows.any():
        raise PerflawError("no measured configuration matches panel/D to start the scaling potential from")
    i = int(np.flatnonzero(rows)[np.argmax(data.size[rows])])
    chosen_panel = panel
    needs_panel = fit.spec.per_panel or ("D" in data.X and "D" not in fit.held and D is None)
    if needs_panel and chosen_panel is None:
        chosen_panel = fit.panels[int(data.panel[i])]
    return {v: float(data.X[v][i]) for v in fit.model_variables}, chosen_panel
