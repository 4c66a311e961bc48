"""The one hash partitioner (rust/partition.rs) against a pure-Python reference,
and the one conditional-entropy kernel against the exactly rounded formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perflaw import _core
from perflaw.blocks import BlockHistograms, WindowSpill
from perflaw.ingest.spill import partition_users

MASK = 2**64 - 1


# ------------------------------------------------------------ reference
def mix(h: int) -> int:
    """murmur3's 64-bit finaliser."""
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & MASK
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & MASK
    return h ^ (h >> 33)


def hash_keys(keys) -> int:
    h = 0
    for key in keys:
        h = mix(h ^ (int(key) & MASK))
    return h


def hash_text(text: str) -> int:
    h = 0xCBF29CE484222325
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x100000001B3) & MASK
    return mix(h)


def bucket(h: int, parts: int) -> int:
    return (h * parts) >> 64


# ------------------------------------------------------------ user keys
int64s = st.integers(-(2**63), 2**63 - 1)


@settings(max_examples=60, deadline=None)
@given(st.lists(int64s, max_size=200), st.integers(1, 1000))
def test_integer_keys_match_the_reference(keys, parts):
    got = partition_users(np.array(keys, dtype=np.int64), parts)
    assert got.dtype == np.int64
    assert got.tolist() == [bucket(hash_keys([k]), parts) for k in keys]


text_ids = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=60, deadline=None)
@given(st.lists(text_ids, max_size=100), st.integers(1, 600))
def test_string_keys_match_the_reference(keys, parts):
    got = partition_users(np.array(keys, dtype=str), parts)
    assert got.tolist() == [bucket(hash_text(k), parts) for k in keys]


def test_every_user_lands_in_exactly_one_partition():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 5000, 100_000)
    parts = partition_users(users, 37)
    assert parts.min() >= 0 and parts.max() < 37
    # one partition per user, whichever batch the user's rows come in
    for chunk in np.array_split(np.arange(len(users)), 7):
        again = partition_users(users[chunk], 37)
        assert (again == parts[chunk]).all()
    pairs = np.unique(np.stack([users, parts]), axis=1)
    assert len(pairs[0]) == len(np.unique(users))
    counts = np.bincount(parts, minlength=37)
    assert counts.min() > 0.8 * counts.mean()  # spread over all partitions
    # strings: the NumPy width of the batch does not change a user's partition
    narrow = partition_users(np.array(["a", "bc"]), 11)
    wide = partition_users(np.array(["a", "bc", "a much longer user id"]), 11)
    assert narrow.tolist() == wide[:2].tolist()
    # unsigned ids are the same int64 keys
    assert partition_users(np.array([3, 9], dtype=np.uint32), 5).tolist() == partition_users(np.array([3, 9]), 5).tolist()


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="partitions must be between 1 and"):
        _core.partition_keys(np.array([1], dtype=np.int64), 0)
    with pytest.raises(ValueError, match="non-decreasing"):
        _core.partition_strings(np.array([0, 3, 1], dtype=np.int64), np.zeros(3, dtype=np.uint8), 2)
    with pytest.raises(ValueError, match="outside"):
        _core.partition_strings(np.array([0, 9], dtype=np.int64), np.zeros(3, dtype=np.uint8), 2)


# ------------------------------------------------------------ window prefixes
@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 6), min_size=0, max_size=12), min_size=1, max_size=12),
    st.integers(1, 3),
    st.integers(1, 9),
)
def test_window_prefixes_share_the_partitioner(lists, m, parts):
    offsets = np.cumsum([0] + [len(s) for s in lists]).astype(np.int64)
    items = np.array([i for s in lists for i in s], dtype=np.int64)
    rows, bounds = _core.partition_windows(offsets, items, m, parts)
    expected = [[] for _ in range(parts)]
    for seq in lists:
        for start in range(len(seq) - m):
            window = seq[start : start + m + 1]
            expected[bucket(hash_keys(window[:m]), parts)].append(window)
    for p in range(parts):
        assert rows[bounds[p] : bounds[p + 1]].tolist() == expected[p]
    if m == 1:  # a prefix of one item goes where a user with that id goes
        firsts = rows[:, 0] if len(rows) else np.zeros(0, dtype=np.int64)
        group = np.repeat(np.arange(parts), np.diff(bounds.astype(np.int64)))
        assert (partition_users(np.ascontiguousarray(firsts), parts) == group).all()


# ------------------------------------------------------------ entropy
def fsum_entropy(joint: dict, prefix: dict) -> float:
    """The formula as perflaw computed it in Python: exactly rounded sums over the histograms."""
    total = sum(count * windows for count, windows in joint.items())
    if total == 0:
        return math.nan

    def c_ln_c(histogram):
        return math.fsum(windows * count * math.log(count) for count, windows in histogram.items() if count > 1)

    return (c_ln_c(prefix) - c_ln_c(joint)) / total


histograms = st.dictionaries(st.integers(1, 2**40), st.integers(1, 2**30), max_size=40)


@settings(max_examples=300, deadline=None)
@given(histograms, histograms)
def test_entropy_kernel_is_the_exactly_rounded_formula(joint, prefix):
    got = BlockHistograms(joint, prefix).conditional_entropy()
    want = fsum_entropy(joint, prefix)
    assert (math.isnan(got) and math.isnan(want)) or got == want


def test_window_counts_spill_and_histograms_agree_bit_for_bit():
    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 40, 300)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = (rng.zipf(1.4, int(lengths.sum())) % 50).astype(np.int64)
    for m in (1, 2, 3):
        counts = _core.WindowCounts(m)
        counts.update(offsets, items)
        in_memory = BlockHistograms.from_counts(counts)
        with WindowSpill(m, partitions=5) as spill:
            spill.add(offsets, items)
            spilled = spill.histograms()
        assert spilled == in_memory
        value = counts.conditional_entropy()
        assert value == in_memory.conditional_entropy() == spilled.conditional_entropy()
        assert value == fsum_entropy(in_memory.joint, in_memory.prefix)
