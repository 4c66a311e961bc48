"""Loading speed and memory of perflaw.ingest.

Two ways to run it:

* ``pytest benches/bench_io.py`` (pytest-benchmark): reading and streaming
  ../shared/data/beauty.txt.
* ``python benches/bench_io.py [--tokens 10000000] [--batch-rows 1000000]``:
  writes synthetic logs (Zipf items, 5..94 items per user) as sasrec text, CSV,
  Parquet grouped by user and Parquet with shuffled rows, then times
  ``read_sequences`` and ``iter_batches`` on each in a fresh subprocess, so
  that the peak resident memory of each case is its own. Prints a table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BEAUTY = REPO.parent / "shared" / "data" / "beauty.txt"


# ------------------------------------------------------------ pytest-benchmark
def _beauty():
    import pytest

    if not BEAUTY.exists():
        pytest.skip(f"real data not found at {BEAUTY}")
    return BEAUTY


def test_read_beauty(benchmark):
    from perflaw.ingest import read_sequences

    path = _beauty()
    seqs = benchmark(read_sequences, path)
    assert seqs.tokens > 0


def test_stream_beauty(benchmark):
    from perflaw.ingest import iter_batches

    path = _beauty()
    tokens = benchmark(lambda: sum(batch.tokens for batch in iter_batches(path, batch_rows=50_000)))
    assert tokens > 0


# ------------------------------------------------------------------- script
def write_inputs(folder: Path, n_tokens: int, seed: int = 0) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.csv as pv
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 95, size=n_tokens // 50 + 10)
    lengths = lengths[np.cumsum(lengths) <= n_tokens]
    users = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    items = (rng.zipf(1.2, size=len(users)) % 1_000_000).astype(np.int64)
    times = np.arange(len(users), dtype=np.int64)
    paths = {
        "sasrec": folder / "seqs.txt",
        "csv": folder / "log.csv",
        "parquet": folder / "grouped.parquet",
        "parquet-shuffled": folder / "shuffled.parquet",
    }
    table = pa.table({"user": users, "item": items, "t": times})
    pq.write_table(table, paths["parquet"], row_group_size=1_000_000)
    perm = rng.permutation(len(users))
    pq.write_table(table.take(pa.array(perm)), paths["parquet-shuffled"], row_group_size=1_000_000)
    pv.write_csv(table, paths["csv"])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    with open(paths["sasrec"], "w") as out:
        for user in range(len(lengths)):
            chunk = items[offsets[user] : offsets[user + 1]]
            out.write(f"{user} " + " ".join(map(str, chunk.tolist())) + "\n")
    return paths


def measure(mode: str, path: str, options: dict) -> dict:
    """Run in a subprocess: time one read and report the peak RSS."""
    sys.path.insert(0, str(REPO / "python"))
    from perflaw.ingest import iter_batches, read_sequences

    start = time.perf_counter()
    if mode == "read":
        tokens, batches = read_sequences(path, **options).tokens, 1
    else:
        tokens = batches = 0
        for batch in iter_batches(path, **options):
            tokens += batch.tokens
            batches += 1
    seconds = time.perf_counter() - start
    return {"tokens": tokens, "batches": batches, "seconds": seconds, "peak_mb": peak_resident_mb()}


def peak_resident_mb() -> float:
    """This process's peak resident memory. (ru_maxrss would not do: Linux
    carries it over from the parent through fork and exec.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=10_000_000)
    parser.add_argument("--batch-rows", type=int, default=1_000_000)
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], args.measure[1], json.loads(args.measure[2]))))
        return
    cases = [("beauty.txt (real)", "read", "beauty", {}), ("beauty.txt (real)", "stream", "beauty", {})]
    stream = {"batch_rows": args.batch_rows}
    cases += [
        ("sasrec text", "read", "sasrec", {}),
        ("sasrec text", "stream", "sasrec", stream),
        ("csv, grouped", "read", "csv", {"timestamp": "t"}),
        ("csv, grouped", "stream", "csv", {"timestamp": "t", **stream}),
        ("parquet, grouped", "read", "parquet", {}),
        ("parquet, grouped", "stream", "parquet", stream),
        ("parquet, grouped (grouped=True)", "stream", "parquet", {"grouped": True, **stream}),
        ("parquet, grouped, with time", "stream", "parquet", {"timestamp": "t", **stream}),
        ("parquet, shuffled, with time", "read", "parquet-shuffled", {"timestamp": "t"}),
        ("parquet, shuffled, with time", "stream", "parquet-shuffled", {"timestamp": "t", **stream}),
    ]
    with tempfile.TemporaryDirectory(prefix="perflaw-bench-io-") as folder:
        print(f"writing {args.tokens:,} synthetic tokens ...", file=sys.stderr)
        paths = {name: str(p) for name, p in write_inputs(Path(folder), args.tokens).items()}
        paths["beauty"] = str(BEAUTY)
        print(f"{'input':34} {'call':7} {'tokens':>12} {'batches':>8} {'s':>7} {'Mtok/s':>7} {'peak MB':>8}")
        for label, mode, key, options in cases:
            if key == "beauty" and not BEAUTY.exists():
                continue
            out = subprocess.run(
                [sys.executable, __file__, "--measure", mode, paths[key], json.dumps(options)],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout)
            rate = r["tokens"] / r["seconds"] / 1e6
            print(
                f"{label:34} {mode:7} {r['tokens']:>12,} {r['batches']:>8} {r['seconds']:>7.2f} {rate:>7.2f} {r['peak_mb']:>8.0f}"
            )


if __name__ == "__main__":
    main()
