"""Tests of perflaw.ingest: every format against an independent pure-Python parse,
format detection, streaming == in-memory, and bad input."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perflaw.ingest import count_rows_hint, detect_format, iter_batches, read_sequences
from perflaw.sequences import Sequences, combine_fingerprints



# ============================================================ references
def ref_sasrec(text: str) -> list[tuple[int, list[int]]]:
    """(user, items) per non-blank line, in file order."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if fields:
            out.append((int(fields[0]), [int(f) for f in fields[1:]]))
    return out


def ref_grouped(rows, order: str = "first", with_time: bool = False):
    """Group (user, item[, time]) rows: users by first appearance or sorted; items by a stable time sort."""
    groups: dict = {}
    for position, row in enumerate(rows):
        user, item = row[0], row[1]
        time = row[2] if with_time else 0
        groups.setdefault(user, []).append((time, position, item))
    users = list(groups) if order == "first" else sorted(groups)
    return [(u, [item for _, _, item in sorted(groups[u])]) for u in users]


def pairs_of(seqs: Sequences):
    return list(zip(seqs.user_ids.tolist(), seqs.to_lists(original_ids=True)))


def streamed(path, **kwargs) -> dict:
    """user -> items over all batches; each user must come in one batch only."""
    result: dict = {}
    for batch in iter_batches(path, **kwargs):
        assert isinstance(batch, Sequences)
        for user, items in pairs_of(batch):
            assert user not in result, f"user {user} came in two batches"
            result[user] = items
    return result


def random_log(seed: int, n_rows: int = 300, n_users: int = 20, n_items: int = 50, ties: int = 5):
    rng = random.Random(seed)
    return [(rng.randrange(n_users), rng.randrange(n_items), rng.randrange(ties)) for _ in range(n_rows)]


# ============================================================ sasrec / pairs
sequences_strategy = st.lists(
    st.tuples(st.integers(0, 10**6), st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=8)),
    min_size=1,
    max_size=30,
    unique_by=lambda pair: pair[0],
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequences_strategy, st.sampled_from([" ", "  ", "\t"]), st.sampled_from(["\n", "\r\n"]))
def test_sasrec_round_trip(tmp_path, data, space, newline):
    text = newline.join(space.join(map(str, [u] + items)) for u, items in data) + newline
    path = tmp_path / "seqs.txt"
    path.write_bytes(text.encode())
    seqs = read_sequences(path, format="sasrec")
    assert pairs_of(seqs) == ref_sasrec(text)
    assert pairs_of(read_sequences(path)) == ref_sasrec(text)  # auto


def test_sasrec_blank_lines_and_spacing(tmp_path):
    text = "\n3 1 2\n\n  1   5 6 7  \n2\t9\n\n"
    path = tmp_path / "s.txt"
    path.write_text(text)
    assert pairs_of(read_sequences(path)) == [(3, [1, 2]), (1, [5, 6, 7]), (2, [9])]


def test_sasrec_on_real_data(beauty_path):
    seqs = read_sequences(beauty_path)
    expected = ref_sasrec(beauty_path.read_text())
    assert pairs_of(seqs) == expected
    assert seqs.tokens == sum(len(items) for _, items in expected)
    assert detect_format(beauty_path) == "sasrec"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 8), st.integers(0, 30)), min_size=1, max_size=60))
def test_pairs_round_trip(tmp_path, rows):
    path = tmp_path / "pairs.txt"
    path.write_text("".join(f"{u} {i}\n" for u, i in rows))
    seqs = read_sequences(path, format="pairs")
    assert pairs_of(seqs) == ref_grouped(rows, "first")
    # streaming gives the same users and sequences, in small batches or in one
    assert streamed(path, format="pairs", batch_rows=7) == dict(ref_grouped(rows))
    assert streamed(path, format="pairs") == dict(ref_grouped(rows))


def test_auto_tells_pairs_from_sasrec(tmp_path):
    pairs = tmp_path / "p.txt"
    pairs.write_text("1 10\n2 20\n1 11\n")
    assert detect_format(pairs) == "pairs"
    assert pairs_of(read_sequences(pairs)) == [(1, [10, 11]), (2, [20])]
    # two fields per line but no repeated user: both layouts mean the same thing
    single = tmp_path / "s.txt"
    single.write_text("1 10\n2 20\n")
    assert pairs_of(read_sequences(single)) == [(1, [10]), (2, [20])]
    # a repeated user on lines with several items is not a pairs file
    broken = tmp_path / "b.txt"
    broken.write_text("1 10 11\n1 12\n")
    with pytest.raises(ValueError, match=r"user 1 appears on lines 1 and 2"):
        read_sequences(broken)


def test_auto_decides_pairs_on_the_whole_file(tmp_path):
    # The first MiB has no repeated user; repeats come later. In memory the
    # whole file decides, so this is read as pairs.
    lines = [f"{u} {u % 7}\n" for u in range(120_000)] + ["5 99\n", "0 98\n"]
    path = tmp_path / "late.txt"
    path.write_text("".join(lines))
    seqs = read_sequences(path)
    users = dict(pairs_of(seqs))
    assert users[5] == [5, 99] and users[0] == [0, 98]
    assert seqs.n_users == 120_000


def test_sep_option_for_text(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("1,4,5\n2,6\n")
    assert pairs_of(read_sequences(path, format="sasrec", sep=",")) == [(1, [4, 5]), (2, [6])]


def test_string_ids_in_text(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("alice B001 B002\nbob B002\n")
    seqs = read_sequences(path, format="sasrec", ids="str")
    assert pairs_of(seqs) == [("alice", ["B001", "B002"]), ("bob", ["B002"])]
    with pytest.raises(ValueError, match=r"line 1: non-integer id 'alice'"):
        read_sequences(path, format="sasrec")


def test_compressed_text(tmp_path, beauty_path):
    path = tmp_path / "beauty.txt.gz"
    path.write_bytes(gzip.compress(beauty_path.read_bytes()))
    assert detect_format(path) == "sasrec"
    plain = read_sequences(beauty_path)
    assert read_sequences(path).fingerprint() == plain.fingerprint()
    assert streamed(path, batch_rows=30_000) == dict(pairs_of(plain))


# ============================================================ RecBole .inter
def write_inter(path: Path, rows, header="user_id:token\titem_id:token\trating:float\ttimestamp:float"):
    body = "".join(f"{u}\t{i}\t4.5\t{t}\n" for u, i, t in rows)
    path.write_text(header + "\n" + body)


def test_inter_round_trip_sorts_by_timestamp_stably(tmp_path):
    rows = random_log(seed=1)
    path = tmp_path / "data.inter"
    write_inter(path, rows)
    seqs = read_sequences(path)
    assert pairs_of(seqs) == ref_grouped(rows, "sorted", with_time=True)
    assert streamed(path, batch_rows=40) == dict(ref_grouped(rows, with_time=True))


def test_inter_tokens_that_are_not_numbers_stay_text(tmp_path):
    rows = [("A7", "007", 2.0), ("A7", "7", 1.0), ("B1", "x", 0.0)]
    path = tmp_path / "t.inter"
    write_inter(path, rows)
    seqs = read_sequences(path)
    # "007" and "7" are different RecBole tokens
    assert pairs_of(seqs) == [("A7", ["7", "007"]), ("B1", ["x"])]


def test_inter_custom_fields_and_no_timestamp(tmp_path):
    path = tmp_path / "x.inter"
    path.write_text("session:token\tproduct:token\n1\t5\n2\t6\n1\t4\n")
    seqs = read_sequences(path, user="session", item="product")
    assert pairs_of(seqs) == [(1, [5, 4]), (2, [6])]
    with pytest.raises(ValueError, match=r"missing column\(s\) \['user_id', 'item_id'\].*\['session', 'product'\]"):
        read_sequences(path)


# ============================================================ MovieLens
@pytest.mark.parametrize(
    "name, sep, header",
    [("ratings.dat", "::", None), ("u.data", "\t", None), ("ratings.csv", ",", "userId,movieId,rating,timestamp")],
)
def test_movielens_variants(tmp_path, name, sep, header):
    rows = random_log(seed=2)
    lines = [sep.join([str(u), str(i), f"{(u * i) % 5 + 0.5}" if sep == "," else "3", str(t)]) for u, i, t in rows]
    path = tmp_path / name
    path.write_text("\n".join(([header] if header else []) + lines) + "\n")
    assert detect_format(path) == "movielens"
    seqs = read_sequences(path)
    assert pairs_of(seqs) == ref_grouped(rows, "sorted", with_time=True)
    assert streamed(path, batch_rows=50) == dict(ref_grouped(rows, with_time=True))


# ============================================================ CSV
@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_csv_round_trip(tmp_path, sep):
    rows = random_log(seed=3)
    path = tmp_path / ("log.tsv" if sep == "\t" else "log.csv")
    path.write_text(sep.join(["ts", "uid", "iid"]) + "\n" + "".join(f"{t}{sep}{u}{sep}{i}\n" for u, i, t in rows))
    seqs = read_sequences(path, user="uid", item="iid", timestamp="ts")
    assert pairs_of(seqs) == ref_grouped(rows, "sorted", with_time=True)
    # the same as building from a pandas table, down to the fingerprint
    frame = pd.read_csv(path, sep=sep)
    assert seqs.fingerprint() == Sequences.from_table(frame, user="uid", item="iid", timestamp="ts").fingerprint()
    no_time = read_sequences(path, user="uid", item="iid")
    assert pairs_of(no_time) == ref_grouped(rows, "sorted")


def test_csv_string_ids_and_quoting(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text('user,item\n"a,1",B0\nb,B1\n"a,1",B2\n')
    assert pairs_of(read_sequences(path)) == [("a,1", ["B0", "B2"]), ("b", ["B1"])]


def test_csv_ids_option(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text("user,item\n1,007\n1,7\n")
    assert pairs_of(read_sequences(path)) == [(1, [7, 7])]
    assert pairs_of(read_sequences(path, ids="str")) == [("1", ["007", "7"])]


def test_csv_datetime_timestamps(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("user,item,when\n1,5,2021-03-01 10:00:00\n1,6,2021-01-01 10:00:00\n")
    assert pairs_of(read_sequences(path, timestamp="when")) == [(1, [6, 5])]


def test_csv_streaming(tmp_path):
    rows = random_log(seed=4, n_rows=2000, n_users=150)
    path = tmp_path / "big.csv"
    path.write_text("user,item,t\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    expected = dict(ref_grouped(rows, with_time=True))
    assert streamed(path, timestamp="t", batch_rows=300) == expected
    grouped_rows = sorted(rows, key=lambda r: r[0])  # contiguous users
    path.write_text("user,item,t\n" + "".join(f"{u},{i},{t}\n" for u, i, t in grouped_rows))
    assert streamed(path, timestamp="t", batch_rows=300) == dict(ref_grouped(grouped_rows, with_time=True))


# ============================================================ Parquet
def test_parquet_types(tmp_path):
    table = pa.table(
        {
            "u": pa.array(["b", "a", "b", "a"]).dictionary_encode(),
            "i": pa.array([3, 4, 5, 6], type=pa.uint32()),
            "t": pa.array([20, 10, 10, 5], type=pa.timestamp("s")),
        }
    )
    path = tmp_path / "x.parquet"
    pq.write_table(table, path)
    seqs = read_sequences(path, user="u", item="i", timestamp="t")
    assert pairs_of(seqs) == [("a", [6, 4]), ("b", [5, 3])]
    assert seqs.fingerprint() == Sequences.from_table(pd.read_parquet(path), user="u", item="i", timestamp="t").fingerprint()


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string(), pa.string_view()])
def test_parquet_string_types(tmp_path, kind):
    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"user": pa.array(["b", "a", "b"], kind), "item": pa.array(["x", "y", "z"], kind)}), path)
    assert pairs_of(read_sequences(path)) == [("a", ["y"]), ("b", ["x", "z"])]


def test_parquet_detected_by_magic_bytes(tmp_path):
    path = tmp_path / "no_suffix"
    pq.write_table(pa.table({"user": [1, 1], "item": [2, 3]}), path)
    assert detect_format(path) == "parquet"
    assert pairs_of(read_sequences(path)) == [(1, [2, 3])]


def beauty_rows(path: Path):
    users, items, positions = [], [], []
    for user, seq in ref_sasrec(path.read_text()):
        users += [user] * len(seq)
        items += seq
        positions += range(len(seq))
    return np.array(users), np.array(items), np.array(positions)


def test_streaming_beauty_parquet_users_split_across_row_groups(tmp_path, beauty_path):
    users, items, _ = beauty_rows(beauty_path)
    path = tmp_path / "beauty.parquet"
    pq.write_table(pa.table({"user": users, "item": items}), path, row_group_size=7_777)
    assert pq.ParquetFile(path).metadata.num_row_groups > 20
    expected = read_sequences(beauty_path)
    in_memory = read_sequences(path)
    assert pairs_of(in_memory) == pairs_of(expected)
    assert in_memory.fingerprint() == expected.fingerprint()
    spill = tmp_path / "spill"
    spill.mkdir()
    batches = list(iter_batches(path, batch_rows=10_000, tmp_dir=spill))
    assert len(batches) > 10
    max_len = int(expected.lengths.max())
    assert max(b.tokens for b in batches) <= 10_000 + max_len
    merged = {u: s for b in batches for u, s in pairs_of(b)}
    assert merged == dict(pairs_of(expected))
    assert combine_fingerprints(b.fingerprint_state() for b in batches) == expected.fingerprint()
    # batches hold users in file order, and each its own dense relabelling
    assert [u for b in batches for u in b.user_ids.tolist()] == expected.user_ids.tolist()
    assert all(b.n_items == len(np.unique(b.items)) for b in batches)
    assert not any(spill.iterdir())  # the contiguous path needs no spill files


def test_streaming_beauty_shuffled_uses_external_grouping(tmp_path, beauty_path):
    users, items, positions = beauty_rows(beauty_path)
    order = np.random.default_rng(0).permutation(len(users))
    path = tmp_path / "shuffled.parquet"
    pq.write_table(
        pa.table({"user": users[order], "item": items[order], "pos": positions[order]}), path, row_group_size=20_000
    )
    expected = dict(pairs_of(read_sequences(beauty_path)))
    spill = tmp_path / "spill"
    spill.mkdir()
    seen_spill_files = False
    merged: dict = {}
    sizes, states = [], []
    for batch in iter_batches(path, timestamp="pos", batch_rows=20_000, tmp_dir=spill):
        seen_spill_files = seen_spill_files or any(spill.rglob("*.parquet"))
        sizes.append(batch.tokens)
        states.append(batch.fingerprint_state())
        for user, seq in pairs_of(batch):
            assert user not in merged
            merged[user] = seq
    assert seen_spill_files
    assert merged == expected
    assert combine_fingerprints(states) == read_sequences(beauty_path).fingerprint()
    assert max(sizes) < 1.5 * 20_000  # partitions hold about batch_rows rows
    assert not any(spill.iterdir())  # temporary partitions are removed
    # without a timestamp, each user's rows keep file order, as in memory
    in_memory = dict(pairs_of(read_sequences(path)))
    assert streamed(path, batch_rows=50_000) == in_memory


def test_external_grouping_with_string_ids_and_early_close(tmp_path):
    rows = [(f"user-{u}", f"item-{i}", t) for u, i, t in random_log(seed=5, n_rows=3000, n_users=300)]
    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"user": [r[0] for r in rows], "item": [r[1] for r in rows], "t": [r[2] for r in rows]}), path)
    expected = dict(ref_grouped(rows, with_time=True))
    assert streamed(path, timestamp="t", batch_rows=400, grouped=False) == expected
    spill = tmp_path / "spill"
    spill.mkdir()
    batches = iter_batches(path, timestamp="t", batch_rows=400, tmp_dir=spill)
    next(batches)
    assert any(spill.iterdir())
    batches.close()
    assert not any(spill.iterdir())


def test_grouped_true_on_an_ungrouped_file_raises(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"user": [1, 2, 1], "item": [5, 6, 7]}), path)
    with pytest.raises(ValueError, match=r"user 1 reappears in row 3"):
        list(iter_batches(path, grouped=True, batch_rows=2))


def test_streaming_equals_memory_for_text_formats(tmp_path, beauty_path):
    expected = dict(pairs_of(read_sequences(beauty_path)))
    assert streamed(beauty_path, batch_rows=25_000) == expected
    # beauty as shuffled `user item` pairs: external grouping of a text file
    users, items, _ = beauty_rows(beauty_path)
    order = np.random.default_rng(1).permutation(len(users))[:40_000]
    order.sort()  # keep file order, drop rows: users stay interleaved below
    lines = [f"{u} {i}\n" for u, i in zip(users[order], items[order])]
    random.Random(2).shuffle(lines)
    path = tmp_path / "pairs.txt"
    path.write_text("".join(lines))
    assert detect_format(path) == "pairs"
    assert streamed(path, batch_rows=8_000) == dict(pairs_of(read_sequences(path)))


def test_progress_bar_goes_to_stderr(tmp_path, beauty_path, capsys, monkeypatch):
    for _ in iter_batches(beauty_path, batch_rows=50_000, progress=True):
        pass
    assert capsys.readouterr().err == ""  # not a terminal: no bar at all
    monkeypatch.setattr("perflaw.progress.bars_allowed", lambda: True)  # as on a terminal
    for _ in iter_batches(beauty_path, batch_rows=50_000, progress=True):
        pass
    err = capsys.readouterr().err
    assert "reading" in err and "100%" in err
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"user": [2, 1, 2], "item": [1, 2, 3]}), path)
    list(iter_batches(path, batch_rows=1, progress=True))
    err = capsys.readouterr().err
    assert "checking user order" in err and "partitioning by user" in err


# ============================================================ helpers
def test_count_rows_hint(tmp_path, beauty_path):
    seqs = read_sequences(beauty_path)
    estimate = count_rows_hint(beauty_path)
    assert abs(estimate - seqs.tokens) / seqs.tokens < 0.05
    small = tmp_path / "s.txt"
    small.write_text("1 5 6 7\n2 5\n")
    assert count_rows_hint(small) == 4
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"user": list(range(123)), "item": list(range(123))}), path)
    assert count_rows_hint(path) == 123
    csv = tmp_path / "c.csv"
    csv.write_text("user,item\n1,2\n3,4\n5,6\n")
    assert count_rows_hint(csv) == 3


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("a.inter", "user_id:token\titem_id:token\n1\t2\n", "inter"),
        ("noext", "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n", "inter"),
        ("r.txt", "1::2::3::4\n", "movielens"),
        ("u.data", "1\t2\t3\t4\n", "movielens"),
        ("table", "1\t2\t3\t881250949\n2\t3\t4\t881250950\n", "movielens"),
        ("ml.csv", "userId,movieId,rating,timestamp\n1,2,3.5,4\n", "movielens"),
        ("x.csv", "user,item\n1,2\n", "csv"),
        ("x.tsv", "user\titem\n1\t2\n", "csv"),
        ("seq.txt", "1 2 3\n2 3\n", "sasrec"),
        ("p.txt", "1 2\n1 3\n", "pairs"),
    ],
)
def test_detect_format(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content)
    assert detect_format(path) == expected


# ============================================================ bad input
def test_missing_file_names_it(tmp_path):
    missing = tmp_path / "nope.txt"
    for call in (read_sequences, detect_format, count_rows_hint, iter_batches):
        with pytest.raises(FileNotFoundError, match="nope.txt"):
            call(missing)


def test_directory_is_refused(tmp_path):
    with pytest.raises(ValueError, match="directory"):
        read_sequences(tmp_path)


@pytest.mark.parametrize("fmt", ["auto", "sasrec", "pairs", "movielens", "csv", "inter"])
@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file(tmp_path, fmt, content):
    path = tmp_path / "empty.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match="empty|no interactions"):
        read_sequences(path, format=fmt)
    with pytest.raises(ValueError, match="empty|no interactions"):
        list(iter_batches(path, format=fmt))


def test_header_only_tables(tmp_path):
    csv = tmp_path / "h.csv"
    csv.write_text("user,item\n")
    with pytest.raises(ValueError, match="no rows"):
        read_sequences(csv)
    parquet = tmp_path / "h.parquet"
    pq.write_table(pa.table({"user": pa.array([], pa.int64()), "item": pa.array([], pa.int64())}), parquet)
    with pytest.raises(ValueError, match="no rows"):
        read_sequences(parquet)


@pytest.mark.parametrize(
    "fmt, content, message",
    [
        ("sasrec", "1 2 3\n2 x 4\n", r"line 2: non-integer id 'x' in '2 x 4'"),
        ("sasrec", "1 2 3\n\n2 1.5\n", r"line 3: non-integer id '1.5'"),
        ("sasrec", "1 2 3\n7\n", r"line 2: a user id with no items: '7'"),
        ("sasrec", "1 2\n2 -4 1\n", r"line 2: negative id -4 in '2 -4 1'"),
        ("sasrec", "1 2\n2 9223372036854775808\n", r"line 2: id 9223372036854775808 is too large"),
        ("sasrec", "1 2\n2 +5\n", r"line 2: non-integer id '\+5'"),
        ("sasrec", "1 2\n2 NA 5\n", r"line 2: non-integer id 'NA' in '2 NA 5'"),
        ("pairs", "1 2\n2 null\n", r"line 2: non-integer id 'null'"),
        ("movielens", "1::2::3::4\n1::NA::3::4\n", r"line 2: item: non-integer id 'NA'"),
        ("sasrec", "1 2\n1 3\n", r"user 1 appears on lines 1 and 2.*format='pairs'"),
        ("pairs", "1 2\n1 3 4\n", r"line 2: expected 2 fields \(user item\), got 3: '1 3 4'.*sasrec"),
        ("pairs", "1 2\n3\n", r"line 2: expected 2 fields"),
        ("movielens", "1::2::3::4\n1::2::3\n", r"line 2: expected 4 fields"),
        ("movielens", "1::2::3::4\n1::b::3::4\n", r"line 2: item: non-integer id 'b'"),
        ("movielens", "1::2::3::4\n-1::2::3::4\n", r"line 2: user: negative id -1"),
        ("movielens", "1::2::3::4\n1::2::3::x\n", r"line 2: timestamp: non-integer id 'x'"),
        ("inter", "user_id:token\titem_id:token\n1\t2\n3\n", r"line 3: expected 2 fields like the header, got 1: '3'"),
        ("inter", "user_id\titem_id\n1\t2\n", r"line 1: header field 'user_id' is not 'name:type'"),
        ("csv", "user,item\n1,2\n3\n", r"line 3: expected 2 fields like the header, got 1: '3'"),
        ("csv", 'user,item\n1,"2\n3\n4,5\n', r"item id in row 1 \(column 'item'\) spans a line break"),
    ],
)
def test_malformed_lines(tmp_path, fmt, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_sequences(path, format=fmt)
    with pytest.raises(ValueError, match=message):
        list(iter_batches(path, format=fmt, batch_rows=1))


def test_largest_valid_id_is_read(tmp_path):
    path = tmp_path / "ok.txt"
    path.write_text("9223372036854775807 0 9223372036854775807\n")
    assert pairs_of(read_sequences(path)) == [(2**63 - 1, [0, 2**63 - 1])]


@pytest.mark.parametrize(
    "content, error, message",
    [
        ("user,item\n1,2\n2,-3\n", ValueError, r"negative item id -3 in row 2"),
        ("user,item\n1,2\n9223372036854775808,3\n", ValueError, r"user id 9223372036854775808 in row 2.*too large"),
        ("user,item\n1,2\n2,1.5\n", TypeError, r"item id '1.5' in row 2.*not an integer"),
        ("user,item\n1,2\n2,nan\n", ValueError, r"item column 'item' has a missing value 'nan' in row 2"),
        ("user,item\n1,2\n2,nan\n3,2.5\n", TypeError, r"item id 'nan' in row 2.*not an integer"),
        ("user,item\n1,2\n2,\n", ValueError, r"item column 'item' has an empty value in row 2"),
        ("user,item\n1,2\n2,NA\n3,4\n", ValueError, r"item column 'item' has a missing value 'NA' in row 2"),
        ("user,thing\n1,2\n", ValueError, r"missing column\(s\) \['item'\]; the file has columns \['user', 'thing'\]"),
        ("user,item,t\n1,2,\n", ValueError, r"timestamp column 't' has a missing value in row 1"),
        ("user,item,t\n1,2,x\n", TypeError, r"timestamp column 't' has type string"),
    ],
)
def test_bad_csv_values(tmp_path, content, error, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(error, match=message):
        read_sequences(path, timestamp="t" if ",t\n" in content else None)


def test_csv_streaming_keeps_the_id_type_of_the_first_rows(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("user,item\n" + "".join(f"{u},{u}\n" for u in range(5000)) + "5001,abc\n")
    assert read_sequences(path).item_vocab.dtype.kind == "U"  # in memory: the column is text
    with pytest.raises(ValueError, match=r"item id 'abc' in row 5001.*ids='str'"):
        list(iter_batches(path, batch_rows=100, grouped=True))
    assert len(streamed(path, batch_rows=100, ids="str")) == 5001


@pytest.mark.parametrize(
    "column, error, message",
    [
        (pa.array([1, -2], pa.int64()), ValueError, r"negative item id -2 in row 2"),
        (pa.array([1, 2**63], pa.uint64()), ValueError, r"item id 9223372036854775808 in row 2.*2\*\*63"),
        (pa.array([1.0, 2.0]), TypeError, r"item column 'item' holds double values"),
        (pa.array([1, None], pa.int64()), ValueError, r"item column 'item' has a missing value in row 2"),
        (pa.array([True, False]), TypeError, r"holds bool values"),
    ],
)
def test_bad_parquet_values(tmp_path, column, error, message):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"user": [1, 2], "item": column}), path)
    with pytest.raises(error, match=message):
        read_sequences(path)
    with pytest.raises(error, match=message):
        list(iter_batches(path))


def test_nul_in_text_ids(tmp_path):
    path = tmp_path / "n.parquet"
    pq.write_table(pa.table({"user": ["a", "b\x00c"], "item": [1, 2]}), path)
    with pytest.raises(ValueError, match=r"user id in row 2 \(column 'user'\) contains a NUL"):
        read_sequences(path)


def test_parquet_missing_columns(tmp_path):
    path = tmp_path / "m.parquet"
    pq.write_table(pa.table({"uid": [1], "iid": [2]}), path)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['user', 'item'\]; the file has columns \['uid', 'iid'\]"):
        read_sequences(path)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['when'\]"):
        read_sequences(path, user="uid", item="iid", timestamp="when")


def test_corrupt_parquet(tmp_path):
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"user": list(range(100)), "item": list(range(100))}), good)
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(good.read_bytes()[:-30])
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"this is not parquet at all\n" * 10)
    for path in (truncated, garbage):
        with pytest.raises(ValueError, match=rf"{path.name} is not a readable Parquet file"):
            read_sequences(path)
        with pytest.raises(ValueError, match="not a readable Parquet file"):
            list(iter_batches(path))


def test_bad_arguments(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("1 2 3\n")
    with pytest.raises(ValueError, match="format must be one of"):
        read_sequences(path, format="json")
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['colour'\]"):
        read_sequences(path, colour="red")
    with pytest.raises(ValueError, match="ids must be one of"):
        read_sequences(path, ids="float")
    with pytest.raises(TypeError, match="user must be"):
        read_sequences(path, user=3)
    with pytest.raises(TypeError, match="path must be"):
        read_sequences(42)
    with pytest.raises(ValueError, match="batch_rows must be >= 1"):
        iter_batches(path, batch_rows=0)
    with pytest.raises(TypeError, match="grouped"):
        iter_batches(path, grouped="yes")


# ============================================================ grouping internals
def test_grouping_many_users_in_shuffled_order(tmp_path):
    # more than 2**16 users: the two-pass radix sort of user keys
    rng = np.random.default_rng(6)
    n_users = 70_000
    users = np.repeat(np.arange(n_users), 2)
    items = rng.integers(0, 1000, len(users))
    times = rng.integers(0, 3, len(users))
    order = rng.permutation(len(users))
    rows = list(zip((users * 7919)[order].tolist(), items[order].tolist(), times[order].tolist()))
    pairs = tmp_path / "p.txt"
    pairs.write_text("".join(f"{u} {i}\n" for u, i, _ in rows))
    assert pairs_of(read_sequences(pairs, format="pairs")) == ref_grouped(rows, "first")
    csv = tmp_path / "c.csv"
    csv.write_text("user,item,t\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    assert pairs_of(read_sequences(csv, timestamp="t")) == ref_grouped(rows, "sorted", with_time=True)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 2**40), min_size=0, max_size=200), st.sampled_from([10, 70_000, 2**33]))
def test_stable_argsort_matches_numpy(values, n_keys):
    from perflaw.grouping import stable_argsort

    key = np.array(values, dtype=np.int64) % n_keys
    assert stable_argsort(key, n_keys).tolist() == np.argsort(key, kind="stable").tolist()


# Ids read from files are decoded UTF-8 (no lone surrogates), and readers
# reject NUL, which NumPy strings cannot hold faithfully.
id_text = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=4)


@given(st.one_of(st.lists(st.integers(0, 2**63 - 1), max_size=100), st.lists(id_text, max_size=100)))
def test_dense_ids_match_numpy_unique(values):
    from perflaw.grouping import dense_ids

    array = np.array(values, dtype=np.int64 if not values or isinstance(values[0], int) else str)
    dense, distinct = dense_ids(array)
    expected_distinct, inverse = np.unique(array, return_inverse=True)
    assert distinct.tolist() == expected_distinct.tolist()
    assert dense.tolist() == (inverse.reshape(-1) + 1).tolist()


@pytest.mark.parametrize("distinct", [50, 10**6, 2**62])
def test_dense_ids_of_long_int_columns_match_numpy_unique(distinct):
    # long columns are hashed (short ones sorted): both give np.unique's answer
    from perflaw.grouping import dense_ids

    values = np.random.default_rng(distinct % 97).integers(0, distinct, 300_000)
    dense, vocabulary = dense_ids(values)
    expected_vocabulary, inverse = np.unique(values, return_inverse=True)
    assert (vocabulary == expected_vocabulary).all() and vocabulary.dtype == np.int64
    assert (dense == inverse.reshape(-1) + 1).all()


# ============================================================ less common paths
def test_inter_integer_tokens_that_are_not_canonical_stay_text(tmp_path):
    path = tmp_path / "c.inter"
    path.write_text("user_id:token\titem_id:token\n1\t007\n1\t7\n")
    assert pairs_of(read_sequences(path)) == [(1, ["007", "7"])]
    assert pairs_of(read_sequences(path, ids="int")) == [(1, [7, 7])]


def test_inter_field_types_are_checked(tmp_path):
    path = tmp_path / "t.inter"
    path.write_text("user_id:float\titem_id:token\n1.0\t2\n")
    with pytest.raises(TypeError, match=r"user field 'user_id' has RecBole type float; expected token"):
        read_sequences(path)
    path.write_text("user_id:token\titem_id:token\ttimestamp:token\n1\t2\tx\n")
    with pytest.raises(TypeError, match=r"timestamp field 'timestamp' has type token; expected float"):
        read_sequences(path)


def test_ids_as_text_from_typed_sources(tmp_path):
    parquet = tmp_path / "i.parquet"
    pq.write_table(pa.table({"user": [1, 1], "item": [5, 6]}), parquet)
    assert pairs_of(read_sequences(parquet, ids="str")) == [("1", ["5", "6"])]
    ratings = tmp_path / "ratings.dat"
    ratings.write_text("1::5::3::20\n1::6::3::10\n")
    assert pairs_of(read_sequences(ratings, ids="str")) == [("1", ["6", "5"])]


def test_nan_timestamps_in_parquet(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"user": [1, 1], "item": [5, 6], "t": [1.0, float("nan")]}), path)
    with pytest.raises(ValueError, match=r"timestamp column 't' is NaN in row 2"):
        read_sequences(path, timestamp="t")


def test_csv_timestamp_type_change_in_a_later_block(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("user,item,t\n" + "".join(f"{u},{u},{u}\n" for u in range(30_000)) + "1,1,later\n")
    with pytest.raises(ValueError, match=r"conversion error to int64.*inferred from the first rows"):
        list(iter_batches(path, timestamp="t", batch_rows=1000, grouped=True))


def test_text_without_final_newline_and_with_a_long_line(tmp_path):
    long_line = "1 " + " ".join(str(i) for i in range(3000))  # longer than a 4 KiB chunk
    text = long_line + "\n2 7 8\n3 9"
    path = tmp_path / "s.txt"
    path.write_text(text)
    expected = dict(ref_sasrec(text))
    assert dict(pairs_of(read_sequences(path))) == expected
    assert streamed(path, batch_rows=1) == expected


def test_invalid_utf8_in_text_ids(tmp_path):
    path = tmp_path / "u.txt"
    path.write_bytes(b"a b\nc \xff\xfe\n")
    with pytest.raises(ValueError, match="not valid UTF-8"):
        read_sequences(path, format="sasrec", ids="str")


def test_more_bad_arguments(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("1 2 3\n")
    with pytest.raises(TypeError, match="timestamp must be"):
        read_sequences(path, timestamp=5)
    with pytest.raises(TypeError, match="sep must be"):
        read_sequences(path, sep="")
    with pytest.raises(TypeError, match="batch_rows must be an integer"):
        iter_batches(path, batch_rows=1.5)
    with pytest.raises(ValueError, match="tmp_dir"):
        iter_batches(path, tmp_dir=tmp_path / "missing")
    csv = tmp_path / "c.csv"
    csv.write_text("user,item\n1,2\n")
    with pytest.raises(ValueError, match="csv sep must be a single character"):
        read_sequences(csv, sep="::")


def test_corrupt_compressed_text(tmp_path, beauty_path):
    path = tmp_path / "beauty.txt.gz"
    data = gzip.compress(beauty_path.read_bytes())
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="could not be decompressed"):
        read_sequences(path)
    with pytest.raises(ValueError, match="could not be decompressed"):
        list(iter_batches(path, batch_rows=10_000))


def test_parquet_id_column_of_another_type(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"user": pa.array([1, 2], pa.date32()), "item": [1, 2]}), path)
    with pytest.raises(TypeError, match=r"user column 'user' has type date32\[day\]; ids must be integers or strings"):
        read_sequences(path)
