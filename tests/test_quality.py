"""ApEn, D′ and coding statistics against slow references, closed forms and properties."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import perflaw
from perflaw import _core
from perflaw.quality import QualityParts, apen_prime
from reference import apen_reference, block_entropy_reference, lz_lambdas_reference

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def families(rng: np.random.Generator) -> dict[str, list[list[int]]]:
    """The sequence families the issue names, several of each."""
    zipf = lambda n: (rng.zipf(1.5, size=n) % 40 + 1).tolist()  # noqa: E731
    return {
        "random": [rng.integers(1, 6, size=rng.integers(0, 40)).tolist() for _ in range(30)],
        "constant": [[7] * n for n in (1, 2, 3, 10, 33)],
        "periodic": [([1, 2, 3] * 20)[:n] for n in (4, 9, 31, 60)],
        "no_repeat": [list(range(1, n + 1)) for n in (1, 2, 3, 5, 50)],
        "markov": [markov_chain(rng, sticky_matrix(4, 0.7), n).tolist() for n in (10, 50, 120)],
        "zipf": [zipf(n) for n in (5, 25, 80)],
    }


def sticky_matrix(k: int, stay: float) -> np.ndarray:
    p = np.full((k, k), (1 - stay) / (k - 1))
    np.fill_diagonal(p, stay)
    return p


def markov_chain(rng: np.random.Generator, p: np.ndarray, n: int) -> np.ndarray:
    """A first-order chain started from its stationary distribution."""
    k = len(p)
    eigvals, eigvecs = np.linalg.eig(p.T)
    pi = np.real(eigvecs[:, np.argmin(np.abs(eigvals - 1))])
    pi /= pi.sum()
    cumulative = np.cumsum(p, axis=1)
    state = rng.choice(k, p=pi)
    out = np.empty(n, dtype=np.int64)
    uniforms = rng.random(n)
    for i in range(n):
        out[i] = state
        state = min(int(np.searchsorted(cumulative[state], uniforms[i], side="right")), k - 1)
    return out + 1


def entropy_rate(p: np.ndarray) -> float:
    eigvals, eigvecs = np.linalg.eig(p.T)
    pi = np.real(eigvecs[:, np.argmin(np.abs(eigvals - 1))])
    pi /= pi.sum()
    logs = np.where(p > 0, np.log(np.where(p > 0, p, 1)), 0.0)
    return float(-(pi[:, None] * p * logs).sum())


# ---------------------------------------------------------------- ApEn
@pytest.mark.parametrize("m", [1, 2, 3])
def test_apen_matches_reference_on_every_family(m):
    rng = np.random.default_rng(m)
    for name, seqs in families(rng).items():
        got = perflaw.apen(seqs, m=m)
        want = np.array([apen_reference(s, m) for s in seqs])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, err_msg=name)
        assert np.array_equal(np.isnan(got), np.isnan(want)), name


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 2**63 - 1) | st.integers(0, 3), max_size=25), min_size=1, max_size=8),
    st.integers(1, 4),
)
def test_apen_property_any_ids(seqs, m):
    got = perflaw.apen(seqs, m=m)
    want = np.array([apen_reference(s, m) for s in seqs])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n, m", [(n, m) for n in (3, 4, 10, 50, 1000) for m in (1, 2, 3) if n > m])
def test_no_repeat_closed_form(n, m):
    got = perflaw.apen([list(range(n))], m=m)[0]
    assert got == pytest.approx(math.log((n - m) / (n - m + 1)), abs=1e-14)


def test_ids_differing_only_beyond_float_precision_are_distinct():
    a, b = 2**63 - 1, 2**63 - 2
    assert float(a) == float(b)
    got = perflaw.apen([[a, b, a, b, a, b, a]], m=1)[0]
    assert got == pytest.approx(apen_reference([a, b, a, b, a, b, a], 1), abs=1e-12)
    assert got != pytest.approx(perflaw.apen([[a] * 7], m=1)[0], abs=1e-3)


def test_absolute_and_max_len():
    seqs = [[1, 2, 3, 4, 5, 1, 2, 1, 2, 2], [3, 1, 3, 1]]
    assert np.allclose(perflaw.apen(seqs, absolute=True), np.abs(perflaw.apen(seqs)), equal_nan=True)
    truncated = perflaw.apen(seqs, m=2, max_len=5)
    want = [apen_reference(s[-5:], 2) for s in seqs]
    np.testing.assert_allclose(truncated, want, atol=1e-12)


def test_results_do_not_depend_on_thread_count(monkeypatch):
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 20, size=rng.integers(0, 60)).tolist() for _ in range(3000)]
    one = perflaw.data_quality(seqs, threads=1)
    two = perflaw.data_quality(seqs, threads=2)
    assert one == two  # every field, bit for bit
    assert np.array_equal(perflaw.apen(seqs, threads=1), perflaw.apen(seqs, threads=2), equal_nan=True)
    monkeypatch.setenv("PERFLAW_NUM_THREADS", "1")
    assert perflaw.data_quality(seqs) == one


# ------------------------------------------------------- D′ and summary
def test_data_quality_matches_a_direct_computation():
    rng = np.random.default_rng(5)
    seqs = [s for group in families(rng).values() for s in group]
    q = perflaw.data_quality(seqs, m=2)
    ref = np.array([apen_reference(s, 2) for s in seqs])
    lengths = np.array([len(s) for s in seqs])
    defined = ~np.isnan(ref)
    valid = defined & (np.abs(np.nan_to_num(ref)) >= 1e-12)
    prime = 1 / np.abs(ref[valid])
    assert q.users == len(seqs) and q.tokens == lengths.sum()
    assert q.excluded == (~valid).sum()
    assert q.excluded_short == (~defined).sum() and q.excluded_zero == (defined & ~valid).sum()
    assert q.apen_mean == pytest.approx(ref[defined].mean(), rel=1e-12)
    assert q.apen_median == pytest.approx(np.median(ref[defined]), rel=1e-12)
    assert q.apen_abs_mean == pytest.approx(np.abs(ref[defined]).mean(), rel=1e-12)
    # ApEn′ = 1/|ApEn| amplifies the last-bit differences of ApEn values near
    # zero (periodic sequences have |ApEn| ~ 1e-4), hence the looser tolerance.
    assert q.apen_prime == pytest.approx(prime.mean(), rel=1e-9)
    assert q.d_prime == pytest.approx((lengths[valid] * prime).sum(), rel=1e-9)
    assert q.d_prime_pooled == pytest.approx(lengths.sum() / np.abs(ref[defined]).mean(), rel=1e-12)
    assert q.block_entropy == pytest.approx(block_entropy_reference(seqs, 2), abs=1e-12)
    lambdas = [lz_lambdas_reference(s) for s in seqs if len(s) >= 2]
    pooled = sum(len(s) * math.log(len(s)) for s in seqs if len(s) >= 2) / sum(map(sum, lambdas))
    assert q.lz_entropy_rate == pytest.approx(pooled, rel=1e-12)


def test_constant_sequences_are_excluded_not_infinite():
    q = perflaw.data_quality([[4] * 20, [1, 2, 3, 4, 5], [9]], m=2)
    assert q.excluded_zero == 1 and q.excluded_short == 1 and q.excluded == 2
    assert math.isfinite(q.d_prime)
    assert q.d_prime == pytest.approx(5 / abs(math.log(3 / 4)))
    assert np.isnan(apen_prime(np.array([1e-13, -1e-13, np.nan]))).all()
    assert apen_prime(np.array([-1e-12]))[0] == pytest.approx(1e12)


def test_shards_merge_exactly_in_any_split():
    rng = np.random.default_rng(11)
    seqs = perflaw.Sequences.from_lists([rng.integers(1, 8, size=rng.integers(0, 30)).tolist() for _ in range(500)])
    whole = QualityParts.compute(seqs, m=2, max_len=20).summarize()
    for cuts in ([250], [1, 2, 499], [100, 200, 300, 400]):
        bounds = [0, *cuts, seqs.n_users]
        parts = [
            QualityParts.compute(perflaw.Sequences.from_lists(seqs.to_lists(original_ids=True)[a:b]), m=2, max_len=20)
            for a, b in zip(bounds[:-1], bounds[1:])
        ]
        merged = QualityParts.combine(parts).summarize()
        for key in ("users", "tokens", "d_prime", "d_prime_pooled", "apen_mean", "apen_median",
                    "lz_entropy_rate", "block_entropy", "block_windows", "excluded"):
            assert getattr(merged, key) == getattr(whole, key), key


def test_window_counts_pickle_and_reject_mismatched_m():
    counts = _core.WindowCounts(2)
    counts.update(np.array([0, 5], dtype=np.int64), np.array([1, 2, 1, 2, 1], dtype=np.int64))
    clone = pickle.loads(pickle.dumps(counts))
    assert clone.conditional_entropy() == counts.conditional_entropy()
    windows, tallies = clone.to_arrays()
    assert windows.tolist() == [[1, 2, 1], [2, 1, 2]] and tallies.tolist() == [2, 1]
    with pytest.raises(ValueError, match="m=2 and m=3"):
        counts.merge(_core.WindowCounts(3))


# ------------------------------------------------------ coding statistics
def test_coding_stats_against_reference():
    rng = np.random.default_rng(3)
    seqs = [s for group in families(rng).values() for s in group]
    stats = perflaw.coding_stats(seqs, m=2)
    for i, s in enumerate(seqs):
        if len(s) >= 2:
            lam = lz_lambdas_reference(s)
            assert stats.lz_entropy_rate[i] == pytest.approx(len(s) * math.log(len(s)) / sum(lam), rel=1e-12)
        else:
            assert math.isnan(stats.lz_entropy_rate[i])
        ref = apen_reference(s, 2)
        if not math.isnan(ref) and abs(ref) >= 1e-12:
            # 1/|ApEn| amplifies last-bit differences where |ApEn| is tiny (periodic sequences)
            assert stats.coding_bound[i] == pytest.approx(len(s) / abs(ref), rel=1e-9)
        else:
            assert math.isnan(stats.coding_bound[i])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 3), max_size=60))
def test_lz_lambda_property(seq):
    got = _core.lz_lambda_sums(np.array([0, len(seq)], dtype=np.int64), np.array(seq, dtype=np.int64))
    assert int(got[0]) == sum(lz_lambdas_reference(seq))


def test_estimates_converge_to_markov_entropy_rate():
    """On a long first-order chain, ApEn(m), the block entropy and LZ approach the entropy rate."""
    rng = np.random.default_rng(2024)
    p = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.25, 0.25, 0.5]])
    rate = entropy_rate(p)
    chain = markov_chain(rng, p, 200_000)
    q = perflaw.data_quality([chain.tolist()], m=2)
    assert q.apen_mean == pytest.approx(rate, rel=0.01)
    assert q.block_entropy == pytest.approx(rate, rel=0.01)
    # LZ converges slowly (its bias shrinks like 1/log n): a looser tolerance.
    assert q.lz_entropy_rate == pytest.approx(rate, rel=0.03)
    # A deterministic (period-3) chain has entropy rate 0, and LZ sees it.
    periodic = perflaw.data_quality([[1, 2, 3] * 20_000], m=2)
    assert periodic.lz_entropy_rate < 0.01 and periodic.block_entropy == 0.0


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: perflaw.apen([[1, 2, 3]], m=0), ValueError, "m must be >= 1"),
        (lambda: perflaw.apen([[1, 2, 3]], m=1.5), TypeError, "m must be an integer"),
        (lambda: perflaw.apen([[1, -2, 3]]), ValueError, "non-negative"),
        (lambda: perflaw.apen([[1.0, 2.0]]), TypeError, "integers"),
        (lambda: perflaw.apen([[1, float("nan")]]), TypeError, "integers"),
        (lambda: perflaw.apen([[2**63]]), ValueError, "2\\*\\*63"),
        (lambda: perflaw.apen([[1, 2]], max_len=0), ValueError, "max_len"),
        (lambda: perflaw.apen([[1, 2]], threads=0), ValueError, "threads"),
        (lambda: perflaw.apen(42), TypeError, "Sequences"),
        (lambda: perflaw.data_quality([]), ValueError, "no sequences"),
    ],
)
def test_bad_input_names_the_problem(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    "offsets, items, match",
    [
        ([0, 3, 2, 3], [1, 2, 3], "non-decreasing"),
        ([1, 3], [1, 2, 3], "start at 0"),
        ([0, 5], [1, 2, 3], "end at len\\(items\\)=3"),
        ([], [1], "start at 0"),
    ],
)
def test_kernel_rejects_ragged_offsets_without_panicking(offsets, items, match):
    with pytest.raises(ValueError, match=match):
        _core.apen(np.array(offsets, dtype=np.int64), np.array(items, dtype=np.int64), 2)
    with pytest.raises(ValueError, match=match):
        _core.lz_lambda_sums(np.array(offsets, dtype=np.int64), np.array(items, dtype=np.int64))


def test_kernel_rejects_wrong_dtype():
    with pytest.raises(TypeError):
        _core.apen(np.array([0, 2], dtype=np.int64), np.array([1.0, 2.0]), 2)


def test_bad_thread_environment(monkeypatch):
    monkeypatch.setenv("PERFLAW_NUM_THREADS", "lots")
    with pytest.raises(ValueError, match="PERFLAW_NUM_THREADS"):
        perflaw.apen([[1, 2, 3]])


# ------------------------------------------------------------ real data
@pytest.mark.skipif(not (SHARED_DATA / "beauty.txt").exists(), reason="../shared/data/beauty.txt is not present")
def test_no_repeat_degeneracy_on_beauty():
    """No user of Amazon 5-core repeats an item, so per-user ApEn is a function of length alone."""
    lines = (SHARED_DATA / "beauty.txt").read_text().split("\n")
    seqs = [list(map(int, line.split()[1:])) for line in lines if line.strip()]
    assert all(len(set(s)) == len(s) for s in seqs)
    values = perflaw.apen(seqs, m=2)
    lengths = np.array([len(s) for s in seqs])
    np.testing.assert_allclose(values, np.log((lengths - 2) / (lengths - 1)), atol=1e-13)
    q = perflaw.data_quality(seqs, m=2)
    # The corpus-level entropy sees the shared structure that per-user ApEn cannot.
    assert q.block_entropy < math.log(q.block_windows)


# ------------------------------------------------------------ streaming
def _write_pairs_parquet(path, seqs, shuffle_seed=None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    users = np.repeat(np.arange(len(seqs)), [len(s) for s in seqs])
    items = np.array([i for s in seqs for i in s], dtype=np.int64)
    order = np.arange(len(items))
    times = np.concatenate([np.arange(len(s)) for s in seqs]).astype(np.int64)
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(len(items))
    table = pa.table({"user": users[order], "item": items[order], "ts": times[order]})
    pq.write_table(table, path, row_group_size=97)


@pytest.mark.parametrize("shuffled", [False, True])
def test_streamed_file_equals_in_memory(tmp_path, shuffled):
    rng = np.random.default_rng(8)
    seqs = [rng.integers(1, 30, size=rng.integers(1, 40)).tolist() for _ in range(400)]
    path = tmp_path / "log.parquet"
    _write_pairs_parquet(path, seqs, shuffle_seed=1 if shuffled else None)
    in_memory = perflaw.data_quality(seqs, m=2, max_len=25)
    streamed = perflaw.data_quality(path, m=2, max_len=25, batch_rows=300, timestamp="ts")
    for key, value in in_memory.to_dict().items():
        # users may come out in another order, so order-dependent float sums may differ in the last bit
        expected = pytest.approx(value, rel=1e-12) if isinstance(value, float) else value
        assert streamed.to_dict()[key] == expected, key


def test_spilled_block_histograms_equal_the_in_memory_table():
    from perflaw.blocks import BlockHistograms, WindowSpill

    rng = np.random.default_rng(4)
    seqs = perflaw.Sequences.from_lists([rng.integers(1, 6, size=rng.integers(0, 30)).tolist() for _ in range(300)])
    for m, max_len in [(1, None), (2, 10), (3, None)]:
        table = _core.WindowCounts(m)
        table.update(seqs.offsets, seqs.items, max_len)
        in_memory = BlockHistograms.from_counts(table)
        with WindowSpill(m, max_len, partitions=7) as spill:
            for start in range(0, seqs.n_users, 64):
                part = seqs.select(np.arange(start, min(start + 64, seqs.n_users)))
                spill.add(part.offsets, part.item_vocab[part.items - 1].astype(np.int64))
            spilled = spill.histograms()
        assert spilled == in_memory
        assert spilled.conditional_entropy() == pytest.approx(table.conditional_entropy(), abs=1e-12)
        want = block_entropy_reference([list(s[-max_len:] if max_len else s) for s in seqs.to_lists()], m)
        assert spilled.conditional_entropy() == pytest.approx(want, abs=1e-12)


@pytest.mark.skipif(not (SHARED_DATA / "beauty.txt").exists(), reason="../shared/data/beauty.txt is not present")
def test_beauty_streamed_equals_in_memory():
    path = SHARED_DATA / "beauty.txt"
    in_memory = perflaw.data_quality(perflaw.read_sequences(path), m=2, max_len=50)
    streamed = perflaw.data_quality(path, m=2, max_len=50, batch_rows=20_000)
    assert streamed == in_memory  # same user order here, so every field is bit-identical
