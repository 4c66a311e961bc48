"""Figures of a fitted law, as PNG and SVG.

- ``curves``: measured points with the fitted curves over the first variable
  (N) for each value of the second (d), and over d for each N, with the
  bootstrap band;
- ``surface``: the fitted surface over the trust region with the runs;
- ``residuals``: residuals against the fitted value and against N;
- ``predicted``: predicted against measured, with bootstrap intervals.

One set per data panel when the table has several. matplotlib is imported
here only, and no global backend is set: figures are drawn on an Agg canvas.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from perflaw.atomic import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from perflaw.law.fitting import Fit

FORMATS = ("png", "svg")


def plot_fit(
    fit: "Fit",
    out_dir: str | Path,
    *,
    prefix: str = "",
    formats: Sequence[str] = FORMATS,
    dpi: int = 120,
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
        raise ValueError(f"formats must be among png, svg, pdf; got {list(formats)!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    variables = [v for v in fit.spec.variables if v not in fit.held]
    written: list[Path] = []
    panels = np.unique(fit.data.panel)
    for p in panels:
        label = fit.panels[p] if len(panels) > 1 else ""
        stem = prefix + (_safe(label) + "_" if label else "")
        rows = fit.data.panel == p
        figures = [("curves", _curves(fit, rows, p, variables, label))]
        if len(variables) >= 2:
            figures.append(("surface", _surface(fit, rows, p, variables, label)))
        for name, figure in figures:
            written.extend(_save(figure, out / f"{stem}{name}", formats, dpi))
    written.extend(_save(_residuals(fit, variables), out / f"{prefix}residuals", formats, dpi))
    written.extend(_save(_predicted(fit), out / f"{prefix}predicted", formats, dpi))
    return written


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "panel"


def _save(figure: "Figure", stem: Path, formats: Iterable[str], dpi: int) -> list[Path]:
    """Write atomically: a temporary file in the same folder, then os.replace."""
    paths = []
    for fmt in formats:
        target = stem.with_suffix(f".{fmt}")
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


def _axis(fit: "Fit", var: str, rows: np.ndarray) -> np.ndarray:
    lo, hi = fit.trust_region.get(var, (float(fit.data.X[var][rows].min()), float(fit.data.X[var][rows].max())))
    return np.geomspace(lo, hi, 60)


def _curves(fit: "Fit", rows: np.ndarray, panel: int, variables: list[str], label: str) -> "Figure":
    pairs = [(variables[0], variables[1]), (variables[1], variables[0])] if len(variables) >= 2 else [(variables[0], None)]
    figure = _figure(6.0 * len(pairs), 4.2)
    fixed = _fixed_inputs(fit, rows, variables)
    for k, (x, other) in enumerate(pairs):
        ax = figure.add_subplot(1, len(pairs), k + 1)
        levels = np.unique(fit.data.X[other][rows]) if other else [None]
        colors = _colors(len(levels))
        grid = _axis(fit, x, rows)
        for level, color in zip(levels, colors):
            sel = rows & (fit.data.X[other] == level) if other else rows
            points = {x: grid}
            if other:
                points[other] = np.full(len(grid), level)
            tag = f"{other}={level:g}" if other else fit.metric
            ax.plot(grid, _evaluate(fit, fit.theta, points, fixed, panel), color=color, label=tag)
            band = _band(fit, points, fixed, panel)
            if band is not None:
                ax.fill_between(grid, band[0], band[1], color=color, alpha=0.15, linewidth=0)
            ax.scatter(fit.data.X[x][sel], fit.data.y[sel], color=color, s=18, zorder=3)
        ax.set_xscale("log")
        ax.set_xlabel(x)
        ax.set_ylabel(fit.metric)
        ax.set_title(f"{fit.form}: {fit.metric} over {x}" + (f" ({label})" if label else ""), fontsize=10)
        ax.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    return figure


def _surface(fit: "Fit", rows: np.ndarray, panel: int, variables: list[str], label: str) -> "Figure":
    x, z = variables[0], variables[1]
    figure = _figure(6.5, 5.0)
    ax = figure.add_subplot(1, 1, 1, projection="3d")
    gx, gz = np.meshgrid(_axis(fit, x, rows)[::2], _axis(fit, z, rows)[::2])
    pred = _evaluate(fit, fit.theta, {x: gx.ravel(), z: gz.ravel()}, _fixed_inputs(fit, rows, variables), panel)
    ax.plot_surface(np.log(gx), np.log(gz), pred.reshape(gx.shape), cmap="viridis", alpha=0.75, linewidth=0)
    ax.scatter(np.log(fit.data.X[x][rows]), np.log(fit.data.X[z][rows]), fit.data.y[rows], color="crimson", s=14)
    ax.set_xlabel(f"ln {x}")
    ax.set_ylabel(f"ln {z}")
    ax.set_zlabel(fit.metric)
    ax.set_title(f"{fit.form}: fitted surface" + (f" ({label})" if label else ""), fontsize=10)
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
