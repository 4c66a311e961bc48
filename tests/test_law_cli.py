"""``perflaw fit`` and ``perflaw plot`` on the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from perflaw.cli import main
from perflaw.commands.law import parse_trust_region
from perflaw.law.synthetic import synthetic_runs

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("law_cli")
    df = synthetic_runs(d_primes=(1.0, 2.0), noise=0.0015, seed=6)
    df.to_csv(folder / "runs.csv", index=False)
    df.to_parquet(folder / "runs.parquet", index=False)
    df.to_json(folder / "runs.jsonl", orient="records", lines=True)
    df[df.dataset == "syn0"].to_csv(folder / "one_panel.csv", index=False)
    return folder


def test_fit_prints_answers_then_evidence_then_details(results, capsys):
    code = main(["fit", str(results / "runs.csv"), "--n-boot", "10", "--budget", "100000"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Recommendations (ndcg@10):"
    assert lines[1].startswith("  syn0 (max_len 50): train N = ") and lines[2].startswith("  syn1 (max_len 50): ")
    assert out.count("=== syn") == 2  # one evidence block per dataset
    for text in ("backtest: fitted on", "loglinear", "nearest", "w1", "95% interval", "R² (in-sample)",
                 "scaling (baseline)", "budget optimum (≤ 1.000e+05 parameters)", "Glossary:"):
        assert text in out
    assert out.index("Evidence") < out.index("Fit details") < out.index("Glossary:")


def test_fit_json_holds_recommendation_backtest_and_fit_per_panel(results, capsys):
    code = main(["fit", str(results / "runs.parquet"), "--n-boot", "5", "--json", "--seed", "3"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    assert payload["metric"] == "ndcg@10" and len(payload["answers"]) == 2
    assert list(payload["panels"]) == ["syn0|50", "syn1|50"]
    for panel in payload["panels"].values():
        assert list(panel)[:3] == ["recommendation", "backtest", "fit"]
        assert panel["recommendation"]["confidence"] in ("high", "medium", "low")
        assert set(panel["backtest"]["baselines"]) == {"scaling", "loglinear", "nearest"}
        assert panel["fit"]["options"]["seed"] == 3 and panel["fit"]["bootstrap"]["n"] == 5


def test_fit_json_one_joint_law(results, capsys):
    code = main(["fit", str(results / "runs.parquet"), "--form", "performance_code", "--D", "free", "--by", "none",
                 "--n-boot", "5", "--no-holdout", "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    # one law over both panels (one free D each), one recommendation per panel
    fit = payload["panels"]["syn0|50"]["fit"]
    assert fit["form"] == "performance_code" and fit["options"]["D"] == "free" and fit["n_params"] == 8
    assert payload["panels"]["syn1|50"]["fit"] == fit
    assert payload["panels"]["syn0|50"]["recommendation"]["confidence"] == "low"  # no backtest was run


def test_fit_json_by_groups(results, capsys):
    assert main(["fit", str(results / "runs.jsonl"), "--form", "scaling", "--by", "dataset", "--n-boot", "0",
                 "--no-holdout", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert sorted(payload["panels"]) == ["syn0|50", "syn1|50"]
    assert all(p["fit"]["form"] == "scaling" for p in payload["panels"].values())


def test_fit_errors_are_clean(results, capsys):
    code = main(["fit", str(results / "runs.csv"), "--metric", "hr@10", "--n-boot", "0"])
    assert code == 2
    assert "perflaw fit: error: metric column 'hr@10' not in the table" in capsys.readouterr().err
    assert main(["fit", str(results / "nope.csv")]) == 2
    assert main(["fit", str(results / "runs.csv"), "--trust-region", "N=4"]) == 2
    assert "needs LOW:HIGH" in capsys.readouterr().err


def test_parse_trust_region():
    assert parse_trust_region("N=4:64,d=16:256") == {"N": (4.0, 64.0), "d": (16.0, 256.0)}
    assert parse_trust_region(None) is None
    with pytest.raises(ValueError, match="must be numbers"):
        parse_trust_region("N=a:b")


def test_plot_writes_png_and_svg(results, tmp_path, capsys):
    out = tmp_path / "figs"
    code = main(["plot", str(results / "one_panel.csv"), "--n-boot", "8", "--no-holdout", "--out", str(out)])
    printed = capsys.readouterr().out.split()
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    for stem in ("curves", "surface", "residuals", "predicted"):
        assert f"{stem}.png" in names and f"{stem}.svg" in names
    assert len(printed) == len(names) == 8
    for name in names:
        data = (out / name).read_bytes()
        if name.endswith(".png"):
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
        else:
            assert b"<svg" in data[:2000]


def test_datasets_whose_names_differ_after_a_dot_keep_their_own_figures(tmp_path, capsys):
    df = synthetic_runs(d_primes=(1.0, 2.0), noise=0.0015, seed=6)
    df["dataset"] = df["dataset"].map({"syn0": "beauty.v1", "syn1": "beauty.v2"})
    df.to_csv(tmp_path / "runs.csv", index=False)
    out = tmp_path / "figs"
    assert main(["plot", str(tmp_path / "runs.csv"), "--n-boot", "0", "--no-holdout", "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    for dataset in ("beauty.v1", "beauty.v2"):
        assert any(n.startswith(dataset) and n.endswith("curves.png") for n in names), names
    assert len(capsys.readouterr().out.split()) == len(names)


def test_module_entry_point_in_a_subprocess(results):
    env = dict(os.environ, PYTHONPATH=str(REPO / "python") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-m", "perflaw.cli", "fit", str(results / "runs.csv"), "--form", "scaling",
         "--n-boot", "0", "--no-holdout", "--json"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["panels"]["syn0|50"]["fit"]["form"] == "scaling"
