"""Law forms: formulas against direct NumPy, derivatives against differences,
the exact-linear-solve bases against the forms, custom callables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from perflaw.law import FORMS, custom_form, get_form
from perflaw.law.forms import _code_term, _invert_code_term
from perflaw.law.synthetic import synthetic_runs
from perflaw.law.table import build_law_data


def _data(form: str, d_primes=(1.0,), **kw):
    df = synthetic_runs(d_primes=d_primes, noise=0.001, **kw)
    return build_law_data(df, "ndcg@10", get_form(form).required_columns(**kw.get("opts", {})))


N = np.array([4.0, 8.0, 32.0])
d = np.array([25.0, 50.0, 100.0])
D = np.array([2.0, 5.0, 7.0])


def test_performance_matches_the_written_formula():
    p = {"w1": 0.3, "w2": -0.2, "w3": -0.7, "w4": 0.4, "p1": -0.05, "b": 0.1, "p2": 0.3, "w5": 1.5}
    expected = (
        p["w1"] * (np.log(N) + p["p1"] / N ** p["w3"])
        + p["w2"] * (np.log(d) + p["p1"] / d ** p["w4"])
        + (np.log(D) + p["p2"] / D ** p["w5"])
        + p["b"]
    )
    np.testing.assert_allclose(FORMS["performance"].predict(p, N=N, d=d, D=D), expected, rtol=1e-13)


def test_performance_code_matches_the_authors_parametrisation():
    p = {"w1": 0.3, "w2": -0.2, "w3": -0.3, "w4": 0.4, "w5": 0.8, "b": 0.1}
    expected = (
        p["w1"] * (-1 / (2 * N ** p["w3"]) - p["w3"] * np.log(N))
        + p["w2"] * (-1 / (2 * d ** p["w4"]) - p["w4"] * np.log(d))
        + (-1 / (2 * D ** p["w5"]) - p["w5"] * np.log(D))
        + p["b"]
    )
    np.testing.assert_allclose(FORMS["performance_code"].predict(p, N=N, d=d, D=D), expected, rtol=1e-13)


def test_scaling_and_chinchilla_formulas():
    p = {"w1": 0.3, "w2": -0.2, "b": 0.1}
    np.testing.assert_allclose(
        FORMS["scaling"].predict(p, N=N, d=d, D=D), 0.3 * np.log(N) - 0.2 * np.log(d) + np.log(D) + 0.1
    )
    c = {"E": 1.7, "A": 400.0, "alpha": 0.34, "B": 410.0, "beta": 0.28}
    Np, Dt = np.array([1e6, 1e8]), np.array([1e9, 1e10])
    np.testing.assert_allclose(
        FORMS["chinchilla"].predict(c, N=Np, D=Dt), 1.7 + 400 * Np ** -0.34 + 410 * Dt ** -0.28
    )


def test_code_term_peak_and_inverse():
    # −1/(2x^w) − w ln x peaks at x^w = 1/2 with value ln 2 − 1, for any w > 0.
    for w in (0.3, 1.0, 2.5):
        x_peak = 0.5 ** (1 / w)
        assert _code_term(np.array([x_peak]), w)[0] == pytest.approx(math.log(2) - 1, abs=1e-12)
        for target in (-1.0, -3.0, -12.0):
            x = _invert_code_term(target, w)
            assert x > x_peak
            assert _code_term(np.array([x]), w)[0] == pytest.approx(target, abs=1e-9)


@pytest.mark.parametrize(
    "form, options, d_primes",
    [
        ("performance", {}, (1.0,)),
        ("performance", {}, (2.0, 5.0, 9.0)),
        ("performance_code", {}, (2.0, 5.0)),
        ("performance_code", {"D": "free"}, (2.0, 5.0)),
        ("scaling", {}, (2.0, 5.0)),
        ("scaling", {"D": "free"}, (2.0, 5.0)),
    ],
)
def test_analytic_derivatives_match_central_differences(form, options, d_primes):
    df = synthetic_runs(d_primes=d_primes, noise=0.001)
    data = build_law_data(df, "ndcg@10", FORMS[form].required_columns(**options))
    spec = FORMS[form].specify(data, **options)
    rng = np.random.default_rng(3)
    theta = rng.uniform(0.2, 1.2, spec.n_params) * rng.choice([-1, 1], spec.n_params)
    for i, name in enumerate(spec.names):
        if name.startswith("D"):
            theta[i] = abs(theta[i]) * 10
    J = spec.jacobian(theta, data.X, data.panel)
    for i in range(spec.n_params):
        h = 1e-6 * max(1.0, abs(theta[i]))
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        numeric = (spec.predict(up, data.X, data.panel) - spec.predict(down, data.X, data.panel)) / (2 * h)
        np.testing.assert_allclose(J[:, i], numeric, rtol=1e-5, atol=1e-8 * np.abs(numeric).max() + 1e-12)

    # the exact-linear-solve basis reproduces the form, and its derivatives are right
    if spec.basis is None or spec.grid.shape[1] == 0:
        return
    g = spec.grid[len(spec.grid) // 3]
    A, offset = spec.basis(g[None, :], data.X, data.panel)
    coef = rng.normal(size=A.shape[2])
    if form == "performance_code" and options.get("D") == "free":
        coef[2:] = -rng.uniform(1.5, 3.0, A.shape[2] - 2)  # offsets reachable by the data term
    theta = spec.assemble(g, coef)
    np.testing.assert_allclose(spec.predict(theta, data.X, data.panel), A[0] @ coef + offset[0], rtol=1e-9, atol=1e-12)
    dA, doff = spec.basis_jac(g, data.X, data.panel)
    for j in range(len(g)):
        h = 1e-6 * max(1.0, abs(g[j]))
        e = np.zeros_like(g)
        e[j] = h
        A1, o1 = spec.basis((g + e)[None, :], data.X, data.panel)
        A0, o0 = spec.basis((g - e)[None, :], data.X, data.panel)
        scale = max(np.abs(dA[j]).max(), 1e-12)
        np.testing.assert_allclose((A1[0] - A0[0]) / (2 * h), dA[j], atol=1e-6 * scale)
        np.testing.assert_allclose((o1[0] - o0[0]) / (2 * h), doff[j], atol=1e-6 * max(np.abs(doff[j]).max(), 1e-12))


def test_single_panel_holds_d_prime_and_fixes_its_parameters():
    data = build_law_data(synthetic_runs(), "ndcg@10", FORMS["performance"].columns)
    spec = FORMS["performance"].specify(data)
    assert spec.held == {"D": 1.0}
    assert spec.fixed == {"p2": 0.0, "w5": 1.0}
    assert spec.names == ("w1", "w2", "w3", "w4", "p1", "b")


def test_free_d_has_one_parameter_per_panel():
    df = synthetic_runs(d_primes=(2.0, 5.0, 9.0))
    data = build_law_data(df, "ndcg@10", FORMS["performance_code"].required_columns(D="free"))
    spec = FORMS["performance_code"].specify(data, D="free")
    assert spec.names[-3:] == ("D[syn0|50]", "D[syn1|50]", "D[syn2|50]")
    assert spec.per_panel


def test_custom_form_reads_keyword_only_parameters():
    def law(N, d, *, a, alpha, c):
        return c - a * N ** -alpha + 0 * d

    form = custom_form(law, starts={"alpha": (0.5, 1.0)}, bounds={"a": (0, 10)})
    assert form.variables == ("N", "d")
    assert form.param_names == ("a", "alpha", "c")
    np.testing.assert_allclose(form.predict({"a": 2.0, "alpha": 0.5, "c": 1.0}, N=[4.0], d=[1.0]), [0.0])


def test_custom_form_rejects_bad_declarations():
    with pytest.raises(TypeError, match="callable"):
        custom_form(3)
    with pytest.raises(ValueError, match="unknown parameters"):
        custom_form(lambda N, *, a: a * N, p0={"b": 1.0})
    with pytest.raises(ValueError, match="cannot tell variables"):
        custom_form(lambda x, a: a * x)


def test_get_form_errors_name_the_value():
    with pytest.raises(ValueError, match="'nope'"):
        get_form("nope")
    with pytest.raises(TypeError, match="int"):
        get_form(3)
    assert get_form("performance-code").name == "performance_code"


def test_specify_rejects_a_single_value_of_a_fitted_variable():
    df = synthetic_runs(layers=(8,))
    data = build_law_data(df, "ndcg@10", FORMS["performance"].columns)
    with pytest.raises(ValueError, match=r"variable N \(column 'layers'\) has a single distinct value 8.0"):
        FORMS["performance"].specify(data)


def test_chinchilla_needs_positive_loss():
    df = pd.DataFrame({"params": [1e6, 1e7, 1e8], "tokens": [1e9, 1e9, 1e10], "loss": [2.0, 0.0, 1.5]})
    data = build_law_data(df, "loss", FORMS["chinchilla"].columns)
    with pytest.raises(ValueError, match="positive, found 0.0"):
        FORMS["chinchilla"].specify(data)
