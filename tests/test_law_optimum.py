"""Optimum, budget optimum and scaling potential against brute force and closed forms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import perflaw
from perflaw.law.synthetic import DECAY_FREE, synthetic_runs

CODE_TRUTH = {"w1": 0.3, "w2": 0.5, "w3": -0.29, "w4": -0.17, "w5": 1.0, "b": -0.15}


@pytest.fixture(scope="module")
def code_fit():
    df = synthetic_runs("performance_code", CODE_TRUTH, d_primes=(2.0,), noise=0.001, seed=1)
    return perflaw.fit(df, form="performance_code", n_boot=20, holdout=False, seed=2)


def _brute(law, Ns, ds, keep=None):
    N, d = (a.ravel() for a in np.meshgrid(Ns, ds, indexing="ij"))
    value = law.predict(N=N, d=d)
    if keep is not None:
        value = np.where(keep(N, d), value, -np.inf)
    i = int(np.argmax(value))
    return N[i], d[i], value[i]


def test_optimum_is_the_analytic_peak(code_fit):
    # In this parametrisation the N-term peaks at 2^(-1/w3), the d-term at 2^(-1/w4).
    best = code_fit.optimum()
    p = code_fit.params
    assert best.point["N"] == pytest.approx(2 ** (-1 / p["w3"]), rel=1e-4)
    assert best.point["d"] == pytest.approx(2 ** (-1 / p["w4"]), rel=1e-4)
    assert best.status == {"N": "interior", "d": "interior"} and best.interior
    lo, hi = best.point_intervals["N"]
    assert lo <= best.point["N"] <= hi
    assert best.interval[0] <= best.value <= best.interval[1] + 1e-12
    assert best.value == pytest.approx(code_fit.predict(N=best.point["N"], d=best.point["d"]))


def test_integer_optimum_matches_brute_force(code_fit):
    best = code_fit.optimum(integer=True)
    N, d, value = _brute(code_fit, np.arange(4, 33), np.arange(25, 101))
    assert (best.point["N"], best.point["d"]) == (N, d)
    assert best.value == pytest.approx(value)


def test_budget_optimum_matches_brute_force(code_fit):
    def count(n, d):
        return 12 * n * d * d + 1000 * d

    budget = 400_000
    best = code_fit.budget_optimum(budget, params_fn=count)
    N, d, value = _brute(code_fit, np.arange(4, 33), np.arange(25, 101), keep=lambda n, d: count(n, d) <= budget)
    assert (best.point["N"], best.point["d"]) == (N, d)
    assert best.params == count(N, d) <= budget and best.value == pytest.approx(value)
    free_N, free_d, _ = _brute(code_fit, np.arange(4, 33), np.arange(25, 101))
    assert best.binding == (count(free_N, free_d) > budget)
    assert 0 <= best.agreement <= 1 and best.n_replicates == 20
    loose = code_fit.budget_optimum(1e12, params_fn=count)
    assert not loose.binding and (loose.point["N"], loose.point["d"]) == (free_N, free_d)


def test_budget_optimum_counts_with_the_real_model_formula(code_fit):
    sizing = pytest.importorskip("perflaw.sizing")
    budget = 150_000
    best = code_fit.budget_optimum(budget)  # model, n_items and max_len from the table
    expected = sizing.param_count("llama", int(best.point["N"]), int(best.point["d"]), 1000, max_len=50)
    assert best.params == expected <= budget
    assert "param_count(model='llama', n_items=1000, max_len=50" in best.param_count


def test_budget_optimum_errors(code_fit):
    with pytest.raises(ValueError, match="no configuration in the trust region fits max_params=10"):
        code_fit.budget_optimum(10, params_fn=lambda n, d: n * d)
    with pytest.raises(ValueError, match="max_params must be a positive number, got -5"):
        code_fit.budget_optimum(-5, params_fn=lambda n, d: n * d)
    with pytest.raises(TypeError, match="params_fn must be callable"):
        code_fit.budget_optimum(1e6, params_fn=3)
    with pytest.raises(ValueError, match="integer configurations"):
        code_fit.optimum(integer=True, trust_region={"N": (1, 1e5), "d": (1, 1e5)})


def test_scaling_potential_matches_brute_force(code_fit):
    sp = code_fit.scaling_potential(N=4, d=25)
    Ns, ds = np.geomspace(4, 32, 400), np.geomspace(25, 100, 400)
    _, _, best_value = _brute(code_fit, Ns, ds)
    now = code_fit.predict(N=4, d=25)
    assert sp.current == {"N": 4.0, "d": 25.0} and sp.current_value == pytest.approx(now)
    assert sp.gain == pytest.approx(best_value - now, rel=1e-4)
    assert sp.relative_gain == pytest.approx(sp.gain / abs(now))
    lo, hi = sp.gain_interval
    assert 0 <= lo <= hi
    # past the optimum, growing the model only loses: no potential
    assert code_fit.scaling_potential(N=20, d=80).gain == pytest.approx(0.0, abs=1e-12)
    # from the largest measured configuration nothing larger is trusted
    edge = code_fit.scaling_potential()
    assert edge.at_edge and edge.current == {"N": 32.0, "d": 100.0} and edge.gain == 0.0


def test_declared_trust_region_is_respected():
    df = synthetic_runs("scaling", DECAY_FREE, noise=0.001, seed=3)
    law = perflaw.fit(df, form="scaling", n_boot=10, holdout=False)
    best = law.optimum(trust_region={"N": (2, 64), "d": (16, 256)})
    assert best.point == pytest.approx({"N": 64, "d": 256}) and best.status == {"N": "boundary", "d": "boundary"}
    sp = law.scaling_potential(N=32, d=100, trust_region={"N": (4, 64), "d": (25, 100)})
    w1 = law.params["w1"]
    assert sp.best == pytest.approx({"N": 64, "d": 100}) and sp.gain == pytest.approx(w1 * np.log(2), rel=1e-6)
    with pytest.raises(ValueError, match=r"unknown variables \['width'\]"):
        law.optimum(trust_region={"width": (1, 2)})


def test_chinchilla_budget_needs_flops():
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e6, 1e9, 4), np.geomspace(1e8, 1e11, 4)))
    import pandas as pd

    df = pd.DataFrame({"params": N, "tokens": D, "loss": 1.7 + 400 * N**-0.34 + 410 * D**-0.28})
    law = perflaw.fit(df, form="chinchilla", n_boot=0, holdout=False)
    with pytest.raises(ValueError, match="pass flops=C"):
        law.budget_optimum(1e9)


def test_a_metric_that_never_changes_has_no_optimum_anywhere():
    N, d = (a.ravel() for a in np.meshgrid([1, 2, 4, 8], [16, 32, 64, 128]))
    table = pd.DataFrame({"dataset": np.repeat(["x", "y"], 16), "layers": np.tile(N, 2), "dim": np.tile(d, 2),
                          "d_prime": np.repeat([100.0, 200.0], 16), "ndcg@10": 0.05})
    law = perflaw.fit(table, metric="ndcg@10", form="performance", n_boot=5, holdout=False)
    assert any("every run measured the same ndcg@10" in note for note in law.notes)
    best = law.optimum(panel="x")
    assert set(best.status.values()) == {"flat"} and not best.interior
