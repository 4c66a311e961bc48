"""Results tables: the three file formats, failed runs, and clear errors for bad tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import perflaw
from perflaw.law.synthetic import synthetic_runs
from perflaw.law.table import read_table


@pytest.fixture()
def runs() -> pd.DataFrame:
    return synthetic_runs(noise=0.001, seeds=2, seed=4)


def test_csv_jsonl_and_parquet_give_the_same_fit(runs, tmp_path):
    runs.to_csv(tmp_path / "r.csv", index=False)
    # json.dumps writes floats exactly (pandas' to_json rounds to 10 digits)
    lines = [json.dumps(row) for row in runs.to_dict(orient="records")]
    (tmp_path / "r.jsonl").write_text("\n".join(lines) + "\n")
    runs.to_parquet(tmp_path / "r.parquet", index=False)
    fits = [
        perflaw.fit(tmp_path / name, form="scaling", n_boot=0, holdout=False)
        for name in ("r.csv", "r.jsonl", "r.parquet")
    ]
    for other in fits[1:]:
        assert other.fingerprint == fits[0].fingerprint
        assert other.params == fits[0].params


def test_failed_runs_are_ignored(runs):
    bad = runs.copy()
    bad.loc[:5, "status"] = "failed"
    bad.loc[:5, "ndcg@10"] = np.nan  # a failed run has no metric; must not matter
    assert len(read_table(bad)) == len(runs) - 6
    law = perflaw.fit(bad, form="scaling", n_boot=0, holdout=False)
    assert law.n_runs == len(runs) - 6


def test_metric_name_is_case_insensitive(runs):
    law = perflaw.fit(runs.rename(columns={"ndcg@10": "NDCG@10"}), form="scaling", metric="ndcg@10", n_boot=0, holdout=False)
    assert law.metric == "NDCG@10"


def test_missing_metric_column(runs):
    with pytest.raises(ValueError, match=r"metric column 'hr@10' not in the table.*ndcg@10"):
        perflaw.fit(runs, metric="hr@10", n_boot=0)


def test_missing_variable_column(runs):
    with pytest.raises(ValueError, match=r"missing columns for: N \(looked for 'layers', 'N'\)"):
        perflaw.fit(runs.drop(columns="layers"), n_boot=0)


def test_tokens_stand_in_for_d_prime(runs):
    law = perflaw.fit(runs.drop(columns="d_prime").assign(tokens=5e6), form="scaling", n_boot=0, holdout=False)
    assert law.data.columns["D"] == "tokens"


def test_nan_in_a_used_column(runs):
    bad = runs.copy()
    bad.loc[7, "dim"] = np.nan
    with pytest.raises(ValueError, match=r"column 'dim' has 1 NaN or infinite value\(s\), first in row 7"):
        perflaw.fit(bad, n_boot=0)


def test_non_numeric_value(runs):
    bad = runs.astype({"ndcg@10": object})
    bad.loc[3, "ndcg@10"] = "oops"
    with pytest.raises(ValueError, match=r"non-numeric value 'oops' in row 3"):
        perflaw.fit(bad, n_boot=0)


@pytest.mark.parametrize("column, value", [("layers", 0), ("dim", -25), ("d_prime", 0.0)])
def test_non_positive_variables(runs, column, value):
    bad = runs.copy()
    bad.loc[2, column] = value
    with pytest.raises(ValueError, match=rf"must be positive, found {float(value)!r} in row 2"):
        perflaw.fit(bad, n_boot=0)


def test_fewer_points_than_parameters():
    small = synthetic_runs(layers=(4, 8), dims=(25, 50))  # 4 configurations
    with pytest.raises(ValueError, match=r"4 runs are fewer than its 6 parameters"):
        perflaw.fit(small, form="performance", n_boot=0)
    seeds = synthetic_runs(layers=(4, 8), dims=(25, 50), seeds=3)  # 12 runs, still 4 configurations
    with pytest.raises(ValueError, match=r"4 distinct configurations are fewer than its 6 parameters"):
        perflaw.fit(seeds, form="performance", n_boot=0)


def test_single_value_of_a_fitted_variable():
    with pytest.raises(ValueError, match=r"variable d \(column 'dim'\) has a single distinct value 50.0"):
        perflaw.fit(synthetic_runs(dims=(50,)), n_boot=0)


def test_no_finished_runs(runs):
    with pytest.raises(ValueError, match="no finished runs"):
        perflaw.fit(runs.assign(status="failed"), n_boot=0)


def test_unreadable_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="results table not found"):
        perflaw.fit(tmp_path / "missing.csv")
    (tmp_path / "r.xlsx").write_text("x")
    with pytest.raises(ValueError, match=r"unknown extension '.xlsx'"):
        perflaw.fit(tmp_path / "r.xlsx")
    with pytest.raises(TypeError, match="DataFrame or a path"):
        perflaw.fit(42)


def test_bad_options_are_named(runs):
    with pytest.raises(TypeError, match="unexpected keyword argument 'n_bot'"):
        perflaw.fit(runs, n_bot=3)
    with pytest.raises(ValueError, match=r"loss must be one of .* got 'l2'"):
        perflaw.fit(runs, loss="l2")
    with pytest.raises(ValueError, match=r"trust_region\['N'\] must satisfy 0 < low < high"):
        perflaw.fit(runs, trust_region={"N": (10, 4)})


def test_a_sweep_results_store_is_read(runs, tmp_path):
    sweep = pytest.importorskip("perflaw.sweep")
    store = sweep.ResultStore(tmp_path / "results.sqlite")
    for i, row in enumerate(runs.drop(columns="status").to_dict(orient="records")):
        store.record(f"run{i}", row, status="ok")
    store.record("broken", {"layers": 3, "error": "out of memory"}, status="failed")
    from_folder = perflaw.fit(tmp_path, form="scaling", n_boot=0, holdout=False)
    from_frame = perflaw.fit(runs, form="scaling", n_boot=0, holdout=False)
    assert from_folder.n_runs == len(runs)
    assert from_folder.params == pytest.approx(from_frame.params, rel=1e-12)


@pytest.mark.parametrize("suffix", [".pq", ".parq"])
def test_every_parquet_suffix_of_the_data_readers_is_read(runs, tmp_path, suffix):
    # One list of Parquet suffixes (perflaw.ingest.PARQUET_SUFFIXES): a table
    # saved as .parq loads here as `perflaw quality x.parq` reads data.
    from perflaw.ingest import PARQUET_SUFFIXES

    assert suffix in PARQUET_SUFFIXES
    runs.to_parquet(tmp_path / "r.parquet", index=False)
    runs.to_parquet(tmp_path / f"r{suffix}", index=False)
    fits = [perflaw.fit(tmp_path / name, form="scaling", n_boot=0, holdout=False) for name in ("r.parquet", f"r{suffix}")]
    assert fits[1].fingerprint == fits[0].fingerprint
    assert fits[1].params == fits[0].params
    assert len(read_table(tmp_path / f"r{suffix}")) == len(runs)
