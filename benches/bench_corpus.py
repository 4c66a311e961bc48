"""The corpus statistics beside the strongest simple alternatives: Lempel-Ziv sums and block entropy.

Run the side-by-side table (one process, best of --repeats, ns per token)::

    python benches/bench_corpus.py [--users 200000] [--length 50] [--repeats 3]

* Lempel-Ziv: ``_core.lz_lambda_sums`` (the window walk of ApEn, suffix arrays past
  its budget) against ``baselines.lz_sums_numpy`` (the same closed form, level by
  level with ``np.unique``).
* Block entropy H(X3 | X1, X2): ``_core.WindowCounts`` in memory and
  ``perflaw.blocks.WindowSpill`` (through disk, or held in memory) against packed int64 keys counted by
  ``np.unique``, by ``pyarrow.compute.value_counts`` or by one polars sort on all cores (the
  runs of the sorted keys and of their prefixes).

Every implementation's result is checked against the others before timing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import best_of, block_entropy_numpy, lz_sums_numpy, zipf_batch  # noqa: E402

from perflaw import _core  # noqa: E402
from perflaw.blocks import WindowSpill  # noqa: E402


def table_entropy(offsets, items, threads: int) -> float:
    table = _core.WindowCounts(2)
    table.update(offsets, items, None, threads)
    return table.conditional_entropy()


def spilled_entropy(offsets, items, threads: int, memory: int = 0, batch_users: int = 40_000) -> float:
    """Through ``WindowSpill`` in batches: every batch to disk (memory 0), or all held in memory."""
    with WindowSpill(2, partitions=64, memory=memory) as spill:
        for first in range(0, len(offsets) - 1, batch_users):
            last = min(first + batch_users, len(offsets) - 1)
            part = offsets[first : last + 1]
            spill.add(part - part[0], items[part[0] : part[-1]], threads)
        return spill.histograms(workers=threads).conditional_entropy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    offsets, items = zipf_batch(args.users, args.length)
    tokens = len(items)
    lz = _core.lz_lambda_sums(offsets, items, None, 1)
    assert np.array_equal(lz, lz_sums_numpy(offsets, items))
    assert np.array_equal(lz, _core.lz_lambda_sums(offsets, items, None, 2))
    h = table_entropy(offsets, items, 1)
    for other in (spilled_entropy(offsets, items, 2), block_entropy_numpy(offsets, items),
                  block_entropy_numpy(offsets, items, counter="pyarrow"),
                  block_entropy_numpy(offsets, items, counter="polars")):
        assert abs(other - h) <= 1e-12 * abs(h), (other, h)
    groups = {
        "Lempel-Ziv sums": {
            "perflaw, 1 thread": lambda: _core.lz_lambda_sums(offsets, items, None, 1),
            "perflaw, 2 threads": lambda: _core.lz_lambda_sums(offsets, items, None, 2),
            "numpy (closed form, np.unique per level), 1 thread": lambda: lz_sums_numpy(offsets, items),
        },
        "block entropy H(X3|X1,X2)": {
            "perflaw in memory (WindowCounts), 1 thread": lambda: table_entropy(offsets, items, 1),
            "perflaw in memory (WindowCounts), 2 threads": lambda: table_entropy(offsets, items, 2),
            "perflaw spilled to disk (WindowSpill), 2 threads": lambda: spilled_entropy(offsets, items, 2),
            "perflaw partitioned in memory (WindowSpill, memory=1 GiB), 2 threads":
                lambda: spilled_entropy(offsets, items, 2, memory=1 << 30),
            "numpy (packed keys, np.unique)": lambda: block_entropy_numpy(offsets, items),
            "pyarrow (packed keys, value_counts)": lambda: block_entropy_numpy(offsets, items, counter="pyarrow"),
            f"polars (packed keys, one sort, {os.cpu_count()} threads)":
                lambda: block_entropy_numpy(offsets, items, counter="polars"),
        },
    }
    load = os.getloadavg()
    print(f"{args.users:,} sequences x {args.length} Zipf(1.2) items = {tokens:,} tokens; best of {args.repeats}; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPUs; results checked equal")
    for title, cases in groups.items():
        ns = {name: best_of(fn, args.repeats) / tokens * 1e9 for name, fn in cases.items()}
        base = min(value for name, value in ns.items() if not name.startswith("perflaw"))
        print(f"\n{title}\n\n| implementation | ns/token | best alternative's time / this |\n|---|---:|---:|")
        for name, value in ns.items():
            print(f"| {name} | {value:.1f} | {base / value:.1f}x |")


if __name__ == "__main__":
    main()
