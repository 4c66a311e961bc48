"""``perflaw fit`` and ``perflaw plot``: the law fitter on the command line.

scipy, pandas and matplotlib are imported inside the handlers, so that
``perflaw --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from perflaw.commands.flags import add_config_flags, values_from_args
from perflaw.law.options import DEFAULT_REACH, FORM_NAMES, FitOptions
from perflaw.errors import PerflawError

FORM_CHOICES = ("auto",) + FORM_NAMES
# FitOptions fields that have a flag here; their defaults and help come from the dataclass.
OPTION_FLAGS = ("D", "loss", "n_boot", "bootstrap", "ci", "seed", "holdout")


def register(subparsers: Any) -> None:
    """Add the ``fit`` and ``plot`` sub-commands."""
    fit = subparsers.add_parser(
        "fit",
        help="fit a law to a results table",
        description=(
            "Fit the Performance Law to a table of finished runs (CSV, JSONL, Parquet or a sweep "
            "folder), one law per dataset, and print first the recommended model size for each "
            "dataset with its confidence, then the evidence (the backtest on held-out largest sizes "
            "against simpler baselines), then the fit's details."
        ),
    )
    _common(fit)
    fit.add_argument("--reach", type=float, default=DEFAULT_REACH,
                     help="let the recommendation look up to this many times beyond the largest trained N and d "
                     "(default 1: inside the trained sizes; beyond, the answer is never of high confidence)")
    fit.add_argument("--budget", type=float, default=None, metavar="MAX_PARAMS",
                     help="also report the best configuration with at most this many parameters")
    fit.add_argument("--model", default=None, help="model for parameter counting (default: the table's, else llama)")
    fit.add_argument("--n-items", type=int, default=None, help="catalogue size for parameter counting")
    fit.add_argument("--max-len", type=int, default=None, help="max length for parameter counting")
    fit.add_argument("--json", action="store_true", help="print the fit's to_dict() as JSON on stdout")
    fit.set_defaults(func=fit_command)

    plot = subparsers.add_parser(
        "plot",
        help="write figures of a fitted law (PNG and SVG)",
        description=(
            "Fit a law to a results table and write figures: measured points with fitted curves, "
            "the fitted surface, residuals, and predicted against measured with intervals."
        ),
    )
    _common(plot)
    plot.add_argument("--out", default="perflaw-plots", help="output folder (default: %(default)s)")
    plot.add_argument("--formats", default="png,svg", help="comma-separated: png, svg, pdf (default: %(default)s)")
    plot.set_defaults(func=plot_command)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="results table: .csv, .jsonl or .parquet")
    parser.add_argument("--metric", default=None, help="metric column, e.g. ndcg@10 (default: ndcg@10, loss for chinchilla)")
    parser.add_argument("--form", default="auto", choices=FORM_CHOICES, metavar="FORM",
                        help="law form; one of " + ", ".join(FORM_CHOICES) + " (default: auto, the identified one for "
                        "the table: performance_code when a dataset holds one D′, the paper's performance form when D′ varies)")
    parser.add_argument("--by", default="auto",
                        help="auto (default): one law per dataset and max_len; none: one law over the whole table; "
                        "or the columns whose groups get a law each, e.g. dataset")
    add_config_flags(parser, FitOptions, OPTION_FLAGS)
    parser.add_argument("--trust-region", default=None, metavar="SPEC",
                        help="where the law is trusted, e.g. N=4:64,d=16:256 (default: the measured range)")
    parser.add_argument("--columns", default=None, metavar="SPEC",
                        help="variable=column overrides, e.g. D=tokens")


def _parse_pairs(text: str | None, what: str) -> dict[str, str]:
    if not text:
        return {}
    out = {}
    for item in text.split(","):
        if "=" not in item:
            raise PerflawError(f"{what}: expected NAME=VALUE items separated by commas, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def parse_trust_region(text: str | None) -> dict[str, tuple[float, float]] | None:
    """``"N=4:64,d=16:256"`` -> ``{"N": (4.0, 64.0), "d": (16.0, 256.0)}``."""
    pairs = _parse_pairs(text, "--trust-region")
    region = {}
    for key, value in pairs.items():
        parts = value.split(":")
        if len(parts) != 2:
            raise PerflawError(f"--trust-region: {key} needs LOW:HIGH, got {value!r}")
        try:
            region[key] = (float(parts[0]), float(parts[1]))
        except ValueError as exc:
            raise PerflawError(f"--trust-region: {key} bounds must be numbers, got {value!r}") from exc
    return region or None


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return values_from_args(args, FitOptions, OPTION_FLAGS) | {
        "trust_region": parse_trust_region(args.trust_region),
        "columns": _parse_pairs(args.columns, "--columns") or None,
        "progress": sys.stderr.isatty(),
    }


def fit_command(args: argparse.Namespace) -> int:
    """Handler of ``perflaw fit``: the answers, then the evidence, then the details."""
    from perflaw.law import answer_panels
    from perflaw.law.report import answers_text, evidence_text, glossary_text

    metric = args.metric or ("loss" if args.form == "chinchilla" else "ndcg@10")
    answers = answer_panels(args.results, metric, by=args.by, form=args.form, reach=args.reach, **_options(args))
    budget_kwargs = {k: v for k, v in {"model": args.model, "n_items": args.n_items, "max_len": args.max_len}.items()
                     if v is not None}
    if args.json:
        payload = answers_payload(answers, metric, budget=args.budget, **budget_kwargs)
        json.dump(payload, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
        return 0
    print(answers_text(answers, metric))
    print()
    print("Evidence")
    for answer in answers.values():
        print(evidence_text(answer))
        print()
    print("Fit details")
    for fit in _distinct_fits(answers):
        print(fit.summary(budget=args.budget, uses=args.budget is not None, **budget_kwargs))
        print()
    print(glossary_text())
    return 0


def _distinct_fits(answers: dict[str, Any]) -> list[Any]:
    seen: list[Any] = []
    for answer in answers.values():
        if answer.fit is not None and not any(answer.fit is f for f in seen):
            seen.append(answer.fit)
    return seen


def answers_payload(answers: dict[str, Any], metric: str, budget: float | None = None,
                    **budget_kwargs: Any) -> dict[str, Any]:
    """:func:`perflaw.law.panels.answers_to_dict`, plus each panel's budget optimum when asked for."""
    from perflaw.law.panels import answers_to_dict

    payload = answers_to_dict(answers, metric)
    if budget is None:
        return payload
    for label, answer in answers.items():
        if answer.fit is None:
            continue
        key = {"panel": label} if len(answer.fit.panels) > 1 else {}
        try:
            payload["panels"][label]["budget_optimum"] = answer.fit.budget_optimum(budget, **key, **budget_kwargs).to_dict()
        except (ValueError, ImportError) as exc:
            payload["panels"][label]["budget_optimum"] = {"error": str(exc)}
    return payload


def plot_command(args: argparse.Namespace) -> int:
    """Handler of ``perflaw plot``: the figures of each law, its recommendation marked."""
    from perflaw.law import answer_panels
    from perflaw.law.plot import plot_fit

    formats = [f.strip().lower() for f in args.formats.split(",") if f.strip()]
    answers = answer_panels(args.results, args.metric or "ndcg@10", by=args.by, form=args.form, **_options(args))
    fits = _distinct_fits(answers)
    if not fits:
        raise PerflawError("; ".join(f"{label}: {a.problem}" for label, a in answers.items()))
    recommendations = {label: a.recommendation for label, a in answers.items()}
    for law in fits:
        prefix = "" if len(fits) == 1 else "_".join(law.panels).replace("|", "_").replace("/", "-") + "_"
        for path in plot_fit(law, args.out, prefix=prefix, formats=formats, recommendations=recommendations):
            print(path)
    return 0
