"""Regression tests for the red team's findings: each was silently wrong, a panic, or a hang."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import perflaw
from perflaw import _core
from perflaw.errors import PerflawError


def raw_lists(seqs):
    """Each user's raw item ids, users in their id order."""
    return {seqs.user_ids[u].item() if hasattr(seqs.user_ids[u], "item") else seqs.user_ids[u]:
            [seqs.item_vocab[i - 1].item() for i in seqs.items[seqs.offsets[u]:seqs.offsets[u + 1]]]
            for u in range(seqs.n_users)}


# ------------------------------------------------------- silently wrong results
@pytest.mark.parametrize("time_type", [pa.uint32(), pa.uint64(), pa.uint8()])
def test_unsigned_timestamps_are_sorted(tmp_path, time_type):
    table = pa.table({"user": pa.array([1, 1, 1, 2, 2]), "item": pa.array([10, 20, 30, 40, 50]),
                      "timestamp": pa.array([3, 1, 2, 9, 5], type=time_type)})
    pq.write_table(table, tmp_path / "log.parquet")
    want = {1: [20, 30, 10], 2: [50, 40]}
    assert raw_lists(perflaw.read_sequences(tmp_path / "log.parquet", timestamp="timestamp")) == want
    assert raw_lists(perflaw.Sequences.from_table(table, timestamp="timestamp")) == want
    as_numpy = {"user": [1, 1, 1, 2, 2], "item": [10, 20, 30, 40, 50], "t": np.array([3, 1, 2, 9, 5], dtype=np.uint64)}
    assert raw_lists(perflaw.Sequences.from_table(as_numpy, timestamp="t")) == want


@pytest.mark.parametrize("fmt,text,users,tokens", [
    ("sasrec", b"1 5 6 7\r2 5 8\r3 9 5\r", 3, 7),
    ("pairs", b"1 5\r1 6\r2 5\r", 2, 3),
    ("sasrec", b"1 5 6 7\r\n2 5 8\r\n", 2, 5),
    ("sasrec", b"1 5 6 7\n2 5 8\r3 9\n", 3, 6),
])
def test_old_mac_line_ends_separate_users(tmp_path, fmt, text, users, tokens):
    path = tmp_path / "log.txt"
    path.write_bytes(text)
    seqs = perflaw.read_sequences(path, format=fmt)
    assert (seqs.n_users, seqs.tokens) == (users, tokens)
    assert perflaw.detect_format(path) == fmt


def test_hexadecimal_ids_are_never_read_as_numbers(tmp_path):
    (tmp_path / "log.csv").write_text("user,item\n1,0x10\n1,16\n2,16\n")
    seqs = perflaw.read_sequences(tmp_path / "log.csv")
    assert sorted(seqs.item_vocab.tolist()) == ["0x10", "16"]  # two items, not one
    (tmp_path / "log.txt").write_text("1 0x10 16 5\n2 3 4 5\n")
    with pytest.raises(PerflawError, match="non-integer id '0x10'"):
        perflaw.read_sequences(tmp_path / "log.txt", format="sasrec")


def test_a_first_line_longer_than_the_sample_is_read(tmp_path):
    path = tmp_path / "long.txt"
    first = " ".join(str(i) for i in range(1, 300_001))  # about 2 MiB on one line
    path.write_text(f"1 {first}\n2 5 6 7\n")
    assert perflaw.detect_format(path) == "sasrec"
    seqs = perflaw.read_sequences(path)
    assert seqs.n_users == 2 and seqs.tokens == 300_003


def test_movielens_with_text_ids_keeps_its_first_rating(tmp_path):
    (tmp_path / "ratings.dat").write_text("alice::m1::5::100\nalice::m2::4::101\nbob::m1::3::99\n")
    seqs = perflaw.read_sequences(tmp_path / "ratings.dat", format="movielens", ids="str")
    assert seqs.tokens == 3
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,5,4.0,10\n1,6,3.5,11\n")
    assert perflaw.read_sequences(tmp_path / "ratings.csv", format="movielens").tokens == 2


# ------------------------------------------------------------- hangs
def test_pipes_and_devices_are_refused_at_once(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero"):
        with pytest.raises(PerflawError, match="not a regular file"):
            perflaw.read_sequences(path)
        with pytest.raises(PerflawError, match="not a regular file"):
            perflaw.data_quality(path)


# ------------------------------------------------------------- panics and threads
@pytest.mark.parametrize("m", [0, 2**64 - 1, 2**70, _core.MAX_M + 1])
def test_a_huge_m_is_a_clear_error_not_a_panic(m):
    seqs = perflaw.Sequences.from_lists([[1, 2, 1, 2, 3]])
    with pytest.raises(ValueError, match="m must be"):
        perflaw.data_quality(seqs, m=m)
    with pytest.raises((ValueError, OverflowError)):
        _core.apen(seqs.offsets, seqs.items, m)


@pytest.mark.parametrize("call", [
    lambda o, i: _core.apen(o, i, 2, None, 2**40),
    lambda o, i: _core.partition_keys(i, 2**63),
    lambda o, i: _core.partition_windows(o, i, 2, 2**63),
    lambda o, i: _core.WindowCounts(2**63),
    lambda o, i: _core.window_histograms(i, 2**64 - 2),
])
def test_huge_arguments_never_abort_the_process(call):
    offsets, items = np.array([0, 5], dtype=np.int64), np.array([1, 2, 1, 2, 3], dtype=np.int64)
    with pytest.raises(ValueError):
        call(offsets, items)


def test_kernel_thread_pools_are_reused_within_a_bound():
    if not sys.platform.startswith("linux"):
        pytest.skip("counts threads through /proc")
    seqs = perflaw.Sequences.from_lists([[1, 2, 3, 1, 2]] * 100)
    before = len(os.listdir("/proc/self/task"))
    for threads in range(1, 101):
        perflaw.apen(seqs, threads=threads)
    # At most four pools are kept: the last four asked for (97..100 threads). A
    # dropped pool's threads exit on their own, so give them a moment.
    for _ in range(50):
        after = len(os.listdir("/proc/self/task"))
        if after - before <= 97 + 98 + 99 + 100:
            break
        time.sleep(0.1)
    assert after - before <= 97 + 98 + 99 + 100


# ------------------------------------------------------------- file modes
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_results_are_written_with_the_mode_the_umask_gives(tmp_path, umask):
    from perflaw.atomic import write_json_atomic, write_text_atomic

    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "report.txt", "x")
        write_json_atomic(tmp_path / "fit.json", {"a": 1})
        with open(tmp_path / "plain.txt", "w") as plain:
            plain.write("x")
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    for name in ("report.txt", "fit.json", "plain.txt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == expected, name
