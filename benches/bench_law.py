"""Wall time of the law fitter: one fit, bootstrap refits, held-out refits.

Prints a table. The data are the paper's per-panel grid (N ∈ {4..32} ×
d ∈ {25..100}, 24 runs) drawn from a peaked Performance Law with noise
(:func:`perflaw.law.synthetic.synthetic_runs`), plus a 30-run Chinchilla
loss surface.

    PYTHONPATH=python python3 benches/bench_law.py             # all, 1000 bootstrap refits
    PYTHONPATH=python python3 benches/bench_law.py --n-boot 200 --hoffmann-full

Targets from the issue: one 24-point fit with the full multi-start < 1 s;
1,000 bootstrap refits < 30 s (on a 2-core machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import pandas as pd

import perflaw
from perflaw.law import FORMS
from perflaw.law.fitting import FitOptions, _bootstrap, _leave_one_config_out
from perflaw.law.solve import small_blas, solve
from perflaw.law.synthetic import synthetic_runs


def _timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap refits to time (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of the single fit (median)")
    parser.add_argument("--noise", type=float, default=0.0015, help="noise sd of the synthetic NDCG")
    parser.add_argument("--long-rows", type=int, nargs="*", default=[10_000, 100_000],
                        help="also time a default fit (200 bootstrap refits, backtest) of tables this long: "
                        "the 24 configurations repeated over seeds (default: %(default)s)")
    parser.add_argument("--hoffmann-full", action="store_true",
                        help="also run L-BFGS from all 4,500 Hoffmann starts (slow)")
    args = parser.parse_args(argv)

    print(f"perflaw {perflaw.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    table = synthetic_runs(noise=args.noise, seed=0)
    rows = []
    cases = [
        ("performance", {}, "paper's form, 6 params"),
        ("performance_code", {"D": "free"}, "authors' code, free D, 7 params"),
        ("performance_code", {}, "authors' code, D′ fixed"),
        ("scaling", {}, "decay-free baseline"),
    ]
    for form, options, label in cases:
        fit_s, law = _timed(lambda: perflaw.fit(table, form=form, n_boot=0, holdout=False, **options), args.repeats)
        opts = FitOptions(n_boot=args.n_boot, **options)
        with small_blas():
            start = time.perf_counter()
            _, info = _bootstrap(law.spec, law.data, law.theta, opts, np.random.default_rng(0), _solution(law))
            boot_s = time.perf_counter() - start
            start = time.perf_counter()
            _leave_one_config_out(law.spec, law.data, opts)
            loo_s = time.perf_counter() - start
        rows.append({
            "form": form, "what": label, "R²": round(law.r2, 4), "fit_s": round(fit_s, 3),
            f"boot{args.n_boot}_s": round(boot_s, 2), "boot_not_converged": info["not_converged"],
            "loo24_s": round(loo_s, 2), "grid": law.convergence["grid_points"],
        })
    print(pd.DataFrame(rows).to_string(index=False))

    for n_rows in args.long_rows:
        seeds = -(-n_rows // len(table))
        long = pd.concat([synthetic_runs(noise=args.noise, seed=s) for s in range(seeds)], ignore_index=True)[:n_rows]
        fit_s, law = _timed(lambda: perflaw.fit(long, metric="ndcg@10"), 1)
        print(f"\na table of {len(long):,} runs ({law.n_configs} configurations): default fit {fit_s:.1f} s, "
              f"form {law.form}, converged {law.converged}, R² {law.r2:.4f}")

    print("\nchinchilla (30 runs, Hoffmann et al. objective)")
    truth = {"E": 1.69, "A": 406.4, "alpha": 0.34, "B": 410.7, "beta": 0.28}
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e6, 1e9, 6), np.geomspace(1e8, 1e11, 5)))
    rng = np.random.default_rng(0)
    loss = FORMS["chinchilla"].predict(truth, N=N, D=D) * np.exp(rng.normal(0, 0.005, N.size))
    chin = pd.DataFrame({"params": N, "tokens": D, "loss": loss})
    fit_s, law = _timed(lambda: perflaw.fit(chin, form="chinchilla", n_boot=0, holdout=False), max(1, args.repeats // 2))
    print(f"  best 6 of 4,500 starts: {fit_s:.2f} s, loss {law.convergence['cost']:.6e}, "
          f"params { {k: round(v, 4) for k, v in law.params.items()} }")
    if args.hoffmann_full:
        with small_blas():
            start = time.perf_counter()
            full = solve(law.spec, law.data.X, law.data.panel, law.data.y, n_polish=None)
            print(f"  all 4,500 starts: {time.perf_counter() - start:.1f} s, loss {full.cost:.6e}, "
                  f"{full.n_agree} starts agree, params {np.round(full.theta, 4).tolist()}")
    return 0


def _solution(law):
    """The main fit's Solution fields the bootstrap needs (f_scale)."""
    from types import SimpleNamespace

    return SimpleNamespace(f_scale=law.convergence.get("f_scale"))


if __name__ == "__main__":
    sys.exit(main())
