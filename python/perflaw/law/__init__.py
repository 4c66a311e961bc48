"""The law fitter: Performance Law forms, robust fitting, optima and plots.

>>> import perflaw
>>> law = perflaw.fit("results.parquet", form="performance", metric="ndcg@10")  # doctest: +SKIP
>>> law.recommend().headline()                                                    # doctest: +SKIP
>>> answers = perflaw.law.answer_panels("results.csv")   # one answer per dataset   # doctest: +SKIP

Public names: :func:`fit`, :func:`fit_groups`, :class:`Fit`, :class:`FitOptions`,
:func:`answer_panels` and :class:`PanelAnswer` (one law and one answer per
dataset), :class:`Recommendation` (:meth:`Fit.recommend`), :class:`Backtest`,
the forms (:data:`FORMS`, :func:`custom_form`, :func:`get_form`), and the
results of :meth:`Fit.optimum`, :meth:`Fit.budget_optimum` and
:meth:`Fit.scaling_potential`. Plotting lives in :mod:`perflaw.law.plot`
(matplotlib is imported only there).
"""

from __future__ import annotations

from perflaw.law.backtest import Backtest
from perflaw.law.fitting import Fit, FitOptions, Prediction, fit, fit_groups
from perflaw.law.forms import FORMS, CustomForm, Form, Spec, custom_form, get_form
from perflaw.law.optimum import BudgetOptimum, Optimum, ScalingPotential
from perflaw.law.panels import PanelAnswer, answer_panels, answers_to_dict
from perflaw.law.recommend import Recommendation, recommend
from perflaw.law.table import LawData, read_table

__all__ = [
    "FORMS",
    "Backtest",
    "PanelAnswer",
    "Recommendation",
    "answer_panels",
    "answers_to_dict",
    "recommend",
    "BudgetOptimum",
    "CustomForm",
    "Fit",
    "FitOptions",
    "Form",
    "LawData",
    "Optimum",
    "Prediction",
    "ScalingPotential",
    "Spec",
    "custom_form",
    "fit",
    "fit_groups",
    "get_form",
    "read_table",
]
