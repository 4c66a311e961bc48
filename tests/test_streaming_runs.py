"""Streaming whole users as raw keys (iter_user_runs), group_raw, QualityParts.from_runs,
the fused Rust kernels (user_stats, exact_sum) and the Rust window spill, each
against an independent reference: pure-Python groupings and counts, closed forms,
math.fsum, or the older kernels they replace."""

from __future__ import annotations

import hashlib
import itertools
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import perflaw
from perflaw import _core
from perflaw.blocks import BlockHistograms, WindowSpill
from perflaw.errors import NotGroupedError, PerflawError, PerflawTypeError
from perflaw.grouping import group_raw, group_rows
from perflaw.ingest import UserRuns, count_rows_hint, iter_batches, iter_user_runs, read_sequences
from perflaw.quality import QualityParts
from perflaw.sequences import Sequences
from reference import apen_reference, block_entropy_reference, lz_lambdas_reference

# An odd 64-bit constant: multiplying by it (mod 2**64) is a bijection of int64,
# so it spreads small ids over the whole range, negatives included, keeping equality.
SPREAD = 0x9E3779B97F4A7C15


def spread(ids: np.ndarray) -> np.ndarray:
    return (ids.astype(np.uint64) * np.uint64(SPREAD)).view(np.int64)


def blake_key(text: str) -> int:
    """The documented stable key of a text id: BLAKE2b-64 of its UTF-8, little-endian, signed."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)


def csr(seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in seqs], out=offsets[1:])
    items = np.array([x for s in seqs for x in s], dtype=np.int64)
    return offsets, items


# ============================================================ logs and references
def grouped_log(seed: int, n_users: int = 300, long_user: int = 2000, max_len: int = 15) -> list[tuple]:
    """(user, item, time) rows, each user's rows contiguous, users in no sorted order.

    Every 7th user has a single row; one user has ``long_user`` rows, so that it
    spans several 4 KiB text chunks (or many 7-row Parquet chunks). Items repeat
    (an alphabet of 40) and a fifth are large ids; times repeat (ties) and are out
    of order within users.
    """
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_len, size=n_users)
    lengths[::7] = 1
    lengths[n_users // 2] = long_user
    user_ids = rng.permutation(10 * n_users)[:n_users]
    users = np.repeat(user_ids, lengths)
    items = rng.integers(0, 40, size=len(users))
    items[::5] = rng.integers(2**40, 2**62, size=len(items[::5]))
    times = rng.integers(0, 4, size=len(users))
    return list(zip(users.tolist(), items.tolist(), times.tolist()))


def reference_runs(rows, with_time: bool = False) -> list[tuple]:
    """Multiset (sorted list) of each user's item tuple: rows grouped by user,
    items by a stable sort on time (file order without times)."""
    groups: dict = {}
    for position, (user, item, time) in enumerate(rows):
        groups.setdefault(user, []).append((time if with_time else 0, position, item))
    return sorted(tuple(item for _, _, item in sorted(group)) for group in groups.values())


def runs_of(batches) -> list[tuple]:
    """Multiset of the users' key tuples over UserRuns batches, each batch checked as CSR."""
    out = []
    for batch in batches:
        assert isinstance(batch, UserRuns)
        assert batch.offsets.dtype == np.int64 and batch.keys.dtype == np.int64
        assert batch.offsets[0] == 0 and batch.offsets[-1] == len(batch.keys) == batch.tokens
        assert (np.diff(batch.offsets) > 0).all()  # every user of a file has an item
        keys, offsets = batch.keys.tolist(), batch.offsets.tolist()
        out += [tuple(keys[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]
    return sorted(out)


def sequences_runs(batches) -> list[tuple]:
    """The same multiset from Sequences batches, through their stable item keys."""
    out = []
    for seqs in batches:
        keys, offsets = seqs.stable_item_keys().tolist(), seqs.offsets.tolist()
        out += [tuple(keys[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]
    return sorted(out)


def write_log(folder: Path, fmt: str, rows, item_type=None) -> Path:
    users, items, times = (list(column) for column in zip(*rows))
    if fmt == "parquet":
        path = folder / "log.parquet"
        table = pa.table({"user": users, "item": pa.array(items, type=item_type), "ts": times})
        pq.write_table(table, path, row_group_size=50)  # chunks also cross row groups
    elif fmt == "csv":
        path = folder / "log.csv"
        path.write_text("user,item,ts\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    else:  # sasrec: one line per run of a user (the rows must be grouped)
        path = folder / "log.txt"
        lines = [" ".join(map(str, [u, *(i for _, i, _ in run)])) for u, run in itertools.groupby(rows, lambda r: r[0])]
        path.write_text("\n".join(lines) + "\n")
    return path


FORMATS = ["parquet", "csv", "sasrec"]


# ============================================================ iter_user_runs
@pytest.mark.parametrize("fmt", FORMATS)
def test_user_runs_equal_batches_and_a_python_grouping(tmp_path, fmt):
    rows = grouped_log(seed=1)
    path = write_log(tmp_path, fmt, rows)
    batches = list(iter_user_runs(path, fmt, batch_rows=7))
    assert len(batches) > 1  # the file really was read in pieces
    want = reference_runs(rows)
    assert runs_of(batches) == want
    assert sequences_runs(iter_batches(path, fmt, batch_rows=7)) == want


@pytest.mark.parametrize("fmt", FORMATS)
def test_user_runs_of_single_row_users(tmp_path, fmt):
    # each user is one row: the last of every chunk is carried, then yielded alone
    rows = grouped_log(seed=2, n_users=900, long_user=1, max_len=2)
    assert all(count == 1 for count in Counter(r[0] for r in rows).values())
    path = write_log(tmp_path, fmt, rows)
    assert runs_of(iter_user_runs(path, fmt, batch_rows=7)) == reference_runs(rows)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_one_user_spanning_every_chunk(tmp_path, fmt):
    # the carried user goes on through whole chunks until the file ends
    rows = [(42, item, 0) for item in np.random.default_rng(3).integers(0, 9, size=3000).tolist()]
    path = write_log(tmp_path, fmt, rows)
    assert runs_of(iter_user_runs(path, fmt, batch_rows=7)) == reference_runs(rows)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_user_runs_follow_the_timestamp(tmp_path, fmt):
    rows = grouped_log(seed=4)
    path = write_log(tmp_path, fmt, rows)
    want = reference_runs(rows, with_time=True)  # stable: ties keep file order
    assert want != reference_runs(rows)  # the times do reorder some users
    assert runs_of(iter_user_runs(path, fmt, batch_rows=7, timestamp="ts")) == want
    assert sequences_runs([read_sequences(path, fmt, timestamp="ts")]) == want


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_text_item_ids_give_their_stable_hashes(tmp_path, fmt):
    rows = [(u, f"item-{i % 1000}", t) for u, i, t in grouped_log(seed=5)]
    path = write_log(tmp_path, fmt, rows, item_type=pa.string())
    hashed = [(u, blake_key(i), t) for u, i, t in rows]
    want = reference_runs(hashed)
    assert runs_of(iter_user_runs(path, fmt, batch_rows=7)) == want
    assert sequences_runs(iter_batches(path, fmt, batch_rows=7)) == want


def shuffled_log(seed: int) -> list[tuple]:
    rows = grouped_log(seed, long_user=30)
    order = np.random.default_rng(seed).permutation(len(rows))
    return [rows[k] for k in order]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_interleaved_users_raise_unless_grouped_externally(tmp_path, fmt):
    rows = shuffled_log(seed=6)
    path = write_log(tmp_path, fmt, rows)
    with pytest.raises(NotGroupedError):
        list(iter_user_runs(path, fmt, batch_rows=7))
    with pytest.raises(PerflawError):
        list(iter_user_runs(path, fmt, batch_rows=7, grouped=True))
    spill = tmp_path / "spill"
    spill.mkdir()
    got = runs_of(iter_user_runs(path, fmt, batch_rows=7, grouped=False, tmp_dir=spill))
    assert got == reference_runs(rows)
    assert list(spill.iterdir()) == []  # the partitions are gone once the stream ends


@pytest.mark.parametrize("batch_rows", [1, 2])
def test_every_small_user_order_gives_whole_users_or_not_grouped(tmp_path, batch_rows):
    # exhaustively, over 3 users and up to 5 rows: contiguous files come back whole
    # however the chunks cut them; any other order raises NotGroupedError
    path = tmp_path / "log.parquet"
    for n in range(1, 6):
        for users in itertools.product([30, 10, 20], repeat=n):
            rows = [(u, 100 + k, 0) for k, u in enumerate(users)]
            pq.write_table(pa.table({"user": list(users), "item": [r[1] for r in rows]}), path)
            runs = [user for user, _ in itertools.groupby(users)]
            if len(runs) == len(set(runs)) or n <= batch_rows // 2:  # grouped, or read whole
                assert runs_of(iter_user_runs(path, batch_rows=batch_rows)) == reference_runs(rows), users
            else:
                with pytest.raises(NotGroupedError):
                    list(iter_user_runs(path, batch_rows=batch_rows))


def test_interleaved_file_under_half_a_batch_is_read_whole(tmp_path):
    # documented: a small file is not checked for order, it is read and grouped whole
    rows = shuffled_log(seed=7)
    path = write_log(tmp_path, "parquet", rows)
    assert count_rows_hint(path, "parquet") <= 10 * len(rows) // 2
    assert runs_of(iter_user_runs(path, batch_rows=10 * len(rows))) == reference_runs(rows)


# ============================================================ group_raw
def python_group(users, items, times, user_order):
    """(offsets, items, user_ids) by dict grouping and a stable sort on time."""
    groups: dict = {}
    for position, user in enumerate(users):
        time = 0 if times is None else times[position]
        groups.setdefault(user, []).append((time, position, items[position]))
    order = list(groups) if user_order == "first" else sorted(groups)
    offsets = [0]
    flat = []
    for user in order:
        flat += [item for _, _, item in sorted(groups[user])]
        offsets.append(len(flat))
    return offsets, flat, order


def random_rows(seed: int, layout: str, times: str):
    rng = np.random.default_rng(seed)
    runs = np.repeat(rng.permutation(1000)[:40], rng.integers(1, 20, size=40))  # one run each, unsorted
    users = {"runs": runs, "sorted_runs": np.sort(runs), "interleaved": rng.permutation(runs)}[layout]
    items = rng.integers(-(2**62), 2**62, size=len(users))
    t = None
    if times == "random":
        t = rng.integers(0, 6, size=len(users))
    elif times == "rising":  # non-decreasing within each user's rows
        t = np.zeros(len(users), dtype=np.int64)
        for user in np.unique(users):
            where = np.flatnonzero(users == user)
            t[where] = np.sort(rng.integers(0, 6, size=len(where)))
    return users, items, t


@pytest.mark.parametrize("user_order", ["first", "sorted"])
@pytest.mark.parametrize("layout", ["interleaved", "runs", "sorted_runs"])
@pytest.mark.parametrize("times", ["none", "random", "rising"])
def test_group_raw_equals_a_python_grouping_and_group_rows(user_order, layout, times):
    users, items, t = random_rows(seed=len(layout) + len(times), layout=layout, times=times)
    got = group_raw(users, items, t, user_order)
    offsets, flat, order = python_group(users.tolist(), items.tolist(), None if t is None else t.tolist(), user_order)
    assert got.offsets.tolist() == offsets
    assert got.items.tolist() == flat
    assert got.user_ids.tolist() == order
    dense = group_rows(users, items, t, user_order)
    assert dense.offsets.tolist() == offsets and dense.user_ids.tolist() == order
    assert dense.item_vocab[dense.items - 1].tolist() == flat  # relabelling is all that differs
    fast = (layout == "sorted_runs" or (layout == "runs" and user_order == "first")) and times != "random"
    if fast:  # documented: rows already in order are only cut, never copied
        assert np.shares_memory(got.items, items)
    if layout != "interleaved" and user_order == "first":  # every user one run: heads may be given
        heads = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
        given = group_raw(users, items, t, user_order, one_run_heads=heads)
        assert given.offsets.tolist() == offsets and given.items.tolist() == flat
        assert given.user_ids.tolist() == order


def test_group_raw_compares_unsigned_times_without_wrapping():
    # 2**63 + 1 - 3 wraps when subtracted as int64; the order must still follow the values
    users = np.array([1, 1, 1, 2, 2])
    items = np.array([10, 11, 12, 20, 21])
    times = np.array([2**63 + 1, 3, 2**64 - 1, 5, 5], dtype=np.uint64)
    got = group_raw(users, items, times, "first")
    assert got.items.tolist() == [11, 10, 12, 20, 21]


def test_group_raw_of_text_users_and_no_rows():
    users = np.array(["b", "a", "b", "c", "a"])
    got = group_raw(users, np.arange(5), None, "sorted")
    assert got.user_ids.tolist() == ["a", "b", "c"]
    assert got.offsets.tolist() == [0, 2, 4, 5] and got.items.tolist() == [1, 4, 0, 2, 3]
    empty = group_raw(np.zeros(0, np.int64), np.zeros(0, np.int64), None, "first")
    assert empty.offsets.tolist() == [0] and len(empty.items) == 0 and len(empty.user_ids) == 0


# ============================================================ QualityParts.from_runs
def quality_corpus(seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(0, rng.integers(1, 6), size=rng.integers(0, 40)).tolist() for _ in range(200)]
    seqs += [[7] * 30, list(range(50)), [1, 2, 3] * 12]
    return seqs


@pytest.mark.parametrize("m", [1, 2, 3])
@pytest.mark.parametrize("max_len", [None, 5])
def test_from_runs_equals_compute(m, max_len):
    seqs = quality_corpus(seed=m)
    offsets, keys = csr(seqs)
    got = QualityParts.from_runs(offsets, keys, m, max_len, threads=1)
    want = QualityParts.compute(Sequences.from_lists(seqs), m, max_len, threads=1)
    assert got.summarize().to_dict() == want.summarize().to_dict()
    # and per user, against the slow references on each (truncated) sequence
    used = [s if max_len is None else s[-max_len:] for s in seqs]
    np.testing.assert_allclose(got.apen, [apen_reference(s, m) for s in used], rtol=0, atol=1e-12)
    assert got.lz_sums.tolist() == [sum(lz_lambdas_reference(s)) for s in used]


def test_from_runs_depends_only_on_which_keys_are_equal():
    # an injective relabelling over the full int64 range changes only the fingerprint
    offsets, keys = csr(quality_corpus(seed=9))
    small = QualityParts.from_runs(offsets, keys, 2, threads=1).summarize().to_dict()
    wide = QualityParts.from_runs(offsets, spread(keys), 2, threads=1).summarize().to_dict()
    assert small.pop("fingerprint") != wide.pop("fingerprint")
    assert small == wide


@pytest.mark.parametrize("max_len", [None, 7])
def test_from_runs_does_not_depend_on_threads(max_len):
    offsets, keys = csr(quality_corpus(seed=10) * 20)
    one = QualityParts.from_runs(offsets, keys, 2, max_len, threads=1).summarize()
    two = QualityParts.from_runs(offsets, keys, 2, max_len, threads=2).summarize()
    assert one == two


@pytest.mark.parametrize(
    "offsets, keys",
    [
        (np.array([0, 2]), np.array([[1, 2]])),  # 2-D keys
        (np.array([[0, 2]]), np.array([1, 2])),  # 2-D offsets
        (np.array([0, 2]), np.array([1.0, 2.0])),  # float keys
        (np.array([0.0, 2.0]), np.array([1, 2])),  # float offsets
    ],
)
def test_from_runs_rejects_bad_arrays(offsets, keys):
    with pytest.raises(PerflawTypeError):
        QualityParts.from_runs(offsets, keys)


# ============================================================ _core.user_stats
def assert_user_stats_match(offsets, items, m, max_len=None, threads=1):
    apen, lz, hashes = _core.user_stats(offsets, items, m, max_len, threads)
    assert np.array_equal(apen, _core.apen(offsets, items, m, max_len, threads), equal_nan=True)
    assert np.array_equal(lz, _core.lz_lambda_sums(offsets, items, max_len, threads))
    assert np.array_equal(hashes, _core.sequence_hashes(offsets, items, threads))  # untruncated
    return apen, lz, hashes


def repeat_heavy(seed: int) -> list[list[int]]:
    """Small alphabets, empty and one-item sequences, periodic runs, a repeated half."""
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(0, rng.integers(1, 4), size=rng.integers(0, 200)).tolist() for _ in range(150)]
    seqs += [[], [5], [], [1, 2] * 300, [3] * 3000]
    half = rng.integers(0, 3, size=700).tolist()
    seqs.append(half + half)  # a long repeat: past the walk's budget
    return seqs


@pytest.mark.parametrize("m", [1, 2, 3])
@pytest.mark.parametrize("max_len", [None, 7, 1000])
def test_user_stats_equal_the_separate_kernels(m, max_len):
    offsets, items = csr(repeat_heavy(seed=m))
    for threads in (1, 2):
        assert_user_stats_match(offsets, items, m, max_len, threads)


def test_user_stats_on_sequences_longer_than_16384():
    rng = np.random.default_rng(11)
    long_random = rng.integers(0, 3, size=20_000).tolist()
    half = rng.integers(0, 50, size=9_000).tolist()
    offsets, items = csr([long_random, half + half, [], [8] * 17_000])
    for m in (1, 2):
        assert_user_stats_match(offsets, items, m)
        assert_user_stats_match(offsets, items, m, max_len=16_385)


def test_user_stats_of_empty_sequences():
    offsets = np.array([0, 0, 0, 2, 2], dtype=np.int64)
    apen, lz, _ = assert_user_stats_match(offsets, np.array([4, 4], dtype=np.int64), 1)
    assert np.isnan(apen[[0, 1, 3]]).all() and lz.tolist() == [0, 0, 3, 0]


def test_user_stats_with_large_and_negative_ids():
    # statistics depend on equality only: spreading the ids over int64 keeps them
    offsets, items = csr(repeat_heavy(seed=12))
    wide = spread(items)
    assert wide.min() < -(2**62) and wide.max() > 2**61  # the alphabet {0, 1, 2}, spread
    extreme = np.array([2**63 - 1, -(2**63), 2**63 - 1, -(2**63), 0, -(2**63)], dtype=np.int64)
    wide_offsets = np.append(offsets, offsets[-1] + len(extreme))
    wide = np.concatenate([wide, extreme])
    small_apen, small_lz, _ = assert_user_stats_match(offsets, items, 2)
    apen, lz, _ = assert_user_stats_match(wide_offsets, wide, 2)
    assert np.array_equal(apen[:-1], small_apen, equal_nan=True) and np.array_equal(lz[:-1], small_lz)
    assert lz[-1] == sum(lz_lambdas_reference(extreme.tolist()))


def test_user_stats_lz_sums_equal_the_python_reference():
    rng = np.random.default_rng(13)
    seqs = [rng.integers(0, rng.integers(1, 5), size=rng.integers(0, 40)).tolist() for _ in range(120)]
    offsets, items = csr(seqs)
    _, lz, _ = _core.user_stats(offsets, items, 2, None, 1)
    assert lz.tolist() == [sum(lz_lambdas_reference(s)) for s in seqs]


def half_repeat_apen(length: int, m: int) -> float:
    """ApEn(m) of h + h, h of ``length`` distinct items: windows of k items number
    W = 2L - k + 1, of which 2(L - k + 1) occur twice and k - 1 once."""
    def phi(k: int) -> float:
        w = 2 * length - k + 1
        return (2 * (length - k + 1) * math.log(2 / w) + (k - 1) * math.log(1 / w)) / w

    return phi(m) - phi(m + 1)


def test_user_stats_closed_forms_of_long_repeats():
    # constant: Λ_0 = 1, Λ_i = n - i + 1 (the match at i - 1 overlaps), Σ = n(n + 1)/2; ApEn = 0.
    # h + h with h distinct: Λ = 1 on h, then 2L - i + 1: Σ = L + (L + 1)(L + 2)/2 - 1.
    n, half = 3000, 10_000
    h = (np.arange(half) * 7 + 3).tolist()
    offsets, items = csr([[9] * n, h + h])
    apen, lz, _ = assert_user_stats_match(offsets, items, 2)
    assert lz.tolist() == [n * (n + 1) // 2, half + (half + 1) * (half + 2) // 2 - 1]
    assert apen[0] == 0.0
    assert apen[1] == pytest.approx(half_repeat_apen(half, 2), rel=1e-9)


# ============================================================ _core.exact_sum
def cancelling(seed: int, n: int) -> tuple[np.ndarray, list[float]]:
    """Values of 80 orders of magnitude whose large part cancels exactly, shuffled;
    and the small survivors, whose fsum the total must equal."""
    rng = np.random.default_rng(seed)
    big = rng.standard_normal(n // 3) * 10.0 ** rng.integers(0, 40, size=n // 3)
    small = rng.standard_normal(n - 2 * (n // 3)) * 10.0 ** rng.integers(-40, 0, size=n - 2 * (n // 3))
    values = np.concatenate([big, -big, small])
    rng.shuffle(values)
    return values, small.tolist()


@pytest.mark.parametrize("n", [0, 1, 2, 65_535, 65_536, 65_537, 200_001, 300_000])
def test_exact_sum_is_fsum_bit_for_bit(n):
    values, small = cancelling(seed=n, n=n)
    want = math.fsum(values.tolist())
    assert want == math.fsum(small)  # the reference sees the cancellation too
    for threads in (1, 2):
        got = _core.exact_sum(values, threads)
        assert got is not None and got.hex() == want.hex()


def test_exact_sum_of_unbalanced_magnitudes():
    rng = np.random.default_rng(14)
    values = rng.standard_normal(150_000) * 10.0 ** rng.integers(-300, 300, size=150_000)
    want = math.fsum(values.tolist())
    assert _core.exact_sum(values, 1).hex() == want.hex() == _core.exact_sum(values, 2).hex()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 70_000, 199_999])
def test_exact_sum_is_none_with_a_non_finite_value(bad, where):
    values = np.ones(200_000)
    values[where] = bad
    assert _core.exact_sum(values, 1) is None and _core.exact_sum(values, 2) is None


def test_exact_sum_leaves_overflow_and_signed_zeros_as_fsum_has_them():
    # a sum past the floats' range: no value from Rust, and math.fsum's OverflowError
    assert _core.exact_sum(np.array([1e308, 1e308])) is None
    with pytest.raises(OverflowError):
        perflaw.quality._fsum(np.array([1e308, 1e308]))
    # where math.fsum overflows midway, Rust's exact sum still has the value
    assert _core.exact_sum(np.array([1e308, 1e308, -1e308])) == 1e308
    assert perflaw.quality._fsum(np.array([1e308, 1e308, -1e308])) == 1e308
    for zeros in ([-0.0], [-0.0, -0.0], [0.0, -0.0]):
        got = _core.exact_sum(np.array(zeros))
        assert math.copysign(1, got) == math.copysign(1, math.fsum(zeros)), zeros


# ============================================================ WindowSpill
def python_histograms(seqs: list[list[int]], m: int, max_len: int | None) -> BlockHistograms:
    """{count: distinct windows with it} of the (m+1)-windows and their prefixes, by Counter."""
    joint: Counter = Counter()
    for seq in seqs:
        used = seq if max_len is None else seq[-max_len:]
        joint.update(tuple(used[i : i + m + 1]) for i in range(len(used) - m))
    prefix: Counter = Counter()
    for window, count in joint.items():
        prefix[window[:m]] += count
    return BlockHistograms(joint=dict(Counter(joint.values())), prefix=dict(Counter(prefix.values())))


def spill_ids(kind: str, rng: np.random.Generator, n: int) -> np.ndarray:
    small = rng.integers(0, 6, size=n)
    if kind == "small":
        return small
    if kind == "spread":  # the full int64 range, negatives included: blocks stay unpacked
        return spread(small)
    if kind == "span32":  # within 2**32 - 1 of the lowest: 32-bit packing, negative base
        return np.array([-7, -7 + 2**32 - 1, 5, 11])[small % 4]
    if kind == "span33":  # just past 32 bits: unpacked
        return np.array([0, 2**32, 1, 3])[small % 4]
    if kind == "extremes":
        return np.array([-(2**63), 2**63 - 1, 0, -1])[small % 4]
    return np.full(n, 123456789)  # constant: one value per block


def spill_corpus(kind: str, seed: int = 15) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 60, size=400)
    ids = spill_ids(kind, rng, int(lengths.sum())).tolist()
    out, start = [], 0
    for n in lengths.tolist():
        out.append(ids[start : start + n])
        start += n
    return out


@pytest.mark.parametrize("kind", ["small", "spread", "span32", "span33", "extremes", "constant"])
@pytest.mark.parametrize("m", [1, 2, 4])
def test_spilled_histograms_equal_in_memory_and_python(tmp_path, kind, m):
    seqs = spill_corpus(kind)
    offsets, items = csr(seqs)
    for max_len in (None, 9):
        counts = _core.WindowCounts(m)
        counts.update(offsets, items, max_len, 1)
        in_memory = BlockHistograms.from_counts(counts)
        with WindowSpill(m, max_len, partitions=3, tmp_dir=tmp_path) as spill:
            spill.add(offsets, items, 1)
            spilled = spill.histograms()
        assert spilled == in_memory == python_histograms(seqs, m, max_len)
    entropy = spilled.conditional_entropy()
    assert entropy == pytest.approx(block_entropy_reference([s[-9:] for s in seqs], m), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("memory", [0, 4096, 1 << 30])
def test_spill_across_batches_threads_and_memory_budgets(tmp_path, memory):
    # each partition gets blocks from several add() calls: written to its file
    # after every batch (memory 0), after some (4 KiB) or held to the end
    seqs = spill_corpus("spread", seed=16) * 3 + spill_corpus("small", seed=16)
    offsets, items = csr(seqs)
    want = python_histograms(seqs, 2, None)
    cut = len(seqs) // 2
    for threads in (1, 2):
        with WindowSpill(2, None, partitions=4, tmp_dir=tmp_path, memory=memory) as spill:
            for part in (seqs[:cut], seqs[cut:]):
                spill.add(*csr(part), threads)
            written = sum(path.stat().st_size for path in tmp_path.rglob("part-*.bin"))
            assert (written == 0) == (memory == 1 << 30)
            assert spill.histograms(workers=threads) == want
    with WindowSpill(2, None, partitions=4, tmp_dir=tmp_path, memory=memory) as spill:
        spill.add(offsets, items, 2)
        assert spill.histograms() == want
    with pytest.raises(PerflawError, match="memory"):
        WindowSpill(2, None, partitions=4, tmp_dir=tmp_path, memory=-1)


def test_spill_folder_is_removed_and_spill_refuses_use_after_close(tmp_path):
    offsets, items = csr(spill_corpus("small"))
    spill = WindowSpill(1, None, partitions=5, tmp_dir=tmp_path)
    spill.add(offsets, items, 1)
    (folder,) = tmp_path.iterdir()
    assert folder.name.startswith("perflaw-windows-") and len(list(folder.iterdir())) == 5
    spill.close()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError):
        spill.add(offsets, items, 1)
    with pytest.raises(ValueError):
        spill.histograms()


# ============================================================ data_quality on a file
def test_data_quality_of_an_interleaved_file_equals_in_memory(tmp_path):
    rows = shuffled_log(seed=17)
    path = write_log(tmp_path, "parquet", rows)
    # the preconditions: read in several batches, and the one-pass read gives up
    assert count_rows_hint(path, "parquet") > 50 // 2
    with pytest.raises(NotGroupedError):
        list(iter_user_runs(path, batch_rows=50))
    spill = tmp_path / "spill"
    spill.mkdir()
    got = perflaw.data_quality(path, m=2, batch_rows=50, tmp_dir=spill, progress=False).to_dict()
    want = perflaw.data_quality(read_sequences(path), m=2).to_dict()
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-12), key
        else:
            assert got[key] == value, key
    assert list(spill.iterdir()) == []  # neither perflaw-groups-* nor perflaw-windows-* is left


@pytest.mark.parametrize("n", [0, 1, 2, 3, 10, 1001, 100_000])
def test_median_is_numpys(n):
    rng = np.random.default_rng(n)
    ties = rng.integers(-3, 4, size=n).astype(float)
    for values in (rng.standard_normal(n), ties, np.abs(rng.standard_normal(n)) * 1e-300):
        expected = np.median(values) if n else math.nan
        got = _core.median(values)
        assert got == expected or (math.isnan(got) and math.isnan(expected)), values[:5]
    assert math.isnan(_core.median(np.array([1.0, math.nan, 2.0])))
