"""Writing :class:`~perflaw.sequences.Sequences` to the files the readers read.

Every format is written so that :func:`~perflaw.ingest.read_sequences` reads
it back to the same sequences (equal ``fingerprint()``): ids that a format
could not give back unchanged are refused before anything is written, and the
file appears whole or not at all (:mod:`perflaw.atomic`). Text is built by
pyarrow's string kernels in chunks of whole users, never one Python call per row.
"""

from __future__ import annotations

import lzma
import os
import re
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from perflaw.arrays import arrow_view, first_true
from perflaw.atomic import atomic_path
from perflaw.ids import IdKinds, arrow_ids, raw_ids
from perflaw.ingest.checks import check_choice
from perflaw.ingest.parquet import PARQUET_SUFFIXES
from perflaw.sequences import Sequences
from perflaw.errors import MissingFileError, PerflawError, PerflawTypeError

__all__ = ["WRITE_FORMATS", "write_sequences"]

WRITE_FORMATS = ("auto", "sasrec", "pairs", "inter", "csv", "parquet")
_SUFFIX_FORMATS = {".txt": "sasrec", ".inter": "inter", ".csv": "csv", **{s: "parquet" for s in PARQUET_SUFFIXES}}
# Compression by suffix; the readers recognise each by its first bytes.
_CODECS = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd", ".lz4": "lz4", ".xz": "xz"}
_CHUNK_TOKENS = 1 << 20  # interactions per written chunk: bounds the memory of the text
_INTER_HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"
# Characters a text id cannot hold in each format (the reader would split or refuse it there).
_FORBIDDEN = {
    "sasrec": ("[ \t\n\r\x0b\x0c]", "whitespace"),
    "pairs": ("[ \t\n\r\x0b\x0c]", "whitespace"),
    "inter": ("[\t\n\r]", "a tab or a line break"),
    "csv": ("[\n\r]", "a line break"),
}
# How each format's reader types text ids with ids="auto" (see perflaw.ids).
_AUTO_TYPING = {"inter": "canonical", "csv": "classify"}


def write_sequences(seqs: Sequences, path: str | os.PathLike[str], format: str = "auto") -> Path:
    """Write ``seqs`` to an interaction file, atomically.

    Parameters
    ----------
    seqs : Sequences
        The sequences; users and items are written with their original ids
        (``user_ids``, ``item_vocab``), users in their order, each user's items
        in order. Users without items are left out: no format has a row for them.
    path : str or path-like
        The file. A further ``.gz``, ``.bz2``, ``.xz``, ``.zst`` or ``.lz4``
        suffix compresses text formats (the readers recognise the codec by the
        file's first bytes).
    format : {"auto", "sasrec", "pairs", "inter", "csv", "parquet"}
        * ``"sasrec"``: ``user item item ...``, one line per user.
        * ``"pairs"``: ``user item``, one line per interaction.
        * ``"inter"``: a RecBole atomic file, tab-separated, with the header
          ``user_id:token  item_id:token  timestamp:float``.
        * ``"csv"``: a header ``user,item,timestamp``, then one row per interaction.
        * ``"parquet"``: columns ``user``, ``item`` and ``timestamp`` (int64 or string ids).
        * ``"auto"``: from the suffix: ``.txt`` sasrec, ``.inter``, ``.csv``,
          ``.parquet``/``.pq``/``.parq``.

        The tabular formats hold each item's 0-based position in its user's
        history as ``timestamp``, so the order survives any reader.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        An unknown format or suffix; no interactions; a user id that occurs
        twice; ids the format cannot hold: text ids with whitespace (sasrec,
        pairs), a tab or a line break (inter, csv), empty text ids, and for
        sasrec and pairs integer users with text items or the other way round.
    TypeError
        ``seqs`` is not a Sequences.

    Notes
    -----
    How to read the file back to the same sequences with :func:`read_sequences`:
    sasrec, pairs and inter files with ``read_sequences(path, format)``, csv and
    Parquet with ``timestamp="timestamp"`` (also the default order). Integer ids
    read back as integers. When users and items both have text ids, pass
    ``ids="str"`` for the text formats and csv (text such as "007" or "12"
    would otherwise become a number, or be refused); Parquet keeps its types.
    Integer users with text items (or the reverse) are written to csv and inter
    only when the reader's default typing keeps the text as text, and are
    refused otherwise (Parquet takes them always).

    Examples
    --------
    >>> import tempfile, pathlib, perflaw
    >>> seqs = perflaw.Sequences.from_lists([[10, 20, 10], [30]], user_ids=[7, 8])
    >>> path = write_sequences(seqs, pathlib.Path(tempfile.mkdtemp()) / "seqs.txt")
    >>> path.read_text()
    '7 10 20 10\\n8 30\\n'
    >>> perflaw.read_sequences(path).fingerprint() == seqs.fingerprint()
    True
    """
    if not isinstance(seqs, Sequences):
        raise PerflawTypeError(f"write_sequences needs a Sequences, got {type(seqs).__name__}")
    path = _target(path)
    format = check_choice(format, WRITE_FORMATS, "format")
    name, codec = _split_compression(path)
    fmt = _format_from_suffix(path, name) if format == "auto" else format
    if fmt == "parquet" and codec is not None:
        raise PerflawError(
            f"{path}: Parquet compresses its own columns; drop the {Path(path.name).suffix} suffix"
        )
    users, vocab, offsets = _checked_ids(seqs, fmt, path)
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            _write_parquet(tmp, users, vocab, offsets, seqs.items)
        else:
            with _open_output(tmp, codec) as out:
                _write_text(out, fmt, users, vocab, offsets, seqs.items)
    return path


# ------------------------------------------------------------------ arguments
def _target(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise PerflawTypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if path.is_dir():
        raise PerflawError(f"{path} is a directory; expected a file name to write")
    if not path.parent.is_dir():
        raise MissingFileError(2, "No such folder to write into", str(path.parent))
    return path


def _split_compression(path: Path) -> tuple[str, str | None]:
    """(the file name without a compression suffix, the codec or None)."""
    suffix = path.suffix.lower()
    if suffix in _CODECS:
        return path.name[: -len(suffix)], _CODECS[suffix]
    return path.name, None


def _format_from_suffix(path: Path, name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix not in _SUFFIX_FORMATS:
        known = ", ".join(sorted(_SUFFIX_FORMATS))
        raise PerflawError(
            f"{path}: cannot tell the format from the suffix {suffix or '(none)'!r} (known: {known}); "
            f"pass format= one of {', '.join(WRITE_FORMATS[1:])}"
        )
    return _SUFFIX_FORMATS[suffix]


def _checked_ids(seqs: Sequences, fmt: str, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids of the users with items, the item vocabulary, those users' offsets), checked for ``fmt``."""
    if seqs.tokens == 0:
        raise PerflawError(f"{path}: no interactions to write (every user's sequence is empty)")
    where = "write_sequences"
    keep = seqs.lengths > 0
    users = raw_ids(seqs.user_ids, "user", where)[keep]
    vocab = raw_ids(seqs.item_vocab, "item", where)
    offsets = np.append(seqs.offsets[:-1][keep], seqs.tokens)
    _reject_repeated_users(users, path)
    used_items = vocab[np.unique(seqs.items) - 1]
    if fmt == "parquet":
        return users, vocab, offsets
    for role, ids in (("user", users), ("item", used_items)):
        if ids.dtype.kind == "U":
            _check_text_ids(ids, role, fmt, path)
    text = {role for role, ids in (("user", users), ("item", used_items)) if ids.dtype.kind == "U"}
    if len(text) == 1:
        _check_mixed_kinds(users if "user" in text else used_items, text.pop(), fmt, path)
    return users, vocab, offsets


def _reject_repeated_users(users: np.ndarray, path: Path) -> None:
    distinct, counts = np.unique(users, return_counts=True)
    if len(distinct) < len(users):
        repeated = distinct[np.argmax(counts > 1)]
        raise PerflawError(
            f"{path}: user id {repeated.item()!r} belongs to {counts.max()} users of the Sequences; "
            "a file would merge them into one user"
        )


def _check_text_ids(ids: np.ndarray, role: str, fmt: str, path: Path) -> None:
    column = pa.array(ids, pa.string())
    empty = pc.equal(pc.utf8_length(column), 0)
    if pc.any(empty).as_py():
        raise PerflawError(f"{path}: an empty {role} id cannot be written as {fmt} (it could not be read back)")
    pattern, what = _FORBIDDEN[fmt]
    bad = pc.match_substring_regex(column, pattern)
    if pc.any(bad).as_py():
        value = column[first_true(bad)].as_py()
        other = "csv or parquet" if fmt in ("sasrec", "pairs") else "parquet"
        raise PerflawError(
            f"{path}: {role} id {value!r} holds {what}, which a {fmt} file cannot hold in an id; write {other} instead"
        )


def _check_mixed_kinds(text_ids: np.ndarray, role: str, fmt: str, path: Path) -> None:
    """Integer ids in one column and text in the other: read back with ids="auto",
    the text must stay text (ids="str" would turn the integers into text)."""
    other = "item" if role == "user" else "user"
    if fmt in ("sasrec", "pairs"):
        raise PerflawError(
            f"{path}: the {role} ids are text and the {other} ids integers; a {fmt} file reads back "
            "either every id as an integer or every id as text: write csv, inter or parquet, or "
            "give both the same kind"
        )
    try:
        typed = arrow_ids(pa.array(text_ids, pa.string()), role, role, _AUTO_TYPING[fmt], "the reader", 1, IdKinds())
    except PerflawError as error:  # its row numbers count distinct ids, not rows of a file: drop them
        typed, problem = None, re.sub(r" in row \d+( \(column '[^']*'\))?", "", str(error))
    else:
        problem = "they would be read back as integers"
    if typed is None or typed.dtype.kind != "U":
        raise PerflawError(
            f"{path}: the {role} ids are text that a {fmt} file does not read back as text "
            f"({problem}), while the {other} ids are integers; write parquet, which keeps each column's type"
        )


# -------------------------------------------------------------------- writing
def _open_output(tmp: Path, codec: str | None) -> Any:
    if codec is None:
        return pa.OSFile(str(tmp), "wb")
    if codec == "xz":
        return lzma.open(tmp, "wb")
    return pa.CompressedOutputStream(str(tmp), codec)


def _chunks(offsets: np.ndarray) -> Iterator[tuple[int, int]]:
    """User ranges [a, b) of about ``_CHUNK_TOKENS`` interactions (at least one user each)."""
    n_users = len(offsets) - 1
    start = 0
    while start < n_users:
        stop = int(np.searchsorted(offsets, offsets[start] + _CHUNK_TOKENS, side="right")) - 1
        stop = min(n_users, max(stop, start + 1))
        yield start, stop
        start = stop


def _as_text(values: np.ndarray) -> pa.Array:
    """Ids as large strings (integers in decimal)."""
    array = arrow_view(values) if values.dtype.kind in "iu" else pa.array(values, pa.string())
    return array.cast(pa.large_string())


def _text(value: str) -> pa.Scalar:
    return pa.scalar(value, pa.large_string())


def _join(*columns: Any, sep: str) -> pa.Array:
    return pc.binary_join_element_wise(*columns, _text(sep))


def _lines_bytes(lines: pa.Array) -> memoryview:
    """The bytes of a large-string array with no nulls: its values back to back."""
    bounds = np.frombuffer(lines.buffers()[1], dtype=np.int64)
    start, stop = bounds[lines.offset], bounds[lines.offset + len(lines)]
    return memoryview(lines.buffers()[2])[start:stop]


def _write_text(out: Any, fmt: str, users: np.ndarray, vocab: np.ndarray, offsets: np.ndarray, items: np.ndarray) -> None:
    if fmt == "csv":
        _write_csv(out, users, vocab, offsets, items)
        return
    if fmt == "inter":
        out.write(_INTER_HEADER.encode())
    user_text, item_text = _as_text(users), _as_text(vocab)
    for a, b in _chunks(offsets):
        t0, t1 = int(offsets[a]), int(offsets[b])
        tokens = item_text.take(arrow_view(items[t0:t1] - 1))
        if fmt == "sasrec":
            per_user = pa.LargeListArray.from_arrays(arrow_view(offsets[a : b + 1] - t0), tokens)
            lines = _join(user_text.slice(a, b - a), pc.binary_join(per_user, _text(" ")), sep=" ")
        else:
            owners = user_text.take(arrow_view(np.repeat(np.arange(a, b), np.diff(offsets[a : b + 1]))))
            columns = [owners, tokens]
            if fmt == "inter":
                columns.append(_as_text(_positions(offsets, a, b)))
            lines = _join(*columns, sep="\t" if fmt == "inter" else " ")
        out.write(_lines_bytes(_join(lines, _text(""), sep="\n")))


def _positions(offsets: np.ndarray, a: int, b: int) -> np.ndarray:
    """0-based position of each interaction of users [a, b) in its user's history."""
    lengths = np.diff(offsets[a : b + 1])
    return np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)


def _id_array(values: np.ndarray) -> pa.Array:
    return arrow_view(values) if values.dtype.kind in "iu" else pa.array(values, pa.string())


def _table_chunks(users: np.ndarray, vocab: np.ndarray, offsets: np.ndarray, items: np.ndarray) -> Iterator[pa.Table]:
    user_column, item_column = _id_array(users), _id_array(vocab)
    for a, b in _chunks(offsets):
        t0, t1 = int(offsets[a]), int(offsets[b])
        yield pa.table(
            {
                "user": user_column.take(arrow_view(np.repeat(np.arange(a, b), np.diff(offsets[a : b + 1])))),
                "item": item_column.take(arrow_view(items[t0:t1] - 1)),
                "timestamp": arrow_view(_positions(offsets, a, b)),
            }
        )


def _schema(users: np.ndarray, vocab: np.ndarray) -> pa.Schema:
    kind = {True: pa.int64(), False: pa.string()}
    return pa.schema(
        [("user", kind[users.dtype.kind in "iu"]), ("item", kind[vocab.dtype.kind in "iu"]), ("timestamp", pa.int64())]
    )


def _write_csv(out: Any, users: np.ndarray, vocab: np.ndarray, offsets: np.ndarray, items: np.ndarray) -> None:
    import pyarrow.csv as pv

    out.write(b"user,item,timestamp\n")  # plain: pyarrow quotes the names it writes
    with pv.CSVWriter(out, _schema(users, vocab), write_options=pv.WriteOptions(include_header=False)) as writer:
        for table in _table_chunks(users, vocab, offsets, items):
            writer.write_table(table)


def _write_parquet(tmp: Path, users: np.ndarray, vocab: np.ndarray, offsets: np.ndarray, items: np.ndarray) -> None:
    import pyarrow.parquet as pq

    with pq.ParquetWriter(str(tmp), _schema(users, vocab)) as writer:
        for table in _table_chunks(users, vocab, offsets, items):
            writer.write_table(table)
