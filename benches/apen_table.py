"""Batch ApEn: the Rust kernel against vectorised NumPy and antropy, side by side.

Run:  python benches/apen_table.py [--users 1000000] [--length 50] [--beauty ../shared/data/beauty.txt]

Each measurement runs in a fresh subprocess so that its peak resident memory
(ru_maxrss, above the memory the input data already took) is its own. antropy
is timed on the first --antropy-users sequences and reported per token.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_BEAUTY = HERE.parent.parent / "shared" / "data" / "beauty.txt"

MEASURE = r"""
import json, resource, sys, time
sys.path.insert(0, {here!r})
import numpy as np
from baselines import apen_antropy, apen_numpy, zipf_batch
from perflaw import _core

case, source, users, length, limit = {case!r}, {source!r}, {users}, {length}, {limit}
if source == "zipf":
    offsets, items = zipf_batch(users, length)
else:
    import perflaw
    seqs = perflaw.read_sequences(source)
    offsets, items = np.asarray(seqs.offsets), np.asarray(seqs.items)
if limit:
    offsets = offsets[: limit + 1].copy(); items = items[: offsets[-1]].copy()
kernels = {{
    "rust, 1 thread": lambda: _core.apen(offsets, items, 2, None, 1),
    "rust, 2 threads": lambda: _core.apen(offsets, items, 2, None, 2),
    "numpy": lambda: apen_numpy(offsets, items, 2),
    "antropy": lambda: apen_antropy(offsets, items, 2),
}}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
best = float("inf")
for _ in range(1 if case in ("numpy", "antropy") else 3):
    start = time.perf_counter(); kernels[case](); best = min(best, time.perf_counter() - start)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": best, "users": len(offsets) - 1, "tokens": int(offsets[-1]),
                  "extra_peak_mib": (after - before) / 1024}}))
"""


def measure(case: str, source: str, users: int, length: int, limit: int = 0) -> dict:
    code = MEASURE.format(here=str(HERE), case=case, source=source, users=users, length=length, limit=limit)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(source: str, label: str, users: int, length: int, antropy_users: int) -> list[str]:
    rows = {}
    for case in ("rust, 1 thread", "rust, 2 threads", "numpy", "antropy"):
        rows[case] = measure(case, source, users, length, antropy_users if case == "antropy" else 0)
    ns = {case: r["seconds"] / r["tokens"] * 1e9 for case, r in rows.items()}
    lines = [
        f"\n{label}: {rows['numpy']['users']:,} sequences, {rows['numpy']['tokens']:,} tokens "
        f"(antropy on the first {rows['antropy']['users']:,})",
        "| implementation | sequences/s | ns/token | time / rust 1-thread | extra peak MiB |",
        "|---|---:|---:|---:|---:|",
    ]
    for case, r in rows.items():
        lines.append(
            f"| {case} | {r['users'] / r['seconds']:,.0f} | {ns[case]:,.1f} | "
            f"{ns[case] / ns['rust, 1 thread']:,.2f} | {r['extra_peak_mib']:,.1f} |"
        )
    lines.append(
        f"\nspeed-up 1 -> 2 threads: {ns['rust, 1 thread'] / ns['rust, 2 threads']:.2f}x; "
        f"rust (1 thread) vs numpy: {ns['numpy'] / ns['rust, 1 thread']:.1f}x; "
        f"vs antropy: {ns['antropy'] / ns['rust, 1 thread']:,.0f}x"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--antropy-users", type=int, default=2000)
    parser.add_argument("--beauty", default=str(DEFAULT_BEAUTY))
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}")
    lines = table("zipf", "Zipf synthetic", args.users, args.length, args.antropy_users)
    if Path(args.beauty).exists():
        lines += table(args.beauty, "beauty.txt", 0, 0, args.antropy_users)
    else:
        lines.append(f"\n(beauty not found at {args.beauty}: skipped)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
