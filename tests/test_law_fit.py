"""Fitting: recovery of known laws, honest held-out errors, bootstrap, determinism.

Synthetic tables come from :func:`perflaw.law.synthetic.synthetic_runs`, which
evaluates a form at known parameters and adds Gaussian noise. Bootstrap
counts are kept small so the suite stays fast.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import huber, logsumexp

import perflaw
from perflaw.law import FORMS, fit_groups
from perflaw.law.resampling import resample
from perflaw.law.solve import hoffmann_loss
from perflaw.law.synthetic import DECAY_FREE, PEAKED, synthetic_runs

PERF = ("w1", "w2", "w3", "w4", "p1", "b")


@pytest.fixture(scope="module")
def peaked_fit():
    """The paper's form on a peaked law, 3 seeds per configuration."""
    df = synthetic_runs(noise=0.0015, seeds=3, seed=11)
    return perflaw.fit(df, form="performance", n_boot=60, holdout=False, seed=5)


def test_recovers_generating_parameters_within_bootstrap_intervals(peaked_fit):
    law = peaked_fit
    assert law.bootstrap["mode"] == "seeds" and law.bootstrap["n"] == 60
    assert law.converged and not law.unidentified
    for name in PERF:
        lo, hi = law.intervals[name]
        assert lo <= PEAKED[name] <= hi, (name, law.params[name], (lo, hi))
    for name in ("w1", "w2", "w3", "w4"):  # and the intervals are informative
        lo, hi = law.intervals[name]
        assert hi - lo < 0.6 * abs(PEAKED[name]), (name, (lo, hi))
    assert law.fixed == {"p2": 0.0, "w5": 1.0} and law.held == {"D": 1.0}


def test_prediction_intervals_cover_the_true_surface(peaked_fit):
    N, d = np.meshgrid([4, 6, 12, 20, 32], [25, 40, 60, 100])
    value, lo, hi = peaked_fit.predict(N=N.ravel(), d=d.ravel(), interval=True)
    truth = FORMS["performance"].predict(PEAKED, N=N.ravel(), d=d.ravel(), D=1.0)
    assert np.all(lo <= value) and np.all(value <= hi)
    assert np.mean((lo <= truth) & (truth <= hi)) >= 0.8
    # aliases of the table's columns give the same numbers
    np.testing.assert_array_equal(peaked_fit.predict(layers=N.ravel(), dim=d.ravel()), value)


def test_noise_free_code_form_is_recovered_exactly():
    truth = {"w1": 0.3, "w2": 0.5, "w3": -0.29, "w4": -0.17, "w5": 1.0, "b": -0.15}
    df = synthetic_runs("performance_code", truth, d_primes=(2.0,))
    law = perflaw.fit(df, form="performance_code", n_boot=0, holdout=False)
    assert law.r2 == pytest.approx(1.0, abs=1e-9)
    for name in ("w1", "w2", "w3", "w4", "b"):
        assert law.params[name] == pytest.approx(truth[name], rel=1e-5, abs=1e-8)


def test_beats_the_decay_free_baseline_in_sample_and_held_out():
    df = synthetic_runs(noise=0.0015, seed=2)
    law = perflaw.fit(df, form="performance", n_boot=0, holdout=True, holdout_starts=2)
    base = law.baseline
    assert base["form"] == "scaling" and base["n_params"] == 3
    assert law.r2 > base["r2"] + 0.2
    assert law.loo_error < base["loo_error"]
    assert law.extrapolation_error < base["extrapolation_error"]
    assert law.heldout["loo"]["n_folds"] == 24
    assert law.heldout["extrapolation"]["n_configs_held"] == 6


def test_no_false_optimum_on_decay_free_data():
    df = synthetic_runs("scaling", DECAY_FREE, noise=0.0015, seeds=2, seed=7)
    law = perflaw.fit(df, form="performance", n_boot=40, holdout=False, seed=1)
    best = law.optimum()
    assert not best.interior
    assert "interior" not in best.status.values(), best.status
    # the law keeps rising, so the best corner is the largest model
    assert best.point["N"] == pytest.approx(32, rel=0.05) and best.point["d"] == pytest.approx(100, rel=0.05)


def test_paper_setting_24_points_7_parameters():
    """Per panel: N ∈ {4..32} × d ∈ {25..100}, the authors' form with a free D."""
    df = synthetic_runs(noise=0.0015, seed=3)
    law = perflaw.fit(df, form="performance_code", D="free", n_boot=30, holdout=False)
    assert law.n_runs == 24 and law.n_params == 7
    assert list(law.params) == ["w1", "w2", "w3", "w4", "w5", "b", "D"]
    assert law.converged
    assert law.r2 > 0.8 and law.r2 > law.baseline["r2"] + 0.3
    # within a panel only b + (−1/(2D^w5) − w5·ln D) is identified
    assert set(law.unidentified) == {"w5", "b", "D"}
    assert all(math.isnan(x) for x in law.intervals["D"])
    assert all(np.isfinite(law.intervals[name]).all() for name in ("w1", "w2", "w3", "w4"))
    # the peak is where the data put it, N* = 2^(-1/w3)
    assert 2 ** (-1 / law.params["w3"]) == pytest.approx(law.optimum().point["N"], rel=1e-3)


def test_fits_are_deterministic_given_a_seed():
    df = synthetic_runs("performance_code", {"w1": 0.3, "w2": 0.5, "w3": -0.29, "w4": -0.17, "w5": 1.0, "b": -0.15},
                        d_primes=(2.0,), noise=0.002, seed=9)
    a = perflaw.fit(df, form="performance_code", n_boot=25, seed=3, holdout=False)
    b = perflaw.fit(df, form="performance_code", n_boot=25, seed=3, holdout=False)
    c = perflaw.fit(df, form="performance_code", n_boot=25, seed=4, holdout=False)
    assert a.params == b.params and a.intervals == b.intervals
    np.testing.assert_array_equal(a.samples, b.samples)
    assert a.params == c.params and a.intervals != c.intervals


def test_seed_bootstrap_keeps_every_configuration_and_its_count():
    df = synthetic_runs(noise=0.001, seeds=3)
    law = perflaw.fit(df, form="scaling", n_boot=0, holdout=False)
    rng = np.random.default_rng(0)
    for _ in range(5):
        index = resample(law.data, "seeds", rng, law.spec)
        assert np.array_equal(np.bincount(law.data.config[index]), np.bincount(law.data.config))
        assert np.all(law.data.config[index] == law.data.config[np.sort(index)][np.argsort(np.argsort(index))])


def test_run_bootstrap_draws_whole_runs_that_can_be_fitted():
    df = synthetic_runs(noise=0.001)
    law = perflaw.fit(df, form="performance", n_boot=0, holdout=False)
    rng = np.random.default_rng(1)
    for _ in range(10):
        index = resample(law.data, "runs", rng, law.spec)
        sample = law.data.subset(index)
        assert len(index) == law.n_runs
        assert sample.n_configs >= law.n_params
        assert len(np.unique(sample.X["N"])) >= 2 and len(np.unique(sample.X["d"])) >= 2
        np.testing.assert_array_equal(sample.y, law.data.y[index])  # a run keeps its metric
    with pytest.raises(ValueError, match="two runs .* of every configuration"):
        perflaw.fit(df, form="performance", bootstrap="seeds", n_boot=5)


def test_held_out_errors_match_an_independent_refit_loop():
    df = synthetic_runs("scaling", DECAY_FREE, noise=0.002, seeds=2, seed=5)
    law = perflaw.fit(df, form="scaling", n_boot=0, holdout=True)
    N, d, y = df["layers"].to_numpy(float), df["dim"].to_numpy(float), df["ndcg@10"].to_numpy()
    A = np.column_stack([np.log(N), np.log(d), np.ones(len(N))])
    target = y - np.log(df["d_prime"].to_numpy())
    config = N * 1000 + d
    errors = []
    for c in np.unique(config):
        out = config == c
        coef, *_ = np.linalg.lstsq(A[~out], target[~out], rcond=None)
        errors.append(np.abs(A[out] @ coef + np.log(df["d_prime"].to_numpy()[out]) - y[out]) / np.abs(y[out]))
    errors = np.concatenate(errors)
    assert law.loo_error == pytest.approx(errors.mean(), rel=1e-6)
    assert law.loo_max_error == pytest.approx(errors.max(), rel=1e-6)

    size = N * d**2
    top = np.unique(size)[::-1][: math.ceil(0.25 * 24)]
    held = np.isin(size, top)
    coef, *_ = np.linalg.lstsq(A[~held], target[~held], rcond=None)
    ext = np.abs(A[held] @ coef + np.log(df["d_prime"].to_numpy()[held]) - y[held]) / np.abs(y[held])
    assert law.extrapolation_error == pytest.approx(ext.mean(), rel=1e-6)


def test_robust_loss_resists_an_outlier():
    df = synthetic_runs("scaling", DECAY_FREE, noise=0.0005, seed=8)
    df.loc[5, "ndcg@10"] += 0.05
    plain = perflaw.fit(df, form="scaling", n_boot=0, holdout=False)
    robust = perflaw.fit(df, form="scaling", loss="huber", n_boot=0, holdout=False)
    for name in ("w1", "w2"):
        assert abs(robust.params[name] - DECAY_FREE[name]) < 0.5 * abs(plain.params[name] - DECAY_FREE[name])
    assert robust.convergence["f_scale"] > 0


def test_custom_callable_form_with_a_bound():
    N = np.repeat([1.0, 2, 4, 8, 16, 32], 2)
    d = np.tile([10.0, 20.0], 6)
    df = pd.DataFrame({"layers": N, "dim": d, "ndcg@10": 0.2 - 0.1 * N**-0.7 + 0.01 * np.log(d)})

    def law(N, d, *, a, alpha, c, k):
        return c - a * N ** -alpha + k * np.log(d)

    fitted = perflaw.fit(df, form=law, n_boot=0, holdout=False)
    assert fitted.params == pytest.approx({"a": 0.1, "alpha": 0.7, "c": 0.2, "k": 0.01}, rel=1e-5)
    capped = perflaw.fit(
        df,
        form=perflaw.law.custom_form(law, bounds={"k": (0.0, 0.005)}, starts={"alpha": (0.3, 1.0)}),
        n_boot=0,
        holdout=False,
    )
    assert capped.at_bound == ["k"] and capped.params["k"] == pytest.approx(0.005)


def test_predict_checks_its_inputs(peaked_fit):
    with pytest.raises(ValueError, match=r"single D = 1; it cannot predict at D = 3"):
        peaked_fit.predict(N=8, d=50, D=3.0)
    with pytest.raises(TypeError, match="unknown variable 'width'"):
        peaked_fit.predict(N=8, width=50)
    with pytest.raises(ValueError, match=r"missing variable\(s\) \['d'\]"):
        peaked_fit.predict(N=8)
    with pytest.raises(ValueError, match="finite and positive, got -2.0"):
        peaked_fit.predict(N=-2, d=50)


def test_several_d_prime_values_need_d_or_a_panel():
    df = synthetic_runs(d_primes=(2.0, 5.0, 9.0), noise=0.001)
    law = perflaw.fit(df, form="performance", n_boot=0, holdout=False)
    assert set(law.params) == set(PEAKED) and not law.fixed
    with pytest.raises(ValueError, match="several D′ values; give D="):
        law.predict(N=8, d=50)
    np.testing.assert_allclose(law.predict(N=8, d=50, panel="syn1|50"), law.predict(N=8, d=50, D=5.0))


def test_to_dict_is_json_ready_and_records_provenance(peaked_fit):
    out = peaked_fit.to_dict(budget=60_000, params_fn=lambda n, d: 12 * n * d * d)
    text = json.dumps(out, allow_nan=False)
    back = json.loads(text)
    assert back["form"] == "performance" and back["metric"] == "ndcg@10"
    assert back["params"]["w1"] == pytest.approx(peaked_fit.params["w1"])
    assert back["fingerprint"] == peaked_fit.fingerprint and back["version"] == perflaw.__version__
    assert back["options"]["seed"] == 5 and back["bootstrap"]["mode"] == "seeds"
    assert back["budget_optimum"]["params"] <= 60_000
    assert set(back["optimum"]["status"]) == {"N", "d"}


def test_fit_groups_fits_each_panel_alone():
    df = synthetic_runs("scaling", DECAY_FREE, d_primes=(2.0, 5.0), noise=0.001, seed=4)
    fits = fit_groups(df, "dataset,max_len", form="scaling", n_boot=0, holdout=False)
    assert sorted(fits) == ["syn0|50", "syn1|50"]
    alone = perflaw.fit(df[df.dataset == "syn1"], form="scaling", n_boot=0, holdout=False)
    assert fits["syn1|50"].params == alone.params
    with pytest.raises(ValueError, match=r"--by columns \['nope'\]"):
        fit_groups(df, "nope", form="scaling")


# ---------------------------------------------------------------------------
# chinchilla


def test_hoffmann_objective_matches_the_reference_formula():
    rng = np.random.default_rng(0)
    lnN, lnD, lnL = rng.uniform(13, 21, 40), rng.uniform(18, 24, 40), rng.uniform(0.6, 1.3, 40)
    for _ in range(3):
        z = np.array([6.0, 6.2, 0.5, 0.34, 0.28]) + rng.normal(0, 0.3, 5)
        terms = np.stack([z[0] - z[3] * lnN, z[1] - z[4] * lnD, np.full(40, z[2])])
        reference = np.sum(huber(1e-3, logsumexp(terms, axis=0) - lnL))  # summed, not averaged
        loss, grad = hoffmann_loss(z, lnN, lnD, lnL)
        assert loss == pytest.approx(reference, rel=1e-12)
        numeric = [(hoffmann_loss(z + h, lnN, lnD, lnL)[0] - hoffmann_loss(z - h, lnN, lnD, lnL)[0]) / 2e-7
                   for h in np.eye(5) * 1e-7]
        np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-9)


def test_chinchilla_recovers_a_loss_surface_and_its_compute_optimum():
    truth = {"E": 1.69, "A": 406.4, "alpha": 0.34, "B": 410.7, "beta": 0.28}
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e6, 1e9, 6), np.geomspace(1e8, 1e11, 5)))
    df = pd.DataFrame({"params": N, "tokens": D, "loss": FORMS["chinchilla"].predict(truth, N=N, D=D)})
    law = perflaw.fit(df, form="chinchilla", n_boot=0, holdout=False)
    assert law.metric == "loss" and law.direction == "min"
    assert law.params == pytest.approx(truth, rel=2e-3)
    C = 1e21
    best = law.budget_optimum(flops=C)
    p = law.params

    def loss_at(log_n: float) -> float:
        n = math.exp(log_n)
        return p["E"] + p["A"] * n ** -p["alpha"] + p["B"] * (C / 6 / n) ** -p["beta"]

    numeric = minimize_scalar(loss_at, bounds=(math.log(1e6), math.log(1e13)), method="bounded",
                              options={"xatol": 1e-10})
    assert best.point["N"] == pytest.approx(math.exp(numeric.x), rel=1e-4)
    assert best.point["N"] * best.point["D"] * 6 == pytest.approx(C)
    assert best.value == pytest.approx(numeric.fun, rel=1e-9)


# ------------------------------------------------- long tables: repeated runs grouped
def test_runs_of_one_configuration_are_fitted_as_their_weighted_mean_with_the_same_answer():
    from perflaw.law.forms import FORMS
    from perflaw.law.solve import _solve, solve
    from perflaw.law.synthetic import synthetic_runs
    from perflaw.law.table import build_law_data

    table = pd.concat([synthetic_runs(noise=0.003, seed=s) for s in range(5)], ignore_index=True)
    data = build_law_data(table, "ndcg@10", FORMS["performance_code"].columns)
    spec = FORMS["performance_code"].specify(data)
    grouped = solve(spec, data.X, data.panel, data.y)
    every_run = _solve(spec, data.X, data.panel, data.y, np.ones(data.n), "linear", None, 6, (), True, True)
    np.testing.assert_allclose(grouped.theta, every_run.theta, rtol=1e-6, atol=1e-9)
    assert grouped.cost == pytest.approx(every_run.cost, rel=1e-9)


def test_a_table_of_a_hundred_thousand_runs_fits():
    from perflaw.law.synthetic import synthetic_runs

    base = synthetic_runs(noise=0.003, seed=0)
    rng = np.random.default_rng(0)
    table = base.loc[rng.integers(0, len(base), 100_000)].reset_index(drop=True)
    table["ndcg@10"] += rng.normal(0, 0.003, len(table))
    law = perflaw.fit(table, metric="ndcg@10", n_boot=20)
    assert law.n_runs == 100_000 and law.convergence["fitted_points"] == law.n_configs == len(base)
    assert law.converged
