"""Plain-text report of a fit: what ``perflaw fit`` prints."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from perflaw.law.fitting import Fit


def _num(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    x = float(x)
    if x == 0:
        return "0"
    if abs(x) >= 1e5 or abs(x) < 1e-3:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def _pct(x: Any) -> str:
    return "—" if x is None or not math.isfinite(float(x)) else f"{100 * float(x):.2f}%"


def _interval(pair: Any) -> str:
    lo, hi = pair
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return "—"
    return f"[{_num(lo)}, {_num(hi)}]"


def _region(region: dict[str, tuple[float, float]]) -> str:
    return ", ".join(f"{k}∈[{_num(lo)}, {_num(hi)}]" for k, (lo, hi) in region.items())


def summary(fit: "Fit", *, budget: float | None = None, uses: bool = True, **budget_kwargs: Any) -> str:
    """A readable table of the parameters, fit quality next to the baseline,
    and (with ``uses``) the optimum, budget optimum and scaling potential."""
    ci = int(round(100 * fit.options.ci))
    lines = [
        f"{fit.form} on {fit.metric}: {fit.n_runs} runs, {fit.n_configs} configurations, "
        f"{fit.n_params} fitted parameters",
        f"  {fit.formula}",
        "",
        f"  {'parameter':<22}{'value':>12}   {str(ci) + '% interval':<28}note",
    ]
    for name, value in fit.params.items():
        if name in fit.fixed:
            note = "fixed"
        elif name in fit.unidentified:
            note = "unidentified"
        elif name in fit.at_bound:
            note = "at bound"
        else:
            note = ""
        interval = "—" if name in fit.fixed else _interval(fit.intervals.get(name, (None, None)))
        lines.append(f"  {name:<22}{_num(value):>12}   {interval:<28}{note}")
    if fit.held:
        lines.append("  held: " + ", ".join(f"{k} = {_num(v)}" for k, v in fit.held.items()))

    base = fit.baseline or {}
    lines += ["", f"  {'quality':<26}{fit.form:>18}{'scaling (baseline)' if base else '':>22}"]
    rows = [
        ("R² (in-sample)", _num(fit.r2), _num(base.get("r2")) if base else ""),
        ("RMSE", _num(fit.rmse), _num(base.get("rmse")) if base else ""),
        ("leave-one-config-out", _err(fit.loo_error, fit.loo_max_error),
         _err(base.get("loo_error"), base.get("loo_max_error")) if base else ""),
        ("leave-largest-out", _err(fit.extrapolation_error, fit.extrapolation_max_error),
         _err(base.get("extrapolation_error"), base.get("extrapolation_max_error")) if base else ""),
        ("parameters", str(fit.n_params), str(base.get("n_params", "")) if base else ""),
    ]
    for label, mine, theirs in rows:
        lines.append(f"  {label:<26}{mine:>18}{theirs:>22}")
    lines.append("  (held-out errors: mean relative error, worst run in brackets)")

    conv = fit.convergence
    lines += [
        "",
        f"  converged: {'yes' if fit.converged else 'NO'} ({conv.get('message')}); "
        f"{conv.get('starts_agreeing')} of {conv.get('starts_polished')} polished starts reach the best fit "
        f"(grid of {conv.get('grid_points')})",
        f"  bootstrap: {fit.bootstrap.get('mode')}, {fit.bootstrap.get('n')} refits, "
        f"{fit.bootstrap.get('failed')} failed, {fit.bootstrap.get('not_converged')} not converged",
    ]
    if uses:
        lines.append("")
        lines.extend(_uses(fit, budget, budget_kwargs))
    if fit.notes:
        lines += ["", "  notes:"] + [f"  - {note}" for note in fit.notes]
    lines.append(f"  data fingerprint {fit.fingerprint}, perflaw {fit.version}, seed {fit.options.seed}")
    return "\n".join(lines)


def _err(mean: Any, worst: Any) -> str:
    if mean is None:
        return "—"
    return f"{_pct(mean)} ({_pct(worst)})"


def _uses(fit: "Fit", budget: float | None, budget_kwargs: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for label in fit.use_panels():
        key = {} if label is None else {"panel": label}
        if label is not None:
            lines.append(f"  panel {label}:")
        lines.extend(_uses_one(fit, budget, budget_kwargs, key))
    return lines


def _uses_one(fit: "Fit", budget: float | None, budget_kwargs: dict[str, Any], key: dict[str, str]) -> list[str]:
    lines = []
    try:
        best = fit.optimum(**key)
        point = ", ".join(
            f"{k}* = {_num(v)} {_interval(best.point_intervals[k])} ({best.status[k]})" for k, v in best.point.items()
        )
        lines.append(f"  optimum in {_region(best.trust_region)}: {point}")
        lines.append(f"    predicted {fit.metric} {_num(best.value)} {_interval(best.interval)}")
    except (ValueError, ImportError) as exc:
        lines.append(f"  optimum: not available ({exc})")
    if budget is not None:
        try:
            b = fit.budget_optimum(budget, **key, **budget_kwargs)
            point = ", ".join(f"{k} = {_num(v)}" for k, v in b.point.items())
            lines.append(
                f"  budget optimum (≤ {_num(budget)} parameters): {point}, {_num(b.params)} parameters, "
                f"predicted {_num(b.value)} {_interval(b.interval)}; bootstrap agreement {_pct(b.agreement)}"
                + ("; the budget binds" if b.binding else "")
            )
        except (ValueError, ImportError) as exc:
            lines.append(f"  budget optimum: not available ({exc})")
    try:
        sp = fit.scaling_potential(**key)
        now = ", ".join(f"{k} = {_num(v)}" for k, v in sp.current.items())
        best = ", ".join(f"{k} = {_num(v)}" for k, v in sp.best.items())
        lines.append(
            f"  scaling potential from {now}: best larger {best}, gain {_num(sp.gain)} "
            f"{_interval(sp.gain_interval)} ({_pct(sp.relative_gain)})"
            + ("; already at the top of the trust region (declare a larger one to look beyond)" if sp.at_edge else "")
        )
    except (ValueError, ImportError) as exc:
        lines.append(f"  scaling potential: not available ({exc})")
    return lines
