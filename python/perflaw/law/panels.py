"""One law and one answer per data panel: what ``perflaw fit``, ``perflaw report`` and the demo share.

A data panel is one dataset at one maximum length (the columns ``dataset``
and ``max_len``, where present), as in the paper. :func:`answer_panels` fits
the law to each panel's runs on its own and derives the recommendation, so
every command that reads the same table with the same options gives the same
answer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from perflaw.law.fitting import Fit, fit
from perflaw.law.recommend import Recommendation, display_name, unfitted
from perflaw.law.options import DEFAULT_PANEL_BY, DEFAULT_REACH
from perflaw.law.table import read_table, resolve_metric
from perflaw.errors import PerflawError

ALL_RUNS = "all runs"


@dataclass(frozen=True)
class PanelAnswer:
    """A panel's recommendation, the fit behind it (None when none could be made), and why not."""

    panel: str
    recommendation: Recommendation
    fit: Fit | None = None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """``recommendation`` first, then ``backtest``, then the ``fit`` itself."""
        backtest = self.fit.backtest.get(self.panel) if self.fit is not None else None
        return {
            "recommendation": self.recommendation.to_dict(),
            "backtest": backtest.to_dict() if backtest is not None else None,
            "fit": self.fit.to_dict(uses=False) if self.fit is not None else None,
            "problem": self.problem,
        }


def panel_columns(frame: pd.DataFrame) -> list[str]:
    """The panel columns the table has (``dataset``, ``max_len``)."""
    return [c for c in DEFAULT_PANEL_BY if c in frame.columns]


def answer_panels(
    table: pd.DataFrame | str | Path,
    metric: str = "ndcg@10",
    *,
    by: str | Sequence[str] = "auto",
    form: str = "auto",
    reach: float = DEFAULT_REACH,
    **options: Any,
) -> dict[str, PanelAnswer]:
    """Fit ``form`` to each data panel and recommend a size for it.

    Parameters
    ----------
    table : DataFrame or path
        Finished runs (see :func:`perflaw.law.read_table`).
    metric : str
        The accuracy metric.
    by : "auto", "none" or column names
        ``auto`` (default): one law per data panel (dataset × max_len);
        ``none``: one law over the whole table, with D′ as a variable; or the
        columns whose groups get a law each.
    form : str
        The law form; ``auto`` (default) is the identified default of each
        group (:func:`~perflaw.law.forms.auto_form`).
    reach : float
        How far beyond the trained sizes the recommendation may look (1: not at all).
    **options
        :class:`~perflaw.law.FitOptions` fields (``n_boot``, ``seed`` …).

    Returns
    -------
    dict
        Panel label -> :class:`PanelAnswer`, in the order the panels first
        appear in the table (a sweep's spec order).

    Examples
    --------
    >>> from perflaw.law.synthetic import synthetic_runs
    >>> runs = synthetic_runs(noise=0.001, seeds=2, d_primes=(1.0, 2.0), seed=3)
    >>> answers = answer_panels(runs, n_boot=20)
    >>> list(answers), answers["syn0|50"].recommendation.source  # the law's best is within noise of one trained
    (['syn0|50', 'syn1|50'], 'best measured')
    """
    frame = read_table(table)
    resolve_metric(frame, metric)  # a missing metric is the whole table's problem, not a panel's
    out: dict[str, PanelAnswer] = {}
    for label, group in _groups(frame, by):
        try:
            law = fit(group, form=form, metric=metric, **options)
        except (ValueError, np.linalg.LinAlgError) as exc:
            out[label] = _unfitted(group, label, metric, str(exc))
            continue
        for panel in law.panels:
            try:
                rec = law.recommend(panel=panel if len(law.panels) > 1 else None, reach=reach)
            except ValueError as exc:  # a law that is not in N and d (chinchilla) gives no size
                out[panel] = dataclasses.replace(_unfitted(group, panel, metric, str(exc)), fit=law)
                continue
            out[panel] = PanelAnswer(panel=panel, recommendation=rec, fit=law)
    return out


def _groups(frame: pd.DataFrame, by: str | Sequence[str]) -> list[tuple[str, pd.DataFrame]]:
    if by == "none":
        return [(ALL_RUNS, frame)]
    columns = panel_columns(frame) if by == "auto" else (
        [c.strip() for c in by.split(",") if c.strip()] if isinstance(by, str) else [str(c) for c in by])
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise PerflawError(f"--by columns {missing} are not in the table; columns present: {list(frame.columns)}")
    if not columns:
        return [(ALL_RUNS, frame)]
    return [("|".join(str(v) for v in (key if isinstance(key, tuple) else (key,))), group.reset_index(drop=True))
            for key, group in frame.groupby(columns, sort=False)]


def _unfitted(group: pd.DataFrame, label: str, metric: str, problem: str) -> PanelAnswer:
    try:
        column = resolve_metric(group, metric)
    except (TypeError, ValueError):
        column = metric
    dataset = display_name(label, panel_columns(group))
    return PanelAnswer(panel=label, recommendation=unfitted(label, dataset, column, group, problem),
                       problem=problem)


def answers_to_dict(answers: dict[str, PanelAnswer], metric: str) -> dict[str, Any]:
    """The JSON of ``perflaw fit --json``, ``perflaw report --json`` and fit.json: the answers
    in words first, then per panel its recommendation, backtest and fit."""
    return {
        "metric": metric,
        "answers": [a.recommendation.headline() for a in answers.values()],
        "panels": {label: a.to_dict() for label, a in answers.items()},
    }
