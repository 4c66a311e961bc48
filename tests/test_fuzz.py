"""Fuzzing: the kernels and every loader under random and malformed input.

A kernel call either returns what the pure-Python reference says, or raises a
ValueError/TypeError/OverflowError naming the problem: never a Rust panic
(``PanicException`` is a BaseException, which ``except Exception`` misses),
never an abort. A loader either reads the file or raises a ValueError (the
PerflawError family): never another exception, never a hang.

The budget is fixed so that CI stays fast; ``PERFLAW_FUZZ_EXAMPLES=N`` runs N
examples per test instead (docs/reliability.md records a long run).
"""

from __future__ import annotations

import bz2
import gzip
import os
import signal
from contextlib import contextmanager

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perflaw import _core
from perflaw.ingest import read_sequences
from reference import apen_reference, lz_lambdas_reference

EXAMPLES = int(os.environ.get("PERFLAW_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
CLEAN_ERRORS = (ValueError, TypeError, OverflowError)

small_ids = st.integers(0, 4) | st.integers(-(2**63), 2**63 - 1)
sequences = st.lists(st.lists(small_ids, max_size=20), min_size=0, max_size=6)
any_m = st.integers(1, 4) | st.integers(0, 2**64 - 1)
any_max_len = st.none() | st.integers(0, 30) | st.integers(0, 2**64 - 1)
any_threads = st.integers(0, 4) | st.integers(0, 2**64 - 1)


def csr(seqs):
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in seqs])]).astype(np.int64)
    items = np.array([x for s in seqs for x in s], dtype=np.int64)
    return offsets, items


@contextmanager
def time_limit(seconds: int):
    """Fail (instead of hanging the suite) when a call takes longer than ``seconds``."""

    def expired(*_):
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def call_kernel(fn, *args, **kwargs):
    """The kernel's answer, or None when it refused the arguments with a clean error."""
    try:
        return fn(*args, **kwargs)
    except CLEAN_ERRORS:
        return None
    except BaseException as error:  # a PanicException lands here
        pytest.fail(f"{fn.__name__} raised {type(error).__name__}: {error}")


def last(seq, max_len):
    return seq if max_len is None else seq[max(0, len(seq) - max_len):]


# --------------------------------------------------------------------- kernels
@FUZZ
@given(sequences, any_m, any_max_len, any_threads)
def test_apen_kernel_equals_the_reference_or_refuses_cleanly(seqs, m, max_len, threads):
    offsets, items = csr(seqs)
    got = call_kernel(_core.apen, offsets, items, m, max_len, threads)
    if got is None:
        return
    assert 1 <= m <= _core.MAX_M and threads <= _core.MAX_THREADS
    want = [apen_reference(last(s, max_len), m) for s in seqs]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@FUZZ
@given(sequences, any_max_len, any_threads)
def test_lz_kernel_equals_the_reference_or_refuses_cleanly(seqs, max_len, threads):
    offsets, items = csr(seqs)
    got = call_kernel(_core.lz_lambda_sums, offsets, items, max_len, threads)
    if got is None:
        return
    want = [sum(lz_lambdas_reference(last(s, max_len))) for s in seqs]
    assert got.tolist() == want


@FUZZ
@given(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=8), st.lists(small_ids, max_size=12), any_m, any_threads)
def test_malformed_offsets_never_panic(offsets, items, m, threads):
    offsets = np.array(offsets, dtype=np.int64)
    items = np.array(items, dtype=np.int64)
    for fn, args in [
        (_core.apen, (offsets, items, m, None, threads)),
        (_core.lz_lambda_sums, (offsets, items, None, threads)),
        (_core.sequence_hashes, (offsets, items, threads)),
        (_core.partition_windows, (offsets, items, m, 4, None)),
    ]:
        call_kernel(fn, *args)
    counts = call_kernel(_core.WindowCounts, m)
    if counts is not None:
        call_kernel(counts.update, offsets, items, None, threads)


@FUZZ
@given(sequences, st.integers(1, 3), st.integers(0, 2**64 - 1) | st.integers(1, 64))
def test_window_and_partition_kernels_never_panic(seqs, m, partitions):
    offsets, items = csr(seqs)
    call_kernel(_core.partition_windows, offsets, items, m, partitions, None)
    call_kernel(_core.partition_keys, items, partitions)
    flat = items[: (len(items) // (m + 1)) * (m + 1)]
    call_kernel(_core.window_histograms, flat, m)


@FUZZ
@given(st.lists(st.lists(st.integers(0, 5), max_size=15), min_size=1, max_size=5), st.integers(1, 3),
       st.integers(1, 16))
def test_results_do_not_depend_on_the_thread_count(seqs, m, threads):
    offsets, items = csr(seqs)
    np.testing.assert_array_equal(_core.apen(offsets, items, m, None, 1), _core.apen(offsets, items, m, None, threads))
    one, many = _core.WindowCounts(m), _core.WindowCounts(m)
    one.update(offsets, items, None, 1)
    many.update(offsets, items, None, threads)
    assert [a.tolist() for a in one.histograms()] == [a.tolist() for a in many.histograms()]


# --------------------------------------------------------------------- loaders
FORMATS = ["auto", "sasrec", "pairs", "inter", "movielens", "csv", "parquet"]
SUFFIXES = [".txt", ".csv", ".inter", ".dat", ".parquet", ".txt.gz", ".csv.bz2", ".csv.zst"]


def write(path, payload: bytes) -> None:
    name = path.name
    if name.endswith(".gz"):
        payload = gzip.compress(payload)
    elif name.endswith(".bz2"):
        payload = bz2.compress(payload)
    elif name.endswith(".zst"):
        sink = pa.BufferOutputStream()
        with pa.CompressedOutputStream(sink, "zstd") as stream:
            stream.write(payload)
        payload = sink.getvalue().to_pybytes()
    path.write_bytes(payload)


def read_or_refuse(path, fmt):
    with time_limit(20):
        try:
            seqs = read_sequences(path, format=fmt)
        except ValueError:  # the PerflawError family; FileNotFoundError and friends would fail here
            return None
    assert seqs.offsets[0] == 0 and seqs.offsets[-1] == len(seqs.items)
    return seqs


@FUZZ
@given(st.binary(max_size=600), st.sampled_from(SUFFIXES), st.sampled_from(FORMATS))
def test_random_bytes_are_read_or_refused_cleanly(tmp_path, payload, suffix, fmt):
    path = tmp_path / f"data{suffix}"
    write(path, payload)
    read_or_refuse(path, fmt)


VALID = {
    "sasrec": b"1 5 6 7\n2 5 8\n3 9 9 9 5\n",
    "pairs": b"1 5\n1 6\n2 5\n2 8\n3 9\n",
    "inter": b"user_id:token\titem_id:token\ttimestamp:float\n1\t5\t1\n1\t6\t2\n2\t5\t1\n",
    "movielens": b"1::5::4::100\n1::6::3::101\n2::5::5::99\n",
    "csv": b"user,item,timestamp\n1,5,1\n1,6,2\n2,5,1\n2,8,3\n",
}
mutations = st.lists(
    st.tuples(st.sampled_from(["flip", "cut", "insert", "delete"]), st.integers(0, 200),
              st.sampled_from(list(b" \t\n\r,:-x0\x00\xff9."))),
    min_size=1, max_size=6,
)


def mutate(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for kind, where, byte in edits:
        i = where % (len(out) + 1)
        if kind == "flip" and i < len(out):
            out[i] = byte
        elif kind == "cut":
            del out[i:]
        elif kind == "insert":
            out.insert(i, byte)
        elif kind == "delete" and i < len(out):
            del out[i]
    return bytes(out)


@FUZZ
@given(st.sampled_from(sorted(VALID)), mutations, st.sampled_from(["", ".gz"]))
def test_malformed_files_of_each_format_are_read_or_refused_cleanly(tmp_path, fmt, edits, compression):
    path = tmp_path / f"data{'.inter' if fmt == 'inter' else '.csv' if fmt == 'csv' else '.txt'}{compression}"
    write(path, mutate(VALID[fmt], edits))
    read_or_refuse(path, fmt)
    read_or_refuse(path, "auto")


@FUZZ
@given(st.lists(st.tuples(st.integers(-5, 2**63 - 1), st.integers(-5, 2**63 - 1), st.integers(-(2**40), 2**40)),
                max_size=30),
       st.sampled_from([pa.int64(), pa.uint64(), pa.int32(), pa.string(), pa.float64()]),
       st.sampled_from([pa.int64(), pa.uint32(), pa.uint64(), pa.float64()]))
def test_parquet_tables_of_any_column_types_are_read_or_refused_cleanly(tmp_path, rows, id_type, time_type):
    users, items, times = (list(c) for c in zip(*rows)) if rows else ([], [], [])

    def column(values, kind):
        try:
            return pa.array([str(v) for v in values] if kind == pa.string() else values, type=kind)
        except (pa.ArrowInvalid, OverflowError):
            return None

    columns = {"user": column(users, id_type), "item": column(items, id_type), "timestamp": column(times, time_type)}
    if any(c is None for c in columns.values()):
        return
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table(columns), path)
    seqs = read_or_refuse(path, "parquet")
    if seqs is not None and rows:
        # whatever was accepted is ordered by time within each user
        for u in range(seqs.n_users):
            lo, hi = seqs.offsets[u], seqs.offsets[u + 1]
            assert hi > lo
