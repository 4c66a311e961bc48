"""User-defined law forms (any Python callable, fitted like the built-in forms), and
:func:`get_form`, which takes a form's name, a :class:`Form` or such a callable."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from perflaw.law.forms import DEFAULT_COLUMNS, FORMS, Form, Spec, distinct_or_hold, param_bounds, start_grid
from perflaw.law.table import LawData
from perflaw.errors import PerflawError, PerflawTypeError

Array = np.ndarray


@dataclass(frozen=True)
class CustomForm(Form):
    """A form given as a Python callable (see :func:`custom_form`)."""

    func: Callable[..., Any] | None = None
    param_names: tuple[str, ...] = ()
    p0: Mapping[str, float] = field(default_factory=dict)
    starts: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def specify(self, data: LawData, **options: Any) -> Spec:
        distinct_or_hold(self, data, self.variables)
        names = self.param_names
        lower, upper = param_bounds(names, self.bounds)
        axes = [self.starts.get(n, (self.p0.get(n, 1.0),)) for n in names]
        grid = start_grid(*axes)
        return Spec(
            form=self.name, formula=self.formula, names=names, lower=lower, upper=upper,
            variables=self.variables, evaluate=self._evaluate, grid=grid, grid_names=names,
            panel_labels=data.panel_labels,
        )

    def _evaluate(self, p: Mapping[str, float], X: Mapping[str, Array], panel: Array) -> Array:
        assert self.func is not None
        kwargs = {n: p[n] for n in self.param_names}
        out = np.asarray(self.func(*[X[v] for v in self.variables], **kwargs), dtype=np.float64)
        n = len(next(iter(X.values())))
        if out.shape != (n,):
            out = np.broadcast_to(out, (n,)).astype(np.float64)
        return out


def custom_form(
    func: Callable[..., Any],
    *,
    variables: Sequence[str] | None = None,
    params: Sequence[str] | None = None,
    p0: Mapping[str, float] | None = None,
    starts: Mapping[str, Sequence[float]] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    columns: Mapping[str, str | Sequence[str]] | None = None,
    name: str | None = None,
    formula: str | None = None,
    metric: str = "ndcg@10",
) -> CustomForm:
    """Wrap a Python callable as a law form.

    The callable takes the variables positionally and the parameters as
    keywords. By default its keyword-only arguments are the parameters and
    its positional ones the variables; ``variables``/``params`` override that.
    Variables ``N``, ``d`` and ``D`` read the ``layers``, ``dim`` and
    ``d_prime`` (or ``tokens``) columns; any other variable reads the column
    of the same name unless ``columns`` says otherwise.

    Parameters
    ----------
    func : callable
        ``func(*variables, **params) -> array``.
    variables, params : sequence of str, optional
        Names of the variables and parameters.
    p0 : mapping, optional
        Start value per parameter (default 1.0).
    starts : mapping, optional
        Several start values per parameter; the fitter tries their product.
    bounds : mapping, optional
        ``(lower, upper)`` per parameter.
    columns : mapping, optional
        Variable -> table column (or candidate columns).
    name, formula : str, optional
        Labels for reports.
    metric : str
        Default metric column.

    Examples
    --------
    >>> def law(N, d, *, a, alpha, c):
    ...     return c - a * N ** -alpha - 0.0 * d
    >>> form = custom_form(law, starts={"alpha": (0.5, 1.0)})
    >>> form.variables, form.param_names
    (('N', 'd'), ('a', 'alpha', 'c'))
    """
    if not callable(func):
        raise PerflawTypeError(f"custom_form needs a callable, got {type(func).__name__}")
    variables, params = _split_signature(func, variables, params)
    if not params:
        raise PerflawError("custom_form: the callable has no parameters to fit")
    overlap = set(variables) & set(params)
    if overlap:
        raise PerflawError(f"custom_form: names are both variables and parameters: {sorted(overlap)}")
    for label, mapping in (("p0", p0), ("starts", starts), ("bounds", bounds)):
        unknown = sorted(set(mapping or {}) - set(params))
        if unknown:
            raise PerflawError(f"custom_form: {label} names unknown parameters {unknown} (parameters: {list(params)})")
    cols: dict[str, tuple[str, ...]] = {}
    for var in variables:
        given = (columns or {}).get(var)
        if given is not None:
            cols[var] = (given,) if isinstance(given, str) else tuple(given)
        else:
            cols[var] = DEFAULT_COLUMNS.get(var, (var,))
    label = name or getattr(func, "__name__", "custom")
    return CustomForm(
        name=label,
        formula=formula or f"{label}({', '.join(variables)}; {', '.join(params)})",
        columns=cols,
        default_metric=metric,
        func=func,
        param_names=tuple(params),
        p0=dict(p0 or {}),
        starts={k: tuple(float(x) for x in v) for k, v in (starts or {}).items()},
        bounds={k: (float(v[0]), float(v[1])) for k, v in (bounds or {}).items()},
    )


def _split_signature(
    func: Callable[..., Any], variables: Sequence[str] | None, params: Sequence[str] | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        if variables is None or params is None:
            raise PerflawTypeError("custom_form: cannot read the callable's signature; pass variables= and params=") from exc
        return tuple(variables), tuple(params)
    positional = [
        p.name for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    keyword = [p.name for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY]
    if variables is None and params is None:
        if keyword:
            return tuple(positional), tuple(keyword)
        known = [n for n in positional if n in DEFAULT_COLUMNS]
        if not known:
            raise PerflawError(
                "custom_form: cannot tell variables from parameters; make the parameters "
                "keyword-only (def f(N, d, *, a, b)) or pass variables= and params="
            )
        return tuple(known), tuple(n for n in positional if n not in known)
    if variables is None:
        variables = [n for n in positional + keyword if n not in set(params or ())]
    if params is None:
        params = [n for n in positional + keyword if n not in set(variables)]
    return tuple(variables), tuple(params)


def get_form(form: str | Form) -> Form:
    """The form called ``form``, or ``form`` itself when it is a Form.

    A plain callable is wrapped with :func:`custom_form`.

    Examples
    --------
    >>> get_form("scaling").formula
    'w1·ln N + w2·ln d + ln D′ + b'
    """
    if isinstance(form, Form):
        return form
    if isinstance(form, str):
        key = form.strip().lower().replace("-", "_")
        if key not in FORMS:
            raise PerflawError(f"unknown law form {form!r}; choose one of {sorted(FORMS)} or pass a callable")
        return FORMS[key]
    if callable(form):
        return custom_form(form)
    raise PerflawTypeError(f"form must be a name, a Form or a callable, got {type(form).__name__}")
