"""`data_quality` streamed from a large Parquet file: wall time and peak resident memory.

Run:  python benches/stream_table.py [--tokens 100000000] [--length 50] [--tmp DIR]

Writes a Parquet file of (user, item) rows, Zipf items, users' rows
contiguous, in row groups of 1M rows; then, each in a fresh subprocess, runs
data_quality on it with and without the corpus block entropy, and reports
wall seconds, tokens/s and peak RSS (ru_maxrss of the whole process).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

MEASURE = r"""
import json, resource, time
import perflaw
start = time.perf_counter()
q = perflaw.data_quality({path!r}, m=2, block_entropy={block}, batch_rows={batch_rows}, threads={threads})
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "tokens": q.tokens, "users": q.users, "d_prime": q.d_prime,
                  "block_entropy": q.block_entropy,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def write_parquet(path: Path, tokens: int, length: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    users = tokens // length
    group_users = max(1, 1_000_000 // length)
    schema = pa.schema([("user", pa.int64()), ("item", pa.int64())])
    with pq.ParquetWriter(path, schema) as writer:
        for first in range(0, users, group_users):
            n = min(group_users, users - first)
            user = np.repeat(np.arange(first, first + n, dtype=np.int64), length)
            item = (rng.zipf(1.2, size=n * length) % 100_000 + 1).astype(np.int64)
            writer.write_table(pa.table({"user": user, "item": item}, schema=schema))


def measure(path: Path, block: bool, batch_rows: int, threads: int) -> dict:
    code = MEASURE.format(path=str(path), block=block, batch_rows=batch_rows, threads=threads)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=100_000_000)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--batch-rows", type=int, default=2_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tmp", default=None, help="folder for the Parquet file (default: system temp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        path = Path(tmp) / "zipf.parquet"
        write_parquet(path, args.tokens, args.length)
        size_mib = path.stat().st_size / 2**20
        print(f"{args.tokens:,} tokens, {args.tokens // args.length:,} users, Parquet {size_mib:,.0f} MiB, "
              f"threads={args.threads}, batch_rows={args.batch_rows:,}")
        print("| block entropy | seconds | M tokens/s | peak RSS MiB |")
        print("|---|---:|---:|---:|")
        for block in (False, True):
            r = measure(path, block, args.batch_rows, args.threads)
            print(f"| {'on' if block else 'off'} | {r['seconds']:.1f} | {r['tokens'] / r['seconds'] / 1e6:.2f} "
                  f"| {r['peak_rss_mib']:,.0f} |")


if __name__ == "__main__":
    main()
