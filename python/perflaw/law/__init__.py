"""The law fitter: Performance Law forms, robust fitting, optima and plots.

>>> import perflaw
>>> law = perflaw.fit("results.parquet", form="performance", metric="ndcg@10")  # doctest: +SKIP
>>> law.r2, law.loo_error, law.optimum().point                                    # doctest: +SKIP

Public names: :func:`fit`, :func:`fit_groups`, :class:`Fit`, :class:`FitOptions`,
the forms (:data:`FORMS`, :func:`custom_form`, :func:`get_form`), and the
results of :meth:`Fit.optimum`, :meth:`Fit.budget_optimum` and
:meth:`Fit.scaling_potential`. Plotting lives in :mod:`perflaw.law.plot`
(matplotlib is imported only there).
"""

from __future__ import annotations

from perflaw.law.fitting import Fit, FitOptions, Prediction, fit, fit_groups
from perflaw.law.forms import FORMS, CustomForm, Form, Spec, custom_form, get_form
from perflaw.law.optimum import BudgetOptimum, Optimum, ScalingPotential
from perflaw.law.table import LawData, read_table

__all__ = [
    "FORMS",
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
