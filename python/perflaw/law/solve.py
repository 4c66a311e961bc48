"""Numerical fitting: multi-start with exact linear solves, then a polish.

Two objectives:

``least_squares``
    1. Evaluate the start grid over the nonlinear coordinates (exponents,
       amplitudes). Where the form is linear in some coefficients, those are
       solved exactly for every grid point by a batched least-squares solve
       (variable projection), so the grid is dense and cheap.
    2. Polish the best distinct starts with ``scipy.optimize.least_squares``
       over all parameters (loss ``linear``, ``huber`` or ``soft_l1``), keep
       the lowest cost, and report how many starts agree on it.

``hoffmann``
    The Chinchilla procedure: Huber loss (δ = 1e-3) of the log-sum-exp
    prediction of log L, summed over runs, minimised by L-BFGS from a grid of
    initialisations.

Everything is deterministic: no random starts, fixed iteration order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import contextlib
import functools
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.optimize import least_squares, minimize
from scipy.special import huber, logsumexp

from perflaw.law.forms import HOFFMANN_DELTA, Spec
from perflaw.law.options import LOSSES
from perflaw.errors import PerflawError

Array = np.ndarray



def small_blas() -> contextlib.AbstractContextManager:
    """Run BLAS single-threaded for the duration of a fit.

    Every matrix here is tiny (runs × a few parameters); a multi-threaded
    BLAS only adds thread hand-offs, which cost ~10× the work itself on a
    busy machine (measured: one L-BFGS fit 0.95 s → 0.09 s).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional speed-up
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")
# Cap on batched-solve memory: grid points per chunk × runs × coefficients.
_CHUNK_ELEMENTS = 4_000_000


@dataclass
class Solution:
    """The outcome of one fit of a spec to data.

    Attributes
    ----------
    theta : ndarray
        Best parameter vector (spec order).
    cost : float
        Objective at ``theta`` (least_squares' cost, or the Hoffmann loss).
    converged : bool
        Whether the optimiser reported success for the best start.
    message : str
        The optimiser's message for the best start.
    nfev : int
        Function evaluations of the best polish.
    n_grid : int
        Grid points evaluated.
    n_polished : int
        Starts polished.
    n_agree : int
        Polished starts whose final cost is within 1e-6 (relative) of the best.
    jac : ndarray or None
        Jacobian of the residuals at ``theta`` (least_squares only).
    """

    theta: Array
    cost: float
    converged: bool
    message: str
    nfev: int
    n_grid: int
    n_polished: int
    n_agree: int
    jac: Array | None = field(default=None, repr=False)
    f_scale: float | None = None


def solve(
    spec: Spec,
    X: Mapping[str, Array],
    panel: Array,
    y: Array,
    *,
    loss: str = "linear",
    f_scale: float | None = None,
    n_polish: int = 6,
    extra_starts: Sequence[Array] = (),
    use_grid: bool = True,
    polish: bool = True,
) -> Solution:
    """Fit ``spec`` to ``y`` at ``X``; see the module docstring.

    Parameters
    ----------
    spec : Spec
        The specified form.
    X, panel, y : arrays
        Variables, panel ids and targets per run.
    loss : {"linear", "huber", "soft_l1"}
        Loss of the least-squares polish.
    f_scale : float, optional
        Residual scale of a robust loss; default 1.4826·MAD of the best
        grid start's residuals.
    n_polish : int
        Number of best grid starts to polish.
    extra_starts : sequence of ndarray
        Further starting vectors (e.g. a warm start), polished as well.
    use_grid : bool
        Evaluate the start grid (False: polish ``extra_starts`` only).
    polish : bool
        Run the final ``least_squares`` polish over all parameters. Without
        it (linear loss only) the projected fit is the answer: what the
        bootstrap and held-out refits use.

    Examples
    --------
    >>> import numpy as np
    >>> from perflaw.law.forms import FORMS
    >>> from perflaw.law.table import build_law_data
    >>> import pandas as pd
    >>> N, d = np.meshgrid([2, 4, 8], [16, 32])
    >>> df = pd.DataFrame({"layers": N.ravel(), "dim": d.ravel(), "d_prime": 5.0})
    >>> df["ndcg@10"] = 0.01 * np.log(df.layers) + 0.02 * np.log(df.dim) + np.log(5.0) - 1.0
    >>> data = build_law_data(df, "ndcg@10", FORMS["scaling"].columns)
    >>> spec = FORMS["scaling"].specify(data)
    >>> np.round(solve(spec, data.X, data.panel, data.y).theta, 6).tolist()
    [0.01, 0.02, -1.0]
    """
    if spec.objective == "hoffmann":
        return solve_hoffmann(spec, X, y, n_polish=n_polish, extra_starts=extra_starts, use_grid=use_grid)
    if loss not in LOSSES:
        raise PerflawError(f"loss must be one of {LOSSES}, got {loss!r}")
    if loss == "linear":
        groups = repeated_points(X, panel, y)
        if groups is not None:
            X, panel, y, sw, within = groups
            solution = _solve(spec, X, panel, y, sw, loss, f_scale, n_polish, extra_starts, use_grid, polish)
            solution.cost += 0.5 * within  # the cost over every run, as without grouping
            return solution
    sw = np.ones(len(y))
    return _solve(spec, X, panel, y, sw, loss, f_scale, n_polish, extra_starts, use_grid, polish)


def repeated_points(
    X: Mapping[str, Array], panel: Array, y: Array
) -> tuple[dict[str, Array], Array, Array, Array, float] | None:
    """Runs at the same point (the seeds of one configuration) as one weighted mean.

    With a linear loss, Σ_runs (f(x) − y)² = Σ_points n·(f(x) − ȳ)² + Σ_runs (y − ȳ)²,
    so a fit to the means weighted by the run counts n is the fit to every
    run, at the cost of the distinct points only. Returns (X, panel, means,
    √n, within-point sum of squares), or None when no point repeats.

    Examples
    --------
    >>> X = {"N": np.array([1.0, 1.0, 2.0])}
    >>> Xu, panel, means, sw, within = repeated_points(X, np.zeros(3, dtype=int), np.array([1.0, 3.0, 5.0]))
    >>> Xu["N"].tolist(), means.tolist(), np.round(sw ** 2, 9).tolist(), within
    ([1.0, 2.0], [2.0, 5.0], [2.0, 1.0], 2.0)
    """
    names = sorted(X)
    keys = np.column_stack([np.asarray(X[name], dtype=np.float64) for name in names] + [panel.astype(np.float64)])
    # Sort the rows once (np.unique over rows is several times slower) and cut where a key changes.
    order = np.lexsort(keys.T[::-1])
    starts = np.concatenate([[True], np.any(keys[order[1:]] != keys[order[:-1]], axis=1)])
    if starts.all():
        return None
    inverse = np.empty(len(y), dtype=np.int64)
    inverse[order] = np.cumsum(starts) - 1
    first = order[starts]
    counts = np.bincount(inverse)
    means = np.bincount(inverse, weights=y) / counts
    within = float(np.sum((y - means[inverse]) ** 2))
    grouped = {name: np.asarray(X[name])[first] for name in names}
    return grouped, panel[first], means, np.sqrt(counts.astype(np.float64)), within


def _solve(
    spec: Spec, X: Mapping[str, Array], panel: Array, y: Array, sw: Array, loss: str, f_scale: float | None,
    n_polish: int, extra_starts: Sequence[Array], use_grid: bool, polish: bool,
) -> Solution:
    """:func:`solve` on points with square-root weights ``sw`` (the residuals are ``sw·(f − y)``)."""
    warm = [np.asarray(s, dtype=np.float64) for s in extra_starts]
    projected = spec.basis is not None
    if projected:
        starts, n_grid = _projected_starts(spec, X, panel, y, sw, n_polish, warm, use_grid)
    else:
        starts, n_grid = _plain_starts(spec, X, panel, y, sw, n_polish, warm, use_grid)
    if not starts:
        raise PerflawError(
            f"{spec.form}: no finite start on the grid; check the data scale or give starting values"
        )
    start_sse = np.array([_sse(spec, s.theta, X, panel, y, sw) for s in starts])
    order = np.argsort(start_sse, kind="stable")
    best_start = starts[order[0]]

    if loss != "linear" and f_scale is None:
        f_scale = robust_scale(spec.predict(best_start.theta, X, panel) - y, y)
    f_scale = None if loss == "linear" else float(f_scale)  # type: ignore[arg-type]
    if f_scale is not None and not f_scale > 0:
        raise PerflawError(f"f_scale must be positive, got {f_scale!r}")

    if projected and loss == "linear" and not polish:
        # The projected fit already solved this least-squares problem.
        theta = best_start.theta
        return Solution(
            theta=theta, cost=0.5 * float(start_sse[order[0]]), converged=best_start.converged,
            message=best_start.message, nfev=best_start.nfev, n_grid=n_grid, n_polished=len(starts),
            n_agree=_agreeing(start_sse), f_scale=None,
        )

    # Polish over all parameters with the chosen loss: the best projected
    # start with the linear loss (it is already stationary), the best three
    # with a robust loss, every start for a form without a linear part.
    n_final = len(starts) if not projected else (1 if loss == "linear" else min(3, len(starts)))
    results = [
        _polish(spec, X, panel, y, sw, starts[i].theta, loss, 1.0 if f_scale is None else f_scale)
        for i in order[:n_final]
    ]
    costs = np.array([r.cost for r in results])
    res = results[int(np.argmin(costs))]
    agree = _agreeing(start_sse) if projected and loss == "linear" else _agreeing(2 * costs)
    converged, message = bool(res.status > 0), str(res.message)
    if not converged and projected and loss == "linear" and best_start.converged \
            and res.cost <= 0.5 * float(start_sse[order[0]]) * (1 + 1e-9):
        # The projected fit already solved this least-squares problem (the polish
        # starts at its stationary point and only accepts steps that lower the
        # cost); a polish that runs out of evaluations on a flat ridge leaves it
        # no worse, so the fit has converged.
        converged = True
        message = (f"the projected fit converged ({best_start.message}); the final polish stopped at its "
                   f"evaluation limit without raising the cost")
    return Solution(
        theta=np.asarray(res.x, dtype=np.float64),
        cost=float(res.cost),
        converged=converged,
        message=message,
        nfev=int(res.nfev),
        n_grid=n_grid,
        n_polished=len(starts),
        n_agree=agree,
        jac=np.asarray(res.jac, dtype=np.float64),
        f_scale=f_scale,
    )


def _agreeing(values: Array) -> int:
    """How many starts reached the best value (within 1e-6 relative)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0
    return max(1, int(np.sum(finite <= finite.min() * (1 + 1e-6) + 1e-300)))


def _polish(spec: Spec, X: Mapping[str, Array], panel: Array, y: Array, sw: Array, theta0: Array,
            loss: str, f_scale: float) -> Any:
    """scipy.optimize.least_squares over every parameter, within the bounds."""

    def residuals(theta: Array) -> Array:
        with np.errstate(all="ignore"):
            r = (spec.predict(theta, X, panel) - y) * sw
        # A start far out can overflow; a large finite residual steers the
        # optimiser away instead of aborting the fit.
        return np.nan_to_num(r, nan=1e10, posinf=1e10, neginf=-1e10)

    def jacobian(theta: Array) -> Array:
        with np.errstate(all="ignore"):
            J = spec.jacobian(theta, X, panel) * sw[:, None]
        return np.nan_to_num(J, nan=0.0, posinf=0.0, neginf=0.0)

    return least_squares(
        residuals, _inside(theta0, spec.lower, spec.upper),
        jac=jacobian if spec.has_jacobian else "2-point",
        bounds=(spec.lower, spec.upper), loss=loss, f_scale=f_scale,
        method="dogbox", x_scale="jac", ftol=1e-10, xtol=1e-10, gtol=1e-10,
        max_nfev=100 * (spec.n_params + 1),
    )


@dataclass
class _Start:
    theta: Array
    converged: bool
    message: str
    nfev: int


def _plain_starts(
    spec: Spec, X: Mapping[str, Array], panel: Array, y: Array, sw: Array, n_polish: int,
    warm: list[Array], use_grid: bool,
) -> tuple[list[_Start], int]:
    thetas: list[Array] = []
    n_grid = 0
    if use_grid:
        grid_thetas, sse = grid_starts(spec, X, panel, y, sw)
        n_grid = len(sse)
        thetas = _best_distinct(grid_thetas, sse, n_polish, _grid_shape(spec))
    return [_Start(t, False, "start", 0) for t in thetas + warm], n_grid


def _projected_starts(
    spec: Spec, X: Mapping[str, Array], panel: Array, y: Array, sw: Array, n_polish: int,
    warm: list[Array], use_grid: bool,
) -> tuple[list[_Start], int]:
    """Best grid points and warm starts, each refined over its nonlinear
    coordinates with the linear coefficients solved exactly (variable projection)."""
    coords: list[Array] = []
    n_grid = 0
    if use_grid:
        thetas, sse = grid_starts(spec, X, panel, y, sw)
        n_grid = len(sse)
        coords = [spec.coords(t) for t in _best_distinct(thetas, sse, n_polish, _grid_shape(spec))]
    coords += [spec.coords(t) for t in warm]
    starts = []
    for g in coords:
        start = _project(spec, g, X, panel, y, sw)
        if start is not None:
            starts.append(start)
    return starts, n_grid


# Levenberg–Marquardt budget per projected start: the forms have long, flat
# valleys (sloppy directions) where further progress changes the cost by less
# than 1e-9 of itself, i.e. nothing the data can distinguish.
PROJECT_TOL = 1e-9
PROJECT_MAX_NFEV = 1000


def _project(spec: Spec, g0: Array, X: Mapping[str, Array], panel: Array, y: Array, sw: Array,
             max_nfev: int = PROJECT_MAX_NFEV) -> _Start | None:
    """Minimise the variable-projection residual over the nonlinear coordinates.

    With ``c(g)`` the exact linear solve, the residual is
    ``r(g) = A(g)·c(g) + offset(g) − y``; its Jacobian is the exact
    Golub–Pereyra one, ``P⊥(∂A c + ∂offset) − A M ∂Aᵀ r`` with ``M = (AᵀA)⁻¹``
    (numerical differences when the spec has no basis derivatives). It is
    minimised by MINPACK's Levenberg–Marquardt over unbounded coordinates
    (:class:`_Box`), which needs far fewer iterations than a bounded
    trust-region method in the curved valleys these forms have.
    """
    assert spec.basis is not None and spec.assemble is not None
    box = _Box(spec)

    last: dict[bytes, tuple[Array, Array, Array, Array]] = {}

    def linear_fit(g: Array) -> tuple[Array, Array, Array, Array]:
        # MINPACK asks for the Jacobian at the point it just evaluated: reuse it.
        key = g.tobytes()
        if key not in last:
            with np.errstate(all="ignore"):
                A, offset = spec.basis(g[None, :], X, panel)
                A = A[0] * sw[:, None]
                target = (y - offset[0]) * sw
                coef, M = _lstsq_with_inverse(A, target)
                last.clear()
                last[key] = (A, coef, A @ coef - target, M)
        return last[key]

    def residuals(v: Array) -> Array:
        return np.nan_to_num(linear_fit(box.to_g(v))[2], nan=1e10, posinf=1e10, neginf=-1e10)

    def jacobian(v: Array) -> Array:
        g = box.to_g(v)
        A, coef, r, M = linear_fit(g)
        with np.errstate(all="ignore"):
            dA, doff = spec.basis_jac(g, X, panel)  # (m, n, k), (m, n)
            dA, doff = dA * sw[None, :, None], doff * sw[None, :]
            direct = np.einsum("mnk,k->mn", dA, coef) + doff
            projected = direct - (A @ (M @ (A.T @ direct.T))).T
            coupling = (A @ (M @ np.einsum("mnk,n->km", dA, r))).T
            J = (projected - coupling).T * box.dg_dv(v)
        return np.nan_to_num(J, nan=0.0, posinf=0.0, neginf=0.0)

    g = np.asarray(g0, dtype=np.float64)
    converged, message, nfev = True, "no nonlinear coordinates", 1
    if g.size:
        res = least_squares(
            residuals, box.to_v(g), jac=jacobian if spec.basis_jac is not None else "2-point",
            method="lm", x_scale="jac", ftol=PROJECT_TOL, xtol=PROJECT_TOL, gtol=1e-10, max_nfev=max_nfev,
        )
        g = box.to_g(res.x)
        converged, message, nfev = bool(res.status > 0), str(res.message), int(res.nfev)
    _, coef, r, _ = linear_fit(g)
    if not np.all(np.isfinite(r)):
        return None
    theta = spec.assemble(g, coef)
    if not np.all(np.isfinite(theta)):
        return None
    return _Start(theta, converged, message, nfev)


class _Box:
    """Unbounded internal coordinates v for the bounded grid coordinates g.

    Amplitudes that span orders of magnitude (``spec.asinh_scale``) are first
    taken as asinh(g / s); every coordinate with finite bounds is then
    squashed into its box with a scaled tanh, which is the identity at the
    box centre. This lets MINPACK's Levenberg–Marquardt (fast, but without
    bounds) search a bounded problem.
    """

    def __init__(self, spec: Spec) -> None:
        self.scale = np.array([spec.asinh_scale.get(n, 0.0) for n in spec.grid_names])
        self.warped = self.scale > 0
        lower, upper = spec.coord_bounds()
        lo, hi = self._asinh(lower), self._asinh(upper)
        self.boxed = np.isfinite(lo) & np.isfinite(hi)
        self.centre = np.where(self.boxed, (lo + hi) / 2, 0.0)
        self.half = np.where(self.boxed, (hi - lo) / 2, 1.0)

    def _asinh(self, g: Array) -> Array:
        u = np.array(g, dtype=np.float64)
        u[self.warped] = np.arcsinh(u[self.warped] / self.scale[self.warped])
        return u

    def to_v(self, g: Array) -> Array:
        u = self._asinh(g)
        z = np.clip((u - self.centre) / self.half, -1 + 1e-12, 1 - 1e-12)
        return np.where(self.boxed, self.centre + self.half * np.arctanh(z), u)

    def to_g(self, v: Array) -> Array:
        u = np.where(self.boxed, self.centre + self.half * np.tanh((v - self.centre) / self.half), v)
        u[self.warped] = self.scale[self.warped] * np.sinh(u[self.warped])
        return u

    def dg_dv(self, v: Array) -> Array:
        t = np.tanh((v - self.centre) / self.half)
        du_dv = np.where(self.boxed, 1.0 - t**2, 1.0)
        u = np.where(self.boxed, self.centre + self.half * t, v)
        dg_du = np.where(self.warped, self.scale * np.cosh(u), 1.0)
        return du_dv * dg_du


def _lstsq_with_inverse(A: Array, target: Array) -> tuple[Array, Array]:
    """Least squares for one small problem, as :func:`batched_lstsq` solves it,
    and ``M ≈ (AᵀA)⁻¹`` (ridge-regularised) for the projection Jacobian."""
    k = A.shape[1]
    norms = np.sqrt(np.einsum("nk,nk->k", A, A))
    if not (np.all(np.isfinite(norms)) and np.all(np.isfinite(target))):
        return np.full(k, np.nan), np.full((k, k), np.nan)
    norms[norms == 0] = 1.0
    scaled = A / norms
    gram = scaled.T @ scaled
    gram.flat[:: k + 1] += 1e-10
    inv = np.linalg.inv(gram)
    coef = inv @ (scaled.T @ target) / norms
    M = inv / np.outer(norms, norms)
    return coef, M


def _grid_shape(spec: Spec) -> tuple[int, ...] | None:
    """Axis lengths when ``spec.grid`` is a full product grid, else None."""
    grid = spec.grid
    if grid.shape[1] == 0:
        return None
    shape = tuple(len(np.unique(grid[:, j])) for j in range(grid.shape[1]))
    return shape if int(np.prod(shape)) == len(grid) else None


def _local_minima(sse: Array, shape: tuple[int, ...]) -> Array:
    """Mask of grid points no worse than any neighbour along each axis."""
    cube = sse.reshape(shape)
    mask = np.isfinite(cube)
    for axis in range(cube.ndim):
        for step in (1, -1):
            neighbour = np.roll(cube, step, axis=axis)
            edge = [slice(None)] * cube.ndim
            edge[axis] = 0 if step == 1 else -1
            neighbour[tuple(edge)] = np.inf  # no wrap-around
            mask &= cube <= neighbour
    return mask.reshape(-1)


def _best_distinct(thetas: Array, sse: Array, k: int, shape: tuple[int, ...] | None = None) -> list[Array]:
    """Up to ``k`` starts: the grid's local minima best first (so that one deep
    valley cannot crowd out the other basins), then the best remaining points."""
    order = np.argsort(sse, kind="stable")
    if shape is not None:
        minima = _local_minima(sse, shape)
        order = np.concatenate([order[minima[order]], order[~minima[order]]])
    chosen: list[Array] = []
    for i in order:
        if len(chosen) >= k:
            break
        if not np.isfinite(sse[i]):
            continue
        if not any(np.allclose(thetas[i], c, rtol=1e-9, atol=1e-12) for c in chosen):
            chosen.append(thetas[i])
    return chosen


def with_small_blas(func: Any) -> Any:
    """Decorator: run ``func`` under :func:`small_blas`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with small_blas():
            return func(*args, **kwargs)

    return wrapper


def robust_scale(resid: Array, y: Array) -> float:
    """1.4826·MAD of residuals, floored so that a perfect start still works."""
    mad = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
    floor = 1e-6 * max(float(np.std(y)), float(np.max(np.abs(y))), 1e-12)
    return max(mad, floor)


def grid_starts(
    spec: Spec, X: Mapping[str, Array], panel: Array, y: Array, sw: Array | None = None
) -> tuple[Array, Array]:
    """Full parameter vectors and their (weighted) sum of squares for every grid point."""
    grid = spec.grid
    sw = np.ones(len(y)) if sw is None else sw
    if spec.basis is None:
        thetas = np.array(grid, dtype=np.float64)
        sse = np.array([_sse(spec, t, X, panel, y, sw) for t in thetas])
        return thetas, sse
    assert spec.assemble is not None
    n = len(y)
    thetas = np.empty((len(grid), spec.n_params))
    sse = np.empty(len(grid))
    A0, _ = spec.basis(grid[:1], X, panel)
    k = A0.shape[2]
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n * k))
    for lo in range(0, len(grid), chunk):
        g = grid[lo : lo + chunk]
        A, offset = spec.basis(g, X, panel)
        A = np.broadcast_to(A, (len(g), n, k)) * sw[None, :, None]
        target = (y[None, :] - offset) * sw[None, :]
        coef, chunk_sse = batched_lstsq(A, target)
        for j in range(len(g)):
            if np.isfinite(chunk_sse[j]):
                thetas[lo + j] = spec.assemble(g[j], coef[j])
            else:
                thetas[lo + j] = np.nan
        sse[lo : lo + len(g)] = chunk_sse
    sse[~np.all(np.isfinite(thetas), axis=1)] = np.inf
    return thetas, sse


def batched_lstsq(A: Array, target: Array) -> tuple[Array, Array]:
    """Least-squares coefficients and SSE for a batch of small problems.

    ``A`` has shape (G, n, k) and ``target`` (G, n). Columns are scaled to unit
    norm and the normal equations get a tiny ridge (1e-10 of a unit
    diagonal), so collinear columns (an exponent near zero) give a finite
    near-minimum-norm answer instead of an error; a problem with non-finite
    entries gets an infinite SSE.
    """
    finite = np.all(np.isfinite(A), axis=(1, 2)) & np.all(np.isfinite(target), axis=1)
    A = np.where(finite[:, None, None], A, 0.0)
    target = np.where(finite[:, None], target, 0.0)
    norms = np.sqrt(np.einsum("gnk,gnk->gk", A, A))
    norms = np.where(norms > 0, norms, 1.0)
    scaled = A / norms[:, None, :]
    k = A.shape[2]
    gram = np.einsum("gnk,gnl->gkl", scaled, scaled) + 1e-10 * np.eye(k)
    rhs = np.einsum("gnk,gn->gk", scaled, target)
    coef = np.linalg.solve(gram, rhs[..., None])[..., 0] / norms
    resid = np.einsum("gnk,gk->gn", A, coef) - target
    sse = np.einsum("gn,gn->g", resid, resid)
    sse[~finite] = np.inf
    return coef, sse


def _sse(spec: Spec, theta: Array, X: Mapping[str, Array], panel: Array, y: Array, sw: Array) -> float:
    with np.errstate(all="ignore"):
        try:
            r = (spec.predict(theta, X, panel) - y) * sw
        except (FloatingPointError, OverflowError, ZeroDivisionError):
            return np.inf
    value = float(r @ r)
    return value if np.isfinite(value) else np.inf


def _inside(theta: Array, lower: Array, upper: Array) -> Array:
    """Move a start strictly inside the bounds (least_squares requires it)."""
    span = np.where(np.isfinite(upper - lower), upper - lower, np.inf)
    margin = np.minimum(1e-9 * np.maximum(1.0, np.abs(theta)), 1e-3 * span)
    return np.clip(theta, lower + margin, upper - margin)


# ---------------------------------------------------------------------------
# Hoffmann et al. (2022), approach 3


def hoffmann_loss(z: Array, lnN: Array, lnD: Array, lnL: Array, delta: float = HOFFMANN_DELTA) -> tuple[float, Array]:
    """Huber loss of the log-sum-exp fit and its gradient.

    ``z = (a, b, e, alpha, beta)``; the prediction of ln L is
    ``LSE(a − alpha·ln N, b − beta·ln D, e)``. Summed over runs, as Hoffmann et al. did.
    Written out by hand (no scipy.special calls): it runs inside L-BFGS
    thousands of times per fit.
    """
    a, b, e, alpha, beta = z
    t0 = a - alpha * lnN
    t1 = b - beta * lnD
    top = np.maximum(np.maximum(t0, t1), e)
    w0, w1, w2 = np.exp(t0 - top), np.exp(t1 - top), np.exp(e - top)
    total = w0 + w1 + w2
    r = top + np.log(total) - lnL
    abs_r = np.abs(r)
    small = abs_r <= delta
    loss = float(np.sum(np.where(small, 0.5 * r * r, delta * (abs_r - 0.5 * delta))))
    dr = np.where(small, r, delta * np.sign(r)) / total  # Huber derivative times the softmax denominator
    g0, g1 = np.dot(dr, w0), np.dot(dr, w1)
    grad = np.array([g0, g1, np.dot(dr, w2), -np.dot(dr * w0, lnN), -np.dot(dr * w1, lnD)])
    return loss, grad


def hoffmann_grid_losses(grid: Array, lnN: Array, lnD: Array, lnL: Array, delta: float = HOFFMANN_DELTA) -> Array:
    """The Hoffmann loss at every grid row ``(a, b, e, alpha, beta)`` at once."""
    a, b, e, alpha, beta = (grid[:, i : i + 1] for i in range(5))
    terms = np.stack([a - alpha * lnN, b - beta * lnD, np.broadcast_to(e, (len(grid), len(lnN)))])
    r = logsumexp(terms, axis=0) - lnL
    return np.sum(huber(delta, r), axis=1)


def solve_hoffmann(
    spec: Spec,
    X: Mapping[str, Array],
    y: Array,
    *,
    n_polish: int | None = 64,
    extra_starts: Sequence[Array] = (),
    use_grid: bool = True,
    delta: float = HOFFMANN_DELTA,
) -> Solution:
    """Chinchilla fit: L-BFGS on the Huber loss from Hoffmann's start grid.

    ``n_polish=None`` (or 4,500) runs L-BFGS from every grid point, exactly as
    Hoffmann et al.; an integer runs it from that many best grid points (by
    their starting loss; ``perflaw.fit`` passes ``n_starts``, default 6),
    which reached the same optimum 360× faster in ``benches/bench_law.py``.
    ``spec.grid`` columns are (a, b, e, alpha, beta).
    """
    lnN, lnD, lnL = np.log(X["N"]), np.log(X["D"]), np.log(y)
    starts: list[Array] = []
    n_grid = 0
    if use_grid:
        grid = spec.grid
        n_grid = len(grid)
        losses = hoffmann_grid_losses(grid, lnN, lnD, lnL, delta)
        order = np.argsort(losses, kind="stable")
        if n_polish is not None:
            order = order[: int(n_polish)]
        starts.extend(grid[i] for i in order)
    for theta in extra_starts:  # spec order (E, A, alpha, B, beta) -> log space
        E, A, alpha, B, beta = np.maximum(np.asarray(theta, dtype=np.float64), [1e-300, 1e-300, -np.inf, 1e-300, -np.inf])
        starts.append(np.array([np.log(A), np.log(B), np.log(E), alpha, beta]))
    if not starts:
        raise PerflawError("chinchilla: no starting point")

    results = []
    for z0 in starts:
        res = minimize(
            hoffmann_loss, z0, args=(lnN, lnD, lnL, delta), jac=True, method="L-BFGS-B",
            options={"maxiter": 10_000, "ftol": 1e-15, "gtol": 1e-12, "maxcor": 20},
        )
        results.append(res)
    costs = np.array([r.fun for r in results])
    best = int(np.argmin(costs))
    res = results[best]
    a, b, e, alpha, beta = res.x
    theta = np.array([np.exp(e), np.exp(a), alpha, np.exp(b), beta])
    agree = int(np.sum(costs <= costs[best] * (1 + 1e-6) + 1e-300))
    return Solution(
        theta=theta,
        cost=float(res.fun),
        converged=bool(res.success),
        message=str(res.message),
        nfev=int(res.nfev),
        n_grid=n_grid,
        n_polished=len(results),
        n_agree=agree,
        jac=None,
    )
