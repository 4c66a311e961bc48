"""Compressed text is recognised by its first bytes (any name) and read like the plain file."""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path

import pyarrow as pa
import pytest

from perflaw.ingest import count_rows_hint, detect_format, iter_batches, read_sequences
from perflaw.ingest.compression import compression_of, logical_name


def _arrow_compress(codec: str):
    def compress(data: bytes) -> bytes:
        sink = pa.BufferOutputStream()
        with pa.CompressedOutputStream(sink, codec) as out:
            out.write(data)
        return sink.getvalue().to_pybytes()

    return compress


CODECS = {
    "gzip": (".gz", gzip.compress),
    "bz2": (".bz2", bz2.compress),
    "xz": (".xz", lzma.compress),
    "lzma": (".lzma", lambda data: lzma.compress(data, format=lzma.FORMAT_ALONE)),
    "zstd": (".zst", _arrow_compress("zstd")),
    "lz4": (".lz4", _arrow_compress("lz4")),
}

PAIRS = "".join(f"{u % 37} {i}\n" for u, i in zip(range(3000), range(5, 3005)))
CSV = "ts,uid,iid\n" + "".join(f"{t % 11},{t % 53},{t % 97}\n" for t in range(4000))


def by_user(seqs) -> dict:
    return dict(zip(seqs.user_ids.tolist(), seqs.to_lists(original_ids=True)))


def streamed(path, **kwargs) -> dict:
    out: dict = {}
    for batch in iter_batches(path, **kwargs):
        for user, items in by_user(batch).items():
            assert user not in out
            out[user] = items
    return out


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_compressed_csv_reads_like_the_plain_file(tmp_path, codec):
    suffix, compress = CODECS[codec]
    plain = tmp_path / "log.csv"
    plain.write_text(CSV)
    packed = tmp_path / f"log.csv{suffix}"
    packed.write_bytes(compress(CSV.encode()))
    assert compression_of(packed) == codec and compression_of(plain) is None
    assert logical_name(packed) == "log.csv"
    assert detect_format(packed) == "csv"
    options = {"user": "uid", "item": "iid", "timestamp": "ts"}
    expected = read_sequences(plain, **options)
    got = read_sequences(packed, **options)
    assert by_user(got) == by_user(expected) and got.fingerprint() == expected.fingerprint()
    assert streamed(packed, batch_rows=500, **options) == by_user(expected)
    assert count_rows_hint(packed) == 4000


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_compressed_text_without_a_suffix(tmp_path, codec):
    _, compress = CODECS[codec]
    path = tmp_path / "interactions"
    path.write_bytes(compress(PAIRS.encode()))
    plain = tmp_path / "plain.txt"
    plain.write_text(PAIRS)
    assert detect_format(path) == "pairs"
    assert by_user(read_sequences(path)) == by_user(read_sequences(plain))
    assert streamed(path, batch_rows=400) == by_user(read_sequences(plain))


def test_movielens_name_is_seen_through_the_compression_suffix(tmp_path):
    path = tmp_path / "u.data.zst"
    path.write_bytes(CODECS["zstd"][1](b"1\t2\t3\t4\n2\t3\t4\t5\n"))
    assert detect_format(path) == "movielens"
    assert by_user(read_sequences(path)) == {1: [2], 2: [3]}


@pytest.mark.parametrize("codec", ["zstd", "lz4", "bz2", "xz"])
def test_truncated_compressed_text(tmp_path, codec):
    suffix, compress = CODECS[codec]
    data = compress((PAIRS * 30).encode())
    path = tmp_path / f"p.txt{suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="could not be decompressed"):
        read_sequences(path, format="pairs")
    with pytest.raises(ValueError, match="could not be decompressed"):
        list(iter_batches(path, format="pairs", batch_rows=100, grouped=False))


def test_a_plain_file_with_a_compression_suffix_is_read_as_plain(tmp_path):
    path = tmp_path / "seqs.gz"
    path.write_text("1 2 3\n2 3\n")
    assert compression_of(path) is None
    assert by_user(read_sequences(path)) == {1: [2, 3], 2: [3]}


def test_magic_bytes_of_each_codec(tmp_path: Path):
    for codec, (_, compress) in CODECS.items():
        path = tmp_path / codec
        path.write_bytes(compress(b"1 2\n"))
        assert compression_of(path) == codec
