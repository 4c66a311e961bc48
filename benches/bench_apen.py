"""The exact-match ApEn(m) kernel against the strongest simple NumPy a competent user would write.

Run the side-by-side table (one process, best of --repeats, ns per token)::

    python benches/bench_apen.py [--users 200000] [--length 50] [--repeats 5]

or the pytest-benchmark groups (smaller input)::

    python -m pytest benches/bench_apen.py --benchmark-only

benches/ is outside the default test run (pyproject's testpaths is tests/).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import apen_numpy as apen_numpy_packed  # noqa: E402
from baselines import zipf_batch as zipf_corpus  # noqa: E402

from perflaw import _core  # noqa: E402


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--m", type=int, default=2)
    args = parser.parse_args()
    offsets, items = zipf_corpus(args.users, args.length)
    tokens = len(items)
    got = _core.apen(offsets, items, args.m, None, 1)
    want = apen_numpy_packed(offsets, items, args.m)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.array_equal(got, _core.apen(offsets, items, args.m, None, 2), equal_nan=True)
    cases = {
        "perflaw, 1 thread": lambda: _core.apen(offsets, items, args.m, None, 1),
        "perflaw, 2 threads": lambda: _core.apen(offsets, items, args.m, None, 2),
        "numpy (packed keys), 1 thread": lambda: apen_numpy_packed(offsets, items, args.m),
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


# pytest-benchmark: `python -m pytest benches/bench_apen.py --benchmark-only`
BENCH_OFFSETS, BENCH_ITEMS = zipf_corpus(50_000, 50)


@pytest.mark.benchmark(group="apen kernel")
@pytest.mark.parametrize("threads", [1, 2])
def test_apen_perflaw(benchmark, threads):
    benchmark(_core.apen, BENCH_OFFSETS, BENCH_ITEMS, 2, None, threads)


@pytest.mark.benchmark(group="apen kernel")
def test_apen_numpy(benchmark):
    benchmark.pedantic(apen_numpy_packed, args=(BENCH_OFFSETS, BENCH_ITEMS, 2), rounds=3)


def test_numpy_baseline_agrees_with_the_kernel():
    offsets, items = BENCH_OFFSETS[:5001], BENCH_ITEMS[: BENCH_OFFSETS[5000]]
    for m in (1, 2, 3):
        np.testing.assert_allclose(apen_numpy_packed(offsets, items, m), _core.apen(offsets, items, m), rtol=0, atol=1e-12)
    rng = np.random.default_rng(1)
    lengths = rng.integers(0, 40, size=500)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = rng.integers(-3, 3, size=offsets[-1]).astype(np.int64)
    for m in (1, 2):
        np.testing.assert_allclose(apen_numpy_packed(offsets, items, m), _core.apen(offsets, items, m), rtol=0, atol=1e-12)


if __name__ == "__main__":
    main()
