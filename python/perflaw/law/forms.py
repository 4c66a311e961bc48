"""The law forms: readable formulas with parameters, bounds and ``predict``.

A :class:`Form` is what a user picks (``"performance"``, ``"scaling"`` …).
Fitting first *specifies* it against the data: :meth:`Form.specify` returns a
:class:`Spec`, the concrete model with its free parameters in vector order.
The spec knows what the data can and cannot identify:

- a variable with a single distinct value that the form allows to be held
  (D′ within one data panel) is *held* at that value, and the parameters that
  only act through it are *fixed* rather than fitted;
- where the form is linear in some coefficients, the spec exposes a *basis*
  so the fitter can solve those exactly for every point of the start grid
  (variable projection) instead of searching for them.

Forms
-----
performance
    P = w1·(ln N + p1/N^w3) + w2·(ln d + p1/d^w4) + (ln D′ + p2/D′^w5) + b
performance_code
    P = w1·(−1/(2N^w3) − w3·ln N) + w2·(−1/(2d^w4) − w4·ln d)
        + (−1/(2D^w5) − w5·ln D) + b,  with D measured (``D="fixed"``) or one
        free D per data panel (``D="free"``)
scaling
    P = w1·ln N + w2·ln d + ln D′ + b  (the decay-free baseline)
chinchilla
    L = E + A/N^α + B/D^β, fitted as Hoffmann et al. (2022) did
custom
    any Python callable, see :func:`custom_form`
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy.optimize import brentq

from perflaw.law.table import LawData
from perflaw.errors import PerflawError

Array = np.ndarray

# Start grids for exponents: geometric in |w| on both signs. Zero is left out:
# there the decay term is a constant that duplicates the intercept. The
# landscape in the exponents is rugged (near-collinear columns make sharp
# ridges), so the grid for N and d is fine; the linear coefficients are solved
# exactly at every point, which keeps a fine grid cheap.
_MAGNITUDES = np.geomspace(0.03, 3.0, 12)
EXPONENT_GRID = tuple(np.round(np.concatenate([-_MAGNITUDES[::-1], _MAGNITUDES]), 6))
# Coarser grid for the data exponent w5 (one more grid dimension).
DATA_EXPONENT_GRID = (-2.0, -1.0, -0.5, -0.25, 0.25, 0.5, 1.0, 2.0)
# Shared decay amplitude p1 of the paper's form, both signs, log-spaced.
AMPLITUDE_GRID = (-3.0, -0.3, -0.03, -0.003, 0.003, 0.03, 0.3, 3.0)
EXPONENT_BOUND = 4.0
AMPLITUDE_BOUND = 1e4
# Free D per panel: wide enough that the data term reaches any offset a
# metric table needs (c(D) ≈ −w5·ln D for large D).
FREE_D_BOUNDS = (1e-9, 1e30)

# Hoffmann et al. (2022, appendix D.2) initialisation grid, in their
# log-space parametrisation E = exp(e), A = exp(a), B = exp(b).
HOFFMANN_GRID = {
    "a": np.arange(0.0, 25.0 + 1e-9, 5.0),
    "b": np.arange(0.0, 25.0 + 1e-9, 5.0),
    "e": np.arange(-1.0, 1.0 + 1e-9, 0.5),
    "alpha": np.arange(0.0, 2.0 + 1e-9, 0.5),
    "beta": np.arange(0.0, 2.0 + 1e-9, 0.5),
}
HOFFMANN_DELTA = 1e-3

# Table columns each variable reads by default (candidates, first present wins).
DEFAULT_COLUMNS = {"N": ("layers", "N"), "d": ("dim", "d"), "D": ("d_prime", "tokens", "D")}


@dataclass
class Spec:
    """A form specified against one table: the concrete model that is fitted.

    Attributes
    ----------
    form, formula : str
        The form's name and readable formula.
    names : tuple of str
        Free parameters, in the order of the parameter vector ``theta``.
    lower, upper : ndarray
        Bounds on ``theta``.
    variables : tuple of str
        The variables ``predict`` reads.
    fixed : dict
        Parameters held at a value because the data cannot identify them.
    held : dict
        Variables with a single value in the data, held at that value.
    grid : ndarray, shape (G, m)
        Start grid over the nonlinear coordinates.
    grid_names : tuple of str
        The parameters that are the grid's coordinates (with a basis), or all
        parameters (without one).
    basis : callable or None
        ``basis(grid, X, panel) -> (A, offset)`` with ``A`` of shape (G, n, k)
        and ``offset`` (G, n): the prediction is ``A @ coef + offset``.
    assemble : callable or None
        ``assemble(grid_row, coef) -> theta``.
    objective : str
        ``"least_squares"`` or ``"hoffmann"``.
    """

    form: str
    formula: str
    names: tuple[str, ...]
    lower: Array
    upper: Array
    variables: tuple[str, ...]
    evaluate: Callable[[Mapping[str, float], Mapping[str, Array], Array], Array]
    fixed: dict[str, float] = field(default_factory=dict)
    held: dict[str, float] = field(default_factory=dict)
    grid: Array = field(default_factory=lambda: np.zeros((1, 0)))
    grid_names: tuple[str, ...] = ()
    # grid coordinates searched as asinh(value / scale): amplitudes that span
    # orders of magnitude with either sign
    asinh_scale: dict[str, float] = field(default_factory=dict)
    basis: Callable[[Array, Mapping[str, Array], Array], tuple[Array, Array]] | None = None
    assemble: Callable[[Array, Array], Array] | None = None
    # derivatives of the basis over the grid coordinates: (dA (m, n, k), doffset (m, n))
    basis_jac: Callable[[Array, Mapping[str, Array], Array], tuple[Array, Array]] | None = None
    # derivatives of the prediction: name -> column, for every free parameter
    gradient: Callable[[Mapping[str, float], Mapping[str, Array], Array], Mapping[str, Array]] | None = None
    objective: str = "least_squares"
    panel_labels: tuple[str, ...] = ("all",)
    # True when some parameters belong to one data panel (free D per panel)
    per_panel: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def n_params(self) -> int:
        return len(self.names)

    def coords(self, theta: Array) -> Array:
        """The nonlinear coordinates (``grid_names``) of a parameter vector."""
        index = [self.names.index(n) for n in self.grid_names]
        return np.asarray(theta, dtype=np.float64)[index]

    def coord_bounds(self) -> tuple[Array, Array]:
        index = [self.names.index(n) for n in self.grid_names]
        return self.lower[index], self.upper[index]

    def param_dict(self, theta: Array) -> dict[str, float]:
        values = {name: float(v) for name, v in zip(self.names, theta)}
        values.update(self.fixed)
        return values

    def _inputs(self, X: Mapping[str, Array], panel: Array | None) -> tuple[dict[str, Array], Array]:
        n = len(next(iter(X.values()))) if X else 1
        if panel is None:
            panel = np.zeros(n, dtype=np.int64)
        full = dict(X)
        for var, value in self.held.items():
            full.setdefault(var, np.full(n, value))
        return full, panel

    def predict(self, theta: Array, X: Mapping[str, Array], panel: Array | None = None) -> Array:
        """Prediction at variables ``X`` (arrays of equal length)."""
        full, panel = self._inputs(X, panel)
        return np.asarray(self.evaluate(self.param_dict(theta), full, panel), dtype=np.float64)

    @property
    def has_jacobian(self) -> bool:
        return self.gradient is not None

    def jacobian(self, theta: Array, X: Mapping[str, Array], panel: Array | None = None) -> Array:
        """d prediction / d theta, shape (n, n_params)."""
        assert self.gradient is not None
        full, panel = self._inputs(X, panel)
        columns = self.gradient(self.param_dict(theta), full, panel)
        n = len(panel)
        return np.column_stack([np.broadcast_to(columns[name], (n,)) for name in self.names])


@dataclass(frozen=True)
class Form:
    """A law form: name, formula, variables and the table columns they come from.

    Subclasses implement :meth:`specify`. ``columns`` maps each variable to the
    candidate table columns, first present wins.
    """

    name: str
    formula: str
    columns: Mapping[str, tuple[str, ...]]
    default_metric: str = "ndcg@10"
    # variables whose single value is held (not an error) when constant
    holdable: tuple[str, ...] = ()

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(self.columns)

    def required_columns(self, **options: Any) -> dict[str, tuple[str, ...]]:
        """Variable -> candidate columns that a fit with ``options`` reads."""
        if options.get("D") == "free" and "D" in self.columns and self.name in ("performance_code", "scaling"):
            return {k: v for k, v in self.columns.items() if k != "D"}
        return dict(self.columns)

    def specify(self, data: LawData, **options: Any) -> Spec:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict(self, params: Mapping[str, float], **variables: Any) -> Array:
        """Evaluate the form at ``variables`` with parameter values ``params``.

        Examples
        --------
        >>> from perflaw.law import FORMS
        >>> import math
        >>> FORMS["scaling"].predict({"w1": 0.1, "w2": 0.0, "b": 0.0}, N=math.e, d=1.0, D=1.0).tolist()
        [0.1]
        """
        arrays = {k: np.atleast_1d(np.asarray(v, dtype=np.float64)) for k, v in variables.items()}
        n = max(len(a) for a in arrays.values()) if arrays else 1
        arrays = {k: np.broadcast_to(a, (n,)) for k, a in arrays.items()}
        panel = np.zeros(n, dtype=np.int64)
        return np.asarray(self._evaluate(dict(params), arrays, panel), dtype=np.float64)

    def _evaluate(self, p: Mapping[str, float], X: Mapping[str, Array], panel: Array) -> Array:  # pragma: no cover
        raise NotImplementedError

    def __str__(self) -> str:
        return f"{self.name}: {self.formula}"


# ---------------------------------------------------------------------------
# shared helpers


def distinct_or_hold(form: Form, data: LawData, fitted: Sequence[str]) -> dict[str, float]:
    """Held variables; a single value of any other fitted variable is an error."""
    held: dict[str, float] = {}
    for var in fitted:
        values = data.distinct(var)
        if len(values) > 1:
            continue
        if var in form.holdable:
            held[var] = float(values[0])
        else:
            raise PerflawError(
                f"variable {var} (column {data.columns.get(var, var)!r}) has a single distinct value "
                f"{float(values[0])!r}; the {form.name} form needs at least two to fit it"
            )
    return held


def start_grid(*axes: Sequence[float]) -> Array:
    if not axes:
        return np.zeros((1, 0))
    mesh = np.meshgrid(*[np.asarray(a, dtype=np.float64) for a in axes], indexing="ij")
    return np.column_stack([m.reshape(-1) for m in mesh])


def _power(x: Array, exponent: Array) -> Array:
    """x ** -exponent for a batch of exponents: shape (G, n)."""
    return np.exp(-np.outer(exponent, np.log(x)))


def param_bounds(names: Sequence[str], table: Mapping[str, tuple[float, float]]) -> tuple[Array, Array]:
    lower = np.array([table.get(n, (-np.inf, np.inf))[0] for n in names], dtype=np.float64)
    upper = np.array([table.get(n, (-np.inf, np.inf))[1] for n in names], dtype=np.float64)
    return lower, upper


def _place(names: Sequence[str], values: Mapping[str, float]) -> Array:
    return np.array([values[n] for n in names], dtype=np.float64)


# ---------------------------------------------------------------------------
# performance: the paper's form


@dataclass(frozen=True)
class PerformanceForm(Form):
    """The paper's Performance Law with a decay term per variable.

    The decay terms p1/N^w3 and p1/d^w4 (shared amplitude p1) make the
    prediction rise and then fall in N and d. ``w1, w2, b`` (and ``p2`` when
    D′ varies) enter linearly and are solved exactly for every start.
    Within one data panel D′ is a single value: then ``p2 = 0`` and ``w5 = 1``
    are fixed and the constant ln D′ is part of the intercept ``b``.
    """

    def specify(self, data: LawData, **options: Any) -> Spec:
        held = distinct_or_hold(self, data, self.variables)
        d_fitted = "D" not in held
        names = ("w1", "w2", "w3", "w4", "p1", "b") + (("p2", "w5") if d_fitted else ())
        fixed = {} if d_fitted else {"p2": 0.0, "w5": 1.0}
        exponent = (-EXPONENT_BOUND, EXPONENT_BOUND)
        lower, upper = param_bounds(
            names, {"w3": exponent, "w4": exponent, "w5": exponent, "p1": (-AMPLITUDE_BOUND, AMPLITUDE_BOUND)}
        )
        axes = [EXPONENT_GRID, EXPONENT_GRID, AMPLITUDE_GRID] + ([DATA_EXPONENT_GRID] if d_fitted else [])
        grid = start_grid(*axes)

        def basis(g: Array, X: Mapping[str, Array], panel: Array) -> tuple[Array, Array]:
            lnN, lnd = np.log(X["N"]), np.log(X["d"])
            lnD = np.log(X["D"]) if d_fitted else np.full(len(lnN), math.log(held["D"]))
            A = np.empty((len(g), len(lnN), 4 if d_fitted else 3))
            p1 = g[:, 2:3]
            A[:, :, 0] = lnN + p1 * np.exp(-g[:, 0:1] * lnN)
            A[:, :, 1] = lnd + p1 * np.exp(-g[:, 1:2] * lnd)
            A[:, :, 2] = 1.0
            if d_fitted:
                A[:, :, 3] = np.exp(-g[:, 3:4] * lnD)
            return A, np.broadcast_to(lnD, A.shape[:2])

        def basis_jac(g: Array, X: Mapping[str, Array], panel: Array) -> tuple[Array, Array]:
            lnN, lnd = np.log(X["N"]), np.log(X["d"])
            n = len(lnN)
            dA = np.zeros((len(g), n, 4 if d_fitted else 3))
            powN, powd = np.exp(-g[0] * lnN), np.exp(-g[1] * lnd)
            dA[0, :, 0] = -g[2] * lnN * powN  # d/dw3
            dA[1, :, 1] = -g[2] * lnd * powd  # d/dw4
            dA[2, :, 0], dA[2, :, 1] = powN, powd  # d/dp1
            if d_fitted:
                lnD = np.log(X["D"])
                dA[3, :, 3] = -lnD * np.exp(-g[3] * lnD)  # d/dw5
            return dA, np.zeros((len(g), n))

        def assemble(g: Array, coef: Array) -> Array:
            values = {"w1": coef[0], "w2": coef[1], "b": coef[2], "w3": g[0], "w4": g[1], "p1": g[2]}
            if d_fitted:
                values.update(p2=coef[3], w5=g[3])
            return _place(names, values)

        # With one D′ the identified default drops the constant data term from the formula.
        formula = self.formula if d_fitted else "w1·(ln N + p1/N^w3) + w2·(ln d + p1/d^w4) + b  (b holds ln D′)"
        return Spec(
            form=self.name, formula=formula, names=names, lower=lower, upper=upper,
            variables=self.variables, evaluate=self._evaluate, fixed=fixed, held=held,
            grid=grid, grid_names=("w3", "w4", "p1") + (("w5",) if d_fitted else ()),
            asinh_scale={"p1": 1e-3}, basis=basis, basis_jac=basis_jac, gradient=self._gradient,
            assemble=assemble, panel_labels=data.panel_labels,
            notes=[] if d_fitted else [
                f"D′ takes one value ({held['D']:g}) in this table: p2=0 and w5=1 are fixed and "
                "ln D′ is absorbed in b; predictions are for this D′ only"
            ],
        )

    @staticmethod
    def _gradient(p: Mapping[str, float], X: Mapping[str, Array], panel: Array) -> dict[str, Array]:
        lnN, lnd, lnD = np.log(X["N"]), np.log(X["d"]), np.log(X["D"])
        powN, powd = np.exp(-p["w3"] * lnN), np.exp(-p["w4"] * lnd)
        powD = np.exp(-p.get("w5", 1.0) * lnD)
        return {
            "w1": lnN + p["p1"] * powN,
            "w2": lnd + p["p1"] * powd,
            "w3": -p["w1"] * p["p1"] * lnN * powN,
            "w4": -p["w2"] * p["p1"] * lnd * powd,
            "p1": p["w1"] * powN + p["w2"] * powd,
            "b": np.ones_like(lnN),
            "p2": powD,
            "w5": -p.get("p2", 0.0) * lnD * powD,
        }

    def _evaluate(self, p: Mapping[str, float], X: Mapping[str, Array], panel: Array) -> Array:
        N, d, D = X["N"], X["d"], X["D"]
        return (
            p["w1"] * (np.log(N) + p["p1"] * N ** -p["w3"])
            + p["w2"] * (np.log(d) + p["p1"] * d ** -p["w4"])
            + (np.log(D) + p.get("p2", 0.0) * D ** -p.get("w5", 1.0))
            + p["b"]
        )


# ---------------------------------------------------------------------------
# performance_code: the authors' published parametrisation


@dataclass(frozen=True)
class PerformanceCodeForm(Form):
    """The parametrisation of the authors' released fitting script.

    With ``D="fixed"`` the data term uses the measured D′ column; with
    ``D="free"`` every data panel (dataset × max length) gets its own free D,
    as the authors fitted it. Within a panel the data term is a constant, so
    only ``b + (−1/(2D^w5) − w5·ln D)`` is identified: the fitter reports D,
    w5 and b as unidentified in that case rather than inventing intervals.
    """

    def specify(self, data: LawData, **options: Any) -> Spec:
        mode = options.get("D", "fixed")
        if mode not in ("fixed", "free"):
            raise PerflawError(f"performance_code: D must be 'fixed' or 'free', got {mode!r}")
        if mode == "free":
            return self._specify_free(data)
        held = distinct_or_hold(self, data, self.variables)
        d_fitted = "D" not in held
        names = ("w1", "w2", "w3", "w4", "b") + (("w5",) if d_fitted else ())
        fixed = {} if d_fitted else {"w5": 1.0}
        exponent = (-EXPONENT_BOUND, EXPONENT_BOUND)
        lower, upper = param_bounds(names, {"w3": exponent, "w4": exponent, "w5": exponent})
        grid = start_grid(EXPONENT_GRID, EXPONENT_GRID, *([DATA_EXPONENT_GRID] if d_fitted else []))

        def basis(g: Array, X: Mapping[str, Array], panel: Array) -> tuple[Array, Array]:
            lnN, lnd = np.log(X["N"]), np.log(X["d"])
            A = np.empty((len(g), len(lnN), 3))
            A[:, :, 0] = _code_log(lnN, g[:, 0:1])
            A[:, :, 1] = _code_log(lnd, g[:, 1:2])
            A[:, :, 2] = 1.0
            if d_fitted:
                offset = _code_log(np.log(X["D"]), g[:, 2:3])
            else:
                offset = np.broadcast_to(_code_log(np.full(len(lnN), math.log(held["D"])), 1.0), A.shape[:2])
            return A, offset

        def basis_jac(g: Array, X: Mapping[str, Array], panel: Array) -> tuple[Array, Array]:
            lnN, lnd = np.log(X["N"]), np.log(X["d"])
            dA = np.zeros((len(g), len(lnN), 3))
            doff = np.zeros((len(g), len(lnN)))
            dA[0, :, 0] = _code_log_dw(lnN, g[0])
            dA[1, :, 1] = _code_log_dw(lnd, g[1])
            if d_fitted:
                doff[2] = _code_log_dw(np.log(X["D"]), g[2])
            return dA, doff

        def assemble(g: Array, coef: Array) -> Array:
            values = {"w1": coef[0], "w2": coef[1], "b": coef[2], "w3": g[0], "w4": g[1]}
            if d_fitted:
                values["w5"] = g[2]
            return _place(names, values)

        return Spec(
            form=self.name, formula=self.formula, names=names, lower=lower, upper=upper,
            variables=self.variables, evaluate=self._evaluate, fixed=fixed, held=held,
            grid=grid, grid_names=("w3", "w4") + (("w5",) if d_fitted else ()),
            basis=basis, basis_jac=basis_jac, gradient=self._gradient, assemble=assemble,
            panel_labels=data.panel_labels,
            notes=[] if d_fitted else [
                f"D′ takes one value ({held['D']:g}): w5=1 is fixed and the data term is absorbed in b"
            ],
        )

    def _specify_free(self, data: LawData) -> Spec:
        distinct_or_hold(self, data, ("N", "d"))
        labels = data.panel_labels
        n_panels = len(labels)
        d_names = ("D",) if n_panels == 1 else tuple(f"D[{label}]" for label in labels)
        names = ("w1", "w2", "w3", "w4", "w5", "b") + d_names
        exponent = (-EXPONENT_BOUND, EXPONENT_BOUND)
        table = {"w3": exponent, "w4": exponent, "w5": exponent}
        table.update({n: FREE_D_BOUNDS for n in d_names})
        lower, upper = param_bounds(names, table)
        grid = start_grid(EXPONENT_GRID, EXPONENT_GRID)

        def basis(g: Array, X: Mapping[str, Array], panel: Array) -> tuple[Array, Array]:
            # In the grid stage the per-panel data term plus b is one free
            # offset per panel: solved exactly, then mapped back to (b, w5, D).
            lnN, lnd = np.log(X["N"]), np.log(X["d"])
            A = np.empty((len(g), len(lnN), 2 + n_panels))
            A[:, :, 0] = _code_log(lnN, g[:, 0:1])
            A[:, :, 1] = _code_log(lnd, g[:, 1:2])
            A[:, :, 2:] = np.eye(n_panels)[panel]
            return A, np.zeros(A.shape[:2])

        def basis_jac(g: Array, X: Mapping[str, Array], panel: Array) -> tuple[Array, Array]:
            lnN, lnd = np.log(X["N"]), np.log(X["d"])
            dA = np.zeros((len(g), len(lnN), 2 + n_panels))
            dA[0, :, 0] = _code_log_dw(lnN, g[0])
            dA[1, :, 1] = _code_log_dw(lnd, g[1])
            return dA, np.zeros((len(g), len(lnN)))

        def gradient(p: Mapping[str, float], X: Mapping[str, Array], panel: Array) -> dict[str, Array]:
            D_values = np.array([p[n] for n in d_names])
            D = X["D"] if "D" in X else D_values[panel]
            columns = self._gradient(p, {"N": X["N"], "d": X["d"], "D": D}, panel)
            # d/dD of the data term −1/(2D^w5) − w5·ln D, on the rows of D's panel
            slope = p["w5"] / D * (0.5 * D ** -p["w5"] - 1.0)
            for j, name in enumerate(d_names):
                columns[name] = np.where(panel == j, slope, 0.0) if "D" not in X else np.zeros(len(D))
            return columns

        def assemble(g: Array, coef: Array) -> Array:
            offsets = coef[2:]
            w5 = 1.0
            # Only offset_p = b + c(D_p, w5) is identified. Represent it with
            # w5 = 1 and b one unit above the largest offset, so every c_p <= -1
            # lies on the large-D branch of c (its maximum is ln 2 - 1).
            b = float(np.max(offsets)) + 1.0
            Ds = [_invert_code_term(float(o - b), w5) for o in offsets]
            values = {"w1": coef[0], "w2": coef[1], "w3": g[0], "w4": g[1], "w5": w5, "b": b}
            values.update(dict(zip(d_names, Ds)))
            return _place(names, values)

        def evaluate(p: Mapping[str, float], X: Mapping[str, Array], panel: Array) -> Array:
            if "D" in X:  # an explicit D overrides the panel's fitted value
                D = X["D"]
            else:
                D = np.array([p[n] for n in d_names])[panel]
            return self._evaluate(p, {"N": X["N"], "d": X["d"], "D": D}, panel)

        return Spec(
            form=self.name, formula=self.formula.replace("D′", "D"), names=names, lower=lower,
            upper=upper, variables=("N", "d"), evaluate=evaluate, grid=grid,
            grid_names=("w3", "w4"), basis=basis, basis_jac=basis_jac, gradient=gradient,
            assemble=assemble, panel_labels=labels, per_panel=True,
            notes=["D is free per panel: only b + (−1/(2D^w5) − w5·ln D) is identified per panel"],
        )

    @staticmethod
    def _gradient(p: Mapping[str, float], X: Mapping[str, Array], panel: Array) -> dict[str, Array]:
        lnN, lnd, lnD = np.log(X["N"]), np.log(X["d"]), np.log(X["D"])
        return {
            "w1": _code_log(lnN, p["w3"]),
            "w2": _code_log(lnd, p["w4"]),
            "w3": p["w1"] * _code_log_dw(lnN, p["w3"]),
            "w4": p["w2"] * _code_log_dw(lnd, p["w4"]),
            "w5": _code_log_dw(lnD, p.get("w5", 1.0)),
            "b": np.ones_like(lnN),
        }

    def _evaluate(self, p: Mapping[str, float], X: Mapping[str, Array], panel: Array) -> Array:
        return (
            p["w1"] * _code_term(X["N"], p["w3"])
            + p["w2"] * _code_term(X["d"], p["w4"])
            + _code_term(X["D"], p.get("w5", 1.0))
            + p["b"]
        )


def _code_term(x: Array, w: Array | float) -> Array:
    """−1/(2x^w) − w·ln x, for a scalar w (shape (n,)) or a batch (shape (G, n))."""
    w = np.asarray(w, dtype=np.float64)
    lnx = np.log(x)
    if w.ndim == 0:
        return -0.5 * np.exp(-w * lnx) - w * lnx
    return -0.5 * np.exp(-np.outer(w, lnx)) - np.outer(w, lnx)


def _code_log(lnx: Array, w: Array | float) -> Array:
    """_code_term from ln x; ``w`` of shape (G, 1) gives a (G, n) batch."""
    return -0.5 * np.exp(-w * lnx) - w * lnx


def _code_log_dw(lnx: Array, w: float) -> Array:
    """d/dw of −1/(2x^w) − w·ln x = ln x·(1/(2x^w) − 1)."""
    return lnx * (0.5 * np.exp(-w * lnx) - 1.0)


def _invert_code_term(target: float, w5: float) -> float:
    """D on the large-D branch with −1/(2D^w5) − w5·ln D = target (w5 > 0)."""
    # c(D) peaks at D^w5 = 1/2 with value ln 2 − 1 and falls to −∞ beyond.
    peak = 0.5 ** (1.0 / w5)

    def gap(log_d: float) -> float:
        return float(_code_term(np.array([math.exp(log_d)]), w5)[0] - target)

    hi = math.log(peak) + 1.0
    while gap(hi) > 0 and hi < math.log(FREE_D_BOUNDS[1]):
        hi += 2.0
    if gap(hi) > 0:
        return FREE_D_BOUNDS[1]
    return math.exp(brentq(gap, math.log(peak), hi, xtol=1e-12))


# ---------------------------------------------------------------------------
# scaling: the decay-free baseline


@dataclass(frozen=True)
class ScalingForm(Form):
    """The decay-free baseline: the paper's growth terms without decay terms.

    Linear in every parameter, so its fit is one exact least-squares solve;
    it can only rise (or only fall) in N and in d, never peak.
    """

    def specify(self, data: LawData, **options: Any) -> Spec:
        mode = options.get("D", "fixed")
        if mode not in ("fixed", "free"):
            raise PerflawError(f"scaling: D must be 'fixed' or 'free', got {mode!r}")
        if mode == "free":
            return self._specify_free(data)
        held = distinct_or_hold(self, data, self.variables)
        names = ("w1", "w2", "b")
        lower, upper = param_bounds(names, {})

        def basis(g: Array, X: Mapping[str, Array], panel: Array) -> tuple[Array, Array]:
            D = X["D"] if "D" not in held else np.full(len(X["N"]), held["D"])
            A = np.column_stack([np.log(X["N"]), np.log(X["d"]), np.ones(len(D))])
            return A[None], np.log(D)[None]

        def assemble(g: Array, coef: Array) -> Array:
            return np.asarray(coef, dtype=np.float64).copy()

        return Spec(
            form=self.name, formula=self.formula, names=names, lower=lower, upper=upper,
            variables=self.variables, evaluate=self._evaluate, held=held, grid=np.zeros((1, 0)),
            grid_names=(), basis=basis, assemble=assemble, panel_labels=data.panel_labels,
            gradient=lambda p, X, panel: {
                "w1": np.log(X["N"]), "w2": np.log(X["d"]), "b": np.ones(len(X["N"]))
            },
        )

    def _specify_free(self, data: LawData) -> Spec:
        """Baseline for ``performance_code`` with a free D: the data term is one
        free intercept per panel."""
        distinct_or_hold(self, data, ("N", "d"))
        labels = data.panel_labels
        b_names = ("b",) if len(labels) == 1 else tuple(f"b[{label}]" for label in labels)
        names = ("w1", "w2") + b_names
        lower, upper = param_bounds(names, {})

        def basis(g: Array, X: Mapping[str, Array], panel: Array) -> tuple[Array, Array]:
            A = np.column_stack([np.log(X["N"]), np.log(X["d"]), np.eye(len(labels))[panel]])
            return A[None], np.zeros((1, len(panel)))

        def evaluate(p: Mapping[str, float], X: Mapping[str, Array], panel: Array) -> Array:
            intercept = np.array([p[n] for n in b_names])[panel]
            return p["w1"] * np.log(X["N"]) + p["w2"] * np.log(X["d"]) + intercept

        def gradient(p: Mapping[str, float], X: Mapping[str, Array], panel: Array) -> dict[str, Array]:
            columns = {"w1": np.log(X["N"]), "w2": np.log(X["d"])}
            for j, name in enumerate(b_names):
                columns[name] = (panel == j).astype(np.float64)
            return columns

        return Spec(
            form=self.name, formula="w1·ln N + w2·ln d + b[panel]", names=names, lower=lower,
            upper=upper, variables=("N", "d"), evaluate=evaluate, grid=np.zeros((1, 0)),
            grid_names=(), basis=basis, assemble=lambda g, coef: np.asarray(coef, dtype=np.float64).copy(),
            gradient=gradient, panel_labels=labels, per_panel=True,
        )

    def _evaluate(self, p: Mapping[str, float], X: Mapping[str, Array], panel: Array) -> Array:
        return p["w1"] * np.log(X["N"]) + p["w2"] * np.log(X["d"]) + np.log(X["D"]) + p["b"]


# ---------------------------------------------------------------------------
# chinchilla: Hoffmann et al. (2022), approach 3


@dataclass(frozen=True)
class ChinchillaForm(Form):
    """L(N, D) = E + A/N^α + B/D^β, fitted as Hoffmann et al. did.

    The fit minimises the Huber loss (δ = 1e-3) of
    ``LSE(a − α·ln N, b − β·ln D, e) − ln L`` summed over runs, with
    ``A = exp(a)``, ``B = exp(b)``, ``E = exp(e)``, by L-BFGS from their grid of
    initialisations. Reported parameters are E, A, alpha, B, beta.
    """

    def specify(self, data: LawData, **options: Any) -> Spec:
        distinct_or_hold(self, data, self.variables)
        if np.any(data.y <= 0):
            bad = float(data.y[np.flatnonzero(data.y <= 0)[0]])
            raise PerflawError(f"chinchilla fits log L: the loss must be positive, found {bad!r}")
        names = ("E", "A", "alpha", "B", "beta")
        lower = np.array([0.0, 0.0, -np.inf, 0.0, -np.inf])
        upper = np.full(5, np.inf)
        return Spec(
            form=self.name, formula=self.formula, names=names, lower=lower, upper=upper,
            variables=self.variables, evaluate=self._evaluate, objective="hoffmann",
            grid=start_grid(*HOFFMANN_GRID.values()),  # columns a, b, e, alpha, beta
            panel_labels=data.panel_labels,
        )

    def _evaluate(self, p: Mapping[str, float], X: Mapping[str, Array], panel: Array) -> Array:
        return p["E"] + p["A"] * X["N"] ** -p["alpha"] + p["B"] * X["D"] ** -p["beta"]


# ---------------------------------------------------------------------------
# registry


FORMS: dict[str, Form] = {
    "performance": PerformanceForm(
        name="performance",
        formula="w1·(ln N + p1/N^w3) + w2·(ln d + p1/d^w4) + (ln D′ + p2/D′^w5) + b",
        columns=DEFAULT_COLUMNS,
        holdable=("D",),
    ),
    "performance_code": PerformanceCodeForm(
        name="performance_code",
        formula="w1·(−1/(2N^w3) − w3·ln N) + w2·(−1/(2d^w4) − w4·ln d) + (−1/(2D′^w5) − w5·ln D′) + b",
        columns=DEFAULT_COLUMNS,
        holdable=("D",),
    ),
    "scaling": ScalingForm(
        name="scaling",
        formula="w1·ln N + w2·ln d + ln D′ + b",
        columns=DEFAULT_COLUMNS,
        holdable=("D",),
    ),
    "chinchilla": ChinchillaForm(
        name="chinchilla",
        formula="E + A/N^alpha + B/D^beta",
        columns={"N": ("N", "params"), "D": ("D", "tokens")},
        default_metric="loss",
    ),
}


def auto_form(frame: Any) -> str:
    """The identified default form for a table of runs.

    With one D′ value (one data panel) the data term of the paper's form is a
    constant, and its shared decay amplitude p1 ties the shapes in N and d
    together; the authors' parametrisation ``performance_code`` has one peak
    per variable (N* = 2^(−1/w3), d* = 2^(−1/w4)) and five parameters that the
    runs identify. With several D′ values the paper's ``performance`` form is
    used, as its data term is then fitted.

    Examples
    --------
    >>> import pandas as pd
    >>> auto_form(pd.DataFrame({"d_prime": [5.0, 5.0]})), auto_form(pd.DataFrame({"d_prime": [5.0, 9.0]}))
    ('performance_code', 'performance')
    """
    column = next((c for c in FORMS["performance"].columns["D"] if c in frame.columns), None)
    if column is None or frame[column].nunique() <= 1:
        return "performance_code"
    return "performance"
