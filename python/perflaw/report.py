"""The report of a sweep: the answer per dataset first, then the evidence, then the details.

``make_report`` reads any results store (or CSV/JSONL/Parquet table of runs),
fits the Performance Law to each dataset (:func:`perflaw.law.answer_panels`,
the same call as ``perflaw fit``) and writes into a folder:

* ``summary.txt``: what the command line prints: one recommendation per
  dataset, then the data measures and each dataset's evidence (reasons, runs to
  train next, the backtest against the baselines), then the fit details;
* ``fit.json``: the same as ``perflaw fit --json``: per dataset the
  recommendation, the backtest and the fit;
* ``results.csv`` and ``results.json``: one row per run;
* ``figures/*.png`` and ``figures/*.svg``: per dataset the measured points
  with the fitted curves (recommendation marked, sizes beyond the trained ones
  shaded), the fitted surface, the backtest; residuals and predicted against
  measured;
* ``report.html``: all of it on one page, the answers on top (the PNGs are
  embedded, so the page is self-contained; it links the files too).

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
from perflaw.law.options import DEFAULT_N_BOOT, DEFAULT_REACH
from perflaw.errors import PerflawError

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
    """What :func:`make_report` wrote, and the answers it gave."""

    out_dir: Path
    summary: str
    files: list[Path] = field(default_factory=list)
    answers: dict[str, Any] = field(default_factory=dict)  # panel label -> PanelAnswer
    payload: dict[str, Any] = field(default_factory=dict)  # what fit.json holds

    @property
    def fits(self) -> dict[str, Any]:
        """Panel label -> the law fitted to it (panels without a law are left out)."""
        return {label: a.fit for label, a in self.answers.items() if a.fit is not None}


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
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    budget: float | None = None,
    title: str = "perflaw report",
    reach: float = DEFAULT_REACH,
) -> Report:
    """Fit the law to each dataset of ``results``, recommend a size, write the report folder.

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
    seed : int
        Seed of the bootstrap.
    budget : float, optional
        Also report, in the fit details, the best size under this parameter budget.
    title : str
        Title of the HTML page.
    reach : float
        How far beyond the trained sizes the recommendation may look (1: not
        at all, the default; ``perflaw fit --reach`` is the same option).

    Returns
    -------
    Report

    Examples
    --------
    >>> import tempfile
    >>> from perflaw.law.synthetic import synthetic_runs
    >>> report = make_report(synthetic_runs(noise=0.001, seeds=2, seed=1), tempfile.mkdtemp(), n_boot=10)
    >>> report.summary.splitlines()[1].startswith("  syn0 (max_len 50): train N = ")
    True
    """
    from perflaw.law import answer_panels, answers_to_dict
    from perflaw.law.report import answers_text, evidence_text, glossary_text

    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    runs = load_runs(results)
    if runs.empty:
        raise PerflawError("no runs to report: the results are empty")
    ok = runs[runs["status"] == "ok"] if "status" in runs else runs
    if ok.empty:
        raise PerflawError(f"no successful runs to report: all {len(runs)} run(s) failed; see their error column")
    report = Report(out_dir=out, summary="")
    report.files += _write_tables(runs, out)
    report.answers = answer_panels(ok.reset_index(drop=True), metric, n_boot=n_boot, seed=seed, reach=reach)
    report.payload = answers_to_dict(report.answers, metric)
    report.files += _figures(report.answers, out / "figures")
    details = [f"=== {label} ===\n" + a.fit.summary(budget=budget, uses=budget is not None)
               for label, a in report.answers.items() if a.fit is not None]
    failed = len(runs) - len(ok)
    sections = [
        answers_text(report.answers, metric),
        "Evidence",
        _data_section(ok),
        *[evidence_text(a) for a in report.answers.values()],
        "Fit details",
        *details,
        *([f"{failed} run(s) failed; see the status and error columns of results.csv"] if failed else []),
        glossary_text(),
    ]
    report.summary = "\n\n".join(sections) + "\n"
    report.files.append(write_text_atomic(out / "fit.json", json.dumps(report.payload, indent=2, allow_nan=False)))
    report.files.append(write_text_atomic(out / "summary.txt", report.summary))
    report.files.append(write_text_atomic(out / "report.html", _html(title, report, runs, metric)))
    return report


def _figures(answers: dict[str, Any], folder: Path) -> list[Path]:
    """Each panel's figures, named after the panel so that panels never overwrite each other."""
    from perflaw.law.plot import plot_fit, safe_name

    written: list[Path] = []
    for label, answer in answers.items():
        if answer.fit is None:
            continue
        written += plot_fit(answer.fit, folder, prefix=f"{safe_name(label)}_", formats=("png", "svg"),
                            recommendations={label: answer.recommendation})
    return written


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
    "curves": "Measured {metric} (points) and the fitted law (lines, with bootstrap bands) over N for each d, "
              "and over d for each N. The red star is the recommendation; grey marks sizes beyond the trained ones.",
    "surface": "The fitted law over (N, d) with the runs (black); the red star is the recommendation.",
    "backtest": "The largest trained sizes were held out: the law, refitted without them, and each baseline "
                "predict their {metric}. Points on the diagonal are perfect predictions.",
    "residuals": "Measured minus fitted, per run: structure here means the law misses something.",
    "predicted": "Fitted against measured for every run, with bootstrap intervals; the diagonal is a perfect fit.",
}
_COMPACT_COLUMNS = ["dataset", "max_len", "layers", "dim", "seed", "params", "status"]
_CONFIDENCE_COLORS = {"high": "#1b7837", "medium": "#b35806", "low": "#b2182b"}
_STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4;padding:0 1em}"
    "pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}img{max-width:100%}"
    "table{border-collapse:collapse;font-size:12px;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px}"
    ".answer{border-left:6px solid #888;padding:.4em .8em;margin:.6em 0;background:#fafafa}"
    ".runs{max-height:420px;overflow:auto;display:inline-block}"
)


def _html(title: str, report: Report, runs: pd.DataFrame, metric: str) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>", f"<title>{esc(title)}</title>",
        f"<style>{_STYLE}</style></head><body>", f"<h1>{esc(title)}</h1>",
        "<h2>Recommendations</h2>",
    ]
    parts += [_answer_box(a.recommendation) for a in report.answers.values()]
    from perflaw.law.report import GLOSSARY, backtest_verdict

    verdict = backtest_verdict(report.answers)
    if verdict:
        parts.append(f"<p><b>{esc(verdict)}</b></p>")
    parts.append(
        "<p>Each answer comes from the Performance Law (Shen et al., 2024) fitted to that dataset's runs, "
        "checked by a backtest: refitted without the largest trained sizes, it must predict them better "
        "than simpler baselines, or the answer falls back to the best size trained. The rule is in "
        "docs/law.md; the glossary is at the end of the page.</p>")
    for label, answer in report.answers.items():
        parts += _panel_section(label, answer, report, metric)
    parts += _runs_section(runs, metric)
    parts += [
        "<h2>Fit details</h2><details><summary>parameters, fit quality, data measures, notes</summary>",
        f"<pre>{esc(report.summary)}</pre></details>",
        "<h2>Glossary</h2><dl>",
    ]
    parts += [f"<dt><b>{esc(term)}</b></dt><dd>{esc(meaning)}</dd>" for term, meaning in GLOSSARY]
    parts.append("</dl></body></html>")
    return "\n".join(parts)


def _answer_box(rec: Any) -> str:
    color = _CONFIDENCE_COLORS.get(rec.confidence, "#888")
    return (f"<div class='answer' style='border-color:{color}'><b>{html.escape(rec.headline())}</b></div>")


def _panel_section(label: str, answer: Any, report: Report, metric: str) -> list[str]:
    esc = html.escape
    rec = answer.recommendation
    parts = [f"<h2>{esc(rec.dataset)}</h2>", _answer_box(rec), "<h3>Why</h3><ul>"]
    parts += [f"<li>{esc(reason)}</li>" for reason in rec.reasons]
    parts.append("</ul>")
    if rec.next_runs:
        parts.append("<h3>Train next</h3><ul>")
        parts += [f"<li>N = {r['layers']}, d = {r['dim']}: {esc(r['why'])}</li>" for r in rec.next_runs]
        parts.append("</ul>")
    backtest = answer.fit.backtest.get(label) if answer.fit is not None else None
    if backtest is not None:
        parts += ["<h3>Backtest</h3>", _backtest_table(backtest)]
    if answer.problem:
        parts.append(f"<p>No law could be fitted: {esc(answer.problem)}</p>")
    from perflaw.law.plot import safe_name

    stem = safe_name(label) + "_"
    figures = sorted((p for p in report.files if p.suffix == ".png" and p.name.startswith(stem)),
                     key=lambda p: list(_FIGURE_NOTES).index(_figure_kind(p)) if _figure_kind(p) else 99)
    if figures:
        parts.append("<h3>Figures</h3>")
    for png in figures:
        parts.append(_figure_html(png, _FIGURE_NOTES.get(_figure_kind(png) or "", "").format(metric=metric)))
    return parts


def _figure_kind(png: Path) -> str | None:
    return next((key for key in _FIGURE_NOTES if png.stem.endswith(key)), None)


def _figure_html(png: Path, note: str) -> str:
    esc = html.escape
    svg = png.with_suffix(".svg")
    data = base64.b64encode(png.read_bytes()).decode()
    return (f"<figure><img alt='{esc(png.stem)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{esc(note)} Files: <a href='figures/{esc(png.name)}'>{esc(png.name)}</a>"
            + (f", <a href='figures/{esc(svg.name)}'>{esc(svg.name)}</a>" if svg.exists() else "")
            + "</figcaption></figure>")


def _backtest_table(bt: Any) -> str:
    esc = html.escape
    if not bt.available:
        return f"<p>Not possible: {esc(str(bt.reason))}</p>"

    def pct(x: Any) -> str:
        return "—" if x is None else f"{100 * x:.2f}%"

    rows = [("law", bt.law)] + list(bt.baselines.items())
    cells = "".join(
        f"<tr><td>{'<b>' + name + '</b>' if name == bt.winner else name}</td><td>{pct(s.get('mean_relative_error'))}</td>"
        f"<td>{pct(s.get('max_relative_error'))}</td><td>{pct(s.get('coverage_90')) if name == 'law' else ''}</td></tr>"
        for name, s in rows)
    noise = "" if bt.seed_noise is None else f" Seed-to-seed noise: {bt.seed_noise:.4g}."
    return (f"<p>Fitted on {bt.n_kept} sizes, predicting the {bt.n_held} largest.{noise}</p>"
            "<table><tr><th>predictor</th><th>mean relative error</th><th>worst</th><th>90% coverage</th></tr>"
            f"{cells}</table>")


def _runs_section(runs: pd.DataFrame, metric: str) -> list[str]:
    columns = [c for c in _COMPACT_COLUMNS if c in runs] + [c for c in (metric, "best_epoch") if c in runs]
    table = runs[columns].sort_values([c for c in ("dataset", "layers", "dim", "seed") if c in columns])
    return [
        "<h2>Runs</h2>",
        f"<p>{len(runs)} runs. Every column: <a href='results.csv'>results.csv</a>, "
        "<a href='results.json'>results.json</a>; the answers and fits: <a href='fit.json'>fit.json</a>.</p>",
        "<div class='runs'>" + table.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="", border=0)
        + "</div>",
    ]
