"""Sweep machinery overhead per run, and the wall time of `perflaw demo`.

Run:  python benches/sweep_table.py [--demo]

The overhead is everything a sweep does besides training and measuring the
data: spec expansion, run keys, store transactions, progress. It is measured
on a real sweep of small CPU runs as (wall − training − data) / training, and
per run in milliseconds; the data stage (loading, D′) is reported apart. --demo also times the full `perflaw demo` (about
10 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from perflaw import sweep

SPEC = {
    "name": "overhead",
    "datasets": [{"name": "medium", "synth": {"level": "medium", "users": 2000, "items": 400, "seed": 1}}],
    "grid": {"layers": [1, 2], "dim": [8, 16, 32]},
    "data": {"max_len": [20]},
    "train": {"epochs": 3, "device": "cpu", "batch_size": 128, "warmup_steps": 10, "patience": None},
}


def overhead() -> None:
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        spec = sweep.load_spec(SPEC)
        summary = sweep.run_sweep(spec, tmp, progress=False, log=lambda _: None)
        runs = summary.finished + summary.failed
        machinery = summary.wall_s - summary.train_s - summary.data_s
        print(f"{runs} runs: wall {summary.wall_s:.2f} s, training {summary.train_s:.2f} s, "
              f"data loading and D′ {summary.data_s:.2f} s, machinery {machinery:.3f} s = "
              f"{100 * summary.overhead:.2f}% of the training time ({1000 * machinery / runs:.1f} ms per run)")
        started = time.perf_counter()
        again = sweep.run_sweep(spec, tmp, progress=False, log=lambda _: None)
        print(f"re-running the finished sweep: {again.skipped} runs skipped in {time.perf_counter() - started:.2f} s")


def demo() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "perflaw.cli", "demo", "--out", str(Path(tmp) / "demo"),
                        "--no-progress"], check=True, stdout=subprocess.DEVNULL)
        print(f"perflaw demo: {time.perf_counter() - started:.0f} s wall")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", action="store_true", help="also time the full demo (~10 minutes)")
    args = parser.parse_args()
    overhead()
    if args.demo:
        demo()
