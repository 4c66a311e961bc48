"""Figures of a fitted law, as PNG and SVG.

- ``curves``: measured points with the fitted curves over the first variable
  (N) for each value of the second (d), and over d for each N, with the
  bootstrap band;
- ``surface``: the fitted surface over the trust region with the runs;
- ``residuals``: residuals against the fitted value and against N;
- ``predicted``: predicted against measured, with bootstrap intervals;
- ``backtest``: the held-out largest sizes, predicted by the law (with its 90%
  intervals) and by each baseline, against what they measured.

Every title names the dataset and the metric; the recommendation, when given,
is a red star on the curves and the surface; sizes beyond the trained ones are
shaded grey.

One set per data panel when the table has several. matplotlib is imported
here only, and no global backend is set: figures are drawn on an Agg canvas.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from perflaw.atomic import atomic_path
from perflaw.law.recommend import display_name
from perflaw.law.values import clip_to
from perflaw.errors import PerflawError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from perflaw.law.backtest import Backtest
    from perflaw.law.fitting import Fit
    from perflaw.law.recommend import Recommendation

FORMATS = ("png", "svg")


def plot_fit(
    fit: "Fit",
    out_dir: str | Path,
    *,
    prefix: str = "",
    formats: Sequence[str] = FORMATS,
    dpi: int = 120,
    recommendations: Mapping[str, "Recommendation"] | None = None,
) -> list[Path]:
    """Write the figures of ``fit`` into ``out_dir``; return the paths written.

    Parameters
    ----------
    fit : Fit
        A fitted law.
    out_dir : path
        Folder (created if missing).
    prefix : str
        Prepended to every file name (e.g. the group of ``--by``).
    formats : sequence of str
        Any of ``"png"``, ``"svg"``, ``"pdf"``.
    dpi : int
        Resolution of raster formats.
    recommendations : mapping, optional
        Panel label -> :class:`~perflaw.law.Recommendation`, marked on the
        curves and the surface (and the curves extended to it when it lies
        beyond the trained sizes). The backtest figure is drawn for every panel
        the fit has a backtest of.

    Examples
    --------
    >>> import numpy as np, pandas as pd, perflaw, tempfile
    >>> N, d = (a.ravel() for a in np.meshgrid([2, 4, 8, 16], [16, 32, 64]))
    >>> df = pd.DataFrame({"layers": N, "dim": d, "d_prime": 3.0,
    ...                    "ndcg@10": 0.01 * np.log(N) + 0.02 * np.log(d)})
    >>> law = perflaw.fit(df, form="scaling", n_boot=0, holdout=False)
    >>> paths = plot_fit(law, tempfile.mkdtemp(), formats=["png"])
    >>> sorted(p.stem for p in paths)
    ['curves', 'predicted', 'residuals', 'surface']
    """
    bad = [f for f in formats if f not in ("png", "svg", "pdf")]
    if bad or not formats:
        raise PerflawError(f"formats must be among png, svg, pdf; got {list(formats)!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    variables = [v for v in fit.spec.variables if v not in fit.held]
    written: list[Path] = []
    panels = np.unique(fit.data.panel)
    for p in panels:
        label = fit.panels[p] if len(panels) > 1 else ""
        stem = prefix + (safe_name(label) + "_" if label else "")
        rows = fit.data.panel == p
        title = _title(fit, fit.panels[p])
        rec = (recommendations or {}).get(fit.panels[p])
        figures = [("curves", _curves(fit, rows, p, variables, title, rec))]
        if len(variables) >= 2:
            figures.append(("surface", _surface(fit, rows, p, variables, title, rec)))
        backtest = fit.backtest.get(fit.panels[p])
        if backtest is not None and backtest.available:
            figures.append(("backtest", _backtest(backtest, fit.metric, title)))
        for name, figure in figures:
            written.extend(_save(figure, out / f"{stem}{name}", formats, dpi))
    written.extend(_save(_residuals(fit, variables), out / f"{prefix}residuals", formats, dpi))
    written.extend(_save(_predicted(fit), out / f"{prefix}predicted", formats, dpi))
    return written


def safe_name(label: str) -> str:
    """A panel label as part of a file name (dots kept: ``beauty.v1`` stays apart from ``beauty.v2``).

    Examples
    --------
    >>> safe_name("beauty.v1|50")
    'beauty.v1-50'
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "panel"


def _save(figure: "Figure", stem: Path, formats: Iterable[str], dpi: int) -> list[Path]:
    """Write atomically: a temporary file in the same folder, then os.replace."""
    paths = []
    for fmt in formats:
        target = stem.with_name(f"{stem.name}.{fmt}")  # not with_suffix: a dot in the name is no suffix
        with atomic_path(target) as tmp:
            figure.savefig(tmp, format=fmt, dpi=dpi)
        paths.append(target)
    return paths


def _figure(width: float, height: float) -> "Figure":
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def _fixed_inputs(fit: "Fit", rows: np.ndarray, variables: list[str]) -> dict[str, float]:
    """Inputs that are not plotted (D′ of the panel), one value per panel."""
    return {v: float(np.mean(fit.data.X[v][rows])) for v in fit.data.X if v not in variables[:2]}


def _evaluate(fit: "Fit", theta: np.ndarray, points: dict[str, np.ndarray], fixed: dict[str, float], panel: int) -> np.ndarray:
    n = len(next(iter(points.values())))
    X = {k: np.full(n, v) for k, v in fixed.items()}
    X.update(points)
    with np.errstate(all="ignore"):
        return fit.spec.predict(theta, X, np.full(n, panel, dtype=np.int64))


def _band(fit: "Fit", points: dict[str, np.ndarray], fixed: dict[str, float], panel: int) -> tuple[np.ndarray, np.ndarray] | None:
    reps = fit.replicates()
    if len(reps) < 2:
        return None
    preds = np.array([_evaluate(fit, t, points, fixed, panel) for t in reps])
    alpha = (1 - fit.options.ci) / 2
    return np.nanquantile(preds, alpha, axis=0), np.nanquantile(preds, 1 - alpha, axis=0)


def _title(fit: "Fit", panel: str) -> str:
    """``"beauty (max_len 50), NDCG@10"``: every figure names its dataset and metric."""
    columns = [c for c in fit.options.panel_by if c in fit.data.source.columns]
    return f"{display_name(panel, columns)}, {fit.metric}"


def _axis(fit: "Fit", var: str, rows: np.ndarray, extra: float | None = None) -> np.ndarray:
    lo, hi = fit.trust_region.get(var, (float(fit.data.X[var][rows].min()), float(fit.data.X[var][rows].max())))
    if extra is not None:
        lo, hi = min(lo, extra), max(hi, extra)
    return np.geomspace(lo, hi, 60)


def _rec_value(rec: "Recommendation | None", var: str) -> float | None:
    if rec is None or rec.layers is None:
        return None
    return float(rec.layers if var == "N" else rec.dim) if var in ("N", "d") else None


def _mark_trained_range(ax: Any, fit: "Fit", var: str, rows: np.ndarray, grid: np.ndarray) -> None:
    """Grey beyond the largest (or below the smallest) trained value: no run checks the law there."""
    lo, hi = float(fit.data.X[var][rows].min()), float(fit.data.X[var][rows].max())
    if grid[-1] > hi * (1 + 1e-9):
        ax.axvspan(hi, grid[-1], color="0.85", alpha=0.6, linewidth=0, label="beyond the trained sizes")
    if grid[0] < lo * (1 - 1e-9):
        ax.axvspan(grid[0], lo, color="0.85", alpha=0.6, linewidth=0)


def _curves(fit: "Fit", rows: np.ndarray, panel: int, variables: list[str], title: str,
            rec: "Recommendation | None" = None) -> "Figure":
    pairs = [(variables[0], variables[1]), (variables[1], variables[0])] if len(variables) >= 2 else [(variables[0], None)]
    figure = _figure(6.0 * len(pairs), 4.4)
    fixed = _fixed_inputs(fit, rows, variables)
    for k, (x, other) in enumerate(pairs):
        ax = figure.add_subplot(1, len(pairs), k + 1)
        levels = np.unique(fit.data.X[other][rows]) if other else [None]
        colors = _colors(len(levels))
        grid = _axis(fit, x, rows, _rec_value(rec, x))
        for level, color in zip(levels, colors):
            sel = rows & (fit.data.X[other] == level) if other else rows
            points = {x: grid}
            if other:
                points[other] = np.full(len(grid), level)
            tag = f"{other}={level:g}" if other else fit.metric
            ax.plot(grid, clip_to(_evaluate(fit, fit.theta, points, fixed, panel), fit.bounds), color=color, label=tag)
            band = _band(fit, points, fixed, panel)
            if band is not None:
                ax.fill_between(grid, band[0], band[1], color=color, alpha=0.15, linewidth=0)
            ax.scatter(fit.data.X[x][sel], fit.data.y[sel], color=color, s=18, zorder=3)
        _mark_trained_range(ax, fit, x, rows, grid)
        if _rec_value(rec, x) is not None and rec.predicted is not None:
            ax.scatter([_rec_value(rec, x)], [rec.predicted], marker="*", s=220, color="crimson", edgecolor="black",
                       zorder=5, label=f"recommended N={rec.layers}, d={rec.dim}")
        ax.set_xscale("log")
        ax.set_xlabel(x)
        ax.set_ylabel(fit.metric)
        ax.set_title(f"{title} over {x}", fontsize=10)
        ax.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    return figure


def _surface(fit: "Fit", rows: np.ndarray, panel: int, variables: list[str], title: str,
             rec: "Recommendation | None" = None) -> "Figure":
    x, z = variables[0], variables[1]
    figure = _figure(6.5, 5.0)
    ax = figure.add_subplot(1, 1, 1, projection="3d")
    gx, gz = np.meshgrid(_axis(fit, x, rows, _rec_value(rec, x))[::2], _axis(fit, z, rows, _rec_value(rec, z))[::2])
    pred = _evaluate(fit, fit.theta, {x: gx.ravel(), z: gz.ravel()}, _fixed_inputs(fit, rows, variables), panel)
    ax.plot_surface(np.log(gx), np.log(gz), clip_to(pred, fit.bounds).reshape(gx.shape), cmap="viridis", alpha=0.75,
                    linewidth=0)
    ax.scatter(np.log(fit.data.X[x][rows]), np.log(fit.data.X[z][rows]), fit.data.y[rows], color="black", s=12,
               label="runs")
    if _rec_value(rec, x) is not None and rec.predicted is not None:
        ax.scatter([np.log(_rec_value(rec, x))], [np.log(_rec_value(rec, z))], [rec.predicted], marker="*", s=260,
                   color="crimson", edgecolor="black", label=f"recommended N={rec.layers}, d={rec.dim}")
    ax.set_xlabel(f"ln {x}")
    ax.set_ylabel(f"ln {z}")
    ax.set_zlabel(fit.metric)
    ax.set_title(f"{title}: fitted law", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    return figure


def _backtest(backtest: "Backtest", metric: str, title: str) -> "Figure":
    """Predicted against measured for the held-out largest sizes: the law and each baseline."""
    figure = _figure(5.8, 5.0)
    ax = figure.add_subplot(1, 1, 1)
    measured = np.array([r["measured"] for r in backtest.held_out])
    law = np.array([r["law"] for r in backtest.held_out])
    lo = np.array([r["lower_90"] for r in backtest.held_out])
    hi = np.array([r["upper_90"] for r in backtest.held_out])
    if np.all(np.isfinite(lo)):
        ax.errorbar(measured, law, yerr=np.vstack([np.maximum(law - lo, 0), np.maximum(hi - law, 0)]), fmt="none",
                    ecolor="grey", alpha=0.7, linewidth=0.9, label="law, 90% interval")
    ax.scatter(measured, law, s=40, color="crimson", zorder=4, label="law")
    markers = {"scaling": "s", "loglinear": "^", "nearest": "D"}
    for name, marker in markers.items():
        values = [r.get(name) for r in backtest.held_out]
        if all(v is not None for v in values):
            ax.scatter(measured, values, s=22, marker=marker, alpha=0.8, label=f"{name} baseline")
    everything = np.concatenate([measured, law] + [np.array([r[n] for r in backtest.held_out], dtype=float)
                                                    for n in markers if all(r.get(n) is not None for r in backtest.held_out)])
    span = [float(np.nanmin(everything)), float(np.nanmax(everything))]
    ax.plot(span, span, color="black", linewidth=0.8)
    ax.set_xlabel(f"measured {metric} (held-out largest sizes)")
    ax.set_ylabel(f"predicted {metric}")
    ax.set_title(f"{title}: backtest on the {backtest.n_held} largest sizes", fontsize=10)
    ax.legend(fontsize=7)
    figure.tight_layout()
    return figure


def _residuals(fit: "Fit", variables: list[str]) -> "Figure":
    pred = fit.spec.predict(fit.theta, fit.data.X, fit.data.panel)
    resid = fit.data.y - pred
    figure = _figure(11.0, 4.2)
    ax = figure.add_subplot(1, 2, 1)
    ax.scatter(pred, resid, s=16, c=fit.data.panel, cmap="tab10")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel(f"fitted {fit.metric}")
    ax.set_ylabel("measured − fitted")
    ax.set_title(f"residuals (RMSE {fit.rmse:.3g}, R² {fit.r2:.3f})", fontsize=10)
    ax = figure.add_subplot(1, 2, 2)
    x = variables[0]
    color = fit.data.X[variables[1]] if len(variables) > 1 else None
    if color is not None:
        points = ax.scatter(fit.data.X[x], resid, s=16, c=color, cmap="viridis")
        figure.colorbar(points, ax=ax, label=variables[1])
    else:
        ax.scatter(fit.data.X[x], resid, s=16)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel("measured − fitted")
    figure.tight_layout()
    return figure


def _predicted(fit: "Fit") -> "Figure":
    data = fit.data
    pred = fit.spec.predict(fit.theta, data.X, data.panel)
    figure = _figure(5.5, 5.0)
    ax = figure.add_subplot(1, 1, 1)
    reps = fit.replicates()
    if len(reps) >= 2:
        preds = np.array([fit.spec.predict(t, data.X, data.panel) for t in reps])
        alpha = (1 - fit.options.ci) / 2
        lo, hi = np.nanquantile(preds, alpha, axis=0), np.nanquantile(preds, 1 - alpha, axis=0)
        yerr = np.vstack([np.maximum(pred - lo, 0), np.maximum(hi - pred, 0)])
        ax.errorbar(data.y, pred, yerr=yerr, fmt="none", ecolor="grey", alpha=0.6, linewidth=0.8)
    ax.scatter(data.y, pred, s=16, c=data.panel, cmap="tab10", zorder=3)
    lo_all, hi_all = float(min(data.y.min(), pred.min())), float(max(data.y.max(), pred.max()))
    ax.plot([lo_all, hi_all], [lo_all, hi_all], color="black", linewidth=0.8)
    ax.set_xlabel(f"measured {fit.metric}")
    ax.set_ylabel(f"predicted {fit.metric}")
    ci = int(round(100 * fit.options.ci))
    ax.set_title(f"{fit.form}: predicted vs measured ({ci}% bootstrap intervals)", fontsize=10)
    figure.tight_layout()
    return figure


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(x) for x in np.linspace(0.05, 0.9, max(n, 1))]
