"""The report of a sweep: results table, fitted laws, figures and one self-contained HTML page.

``make_report`` reads any results store (or CSV/JSONL/Parquet table of runs),
fits the Performance Law and the decay-free ``scaling`` baseline, and writes
into a folder:

* ``results.csv`` and ``results.json``: one row per finished run;
* ``fit.json``: the Performance Law per data panel (dataset × max_len), with
  intervals, in-sample and held-out errors beside the decay-free baseline, and the optima;
* ``summary.txt``: what the command line prints;
* ``figures/*.png`` and ``figures/*.svg``: measured points with fitted curves,
  the fitted surface, residuals, predicted against measured;
* ``report.html``: all of the above on one page (the PNGs are embedded, so the
  page is self-contained; it links the files too).

Every file is written atomically (a temporary file, then a rename).
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from perflaw.atomic import write_text_atomic

# Columns of results.csv, in this order when present; nested fields stay in results.json.
_TABLE_COLUMNS = [
    "dataset", "fraction", "max_len", "model", "layers", "dim", "heads", "seed", "status",
    "params", "params_non_embedding", "d_prime", "d_prime_pooled", "apen_abs_mean", "block_entropy",
    "data_users", "data_tokens", "loss", "protocol", "eval_negatives",
    "hr@1", "hr@5", "hr@10", "hr@20", "hr@50", "ndcg@1", "ndcg@5", "ndcg@10", "ndcg@20", "ndcg@50", "mrr",
    "best_epoch", "epochs_run", "wall_s", "tokens_per_s", "device", "error", "run_key",
]


@dataclass
class Report:
    """What :func:`make_report` wrote, and the fits it made."""

    out_dir: Path
    summary: str
    files: list[Path] = field(default_factory=list)
    fits: dict[str, Any] = field(default_factory=dict)  # Performance Law fit per data panel


def load_runs(results: Any) -> pd.DataFrame:
    """Runs from a DataFrame, a sweep folder, a results.sqlite, or a CSV/JSONL/Parquet table."""
    if isinstance(results, pd.DataFrame):
        return results.copy()
    path = Path(results)
    if path.is_dir() or path.suffix in (".sqlite", ".db"):
        from perflaw.store import open_results

        return open_results(path).frame(include_failed=True)
    from perflaw.law import read_table

    return read_table(path)


def make_report(
    results: Any,
    out_dir: str | Path,
    metric: str = "ndcg@10",
    n_boot: int = 200,
    seed: int = 0,
    budget: float | None = None,
    title: str = "perflaw report",
    reach: float = 2.0,
) -> Report:
    """Fit the laws to ``results`` and write the report folder.

    Parameters
    ----------
    results : DataFrame, sweep folder, results.sqlite or table path
        One row per run; failed runs are listed but not fitted.
    out_dir : path
        Created if missing.
    metric : str
        The accuracy metric the laws describe.
    n_boot : int
        Bootstrap refits for the intervals.
    budget : float, optional
        Parameter budget for the budget optimum; by default the median size of
        the trained models, so that the budget binds.
    reach : float
        The declared trust region of each panel's law: from the smallest N and d
        trained to ``reach`` times the largest. The optimum and the scaling
        potential are searched there; 1 keeps them inside the trained grid.

    Returns
    -------
    Report
    """
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    runs = load_runs(results)
    if runs.empty:
        raise ValueError("no runs to report: the results are empty")
    ok = runs[runs["status"] == "ok"] if "status" in runs else runs
    report = Report(out_dir=out, summary="")
    report.files += _write_tables(runs, out)
    sections = [_data_section(ok)]
    report.fits, problems = _fit_panels(ok, metric, n_boot, seed, reach)
    sections += [f"=== {label} ===\nno law fitted: {problem}" for label, problem in problems.items()]
    fit_json = {}
    for label, law in report.fits.items():
        group_budget = budget if budget is not None else _median_params(law)
        sections.append(f"=== {label} ===\n" + law.summary(budget=group_budget))
        fit_json[label] = law.to_dict(budget=group_budget)
        from perflaw.law.plot import plot_fit

        prefix = "" if len(report.fits) == 1 else f"{_safe_name(label)}_"
        report.files += plot_fit(law, out / "figures", prefix=prefix, formats=("png", "svg"))
    if fit_json:
        report.files.append(write_text_atomic(out / "fit.json", json.dumps(fit_json, indent=2, default=str)))
    failed = len(runs) - len(ok)
    if failed:
        sections.append(f"{failed} run(s) failed; see the status and error columns of results.csv")
    report.summary = "\n\n".join(sections) + "\n"
    report.files.append(write_text_atomic(out / "summary.txt", report.summary))
    report.files.append(write_text_atomic(out / "report.html", _html(title, report, runs)))
    return report


# Columns that define a data panel: the law is fitted per panel, as in the paper.
PANEL_COLUMNS = ("dataset", "max_len")


def _fit_panels(ok: pd.DataFrame, metric: str, n_boot: int, seed: int,
                reach: float) -> tuple[dict[str, Any], dict[str, str]]:
    """One Performance Law fit per data panel (each shown beside its decay-free
    baseline), and the reason for each panel that could not be fitted."""
    import perflaw

    if len(ok) == 0:
        return {}, {"all runs": "no successful runs"}
    by = [c for c in PANEL_COLUMNS if c in ok and ok[c].nunique() > 1]
    groups = ok.groupby(by, sort=True) if by else [("all runs", ok)]
    fits, problems = {}, {}
    for key, group in groups:
        label = "|".join(map(str, key)) if isinstance(key, tuple) else str(key)
        region = {"N": (float(group["layers"].min()), reach * float(group["layers"].max())),
                  "d": (float(group["dim"].min()), reach * float(group["dim"].max()))}
        try:
            fits[label] = perflaw.fit(group.reset_index(drop=True), form="performance", metric=metric,
                                      n_boot=n_boot, seed=seed, trust_region=region)
        except (ValueError, RuntimeError) as exc:
            problems[label] = str(exc)
    return fits, problems


def _median_params(law: Any) -> float | None:
    """Default budget: the median size of the panel's trained models, so that it binds."""
    frame = law.data.frame
    return float(frame["params"].median()) if "params" in frame and len(frame) else None


def _safe_name(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in label)


def _data_section(ok: pd.DataFrame) -> str:
    """D′ and the other data measures, one line per data variant."""
    keys = [k for k in ("dataset", "fraction", "max_len") if k in ok]
    measures = [c for c in ("data_users", "data_tokens", "d_prime", "d_prime_pooled", "apen_abs_mean", "block_entropy")
                if c in ok]
    if not keys or not measures or ok.empty:
        return "data: no data measures in the results"
    table = ok.groupby(keys, sort=True)[measures].first().reset_index()
    return "data measures (D′ = Σ|S|·ApEn′, pooled = tokens / mean|ApEn|):\n" + table.to_string(index=False)


def _write_tables(runs: pd.DataFrame, out: Path) -> list[Path]:
    columns = [c for c in _TABLE_COLUMNS if c in runs] + sorted(
        c for c in runs.columns if c not in _TABLE_COLUMNS and not _nested(runs[c]))
    csv_path = write_text_atomic(out / "results.csv", runs[columns].to_csv(index=False))
    records = json.loads(runs.to_json(orient="records"))
    json_path = write_text_atomic(out / "results.json", json.dumps(records, indent=1))
    return [csv_path, json_path]


def _nested(column: pd.Series) -> bool:
    return column.map(lambda v: isinstance(v, (dict, list))).any()


# ------------------------------------------------------------------- HTML
_FIGURE_NOTES = {
    "curves": "Measured metric (points) and the fitted Performance Law (lines) over layers N for each "
              "dimension d, and over d for each N. The law's decay terms let accuracy rise, then fall.",
    "surface": "The fitted law over the (N, d) grid; the marker is the predicted optimum.",
    "residuals": "Measured minus predicted, per run: structure here means the law misses something.",
    "predicted": "Predicted against measured with bootstrap intervals; the diagonal is a perfect fit.",
}


def _html(title: str, report: Report, runs: pd.DataFrame) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
        "pre{background:#f6f6f6;padding:1em;overflow-x:auto}img{max-width:100%}"
        "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}</style>",
        "</head><body>",
        f"<h1>{esc(title)}</h1>",
        "<p>The Performance Law (Shen et al., 2024) fits accuracy as a function of layers N, embedding "
        "dimension d and the data measure D′ with terms log x + p/x<sup>w</sup>; the decay terms let a "
        "model that is too large for its data lose accuracy. It is shown beside the decay-free scaling "
        "law. Intervals are bootstrap percentiles over runs.</p>",
        "<h2>Summary</h2>",
        f"<pre>{esc(report.summary)}</pre>",
    ]
    figures = sorted(p for p in report.files if p.suffix == ".png")
    if figures:
        parts.append("<h2>Figures</h2>")
    for png in figures:
        svg = png.with_suffix(".svg")
        note = next((text for key, text in _FIGURE_NOTES.items() if png.stem.endswith(key)), "")
        data = base64.b64encode(png.read_bytes()).decode()
        parts.append(
            f"<figure><img alt='{esc(png.stem)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{esc(note)} Files: <a href='figures/{esc(png.name)}'>{esc(png.name)}</a>"
            + (f", <a href='figures/{esc(svg.name)}'>{esc(svg.name)}</a>" if svg.exists() else "")
            + "</figcaption></figure>"
        )
    shown = [c for c in _TABLE_COLUMNS if c in runs and c not in ("run_key", "error")]
    parts += [
        "<h2>Runs</h2>",
        "<p>All runs (<a href='results.csv'>results.csv</a>, <a href='results.json'>results.json</a>; "
        "the fits: <a href='fit.json'>fit.json</a>).</p>",
        runs[shown].to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="", border=0),
        "</body></html>",
    ]
    return "\n".join(parts)
