"""pytest-benchmark suite for the kernels: `python -m pytest benches/ --benchmark-only`.

Each group holds implementations of the same quantity on the same input, so
pytest-benchmark's table shows their ratios side by side.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import apen_antropy, apen_numpy, block_entropy_numpy, lz_sums_numpy, zipf_batch  # noqa: E402
from bench_corpus import spilled_entropy, table_entropy  # noqa: E402

from perflaw import _core  # noqa: E402

OFFSETS, ITEMS = zipf_batch(100_000, 50)


@pytest.mark.benchmark(group="apen 100k x 50 zipf")
@pytest.mark.parametrize("threads", [1, 2])
def test_apen_rust(benchmark, threads):
    benchmark(_core.apen, OFFSETS, ITEMS, 2, None, threads)


@pytest.mark.benchmark(group="apen 100k x 50 zipf")
def test_apen_numpy(benchmark):
    benchmark.pedantic(apen_numpy, args=(OFFSETS, ITEMS, 2), rounds=2)


@pytest.mark.benchmark(group="apen 500 x 50 zipf")
def test_apen_antropy_small(benchmark):
    benchmark.pedantic(apen_antropy, args=(OFFSETS[:501], ITEMS[: OFFSETS[500]], 2), rounds=1)


@pytest.mark.benchmark(group="apen 500 x 50 zipf")
def test_apen_rust_small(benchmark):
    benchmark(_core.apen, OFFSETS[:501], ITEMS[: OFFSETS[500]], 2, None, 1)


@pytest.mark.benchmark(group="lz sums 100k x 50 zipf")
@pytest.mark.parametrize("threads", [1, 2])
def test_lz(benchmark, threads):
    benchmark(_core.lz_lambda_sums, OFFSETS, ITEMS, None, threads)


@pytest.mark.benchmark(group="lz sums 100k x 50 zipf")
def test_lz_numpy(benchmark):
    benchmark.pedantic(lz_sums_numpy, args=(OFFSETS, ITEMS), rounds=2)


@pytest.mark.benchmark(group="block entropy 100k x 50 zipf")
@pytest.mark.parametrize("threads", [1, 2])
def test_window_counts(benchmark, threads):
    benchmark.pedantic(table_entropy, args=(OFFSETS, ITEMS, threads), rounds=3)


@pytest.mark.benchmark(group="block entropy 100k x 50 zipf")
def test_window_spill(benchmark):
    benchmark.pedantic(spilled_entropy, args=(OFFSETS, ITEMS, 2), rounds=3)


@pytest.mark.benchmark(group="block entropy 100k x 50 zipf")
@pytest.mark.parametrize("counter", ["numpy", "pyarrow", "polars"])
def test_block_entropy_packed_keys(benchmark, counter):
    benchmark.pedantic(block_entropy_numpy, args=(OFFSETS, ITEMS, 2, counter), rounds=2)


def test_baselines_agree_with_the_kernel():
    offsets, items = OFFSETS[:5001], ITEMS[: OFFSETS[5000]]
    for m in (1, 2, 3):
        np.testing.assert_allclose(apen_numpy(offsets, items, m), _core.apen(offsets, items, m), rtol=0, atol=1e-12)
    rng = np.random.default_rng(1)  # short sequences, many repeats, negative ids
    lengths = rng.integers(0, 40, size=500)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = rng.integers(-3, 3, size=offsets[-1]).astype(np.int64)
    for m in (1, 2):
        np.testing.assert_allclose(apen_numpy(offsets, items, m), _core.apen(offsets, items, m), rtol=0, atol=1e-12)
    assert np.array_equal(lz_sums_numpy(offsets, items), _core.lz_lambda_sums(offsets, items))
    entropy = table_entropy(offsets, items, 1)
    for other in (spilled_entropy(offsets, items, 2, batch_users=70), block_entropy_numpy(offsets, items),
                  block_entropy_numpy(offsets, items, counter="pyarrow"),
                  block_entropy_numpy(offsets, items, counter="polars")):
        assert other == pytest.approx(entropy, rel=1e-12)
