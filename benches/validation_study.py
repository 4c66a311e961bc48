"""The real-data study of docs/validation.md: train, collect, recommend.

Runs the sweeps of docs/specs/validation-{beauty,toys,dropout}.toml (each resumes
where it stopped: finished runs are kept in perflaw-out/validation-*/results.sqlite),
writes the measured runs to docs/validation/runs.csv (the grid, dropout 0) and
docs/validation/dropout.csv (the trainer's default dropout beside the same sizes at 0),
then fits and recommends with ``perflaw.report.make_report`` into
perflaw-out/validation-report/ and prints the summary.

    python benches/validation_study.py            # train what is missing, then report
    python benches/validation_study.py --parallel # the two datasets' sweeps side by side
    python benches/validation_study.py --report-only

Needs ../shared/data/beauty.txt and toys.txt (not part of the project).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "docs" / "specs"
OUT = ROOT / "perflaw-out"
TABLES = ROOT / "docs" / "validation"
COLUMNS = ["dataset", "fraction", "max_len", "model", "n_items", "layers", "dim", "seed", "dropout", "params", "d_prime",
           "d_prime_pooled", "block_entropy", "data_users", "data_tokens", "hr@10", "ndcg@10", "mrr",
           "best_epoch", "epochs_run", "wall_s"]


def sweep_command(name: str) -> list[str]:
    return [sys.executable, "-m", "perflaw.cli", "sweep", str(SPECS / f"validation-{name}.toml"),
            "--out", str(OUT / f"validation-{name}"), "--torch-threads", "1", "--no-progress"]


def train(parallel: bool) -> None:
    names = ["beauty", "toys", "dropout"]
    if parallel:
        procs = [subprocess.Popen(sweep_command(n)) for n in names[:2]]
        codes = [p.wait() for p in procs]
        codes.append(subprocess.call(sweep_command("dropout")))
    else:
        codes = [subprocess.call(sweep_command(n)) for n in names]
    if any(codes):
        raise SystemExit(f"a sweep failed (exit codes {codes}); re-run to retry the failed runs")


def collect() -> tuple[pd.DataFrame, pd.DataFrame]:
    from perflaw.store import open_results

    grid = pd.concat([open_results(OUT / f"validation-{n}").frame() for n in ("beauty", "toys")])
    dropout = open_results(OUT / "validation-dropout").frame()
    TABLES.mkdir(parents=True, exist_ok=True)
    grid = grid[COLUMNS].sort_values(["dataset", "layers", "dim", "seed"])
    dropout = dropout[COLUMNS].sort_values(["dataset", "layers", "dim", "seed"])
    grid.to_csv(TABLES / "runs.csv", index=False, float_format="%.6g")
    dropout.to_csv(TABLES / "dropout.csv", index=False, float_format="%.6g")
    return grid, dropout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parallel", action="store_true", help="run the two datasets' sweeps at the same time")
    parser.add_argument("--report-only", action="store_true", help="do not train; report the runs stored")
    args = parser.parse_args()
    if not args.report_only:
        train(args.parallel)
    grid, dropout = collect()
    from perflaw.report import make_report

    report = make_report(TABLES / "runs.csv", OUT / "validation-report", title="perflaw: Beauty and Toys (25% of users)")
    print(report.summary)
    at_zero = grid[grid["seed"] == 0].set_index(["dataset", "layers", "dim"])["ndcg@10"]
    table = dropout.set_index(["dataset", "layers", "dim"])[["ndcg@10"]].rename(columns={"ndcg@10": "default dropout"})
    table["dropout 0"] = at_zero.reindex(table.index)
    print("test NDCG@10, seed 0: the trainer's default dropout against 0\n" + table.to_string())


if __name__ == "__main__":
    main()
