"""The exact-match ApEn(m) kernel against the strongest simple NumPy a competent user would write.

Run the side-by-side table (one process, best of --repeats, ns per token)::

    python benches/bench_apen.py [--users 200000] [--length 50] [--repeats 5]

The same comparison as pytest-benchmark groups (smaller input, with the check that the
baseline agrees with the kernel) is in ``benches/test_bench_kernels.py``::

    python -m pytest benches/test_bench_kernels.py --benchmark-only -k apen
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import apen_numpy, best_of, zipf_batch  # noqa: E402

from perflaw import _core  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--m", type=int, default=2)
    args = parser.parse_args()
    offsets, items = zipf_batch(args.users, args.length)
    tokens = len(items)
    got = _core.apen(offsets, items, args.m, None, 1)
    want = apen_numpy(offsets, items, args.m)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.array_equal(got, _core.apen(offsets, items, args.m, None, 2), equal_nan=True)
    cases = {
        "perflaw, 1 thread": lambda: _core.apen(offsets, items, args.m, None, 1),
        "perflaw, 2 threads": lambda: _core.apen(offsets, items, args.m, None, 2),
        "numpy (packed keys), 1 thread": lambda: apen_numpy(offsets, items, args.m),
    }
    ns = {name: best_of(fn, args.repeats) / tokens * 1e9 for name, fn in cases.items()}
    load = os.getloadavg()
    print(
        f"ApEn(m={args.m}): {args.users:,} sequences x {args.length} Zipf(1.2) items = {tokens:,} tokens; "
        f"best of {args.repeats}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"{os.cpu_count()} CPUs; max |perflaw - numpy| = {np.nanmax(np.abs(got - want)):.1e}"
    )
    print("| implementation | ns/token | sequences/s | numpy time / this |")
    print("|---|---:|---:|---:|")
    base = ns["numpy (packed keys), 1 thread"]
    for name, value in ns.items():
        print(f"| {name} | {value:.2f} | {args.length and 1e9 / (value * args.length):,.0f} | {base / value:.1f}x |")
    one, two = ns["perflaw, 1 thread"], ns["perflaw, 2 threads"]
    print(f"\n1 -> 2 threads: {one / two:.2f}x")


if __name__ == "__main__":
    main()
