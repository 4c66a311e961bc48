"""The recommendation rule and the backtest, on constructed tables with a known outcome.

Each outcome of the rule (docs/law.md) has a table built to reach it: a clean
inverted U, a flat surface, a baseline that wins the backtest, a fit that did
not converge or has unidentified parameters, a search beyond the trained sizes,
and tables too small to answer at all. The backtest's numbers are checked
against an independent refit loop written out with NumPy.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

import perflaw
from perflaw.cli import main
from perflaw.law import answer_panels
from perflaw.law.synthetic import DECAY_FREE, synthetic_runs


@pytest.fixture(scope="module")
def peaked():
    """The paper's form with an interior optimum near N = 12, d = 56; two seeds, very little noise."""
    return perflaw.fit(synthetic_runs(noise=0.00005, seeds=2, seed=1), form="performance", n_boot=40)


def test_clean_inverted_u_gives_the_laws_interior_optimum_with_high_confidence(peaked):
    rec = peaked.recommend()
    assert (rec.source, rec.confidence) == ("law", "high")
    assert (rec.layers, rec.dim) == (12, 56)  # not a trained size: the law interpolates
    assert not rec.extrapolated and rec.next_runs == ()
    assert rec.interval[0] <= rec.predicted <= rec.interval[1]
    assert rec.predicted == pytest.approx(peaked.predict(N=12, d=56))
    best = rec.best_measured
    # the gain is the law's own difference between the answer and the best size trained
    assert rec.gain == pytest.approx(rec.predicted - peaked.predict(N=best["layers"], d=best["dim"]))
    assert rec.gain > rec.seed_noise  # a gain larger than the noise is reported as such
    # the brute-force best of the law over the candidate grid is the answer
    N, d = (a.ravel() for a in np.meshgrid(np.arange(4, 33), np.r_[25, 32:101:8, 50, 75, 100], indexing="ij"))
    values = peaked.predict(N=N, d=d)
    assert (N[np.argmax(values)], d[np.argmax(values)]) == (rec.layers, rec.dim)


def test_a_gain_within_the_seed_noise_is_no_gain():
    law = perflaw.fit(synthetic_runs(noise=0.0015, seeds=2, seed=6), form="performance", n_boot=30)
    rec = law.recommend()
    assert rec.source == "best measured" and rec.gain == 0.0
    assert (rec.layers, rec.dim) == (rec.best_measured["layers"], rec.best_measured["dim"])
    assert "promises no gain beyond the seed-to-seed noise" in rec.reasons[0]


def _flat_table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    N, d = (a.ravel() for a in np.meshgrid([1, 2, 4, 8], [16, 32, 64, 128]))
    return pd.concat([
        pd.DataFrame({"dataset": "flat", "max_len": 50, "layers": N, "dim": d, "d_prime": 5.0, "seed": seed,
                      "ndcg@10": 0.05 + rng.normal(0, 0.001, len(N))})
        for seed in (0, 1)
    ])


def test_flat_surface_falls_back_to_the_best_measured_size_with_low_confidence():
    law = perflaw.fit(_flat_table(), n_boot=30)
    rec = law.recommend()
    assert (rec.confidence, rec.source) == ("low", "best measured")
    assert (rec.layers, rec.dim) == (rec.best_measured["layers"], rec.best_measured["dim"])
    assert rec.predicted == rec.best_measured["value"] and rec.gain == 0.0
    assert rec.interval[0] < rec.predicted < rec.interval[1]
    assert rec.next_runs  # something to train next is always named below high confidence


def test_a_baseline_that_wins_the_backtest_makes_the_answer_low_and_falls_back():
    law = perflaw.fit(synthetic_runs("scaling", DECAY_FREE, noise=0.004, seed=0), n_boot=0)
    bt = law.backtest["syn0|50"]
    assert bt.winner == "scaling" and not bt.law_wins
    rec = law.recommend()
    assert (rec.confidence, rec.source) == ("low", "best measured")
    assert any("predicts no better than the simpler scaling baseline" in r for r in rec.reasons)


@pytest.mark.parametrize("change, words", [
    ({"converged": False, "convergence": {"message": "the maximum number of function evaluations is exceeded"}},
     "did not converge"),
    ({"unidentified": ["w3", "p1"]}, "do not pin down"),
])
def test_unconverged_or_unidentified_fits_fall_back_with_low_confidence(peaked, change, words):
    rec = dataclasses.replace(peaked, **change).recommend()
    assert (rec.confidence, rec.source) == ("low", "best measured")
    assert words in rec.reasons[0]


def test_reach_beyond_the_trained_sizes_is_never_high_and_says_so():
    # decay-free in N, so the law's best N lies beyond the largest trained one
    law = perflaw.fit(synthetic_runs(noise=0.0002, seeds=2, seed=1, layers=(2, 3, 4, 6, 8)), form="performance",
                      n_boot=20)
    inside, beyond = law.recommend(), law.recommend(reach=2.0)
    assert inside.layers <= 8 and not inside.extrapolated
    assert beyond.confidence != "high" and beyond.reach == 2.0
    assert any("beyond the trained sizes" in r for r in beyond.reasons)
    if beyond.layers > 8:
        assert beyond.extrapolated
    with pytest.raises(ValueError, match="reach must be a number >= 1"):
        law.recommend(reach=0.5)


def test_edge_optimum_is_medium_and_proposes_the_next_size():
    law = perflaw.fit(synthetic_runs(noise=0.0002, seeds=2, seed=1, layers=(2, 3, 4, 6, 8)), form="performance",
                      n_boot=20)
    rec = law.recommend()
    assert rec.confidence == "medium" and rec.layers == 8
    assert any("largest layers N searched" in r for r in rec.reasons)
    assert {"layers": 16, "dim": rec.dim} == {k: rec.next_runs[0][k] for k in ("layers", "dim")}


def test_bounded_metric_predictions_and_intervals_stay_in_the_unit_interval():
    df = synthetic_runs(noise=0.004, seeds=2, seed=3)
    df["ndcg@10"] = np.minimum(df["ndcg@10"] + 0.93, 1.0)  # an easy dataset: NDCG near 1
    law = perflaw.fit(df, form="performance", n_boot=40)
    N, d = (a.ravel() for a in np.meshgrid(np.arange(4, 33), np.arange(25, 101)))
    value, lower, upper = law.predict(N=N, d=d, interval=True)
    assert np.all((value >= 0) & (value <= 1)) and np.all(upper <= 1) and np.all(lower >= 0)
    rec = law.recommend()
    assert 0 <= rec.interval[0] <= rec.predicted <= rec.interval[1] <= 1
    for record in law.backtest["syn0|50"].held_out:
        assert 0 <= record["lower_90"] <= record["upper_90"] <= 1
        assert 0 <= record["law"] <= 1


# ----------------------------------------------------------- nothing to answer


def test_single_configuration_gets_a_clear_message_and_no_number():
    df = synthetic_runs(noise=0.001, seeds=3, seed=1, layers=(4,), dims=(25,))
    answer = answer_panels(df, n_boot=0)["syn0|50"]
    rec = answer.recommendation
    assert (rec.confidence, rec.source, rec.layers, rec.predicted) == ("low", "none", None, None)
    assert "no recommendation from a law" in rec.reasons[0] and answer.fit is None
    assert "no recommendation" in rec.headline()


def test_constant_metric_gets_no_number():
    df = synthetic_runs(seeds=1, layers=(2, 4, 8), dims=(16, 32, 64))
    df["ndcg@10"] = 0.05
    rec = answer_panels(df, n_boot=0)["syn0|50"].recommendation
    assert (rec.confidence, rec.source, rec.predicted) == ("low", "none", None)
    assert "the same" in rec.reasons[0] or "no recommendation from a law" in rec.reasons[0]


def test_a_table_too_small_to_backtest_is_low_confidence():
    # 6 configurations for 6 parameters: the law fits, but nothing can be held out
    df = synthetic_runs(noise=0.0005, seeds=2, seed=2, layers=(4, 12, 32), dims=(25, 100))
    law = perflaw.fit(df, form="performance", n_boot=10)
    bt = law.backtest["syn0|50"]
    assert not bt.available and "cannot be refitted" in bt.reason
    rec = law.recommend()
    assert (rec.confidence, rec.source, rec.layers, rec.predicted) == ("low", "none", None, None)
    assert "could not be checked on held-out sizes" in rec.reasons[0]
    assert "as evidence only" in rec.headline()


# ------------------------------------------------------- backtest, independently


def test_backtest_numbers_equal_an_independent_refit_loop():
    df = synthetic_runs("scaling", DECAY_FREE, noise=0.002, seeds=2, seed=5)
    df["params"] = 1000 * df["dim"] + 12 * df["layers"] * df["dim"] ** 2
    law = perflaw.fit(df, form="scaling", n_boot=0)
    bt = law.backtest["syn0|50"]
    N, d, y = (df[c].to_numpy(float) for c in ("layers", "dim", "ndcg@10"))
    P = df["params"].to_numpy(float)
    configs = sorted({(n, m) for n, m in zip(N, d)}, key=lambda c: -(1000 * c[1] + 12 * c[0] * c[1] ** 2))
    held_configs = configs[: math.ceil(0.25 * len(configs))]
    held = np.array([(n, m) in held_configs for n, m in zip(N, d)])

    def rel(pred):
        errors = np.abs(pred - y[held]) / y[held]
        return errors.mean(), errors.max()

    A = np.column_stack([np.log(N), np.log(d), np.ones(len(N))])
    coef, *_ = np.linalg.lstsq(A[~held], y[~held], rcond=None)  # D′ = 1: ln D′ = 0
    law_err = rel(A[held] @ coef)
    b, a = np.polyfit(np.log(P[~held]), y[~held], 1)
    loglinear_err = rel(a + b * np.log(P[held]))
    kept = sorted({(n, m) for n, m in zip(N[~held], d[~held])})
    nearest = []
    for n, m in zip(N[held], d[held]):
        dist = [(round(math.log(k[0] / n) ** 2 + math.log(k[1] / m) ** 2, 9), -(1000 * k[1] + 12 * k[0] * k[1] ** 2), k)
                for k in kept]
        k = min(dist)[2]
        nearest.append(y[(N == k[0]) & (d == k[1])].mean())
    nearest_err = rel(np.array(nearest))

    assert bt.n_held == len(held_configs) and bt.n_kept == len(kept)
    # the law and the scaling baseline are solved iteratively: equal to the solver's tolerance
    assert (bt.law["mean_relative_error"], bt.law["max_relative_error"]) == pytest.approx(law_err, rel=1e-6)
    assert tuple(bt.baselines["scaling"].values()) == pytest.approx(law_err, rel=1e-6)  # the same form
    assert tuple(bt.baselines["loglinear"].values()) == pytest.approx(loglinear_err, rel=1e-9)
    assert tuple(bt.baselines["nearest"].values()) == pytest.approx(nearest_err, rel=1e-9)
    within = df.groupby(["layers", "dim"])["ndcg@10"].var(ddof=1)
    assert bt.seed_noise == pytest.approx(math.sqrt(within.mean()), rel=1e-9)


def test_backtest_interval_coverage_is_near_its_level_on_a_correct_law():
    df = synthetic_runs(noise=0.002, seeds=3, seed=9)
    law = perflaw.fit(df, form="performance", n_boot=100)
    bt = law.backtest["syn0|50"]
    assert bt.law_wins
    assert 0.6 <= bt.law["coverage_90"] <= 1.0


# ---------------------------------------------------------------- consistency


def test_fit_recommend_cli_fit_and_report_agree(tmp_path, capsys):
    df = pd.concat([synthetic_runs(noise=0.0005, seeds=2, seed=4),
                    synthetic_runs(noise=0.002, seeds=2, seed=5).assign(dataset="other")])
    table = tmp_path / "runs.csv"
    df.to_csv(table, index=False)
    direct = {label: perflaw.fit(group.reset_index(drop=True), n_boot=20).recommend().to_dict()
              for label, group in ((f"{name}|50", g) for name, g in df.groupby("dataset", sort=False))}
    assert main(["fit", str(table), "--n-boot", "20", "--json"]) == 0
    from_fit = json.loads(capsys.readouterr().out)
    assert main(["report", str(table), "--n-boot", "20", "--json", "--out", str(tmp_path / "rep")]) == 0
    from_report = json.loads(capsys.readouterr().out)
    on_disk = json.loads((tmp_path / "rep" / "fit.json").read_text())
    assert list(from_fit["panels"]) == ["syn0|50", "other|50"]  # the table's order
    for label, rec in direct.items():
        expected = json.loads(json.dumps(rec))
        assert from_fit["panels"][label]["recommendation"] == expected
        assert from_report["panels"][label]["recommendation"] == expected
        assert on_disk["panels"][label]["recommendation"] == expected
    assert from_fit["answers"] == from_report["answers"]


def test_summaries_lead_with_the_answers(tmp_path, capsys):
    df = synthetic_runs(noise=0.0005, seeds=2, seed=4)
    df.to_csv(tmp_path / "runs.csv", index=False)
    assert main(["fit", str(tmp_path / "runs.csv"), "--n-boot", "10"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Recommendations (ndcg@10):"
    assert out[1].startswith("  syn0 (max_len 50): train N = ") and "confidence" in out[1]
    assert out.index("Evidence") < out.index("Fit details")
    report = perflaw.report.make_report(df, tmp_path / "rep", n_boot=10)
    assert report.summary.splitlines()[:2] == out[:2]
    html = (tmp_path / "rep" / "report.html").read_text()
    assert html.index("Recommendations") < html.index("Backtest") < html.index("Fit details")
