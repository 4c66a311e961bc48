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
            continue  # not estimated: listed below, with why
        if name in fit.unidentified:
            # only a combination is determined: no single value to report
            lines.append(f"  {name:<22}{'—':>12}   {'—':<28}not identified by these runs")
            continue
        note = "at its bound" if name in fit.at_bound else ""
        interval = _interval(fit.intervals.get(name, (None, None)))
        lines.append(f"  {name:<22}{_num(value):>12}   {interval:<28}{note}")
    if fit.fixed:
        lines.append("  not fitted, held at: " + ", ".join(f"{k} = {_num(v)}" for k, v in fit.fixed.items())
                     + (" (D′ is one value here, so its term is a constant)" if "D" in fit.held else ""))
    if fit.held:
        lines.append("  variables held: " + ", ".join(f"{k} = {_num(v)}" for k, v in fit.held.items()))

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


# ---------------------------------------------------------------------------
# the answer first, then the evidence


GLOSSARY = (
    ("backtest", "the law is refitted without the largest trained sizes and predicts them; "
                 "its error there is compared with simpler predictors"),
    ("scaling baseline", "w1·ln N + w2·ln d + b: accuracy that only ever grows with size"),
    ("loglinear baseline", "a + b·ln(parameters), a straight line in the log of the model size"),
    ("nearest baseline", "the accuracy of the closest trained size, as if nothing changed"),
    ("relative error", "|predicted − measured| / measured, per held-out run"),
    ("90% coverage", "the share of held-out runs inside the law's 90% prediction interval (ideal: about 90%)"),
    ("seed noise", "the standard deviation of the metric between runs that differ only in their seed"),
    ("R²", "the share of the differences between runs that the fitted law explains"),
    ("unidentified", "a parameter the runs cannot pin down: only a combination of it with others is fixed"),
    ("D′", "the data measure Σ|S|·ApEn′ of the training data"),
)


def answers_text(answers: Any, metric: str) -> str:
    """The first lines of every summary: one recommendation per dataset."""
    lines = [f"Recommendations ({metric}):"]
    lines += [f"  {a.recommendation.headline()}" for a in answers.values()]
    verdict = backtest_verdict(answers)
    if verdict:
        lines.append(f"  {verdict}")
    return "\n".join(lines)


def backtest_verdict(answers: Any) -> str | None:
    """One plain sentence: on how many datasets the law beat the decay-free baseline, and every baseline."""
    tests = {a.recommendation.dataset: a.fit.backtest.get(label) for label, a in answers.items()
             if a.fit is not None and a.fit.backtest.get(label) is not None and a.fit.backtest[label].available}
    if not tests:
        return "The law could not be checked on held-out sizes for any dataset."

    def beats_scaling(bt: Any) -> bool:
        law, base = bt.law.get("mean_relative_error"), bt.baselines["scaling"].get("mean_relative_error")
        return law is not None and (base is None or law < base)

    scaling = [name for name, bt in tests.items() if beats_scaling(bt)]
    every = [name for name, bt in tests.items() if bt.law_wins]
    names = f" ({', '.join(scaling)})" if scaling and len(scaling) < len(tests) else ""
    return (f"Backtest on the held-out largest sizes: the law beats the decay-free baseline on {len(scaling)} of "
            f"{len(tests)} datasets{names}, and every baseline on {len(every)} of {len(tests)}.")


def evidence_text(answer: Any) -> str:
    """Why the recommendation says what it says: reasons, next runs, the backtest table."""
    rec = answer.recommendation
    lines = [f"=== {rec.dataset} ==="]
    lines += ["  why:"] + [f"  - {reason}" for reason in rec.reasons]
    if rec.next_runs:
        lines += ["  train next:"] + [f"  - N = {r['layers']}, d = {r['dim']}: {r['why']}" for r in rec.next_runs]
    best = rec.best_measured
    if best:
        lines.append(f"  best size trained: N = {best['layers']}, d = {best['dim']}, {rec.metric} "
                     f"{_num(best['value'])} (mean of {best['runs']} run(s))")
    if rec.seed_noise is not None:
        lines.append(f"  seed-to-seed noise: {_num(rec.seed_noise)} (standard deviation of one run)")
    if answer.problem:
        lines.append(f"  no law: {answer.problem}")
    fit = answer.fit
    bt = fit.backtest.get(rec.panel) if fit is not None else None
    if bt is not None:
        lines.append("")
        lines.extend(backtest_lines(bt))
    return "\n".join(lines)


def backtest_lines(bt: Any) -> list[str]:
    """The backtest as a small table: the law beside each baseline."""
    if not bt.available:
        return [f"  backtest: not possible ({bt.reason})"]
    lines = [
        f"  backtest: fitted on {bt.n_kept} sizes, predicting the {bt.n_held} largest (held out):",
        f"    {'predictor':<12}{'mean error':>12}{'worst':>10}{'90% coverage':>15}",
    ]
    law = bt.law
    cover = "—" if law.get("coverage_90") is None else f"{100 * law['coverage_90']:.0f}%"
    lines.append(f"    {'law':<12}{_pct(law['mean_relative_error']):>12}{_pct(law['max_relative_error']):>10}{cover:>15}")
    for name, scores in bt.baselines.items():
        lines.append(f"    {name:<12}{_pct(scores['mean_relative_error']):>12}{_pct(scores['max_relative_error']):>10}")
    lines.append(f"    lowest error: {bt.winner}")
    return lines


def glossary_text() -> str:
    return "Glossary:\n" + "\n".join(f"  {term}: {meaning}" for term, meaning in GLOSSARY)
