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

import importlib
from typing import Any

# public name -> the module that defines it. Loaded on first use, so that
# ``perflaw.law.options`` (the names of forms, losses and modes, FitOptions)
# is importable without SciPy or pandas.
_EXPORTS = {
    "Backtest": "backtest",
    "Fit": "fitting",
    "Prediction": "fitting",
    "fit": "fitting",
    "fit_groups": "fitting",
    "FitOptions": "options",
    "FORM_NAMES": "options",
    "FORMS": "forms",
    "CustomForm": "custom",
    "Form": "forms",
    "Spec": "forms",
    "custom_form": "custom",
    "get_form": "custom",
    "BudgetOptimum": "optimum",
    "Optimum": "optimum",
    "ScalingPotential": "optimum",
    "PanelAnswer": "panels",
    "answer_panels": "panels",
    "answers_to_dict": "panels",
    "Recommendation": "recommend",
    "recommend": "recommend",
    "LawData": "table",
    "read_table": "table",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'perflaw.law' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"perflaw.law.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
