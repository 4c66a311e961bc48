"""How a law is fitted: :class:`FitOptions` and the names of forms, losses and modes.

Only NumPy is needed here, so the command line and the sweep can list and
check these names without importing SciPy or pandas.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np

from perflaw.law.values import check_region
from perflaw.fields import setting
from perflaw.errors import PerflawError, PerflawTypeError

# The built-in law forms (``perflaw.law.forms.FORMS`` holds their formulas).
FORM_NAMES = ("performance", "performance_code", "scaling", "chinchilla")
LOSSES = ("linear", "huber", "soft_l1")
BOOTSTRAP_MODES = ("auto", "runs", "seeds", "none")
D_MODES = ("fixed", "free")
DEFAULT_PANEL_BY = ("dataset", "max_len")
# How far beyond the largest trained N and d a recommendation may look (1: not beyond).
DEFAULT_REACH = 1.0
DEFAULT_N_BOOT = 200


@dataclass(frozen=True)
class FitOptions:
    """How a law is fitted. Every field maps one to one onto a ``fit()`` keyword.

    Attributes
    ----------
    loss : {"linear", "huber", "soft_l1"}
        Loss of the least-squares polish.
    f_scale : float, optional
        Residual scale of a robust loss (default: 1.4826·MAD of a first fit).
    n_starts : int
        Best grid starts (local minima first) that are polished.
    n_boot : int
        Bootstrap refits (0: no intervals).
    bootstrap : {"auto", "runs", "seeds", "none"}
        ``runs`` resamples whole runs; ``seeds`` resamples the seeds of each
        configuration; ``auto`` uses ``seeds`` when every configuration has
        two or more runs, else ``runs``.
    ci : float
        Confidence level of the intervals.
    seed : int
        Seed of the bootstrap; fits are deterministic given it.
    holdout : bool
        Compute leave-one-configuration-out and leave-largest-out errors.
    holdout_fraction : float
        Share of configurations (the largest models) held out for the
        extrapolation error.
    holdout_starts : int
        Grid starts polished in each held-out refit (the refits re-run the
        grid search on the remaining runs; fewer polished starts keep
        leave-one-out affordable).
    baseline : bool
        Also fit the decay-free ``scaling`` form and report its scores.
    D : {"fixed", "free"}
        ``performance_code`` only: D′ from the table, or one free D per panel.
    columns : mapping, optional
        Variable -> table column overrides (e.g. ``{"D": "tokens"}``).
    panel_by : tuple of str
        Columns that define a data panel.
    trust_region : mapping, optional
        Variable -> (low, high) where the law is trusted; default the
        measured range of each variable.
    direction : {"max", "min"}, optional
        Whether larger metric values are better; default ``min`` for a loss
        and ``max`` otherwise.
    progress : bool
        Show a progress bar for the bootstrap.
    """

    loss: str = setting("linear", "loss of the least-squares polish", choices=LOSSES)
    f_scale: float | None = None
    n_starts: int = 6
    n_boot: int = setting(DEFAULT_N_BOOT, "bootstrap refits for the intervals; 0: no intervals")
    bootstrap: str = setting(
        "auto", "what the bootstrap resamples (auto: seeds when every configuration has two or more runs)",
        choices=BOOTSTRAP_MODES,
    )
    ci: float = setting(0.95, "confidence level of the intervals")
    seed: int = setting(0, "bootstrap seed; fits are deterministic given it")
    holdout: bool = setting(True, "compute the held-out errors (leave one configuration out, largest out)")
    holdout_fraction: float = 0.25
    holdout_starts: int = 3
    baseline: bool = True
    D: str = setting("fixed", "performance_code: D′ from the table, or one free D per panel", choices=D_MODES)
    columns: Mapping[str, str] | None = None
    panel_by: tuple[str, ...] = DEFAULT_PANEL_BY
    trust_region: Mapping[str, tuple[float, float]] | None = None
    direction: str | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise PerflawError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.f_scale is not None and not (isinstance(self.f_scale, (int, float)) and self.f_scale > 0):
            raise PerflawError(f"f_scale must be a positive number, got {self.f_scale!r}")
        for name in ("n_starts", "n_boot", "seed", "holdout_starts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise PerflawTypeError(f"{name} must be an integer, got {value!r}")
        if self.n_starts < 1 or self.holdout_starts < 1:
            raise PerflawError(f"n_starts and holdout_starts must be at least 1, got {self.n_starts}, {self.holdout_starts}")
        if self.n_boot < 0:
            raise PerflawError(f"n_boot must be non-negative, got {self.n_boot}")
        if self.bootstrap not in BOOTSTRAP_MODES:
            raise PerflawError(f"bootstrap must be one of {BOOTSTRAP_MODES}, got {self.bootstrap!r}")
        if not 0 < self.ci < 1:
            raise PerflawError(f"ci must be in (0, 1), got {self.ci!r}")
        if not 0 < self.holdout_fraction < 1:
            raise PerflawError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction!r}")
        if self.D not in D_MODES:
            raise PerflawError(f"D must be 'fixed' or 'free', got {self.D!r}")
        if self.direction not in (None, "max", "min"):
            raise PerflawError(f"direction must be 'max' or 'min', got {self.direction!r}")
        if isinstance(self.panel_by, str):
            object.__setattr__(self, "panel_by", tuple(c.strip() for c in self.panel_by.split(",") if c.strip()))
        if self.trust_region is not None:
            object.__setattr__(self, "trust_region", check_region(self.trust_region))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["columns"] = dict(self.columns) if self.columns else None
        out["trust_region"] = {k: list(v) for k, v in self.trust_region.items()} if self.trust_region else None
        out["panel_by"] = list(self.panel_by)
        return out
