"""Data out: Sequences.to_pandas/to_polars/to_arrow, perflaw.write_sequences, and
data_quality/apen/coding_stats/Sequences.from_table on DataFrames and Arrow streams.

Exports are checked against a slow pure-Python reference built from
``to_lists()`` and the vocabularies; every writer is checked by reading its
file back (equal fingerprints, and equal user -> items maps).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import perflaw
from perflaw import PerflawError, PerflawTypeError, Sequences
from perflaw.ingest import writers

# Text ids that every format can hold (no whitespace, no tab, no line break), some of
# which look like numbers: they read back as text only with ids="str".
TEXT_ITEMS = ["007", "12", "a,b", 'q"u', "é", "x:y", "NA", "z"]


def make_seqs(strings: bool, seed: int = 0, users: int = 12) -> Sequences:
    rng = np.random.default_rng(seed)
    lists = [rng.integers(0, len(TEXT_ITEMS), rng.integers(1, 9)).tolist() for _ in range(users)]
    user_ids = rng.permutation(1000)[:users] * 7 + 3  # unsorted, sparse
    if strings:
        lists = [[TEXT_ITEMS[i] for i in seq] for seq in lists]
        user_ids = np.array([f"u{u}" for u in user_ids])
    else:
        lists = [[i * 1000 + 1 for i in seq] for seq in lists]
    return Sequences.from_lists(lists, user_ids=user_ids.tolist())


def history(seqs: Sequences) -> dict:
    return dict(zip(seqs.user_ids.tolist(), seqs.to_lists(original_ids=True)))


def reference_rows(seqs: Sequences) -> list[tuple]:
    """(user, item, position) per interaction, one Python loop per token."""
    rows = []
    for u, seq in enumerate(seqs.to_lists()):
        for position, dense in enumerate(seq):
            rows.append((seqs.user_ids[u].item(), seqs.item_vocab[dense - 1].item(), position))
    return rows


# ----------------------------------------------------------------- exports
def test_exports_match_the_reference():
    # an empty user in the middle has no row
    with_empty = Sequences.from_arrays([0, 2, 2, 3], [5, 6, 5], user_ids=[9, 4, 1])
    for seqs in (make_seqs(False), make_seqs(True), with_empty):
        expected = reference_rows(seqs)
        frames = {
            "pandas": seqs.to_pandas(),
            "polars": seqs.to_polars(),
            "arrow": seqs.to_arrow(),
        }
        for kind, frame in frames.items():
            assert list(frame.columns if kind != "arrow" else frame.column_names) == ["user", "item", "position"]
            columns = [frame[name].to_list() if kind == "polars" else
                       (frame.column(name).to_pylist() if kind == "arrow" else frame[name].tolist())
                       for name in ("user", "item", "position")]
            assert list(zip(*columns)) == expected, kind
        table = frames["arrow"]
        assert table.schema.field("position").type == pa.int64()
        if seqs.item_vocab.dtype.kind == "i":
            assert table.schema.field("item").type == pa.int64()
            assert frames["pandas"]["item"].dtype == np.int64
        # and back: the position orders each user's items
        shuffled = frames["pandas"].sample(frac=1.0, random_state=1)
        back = Sequences.from_table(shuffled, timestamp="position")
        assert back.fingerprint() == seqs.min_length(1).fingerprint()


def test_positions():
    seqs = Sequences.from_arrays([0, 3, 3, 5], [1, 2, 3, 4, 5])
    assert seqs.positions().tolist() == [0, 1, 2, 0, 1]
    assert Sequences.from_arrays([0], []).to_arrow().num_rows == 0


# ----------------------------------------------------------------- writers
SUFFIX = {"sasrec": ".txt", "pairs": ".txt", "inter": ".inter", "csv": ".csv", "parquet": ".parquet"}
READ = {
    "sasrec": {"format": "sasrec"},
    "pairs": {"format": "pairs"},
    "inter": {"format": "inter"},
    "csv": {"format": "csv", "timestamp": "timestamp"},
    "parquet": {"format": "parquet", "timestamp": "timestamp"},
}


@pytest.mark.parametrize("strings", [False, True], ids=["int-ids", "text-ids"])
@pytest.mark.parametrize("fmt", list(READ))
def test_every_writer_round_trips(tmp_path, fmt, strings):
    seqs = make_seqs(strings)
    path = perflaw.write_sequences(seqs, tmp_path / f"out{SUFFIX[fmt]}", format=fmt)
    assert path == tmp_path / f"out{SUFFIX[fmt]}"
    options = dict(READ[fmt])
    if strings and fmt != "parquet":
        options["ids"] = "str"  # "007" and "12" would otherwise be numbers
    back = perflaw.read_sequences(path, **options)
    assert back.fingerprint() == seqs.fingerprint()
    assert history(back) == history(seqs)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_written_text_layouts(tmp_path):
    seqs = Sequences.from_lists([[10, 20, 10], [30]], user_ids=[7, 8])
    text = {fmt: perflaw.write_sequences(seqs, tmp_path / f"{fmt}.out", format=fmt).read_text()
            for fmt in ("sasrec", "pairs", "inter", "csv")}
    assert text["sasrec"] == "7 10 20 10\n8 30\n"
    assert text["pairs"] == "7 10\n7 20\n7 10\n8 30\n"
    assert text["inter"] == "user_id:token\titem_id:token\ttimestamp:float\n7\t10\t0\n7\t20\t1\n7\t10\t2\n8\t30\t0\n"
    assert text["csv"] == "user,item,timestamp\n7,10,0\n7,20,1\n7,10,2\n8,30,0\n"
    table = pd.read_parquet(perflaw.write_sequences(seqs, tmp_path / "t.pq"))
    assert table.to_dict("list") == {"user": [7, 7, 7, 8], "item": [10, 20, 10, 30], "timestamp": [0, 1, 2, 0]}


@pytest.mark.parametrize("name", ["a.txt", "a.inter", "a.csv", "a.parquet", "a.pq", "a.parq"])
def test_format_from_the_suffix_reads_back_in_auto_mode(tmp_path, name):
    seqs = make_seqs(False, seed=2)
    path = perflaw.write_sequences(seqs, tmp_path / name)
    assert perflaw.read_sequences(path).fingerprint() == seqs.fingerprint()


@pytest.mark.parametrize("name, magic", [("a.txt.gz", b"\x1f\x8b"), ("a.csv.bz2", b"BZh"),
                                         ("a.inter.zst", b"\x28\xb5\x2f\xfd"), ("a.txt.xz", b"\xfd7zXZ")])
def test_compressed_by_suffix(tmp_path, name, magic):
    seqs = make_seqs(False, seed=3)
    path = perflaw.write_sequences(seqs, tmp_path / name)
    assert path.read_bytes().startswith(magic)
    assert perflaw.read_sequences(path).fingerprint() == seqs.fingerprint()
    if name.endswith(".gz"):
        assert gzip.decompress(path.read_bytes()).decode().splitlines()[0].split()[0] == str(seqs.user_ids[0])


def test_empty_users_are_left_out(tmp_path):
    seqs = Sequences.from_arrays([0, 2, 2, 3], [5, 6, 5], user_ids=[9, 4, 1])
    back = perflaw.read_sequences(perflaw.write_sequences(seqs, tmp_path / "a.txt"))
    assert history(back) == {9: [5, 6], 1: [5]}
    assert back.fingerprint() == seqs.min_length(1).fingerprint()


def test_integer_users_with_text_items(tmp_path):
    seqs = Sequences.from_lists([["a", "b"], ["b"]], user_ids=[1, 2])
    for name in ("m.csv", "m.inter", "m.parquet"):
        back = perflaw.read_sequences(perflaw.write_sequences(seqs, tmp_path / name), timestamp=None)
        assert history(back) == history(seqs), name
    for fmt in ("sasrec", "pairs"):
        with pytest.raises(PerflawError, match="item ids are text and the user ids integers"):
            perflaw.write_sequences(seqs, tmp_path / "m.txt", format=fmt)
    # text that the csv reader would type as numbers (or refuse) cannot sit next to integer ids
    numeric = Sequences.from_lists([["1", "2"], ["3"]], user_ids=[1, 2])
    with pytest.raises(PerflawError, match="write parquet"):
        perflaw.write_sequences(numeric, tmp_path / "n.csv")
    floats = Sequences.from_lists([["1.5", "2.0"]], user_ids=[1])
    with pytest.raises(PerflawError, match="is a number but not an integer"):
        perflaw.write_sequences(floats, tmp_path / "n.csv")  # the csv reader refuses float-looking ids
    back = perflaw.read_sequences(perflaw.write_sequences(floats, tmp_path / "f.inter"))  # RecBole tokens: text
    assert history(back) == history(floats)
    back = perflaw.read_sequences(perflaw.write_sequences(numeric, tmp_path / "n.parquet"))
    assert history(back) == history(numeric)
    assert not (tmp_path / "n.csv").exists() and not (tmp_path / "n.inter").exists()


@pytest.mark.parametrize(
    "seqs, name, fmt, message",
    [
        (Sequences.from_lists([["a b"]], user_ids=["u"]), "x.txt", "sasrec", "'a b' holds whitespace"),
        (Sequences.from_lists([["a"]], user_ids=["u\tv"]), "x.txt", "pairs", "user id 'u\\\\tv' holds whitespace"),
        (Sequences.from_lists([["a\tb"]], user_ids=["u"]), "x.inter", "inter", "a tab or a line break"),
        (Sequences.from_lists([["a\nb"]], user_ids=["u"]), "x.csv", "csv", "a line break"),
        (Sequences.from_lists([[""]], user_ids=["u"]), "x.csv", "csv", "an empty item id"),
        (Sequences.from_lists([[1], [2]], user_ids=[5, 5]), "x.txt", "sasrec", "user id 5 belongs to 2 users"),
        (Sequences.from_arrays([0, 0], []), "x.txt", "auto", "no interactions to write"),
        (Sequences.from_lists([[1]]), "x.txt", "json", "format must be one of auto, sasrec, pairs"),
        (Sequences.from_lists([[1]]), "x.json", "auto", "cannot tell the format from the suffix '.json'"),
        (Sequences.from_lists([[1]]), "x.parquet.gz", "auto", "Parquet compresses its own columns"),
    ],
)
def test_refused_writes_name_the_problem(tmp_path, seqs, name, fmt, message):
    with pytest.raises(PerflawError, match=message):
        perflaw.write_sequences(seqs, tmp_path / name, format=fmt)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(tmp_path):
    with pytest.raises(PerflawTypeError, match="needs a Sequences"):
        perflaw.write_sequences([[1, 2]], tmp_path / "a.txt")
    with pytest.raises(FileNotFoundError):
        perflaw.write_sequences(make_seqs(False), tmp_path / "missing" / "a.txt")
    with pytest.raises(PerflawError, match="is a directory"):
        perflaw.write_sequences(make_seqs(False), tmp_path)


def test_an_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "a.txt"
    path.write_text("1 2 3\n")
    monkeypatch.setattr(writers, "_CHUNK_TOKENS", 4)  # several chunks; fail after the first is written
    calls = {"n": 0}
    real = writers.pc.binary_join_element_wise

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:
            raise RuntimeError("interrupted")
        return real(*args, **kwargs)

    monkeypatch.setattr(writers.pc, "binary_join_element_wise", failing)
    with pytest.raises(RuntimeError, match="interrupted"):
        perflaw.write_sequences(make_seqs(False), path, format="pairs")
    assert path.read_text() == "1 2 3\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


# ----------------------------------------------------- tables as quality input
class StreamOnly:
    """Exposes nothing but the Arrow C stream interface."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema=None):
        return self._table.__arrow_c_stream__(requested_schema)


class ArrayOnly:
    """Exposes nothing but the Arrow C array interface (one record batch)."""

    def __init__(self, table: pa.Table) -> None:
        self._batch = table.combine_chunks().to_batches()[0]

    def __arrow_c_array__(self, requested_schema=None):
        return self._batch.__arrow_c_array__(requested_schema)


def table_inputs(seqs: Sequences) -> dict:
    """The interactions of ``seqs``, rows shuffled, as every table kind; columns uid, iid, t."""
    frame = seqs.to_pandas().rename(columns={"user": "uid", "item": "iid", "position": "t"})
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return {
        "pandas": lambda: frame,
        "polars": lambda: pl.from_pandas(frame),
        "arrow-table": lambda: table,
        "record-batch": lambda: table.combine_chunks().to_batches()[0],
        "batch-reader": lambda: pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=7)),
        "arrow-c-stream": lambda: StreamOnly(table),
        "arrow-c-array": lambda: ArrayOnly(table),
    }


@pytest.mark.parametrize("strings", [False, True], ids=["int-ids", "text-ids"])
def test_tables_give_the_same_numbers_as_sequences(strings):
    seqs = make_seqs(strings, seed=4, users=15)
    expected = perflaw.data_quality(seqs, m=1).to_dict()
    order = np.argsort(seqs.user_ids, kind="stable")  # tables give users in sorted id order
    apen_expected = perflaw.apen(seqs, m=1)[order]
    coding_expected = perflaw.coding_stats(seqs, m=1).coding_bound[order]
    columns = {"user": "uid", "item": "iid", "timestamp": "t"}
    for kind, make in table_inputs(seqs).items():
        assert perflaw.data_quality(make(), m=1, **columns).to_dict() == expected, kind
        np.testing.assert_array_equal(perflaw.apen(make(), m=1, **columns), apen_expected, err_msg=kind)
        np.testing.assert_array_equal(perflaw.coding_stats(make(), m=1, **columns).coding_bound, coding_expected)
        assert Sequences.from_table(make(), "uid", "iid", "t").fingerprint() == seqs.fingerprint(), kind


def test_default_column_names():
    seqs = make_seqs(False, seed=5)
    table = seqs.to_arrow()  # user, item, position: rows already in order
    assert perflaw.data_quality(table, m=2).to_dict() == perflaw.data_quality(seqs, m=2).to_dict()
    assert perflaw.data_quality(StreamOnly(table), m=2, timestamp="position").fingerprint == seqs.fingerprint()


def test_bad_table_input_names_the_problem():
    frame = pd.DataFrame({"user": [1, 1], "thing": [2, 3]})
    with pytest.raises(PerflawError, match=r"missing column\(s\) \['item'\]"):
        perflaw.data_quality(frame)
    with pytest.raises(PerflawError, match=r"missing column\(s\) \['when'\]"):
        perflaw.apen(pl.from_pandas(frame), item="thing", timestamp="when")
    with pytest.raises(PerflawTypeError, match=r"unknown option\(s\) \['sep'\] for a table"):
        perflaw.data_quality(frame, item="thing", sep=",")
    with pytest.raises(PerflawTypeError, match="a table"):
        perflaw.data_quality(object())
    with pytest.raises(PerflawTypeError, match="ids must be integers or strings"):
        perflaw.coding_stats(pa.table({"user": [1], "item": [2.5]}))
