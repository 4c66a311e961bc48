"""Reading interaction logs into :class:`~perflaw.sequences.Sequences`.

Two entry points share one set of per-format readers:

* :func:`read_sequences` reads a whole file into memory;
* :func:`iter_batches` streams a file of any size in batches of *whole users*
  with bounded memory, for corpus statistics that merge over batches.

Every reader produces *rows* in file order (one interaction each: user, item and
an optional timestamp); rows are then grouped into users. Parsing is vectorised
(pyarrow's CSV engine and NumPy), never one Python call per token; the slow
line-by-line scans in this module run only after a fast parse has failed, to
name the offending line in the error message.
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import gzip
import io
import lzma
import math
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
import pyarrow.parquet as pq

from perflaw.sequences import MAX_RAW_ID, Sequences

__all__ = ["FORMATS", "read_sequences", "iter_batches", "detect_format", "count_rows_hint"]

FORMATS = ("auto", "sasrec", "pairs", "inter", "movielens", "csv", "parquet")
ID_MODES = ("auto", "int", "str")

_PARQUET_SUFFIXES = {".parquet", ".pq", ".parq"}
_COMPRESSED_SUFFIXES = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open, ".lzma": lzma.open}
_RECBOLE_TYPES = {"token", "token_seq", "float", "float_seq"}
_SAMPLE_BYTES = 1 << 20  # how much of a text file format detection and row estimates look at
_MIN_CHUNK_BYTES = 1 << 12
_MAX_CHUNK_BYTES = 1 << 30
_MAX_PARTITIONS = 512  # open Parquet writers during external grouping

# ASCII whitespace exactly as bytes.split() understands it.
_WHITESPACE = b" \t\n\r\x0b\x0c"
_IS_WHITESPACE = np.zeros(256, dtype=bool)
_IS_WHITESPACE[list(_WHITESPACE)] = True
_WHITESPACE_TO_NEWLINE = bytes.maketrans(_WHITESPACE, b"\n" * len(_WHITESPACE))


# =====================================================================
# public API
# =====================================================================
def read_sequences(
    path: str | os.PathLike[str],
    format: str = "auto",
    *,
    user: str = "user",
    item: str = "item",
    timestamp: str | None = None,
    sep: str | None = None,
    **options: Any,
) -> Sequences:
    """Read an interaction file into :class:`Sequences`.

    Parameters
    ----------
    path : str or path-like
        The file. Text files may be compressed (``.gz``, ``.bz2``, ``.xz``).
    format : {"auto", "sasrec", "pairs", "inter", "movielens", "csv", "parquet"}
        * ``"sasrec"``: SASRec/ICLRec text, ``user item item ...`` per line, one
          line per user. Users keep file order, items keep line order.
        * ``"pairs"``: ``user item`` per line (SASRec's other format). Rows are
          grouped per user: users in order of first appearance, items in file order.
        * ``"inter"``: a RecBole atomic file: tab-separated with a typed header
          such as ``user_id:token  item_id:token  timestamp:float``.
        * ``"movielens"``: ``ratings.dat`` (``user::item::rating::timestamp``),
          ``u.data`` (tab-separated) or ``ratings.csv`` (with a ``userId`` header).
        * ``"csv"``: a delimited file with a header naming the columns.
        * ``"parquet"``: a Parquet file with named columns.
        * ``"auto"``: decided by :func:`detect_format`; for text in the
          ``user item ...`` layout, the whole file decides: ``"pairs"`` when
          every line has exactly two fields and some user appears on several
          lines, otherwise ``"sasrec"``.
    user, item : str
        Column names (csv, parquet, inter). For ``.inter`` files the RecBole
        names ``user_id`` and ``item_id`` are used when these are left at
        their defaults and absent.
    timestamp : str, optional
        Column to order each user's items by, with a stable sort (ties keep file
        order). For ``.inter`` files, ``timestamp`` is used when present;
        MovieLens files always use their timestamp field. The text formats
        have no timestamp: items keep file order.
    sep : str, optional
        Field separator. Default: ASCII whitespace (sasrec, pairs); sniffed
        from the first line (movielens, and csv among ``, \\t ; |``).
    **options
        ``ids``: ``"auto"`` (default), ``"int"`` or ``"str"``. With ``"auto"``,
        text formats require non-negative integers below 2**63; csv columns are
        integers when every value is one and strings otherwise (float-looking
        values are rejected); RecBole tokens are integers when every token is a
        canonical decimal integer and strings otherwise; Parquet columns keep
        their type. ``"int"`` requires integers everywhere, ``"str"`` keeps
        every id as text.

    Returns
    -------
    Sequences
        Users in file order for sasrec and pairs; in sorted id order for the
        tabular formats (as :meth:`Sequences.from_table`). Items are relabelled
        densely, 1..n_items in sorted raw-id order; ``item_vocab`` maps back.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Empty input; a malformed line (its number and content are named);
        negative ids or ids >= 2**63; missing columns (named, with the columns
        present); a corrupt Parquet file.
    TypeError
        Float ids, or an argument of the wrong type.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "seqs.txt"
    >>> _ = path.write_text("7 1 2 3\\n5 2 4\\n")
    >>> seqs = read_sequences(path)
    >>> seqs.user_ids.tolist(), seqs.to_lists(original_ids=True)
    ([7, 5], [[1, 2, 3], [2, 4]])
    """
    ids = options.pop("ids", "auto")
    _reject_unknown(options)
    spec = _resolve(path, format, user, item, timestamp, sep, ids, streaming=False)
    chunks = list(_row_chunks(spec, chunk_rows=None, columns="all", advance=_no_progress))
    rows = _Rows.concat(chunks)
    if len(rows) == 0:
        raise ValueError(f"{spec.path} holds no interactions")
    return _group(rows, "first" if spec.format in ("sasrec", "pairs") else "sorted")


def iter_batches(
    path: str | os.PathLike[str],
    format: str = "auto",
    *,
    batch_rows: int = 1_000_000,
    user: str = "user",
    item: str = "item",
    timestamp: str | None = None,
    sep: str | None = None,
    progress: bool = False,
    grouped: bool | None = None,
    tmp_dir: str | os.PathLike[str] | None = None,
    ids: str = "auto",
) -> Iterator[Sequences]:
    """Stream a file as :class:`Sequences` batches of whole users, in bounded memory.

    Each user appears in exactly one batch, with all of its items, in the same
    order as :func:`read_sequences` gives them. Memory is bounded by the batch
    size (and the longest user), not by the file.

    * When every user's rows are contiguous in the file (always true for
      sasrec), rows are read in chunks and the trailing, possibly partial user
      of each chunk is carried into the next batch. Batches hold users in file
      order.
    * Otherwise (a user reappears after another user), rows are hash-partitioned
      by user into temporary Parquet files under ``tmp_dir`` and each partition
      is then grouped in memory. The temporary files are removed when the
      iterator ends or is closed.

    Each batch has its own dense item relabelling; ``item_vocab`` holds the raw
    item ids, so corpus-level statistics can be merged across batches by raw id.

    Parameters
    ----------
    path, format, user, item, timestamp, sep, ids
        As for :func:`read_sequences`. With ``format="auto"``, sasrec and pairs
        text are told apart on the first MiB (see :func:`detect_format`).
    batch_rows : int
        About how many interactions each batch holds (a batch always ends at a
        user boundary, so one long user can make it larger).
    progress : bool
        Show a tqdm bar with an ETA on stderr (by bytes for text, by rows for Parquet).
    grouped : bool, optional
        ``None`` (default): check first, in one cheap pass over the user
        column, whether each user's rows are contiguous (skipped for a file
        that :func:`count_rows_hint` puts under half a batch: it is read
        whole). ``True``: assume they are (skips that pass; a violation raises
        ValueError). ``False``: always group externally. Ignored for sasrec,
        whose lines are whole users.
    tmp_dir : path-like, optional
        Where the external grouping writes its partitions (default: the system
        temporary folder).

    Yields
    ------
    Sequences
        Batches of whole users.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "pairs.txt"
    >>> _ = path.write_text("1 10\\n2 20\\n1 11\\n3 30\\n")
    >>> batches = list(iter_batches(path, batch_rows=2))
    >>> sorted(tuple(s.to_lists(original_ids=True)[u]) for s in batches for u in range(s.n_users))
    [(10, 11), (20,), (30,)]
    """
    spec = _resolve(path, format, user, item, timestamp, sep, ids, streaming=True)
    batch_rows = _positive(batch_rows, "batch_rows")
    if grouped not in (None, True, False):
        raise TypeError(f"grouped must be None, True or False, got {grouped!r}")
    if tmp_dir is not None and not Path(tmp_dir).is_dir():
        raise ValueError(f"tmp_dir {str(tmp_dir)!r} is not an existing folder")
    return _iter_batches(spec, batch_rows, bool(progress), grouped, tmp_dir)


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format :func:`read_sequences` uses for ``format="auto"``.

    Rules, first match wins (a ``.gz``/``.bz2``/``.xz`` suffix is looked through):

    1. Parquet magic bytes ``PAR1`` at the start, or a ``.parquet``/``.pq``/
       ``.parq`` suffix: ``"parquet"``.
    2. A ``.inter`` suffix, or a first line made of tab-separated RecBole
       ``name:type`` fields: ``"inter"``.
    3. ``::`` in the first non-blank line, a file named ``u.data``, a CSV header
       starting ``userId,movieId``, or every sampled line holding exactly four
       tab-separated integers of which the third looks like a rating (0..10)
       and the fourth like a Unix time (9+ digits): ``"movielens"``.
    4. A ``.csv`` or ``.tsv`` suffix: ``"csv"``.
    5. Otherwise ``user item ...`` text: ``"pairs"`` when every line of the
       first MiB has exactly two fields and some user appears on several lines,
       else ``"sasrec"``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ratings.dat"
    >>> _ = path.write_text("1::10::5::978300760\\n")
    >>> detect_format(path)
    'movielens'
    """
    return _detect(_existing_file(path), text_layout=True)


def _detect(path: Path, text_layout: bool) -> str:
    """:func:`detect_format`; without ``text_layout``, "sasrec" stands for both text layouts."""
    if _is_parquet(path):
        return "parquet"
    sample = _sample_text(path)
    lines = [line for line in sample.split(b"\n", 1000)[:1000] if line.strip()]
    if not lines:
        raise ValueError(f"{path} is empty: no interactions to read")
    first = lines[0].rstrip(b"\r")
    name = _logical_name(path)
    suffix = Path(name).suffix.lower()
    if suffix == ".inter" or _looks_like_inter_header(first):
        return "inter"
    if (
        b"::" in first
        or name == "u.data"
        or first.replace(b" ", b"").lower().startswith(b"userid,movieid")
        or _looks_like_u_data(lines)
    ):
        return "movielens"
    if suffix in (".csv", ".tsv"):
        return "csv"
    return _sniff_text_layout(sample) if text_layout else "sasrec"


def count_rows_hint(path: str | os.PathLike[str], format: str = "auto") -> int:
    """A cheap estimate of the number of interactions in a file.

    Use it to decide whether a job is large enough to show a progress bar or
    to stream with :func:`iter_batches`. Exact for Parquet (read from the
    footer) and for text files under 1 MiB; otherwise extrapolated from the
    first MiB: rows per byte there times the file size (for compressed files,
    times the compression ratio seen in that sample).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "seqs.txt"
    >>> _ = path.write_text("1 5 6 7\\n2 5 8\\n")
    >>> count_rows_hint(path)
    5
    """
    path = _existing_file(path)
    fmt = detect_format(path) if format == "auto" else _check_choice(format, FORMATS, "format")
    if fmt == "parquet":
        return _open_parquet(path).metadata.num_rows
    sample, raw_read, complete = _sample_with_position(path)
    rows = _rows_in_text(sample, fmt)
    if complete or raw_read == 0:
        return max(rows, 0)
    return max(0, round(rows * os.path.getsize(path) / raw_read))


# =====================================================================
# resolved arguments
# =====================================================================
@dataclass(frozen=True)
class _Spec:
    """Checked arguments of one read."""

    path: Path
    format: str  # a concrete format, never "auto"
    user: str
    item: str
    timestamp: str | None
    sep: str | None
    ids: str
    # sasrec/pairs only: "either" lets the whole file decide (in-memory auto).
    layout: str = ""


def _resolve(
    path: Any, format: Any, user: Any, item: Any, timestamp: Any, sep: Any, ids: Any, streaming: bool
) -> _Spec:
    path = _existing_file(path)
    format = _check_choice(format, FORMATS, "format")
    ids = _check_choice(ids, ID_MODES, "ids")
    for name, value in (("user", user), ("item", item)):
        if not isinstance(value, str) or not value:
            raise TypeError(f"{name} must be a non-empty column name, got {value!r}")
    if timestamp is not None and (not isinstance(timestamp, str) or not timestamp):
        raise TypeError(f"timestamp must be a column name or None, got {timestamp!r}")
    if sep is not None and (not isinstance(sep, str) or not sep):
        raise TypeError(f"sep must be a non-empty string or None, got {sep!r}")
    # In memory the whole file decides between the two text layouts; a stream
    # must commit before reading, so it decides on the first MiB.
    fmt = _detect(path, text_layout=streaming) if format == "auto" else format
    layout = ""
    if fmt in ("sasrec", "pairs"):
        layout = "either" if format == "auto" and not streaming else fmt
    return _Spec(path, fmt, user, item, timestamp, sep, ids, layout)


def _existing_file(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file", str(path))
    if path.is_dir():
        raise ValueError(f"{path} is a directory; expected one interaction file")
    return path


def _check_choice(value: Any, choices: tuple[str, ...], name: str) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _reject_unknown(options: dict[str, Any]) -> None:
    if options:
        raise TypeError(f"unknown option(s) {sorted(options)}; known: ids")


# =====================================================================
# rows: interactions in file order
# =====================================================================
@dataclass
class _Rows:
    """A run of interactions in file order."""

    users: np.ndarray
    items: np.ndarray
    times: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.users)

    def slice(self, start: int, stop: int | None = None) -> "_Rows":
        times = None if self.times is None else self.times[start:stop]
        return _Rows(self.users[start:stop], self.items[start:stop], times)

    @staticmethod
    def concat(parts: list["_Rows"]) -> "_Rows":
        parts = [part for part in parts if len(part)]
        if not parts:
            return _Rows(np.zeros(0, np.int64), np.zeros(0, np.int64))
        if len(parts) == 1:
            return parts[0]
        times = None
        if parts[0].times is not None:
            times = np.concatenate([part.times for part in parts])
        return _Rows(
            np.concatenate([part.users for part in parts]),
            np.concatenate([part.items for part in parts]),
            times,
        )


def _group(rows: _Rows, user_order: str) -> Sequences:
    """Group rows into users: ``"first"`` (first appearance) or ``"sorted"`` id order.

    Within a user, items are ordered by timestamp with a stable sort, so rows
    with equal timestamps (or no timestamps at all) keep file order. The
    result equals ``Sequences.from_table`` (for "sorted"), but ids are hashed
    rather than sorted, and rows already in order are not sorted at all.
    """
    key, user_ids = _user_keys(rows.users, user_order)
    order = _grouping_order(key, len(user_ids), rows.times)
    items = rows.items if order is None else rows.items[order]
    offsets = np.zeros(len(user_ids) + 1, dtype=np.int64)
    np.cumsum(np.bincount(key, minlength=len(user_ids)), out=offsets[1:])
    dense, vocabulary = _dense_ids(items)
    return Sequences.from_arrays(offsets, dense, user_ids=user_ids, item_vocab=vocabulary)


def _user_keys(users: np.ndarray, user_order: str) -> tuple[np.ndarray, np.ndarray]:
    """(index of each row's user, the user ids), users in ``user_order``."""
    heads = _run_heads(users, None)
    run_users = users[heads]
    if user_order == "sorted" and bool((run_users[1:] > run_users[:-1]).all()):
        return _run_index(heads, len(users)), run_users  # sorted runs: nothing to do
    if user_order == "first" and _distinct(run_users):
        return _run_index(heads, len(users)), run_users  # one run per user: file order
    codes, first_seen = _dense_ids(users, sort=user_order == "sorted")
    return codes - 1, first_seen


def _run_index(heads: np.ndarray, n: int) -> np.ndarray:
    """For each of ``n`` rows, the number of the run it belongs to."""
    starts = np.zeros(n, dtype=np.int64)
    starts[heads[1:]] = 1
    return np.cumsum(starts)


def _distinct(values: np.ndarray) -> bool:
    return len(values) == 0 or pc.count_distinct(_arrow(values)).as_py() == len(values)


def _grouping_order(key: np.ndarray, n_keys: int, times: np.ndarray | None) -> np.ndarray | None:
    """The stable order that groups rows by ``key``, then time; None when rows are in order."""
    steps = np.diff(key)
    if (steps >= 0).all():
        if times is None or ((np.diff(times) >= 0) | (steps != 0)).all():
            return None
    if times is None:
        return _stable_argsort(key, n_keys)
    by_time = np.argsort(times, kind="stable")
    return by_time[_stable_argsort(key[by_time], n_keys)]


def _stable_argsort(key: np.ndarray, n_keys: int) -> np.ndarray:
    """``argsort(key, kind="stable")`` for keys in [0, n_keys), by 16-bit radix passes.

    NumPy radix-sorts 16-bit integers in linear time; two passes cover keys
    below 2**32 (least significant half first, so the result stays stable).
    """
    if n_keys <= 1 << 16:
        return np.argsort(key.astype(np.uint16), kind="stable")
    if n_keys > 1 << 32:
        return np.argsort(key, kind="stable")
    low = np.argsort((key & 0xFFFF).astype(np.uint16), kind="stable")
    return low[np.argsort((key[low] >> 16).astype(np.uint16), kind="stable")]


def _dense_ids(values: np.ndarray, sort: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(1-based dense index of each value, the distinct values).

    The distinct values are sorted, as ``np.unique`` would give them, or in
    order of first appearance when ``sort`` is False. Hashing (pyarrow's
    dictionary encoding) replaces the full sort of ``np.unique``; only the
    distinct values are sorted.
    """
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64), values[:0].copy()
    encoded = pc.dictionary_encode(_arrow(values))
    indices = _numpy(encoded.indices).astype(np.int64)
    distinct = encoded.dictionary
    if sort:
        by_value = pc.array_sort_indices(distinct)
        rank = np.empty(len(by_value), dtype=np.int64)
        rank[_numpy(by_value)] = np.arange(len(by_value))
        indices = rank[indices]
        distinct = distinct.take(by_value)
    if values.dtype.kind == "U":
        return indices + 1, _strings(distinct)
    return indices + 1, _numpy(distinct).astype(values.dtype, copy=False)


_NUMPY_TYPES = {
    pa.int8(): np.int8, pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64,
    pa.uint8(): np.uint8, pa.uint16(): np.uint16, pa.uint32(): np.uint32, pa.uint64(): np.uint64,
    pa.float32(): np.float32, pa.float64(): np.float64,
}  # fmt: skip
_ARROW_TYPES = {np.dtype(numpy): arrow for arrow, numpy in _NUMPY_TYPES.items()}


def _numpy(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A numeric Arrow array as NumPy, zero-copy where possible.

    pyarrow's own ``to_numpy`` imports pandas on first use, which costs more
    than reading a file like beauty.txt; a view of the data buffer does not.
    """
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    dtype = _NUMPY_TYPES.get(array.type)
    if dtype is None or array.null_count:
        return array.to_numpy(zero_copy_only=False)
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * np.dtype(dtype).itemsize)


def _arrow(values: np.ndarray) -> pa.Array:
    """A NumPy array as Arrow, zero-copy for numbers (and without importing pandas)."""
    kind = _ARROW_TYPES.get(values.dtype)
    if kind is None:
        return pa.array(values)
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])


def _row_chunks(
    spec: _Spec, chunk_rows: int | None, columns: str, advance: Callable[[int], None]
) -> Iterator[_Rows]:
    """The file's rows in chunks of about ``chunk_rows`` (None: one chunk).

    ``columns="users"`` lets a reader skip the item and timestamp columns
    (the items of the yielded rows are then meaningless). ``advance`` is called
    with progress units (bytes, or rows for Parquet).
    """
    readers = {
        "sasrec": _token_text_rows,
        "pairs": _token_text_rows,
        "movielens": _movielens_rows,
        "inter": _inter_rows,
        "csv": _csv_rows,
        "parquet": _parquet_rows,
    }
    return readers[spec.format](spec, chunk_rows, columns, advance)


def _no_progress(_: int) -> None:
    return None


# =====================================================================
# reading text in chunks of whole lines
# =====================================================================
def _logical_name(path: Path) -> str:
    """The file name without a compression suffix (``u.data.gz`` -> ``u.data``)."""
    name = path.name
    suffix = Path(name).suffix.lower()
    return name[: -len(suffix)] if suffix in _COMPRESSED_SUFFIXES else name


def _open_text_bytes(path: Path) -> tuple[BinaryIO, BinaryIO]:
    """(decompressed stream, raw file): the raw file's position measures progress."""
    raw = open(path, "rb")
    opener = _COMPRESSED_SUFFIXES.get(path.suffix.lower())
    if opener is None:
        return raw, raw
    return opener(raw, "rb"), raw  # type: ignore[call-arg]


def _line_chunks(path: Path, chunk_bytes: int | None) -> Iterator[tuple[bytes, int, int]]:
    """(block of whole lines, number of its first line, raw bytes consumed so far)."""
    stream, raw = _open_text_bytes(path)
    try:
        first_line = 1
        if chunk_bytes is None:
            data = _read_all(stream, path)
            yield data, 1, raw.tell()
            return
        rest = b""
        while True:
            block = _read_some(stream, chunk_bytes, path)
            if not block:
                break
            block = rest + block
            cut = block.rfind(b"\n") + 1
            if cut == 0:  # no newline yet: one very long line, keep reading
                rest = block
                continue
            rest = block[cut:]
            yield block[:cut], first_line, raw.tell()
            first_line += block.count(b"\n", 0, cut)
        if rest:
            yield rest, first_line, raw.tell()
    finally:
        stream.close()
        raw.close()


def _read_all(stream: BinaryIO, path: Path) -> bytes:
    try:
        return stream.read()
    except (OSError, EOFError, lzma.LZMAError) as error:
        raise ValueError(f"{path} could not be decompressed: {error}") from error


def _read_some(stream: BinaryIO, size: int, path: Path) -> bytes:
    try:
        return stream.read(size)
    except (OSError, EOFError, lzma.LZMAError) as error:
        raise ValueError(f"{path} could not be decompressed: {error}") from error


def _sample_with_position(path: Path) -> tuple[bytes, int, bool]:
    """The first whole lines up to 1 MiB, the raw bytes read, and whether that was all."""
    stream, raw = _open_text_bytes(path)
    try:
        data = _read_some(stream, _SAMPLE_BYTES, path)
        complete = not _read_some(stream, 1, path)
        position = raw.tell()
    finally:
        stream.close()
        raw.close()
    if not complete:
        data = data[: data.rfind(b"\n") + 1]
    return data, position, complete


def _sample_text(path: Path) -> bytes:
    return _sample_with_position(path)[0]


def _rows_in_text(data: bytes, fmt: str) -> int:
    """Interactions in a block of whole lines of a text format."""
    fields, _ = _fields_per_line(data)
    if fmt == "sasrec":
        return int(fields.sum()) - len(fields)
    header = fmt in ("csv", "inter") or (fmt == "movielens" and not data.lstrip()[:1].isdigit())
    return max(0, len(fields) - int(header and len(fields) > 0))


def _chunk_bytes_for(path: Path, fmt: str, chunk_rows: int | None) -> int | None:
    """Bytes per chunk so that a chunk holds about ``chunk_rows`` rows."""
    if chunk_rows is None:
        return None
    sample = _sample_text(path)
    bytes_per_row = max(1.0, len(sample) / max(1, _rows_in_text(sample, fmt)))
    return int(min(_MAX_CHUNK_BYTES, max(_MIN_CHUNK_BYTES, chunk_rows * bytes_per_row)))


def _line_text(data: bytes, line_index: int) -> str:
    """Line ``line_index`` (0-based) of ``data``, shortened for messages."""
    line = data.split(b"\n")[line_index].rstrip(b"\r")
    return _short(line.decode("utf-8", errors="replace"))


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# =====================================================================
# sasrec and pairs: "user item item ..." text
# =====================================================================
@dataclass
class _TokenLines:
    """Tokens of a block of text, by line."""

    values: np.ndarray  # every token, int64 or str
    counts: np.ndarray  # tokens on each non-blank line
    line_numbers: np.ndarray  # 1-based file line number of each non-blank line

    @property
    def first_token(self) -> np.ndarray:
        """Index into ``values`` of the first token of each line."""
        return np.cumsum(self.counts) - self.counts


def _token_text_rows(
    spec: _Spec, chunk_rows: int | None, columns: str, advance: Callable[[int], None]
) -> Iterator[_Rows]:
    layout = spec.layout
    seen = _SeenUsers()

    def parse(data: bytes, first_line: int) -> _Rows:
        nonlocal layout
        lines = _parse_token_lines(data, first_line, spec)
        if layout == "either":
            layout = _layout_of(lines)
        if layout == "pairs":
            return _pairs_rows(lines, data, first_line, spec)
        return _sasrec_rows(lines, data, first_line, spec, seen)

    yield from _parsed_line_chunks(spec, spec.format, chunk_rows, advance, parse)


def _parsed_line_chunks(
    spec: _Spec, fmt: str, chunk_rows: int | None, advance: Callable[[int], None],
    parse: Callable[[bytes, int], _Rows],
) -> Iterator[_Rows]:
    """``parse(data, first_line)`` on each chunk of whole lines, reporting bytes read
    to ``advance``; a file that yields no rows at all is an error."""
    consumed = 0
    any_rows = False
    for data, first_line, raw_pos in _line_chunks(spec.path, _chunk_bytes_for(spec.path, fmt, chunk_rows)):
        rows = parse(data, first_line)
        advance(raw_pos - consumed)
        consumed = raw_pos
        any_rows = any_rows or len(rows) > 0
        yield rows
    if not any_rows:
        raise ValueError(f"{spec.path} holds no interactions")


def _layout_of(lines: _TokenLines) -> str:
    """pairs when every line holds exactly two fields and some user repeats."""
    if len(lines.counts) and (lines.counts == 2).all():
        users = lines.values[0::2]
        if len(np.unique(users)) < len(users):
            return "pairs"
    return "sasrec"


def _parse_token_lines(data: bytes, first_line: int, spec: _Spec) -> _TokenLines:
    if spec.sep is not None and spec.sep.encode() not in _WHITESPACE:
        data = data.replace(spec.sep.encode(), b" ")
    counts, line_index = _fields_per_line(data)
    line_numbers = line_index + first_line
    if spec.ids == "str":
        values = _text_tokens_as_str(data, spec.path)
    else:
        values = _text_tokens_as_int(data, int(counts.sum()))
        if values is None or (len(values) and values.min() < 0):
            _diagnose_token_lines(data, first_line, spec)
    return _TokenLines(values, counts, line_numbers)


def _text_tokens_as_int(data: bytes, n_tokens: int) -> np.ndarray | None:
    """All whitespace-separated tokens as int64, or None when one is not an int64."""
    if n_tokens == 0:
        return np.zeros(0, dtype=np.int64)
    # One token per line, then pyarrow's multi-threaded integer parser.
    one_per_line = data.translate(_WHITESPACE_TO_NEWLINE)
    try:
        table = pv.read_csv(
            io.BytesIO(one_per_line),
            read_options=pv.ReadOptions(column_names=["v"]),
            parse_options=pv.ParseOptions(delimiter="\x01", quote_char=False, escape_char=False),
            # no null markers: "NA" or "null" must fail as ids, not become NaN
            convert_options=pv.ConvertOptions(column_types={"v": pa.int64()}, null_values=[]),
        )
    except pa.ArrowInvalid:
        return None
    column = table.column("v")
    if len(column) != n_tokens or column.null_count:
        return None
    return _numpy(column)


def _text_tokens_as_str(data: bytes, path: Path) -> np.ndarray:
    if b"\x00" in data:
        line = data.count(b"\n", 0, data.index(b"\x00")) + 1
        raise ValueError(f"{path}: a NUL character in block line {line}; ids cannot contain NUL")
    tokens = pa.array(data.split(), type=pa.binary())
    try:
        text = tokens.cast(pa.string())
    except pa.ArrowInvalid as error:
        raise ValueError(f"{path} is not valid UTF-8 text: {error}") from error
    return np.asarray(text.to_numpy(zero_copy_only=False), dtype=str)


def _sasrec_rows(lines: _TokenLines, data: bytes, first_line: int, spec: _Spec, seen: "_SeenUsers") -> _Rows:
    if len(lines.counts) and lines.counts.min() < 2:
        _diagnose_token_lines(data, first_line, spec)
    heads = lines.first_token
    line_users = lines.values[heads]
    repeat = seen.add(line_users)
    if repeat >= 0:
        _raise_repeated_sasrec_user(lines, line_users, repeat, spec)
    is_item = np.ones(len(lines.values), dtype=bool)
    is_item[heads] = False
    return _Rows(np.repeat(line_users, lines.counts - 1), lines.values[is_item])


def _raise_repeated_sasrec_user(lines: _TokenLines, line_users: np.ndarray, repeat: int, spec: _Spec) -> None:
    user = line_users[repeat]
    earlier = np.flatnonzero(line_users[:repeat] == user)
    where = f"lines {lines.line_numbers[earlier[0]]} and {lines.line_numbers[repeat]}" if len(earlier) else (
        f"line {lines.line_numbers[repeat]} and on an earlier line"
    )
    hint = ""
    if (lines.counts == 2).all():
        hint = "; each line looks like one `user item` interaction: use format='pairs'"
    raise ValueError(
        f"{spec.path}: user {user} appears on {where}; a sasrec file has one line per user{hint}"
    )


def _pairs_rows(lines: _TokenLines, data: bytes, first_line: int, spec: _Spec) -> _Rows:
    if len(lines.counts) and not (lines.counts == 2).all():
        bad = int(np.argmax(lines.counts != 2))
        number = lines.line_numbers[bad]
        raise ValueError(
            f"{spec.path}, line {number}: expected 2 fields (user item), got {lines.counts[bad]}: "
            f"{_line_text(data, number - first_line)!r}"
            + ("; if lines hold whole sequences, use format='sasrec'" if lines.counts[bad] > 2 else "")
        )
    return _Rows(lines.values[0::2], lines.values[1::2])


_INT_TOKEN = re.compile(rb"[0-9]+")
_NEGATIVE_TOKEN = re.compile(rb"-[0-9]+")


def _token_problem(token: bytes) -> str | None:
    """Why ``token`` is not a valid integer id, or None."""
    if _INT_TOKEN.fullmatch(token):
        if int(token) > MAX_RAW_ID:
            return f"id {token.decode()} is too large (ids must be < 2**63)"
        return None
    if _NEGATIVE_TOKEN.fullmatch(token):
        return f"negative id {token.decode()}"
    return f"non-integer id {token.decode('utf-8', errors='replace')!r}"


def _diagnose_token_lines(data: bytes, first_line: int, spec: _Spec) -> None:
    """Find the first bad line of a block that failed the fast parse, and raise."""
    separator = spec.sep.encode() if spec.sep is not None and spec.sep.encode() not in _WHITESPACE else None
    for offset, line in enumerate(data.split(b"\n")):
        fields = (line.replace(separator, b" ") if separator else line).split()
        if not fields:
            continue
        number = first_line + offset
        text = _short(line.rstrip(b"\r").decode("utf-8", errors="replace"))
        if len(fields) == 1 and spec.layout in ("sasrec", "either"):
            raise ValueError(f"{spec.path}, line {number}: a user id with no items: {text!r}")
        if len(fields) != 2 and spec.layout == "pairs":
            raise ValueError(f"{spec.path}, line {number}: expected 2 fields (user item), got {len(fields)}: {text!r}")
        for token in fields:
            problem = _token_problem(token)
            if problem:
                raise ValueError(f"{spec.path}, line {number}: {problem} in {text!r}")
    raise ValueError(f"{spec.path}: could not parse the lines from {first_line} on as integer ids")


def _sniff_text_layout(sample: bytes) -> str:
    counts, _ = _fields_per_line(sample)
    if len(counts) and (counts == 2).all():
        users = sample.split()[0::2]
        if len(set(users)) < len(users):
            return "pairs"
    return "sasrec"


def _fields_per_line(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(whitespace-separated fields on each non-blank line, 0-based index of that line)."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    if len(buffer) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    is_space = _IS_WHITESPACE[buffer]
    starts = ~is_space
    starts[1:] &= is_space[:-1]
    line_starts = np.flatnonzero(buffer == ord("\n")) + 1
    line_starts = np.concatenate([[0], line_starts[line_starts < len(buffer)]])
    # Token starts per line: every segment is non-empty, as reduceat needs.
    per_line = np.add.reduceat(starts, line_starts, dtype=np.int64)
    filled = np.flatnonzero(per_line)
    return per_line[filled], filled


def _looks_like_u_data(lines: list[bytes]) -> bool:
    """Every line is ``user<TAB>item<TAB>rating<TAB>timestamp`` with a rating in
    0..10 and a Unix time of 9 or more digits (a sasrec line rarely is)."""
    for line in lines[:1000]:
        fields = line.rstrip(b"\r").split(b"\t")
        if len(fields) != 4 or not all(_INT_TOKEN.fullmatch(f) for f in fields):
            return False
        if int(fields[2]) > 10 or len(fields[3].lstrip(b"0")) < 9:
            return False
    return True


# =====================================================================
# MovieLens: ratings.dat (::), u.data (tab), ratings.csv (header userId,...)
# =====================================================================
def _movielens_rows(
    spec: _Spec, chunk_rows: int | None, columns: str, advance: Callable[[int], None]
) -> Iterator[_Rows]:
    sample = _sample_text(spec.path)
    first = next((line for line in sample.split(b"\n") if line.strip()), b"")
    has_header = bool(first) and not first.lstrip()[:1].isdigit()
    sep = spec.sep or _sniff_movielens_sep(first)

    def parse(data: bytes, first_line: int) -> _Rows:
        if first_line == 1 and has_header:
            data = data[data.find(b"\n") + 1 :] if b"\n" in data else b""
            first_line = 2
        return _parse_movielens_block(data, first_line, sep, spec)

    yield from _parsed_line_chunks(spec, "movielens", chunk_rows, advance, parse)


def _sniff_movielens_sep(first_line: bytes) -> str:
    for candidate in ("::", "\t", ","):
        if candidate.encode() in first_line:
            return candidate
    return " "


def _parse_movielens_block(data: bytes, first_line: int, sep: str, spec: _Spec) -> _Rows:
    if not data.strip():
        return _Rows(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    original, delimiter = data, sep
    if len(sep) > 1:  # pyarrow takes one-character delimiters
        delimiter = "\t"
        data = data.replace(sep.encode(), b"\t")
    id_type = pa.string() if spec.ids == "str" else pa.int64()
    try:
        table = pv.read_csv(
            io.BytesIO(data),
            read_options=pv.ReadOptions(column_names=["user", "item", "rating", "timestamp"]),
            parse_options=pv.ParseOptions(delimiter=delimiter, quote_char=False, escape_char=False),
            convert_options=pv.ConvertOptions(
                column_types={"user": id_type, "item": id_type, "timestamp": pa.int64()},
                include_columns=["user", "item", "timestamp"],
                null_values=[],
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        _diagnose_movielens(original, first_line, sep, spec)
        raise  # _diagnose_movielens always raises
    users, items = table.column("user"), table.column("item")
    if any(table.column(name).null_count for name in table.column_names):
        _diagnose_movielens(original, first_line, sep, spec)
    if spec.ids != "str" and (pc.min(users).as_py() < 0 or pc.min(items).as_py() < 0):
        _diagnose_movielens(original, first_line, sep, spec)
    times = _numpy(table.column("timestamp"))
    if spec.ids == "str":
        return _Rows(_strings(users), _strings(items), times)
    return _Rows(_numpy(users), _numpy(items), times)


def _diagnose_movielens(data: bytes, first_line: int, sep: str, spec: _Spec) -> None:
    separator = sep.encode()
    for offset, line in enumerate(data.split(b"\n")):
        line = line.rstrip(b"\r")
        if not line.strip():
            continue
        number = first_line + offset
        text = _short(line.decode("utf-8", errors="replace"))
        fields = line.split(separator)
        if len(fields) != 4:
            raise ValueError(
                f"{spec.path}, line {number}: expected 4 fields "
                f"(user{sep}item{sep}rating{sep}timestamp), got {len(fields)}: {text!r}"
            )
        checked = [("timestamp", fields[3])]
        if spec.ids != "str":
            checked = [("user", fields[0]), ("item", fields[1])] + checked
        for role, token in checked:
            problem = _token_problem(token.strip())
            if problem:
                raise ValueError(f"{spec.path}, line {number}: {role}: {problem} in {text!r}")
    raise ValueError(f"{spec.path}: could not parse the MovieLens lines from {first_line} on")


# =====================================================================
# arrow columns -> id arrays
# =====================================================================
class _IdKinds:
    """The id type ("int" or "str") each column settled on, kept across chunks.

    A stream decides a column's type on its first chunk and holds later chunks
    to it, so that every batch maps raw ids the same way.
    """

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {}


def _arrow_ids(
    column: pa.Array | pa.ChunkedArray,
    role: str,
    name: str,
    how: str,
    where: str,
    first_row: int,
    kinds: _IdKinds,
) -> np.ndarray:
    """A column of raw ids as int64 (non-negative, < 2**63) or str.

    ``how``: "typed" (keep the column's type), "classify" (text: integers when
    all are, else strings; floats rejected), "canonical" (text: integers when
    all are canonical decimal integers, else strings), "int" or "str".
    ``first_row`` numbers the column's first row in messages.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if getattr(pa.types, "is_string_view", lambda _: False)(column.type):
        column = column.cast(pa.string())
    if column.null_count:
        row = first_row + _first_true(column.is_null())
        raise ValueError(f"{where}: {role} column {name!r} has a missing value in row {row}")
    kind = column.type
    if pa.types.is_floating(kind) or pa.types.is_boolean(kind) or pa.types.is_decimal(kind):
        raise TypeError(
            f"{where}: {role} column {name!r} holds {kind} values (first: {column[0].as_py()!r}); "
            "ids must be integers or strings"
        )
    if pa.types.is_integer(kind):
        if how == "str":
            return _strings(column.cast(pa.string()))
        return _checked_int_ids(column, role, name, where, first_row)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise TypeError(f"{where}: {role} column {name!r} has type {kind}; ids must be integers or strings")
    return _text_ids(column, role, name, how, where, first_row, kinds)


def _text_ids(
    column: pa.Array, role: str, name: str, how: str, where: str, first_row: int, kinds: _IdKinds
) -> np.ndarray:
    settled = kinds.kinds.get(role)
    if how == "typed":  # a Parquet string column: text as stored
        _reject_nul(column, role, name, where, first_row)
        return _strings(column)
    if how == "str" or settled == "str":
        return _text_as_ids(column, role, name, where, first_row, kinds)
    try:
        ints = column.cast(pa.int64())
    except pa.ArrowInvalid:
        ints = None
    if ints is not None and how == "canonical" and not pc.all(pc.equal(ints.cast(pa.string()), column)).as_py():
        ints = None  # e.g. "007" or "-1": RecBole tokens that are text, not numbers
    if ints is None:
        _reject_empty(column, role, name, where, first_row)
        if how == "classify":
            _reject_null_markers(column, role, name, where, first_row)
        if how == "int" or settled == "int":
            _raise_not_int(column, role, name, where, first_row, settled == "int")
        if how == "classify":
            _reject_float_text(column, role, name, where, first_row)
        return _text_as_ids(column, role, name, where, first_row, kinds)
    kinds.kinds[role] = "int"
    return _checked_int_ids(ints, role, name, where, first_row)


def _text_as_ids(column: pa.Array, role: str, name: str, where: str, first_row: int, kinds: _IdKinds) -> np.ndarray:
    """Ids parsed from text that stay text: no empty ids, no line breaks."""
    _reject_empty(column, role, name, where, first_row)
    _reject_nul(column, role, name, where, first_row)
    broken = pc.match_substring_regex(column, "[\r\n]")
    if pc.any(broken).as_py():
        row = first_row + _first_true(broken)
        raise ValueError(
            f"{where}: {role} id in row {row} (column {name!r}) spans a line break; is a quote left open?"
        )
    kinds.kinds[role] = "str"
    return _strings(column)


_NULL_MARKERS = ["NA", "N/A", "NaN", "nan", "NULL", "null", "None", "none", "#N/A", "-"]


def _reject_null_markers(column: pa.Array, role: str, name: str, where: str, first_row: int) -> None:
    """An integer column with "NA"-like values in it: missing ids, not text ids."""
    not_int = pc.invert(pc.match_substring_regex(column, _INTEGER_TEXT))
    markers = pc.is_in(column, value_set=pa.array(_NULL_MARKERS))
    if pc.any(markers).as_py() and pc.all(pc.or_(pc.invert(not_int), markers)).as_py():
        index = _first_true(markers)
        raise ValueError(
            f"{where}: {role} column {name!r} has a missing value {column[index].as_py()!r} in row "
            f"{first_row + index}"
        )


def _reject_nul(column: pa.Array, role: str, name: str, where: str, first_row: int) -> None:
    # NumPy strings cannot hold NUL faithfully, and no real id contains one.
    nul = pc.match_substring(column, "\x00")
    if pc.any(nul).as_py():
        row = first_row + _first_true(nul)
        raise ValueError(f"{where}: {role} id in row {row} (column {name!r}) contains a NUL character")


def _reject_empty(column: pa.Array, role: str, name: str, where: str, first_row: int) -> None:
    empty = pc.equal(pc.utf8_length(column), 0)
    if pc.any(empty).as_py():
        row = first_row + _first_true(empty)
        raise ValueError(f"{where}: {role} column {name!r} has an empty value in row {row}")


def _checked_int_ids(column: pa.Array, role: str, name: str, where: str, first_row: int) -> np.ndarray:
    if len(column) == 0:
        return np.zeros(0, dtype=np.int64)
    if pa.types.is_unsigned_integer(column.type):
        too_large = pc.greater(column, pa.scalar(MAX_RAW_ID, column.type)) if column.type == pa.uint64() else None
        if too_large is not None and pc.any(too_large).as_py():
            index = _first_true(too_large)
            raise ValueError(
                f"{where}: {role} id {column[index].as_py()} in row {first_row + index} "
                f"(column {name!r}) is too large: ids must be < 2**63"
            )
        return _numpy(column.cast(pa.int64()))
    values = _numpy(column.cast(pa.int64()))
    if values.min() < 0:
        index = int(np.argmax(values < 0))
        raise ValueError(
            f"{where}: negative {role} id {values[index]} in row {first_row + index} (column {name!r})"
        )
    return values


_INTEGER_TEXT = r"^-?[0-9]+$"
_FLOAT_TEXT = r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$|^[-+]?(nan|NaN|NAN|inf|Inf|INF|infinity|Infinity)$"


def _raise_not_int(column: pa.Array, role: str, name: str, where: str, first_row: int, by_earlier: bool) -> None:
    bad = pc.invert(pc.match_substring_regex(column, _INTEGER_TEXT))
    if pc.any(bad).as_py():
        index = _first_true(bad)
        because = " (earlier rows were integers; pass ids='str' to read ids as text)" if by_earlier else ""
        raise ValueError(
            f"{where}: {role} id {column[index].as_py()!r} in row {first_row + index} "
            f"(column {name!r}) is not an integer{because}"
        )
    # Every value is an integer literal, so the cast failed on range.
    lengths = _numpy(pc.utf8_length(column))
    for index in np.flatnonzero(lengths >= 19):
        text = column[int(index)].as_py()
        if int(text) > MAX_RAW_ID:
            raise ValueError(
                f"{where}: {role} id {text} in row {first_row + index} (column {name!r}) is too large: "
                "ids must be < 2**63"
            )
        if int(text) < -MAX_RAW_ID - 1:
            raise ValueError(f"{where}: negative {role} id {text} in row {first_row + index} (column {name!r})")
    raise ValueError(f"{where}: {role} column {name!r} could not be read as integers")


def _reject_float_text(column: pa.Array, role: str, name: str, where: str, first_row: int) -> None:
    """Text ids where every value is a number but some are not integers: float ids."""
    numeric = pc.match_substring_regex(column, _FLOAT_TEXT)
    if not pc.all(numeric).as_py():
        return
    if pc.all(pc.match_substring_regex(column, _INTEGER_TEXT)).as_py():
        _raise_not_int(column, role, name, where, first_row, False)  # integers out of range
    index = _first_true(pc.invert(pc.match_substring_regex(column, _INTEGER_TEXT)))
    raise TypeError(
        f"{where}: {role} id {column[index].as_py()!r} in row {first_row + index} (column {name!r}) "
        "is a number but not an integer; ids must be integers or strings"
    )


def _arrow_times(column: pa.Array | pa.ChunkedArray, name: str, where: str, first_row: int) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count:
        row = first_row + _first_true(column.is_null())
        raise ValueError(f"{where}: timestamp column {name!r} has a missing value in row {row}")
    kind = column.type
    if not (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_timestamp(kind)
        or pa.types.is_date(kind)
    ):
        raise TypeError(
            f"{where}: timestamp column {name!r} has type {kind}; expected numbers or datetimes"
        )
    if pa.types.is_floating(kind):
        nan = pc.is_nan(column)
        if pc.any(nan).as_py():
            raise ValueError(f"{where}: timestamp column {name!r} is NaN in row {first_row + _first_true(nan)}")
    if pa.types.is_date(kind) or pa.types.is_timestamp(kind):
        # Order is all that matters: the stored counts (days, s, ms, ...) sort like the times.
        column = column.view(pa.int64() if kind.bit_width == 64 else pa.int32())
    return _numpy(column)


def _first_true(mask: pa.Array | pa.ChunkedArray) -> int:
    return int(pc.index(mask, True).as_py())


def _strings(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=str)


def _table_rows(
    table: pa.Table | pa.RecordBatch,
    spec: _Spec,
    names: tuple[str, str, str | None],
    how: str,
    first_row: int,
    kinds: _IdKinds,
    columns: str,
) -> _Rows:
    """Rows from a table whose columns were already checked to exist."""
    user, item, timestamp = names
    where = str(spec.path)
    users = _arrow_ids(table.column(user), "user", user, how, where, first_row, kinds)
    if columns == "users":
        return _Rows(users, users)
    items = _arrow_ids(table.column(item), "item", item, how, where, first_row, kinds)
    times = _arrow_times(table.column(timestamp), timestamp, where, first_row) if timestamp else None
    return _Rows(users, items, times)


def _check_columns(wanted: list[str], present: list[str], path: Path) -> None:
    missing = [name for name in wanted if name not in present]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; the file has columns {present}")


# =====================================================================
# CSV
# =====================================================================
def _csv_header(path: Path, sep: str | None) -> tuple[list[str], str]:
    sample = _sample_text(path)
    if not sample.strip():
        raise ValueError(f"{path} is empty: no header and no rows")
    first = sample.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace")
    if sep is None:
        sep = next((c for c in (",", "\t", ";", "|") if c in first), ",")
    if len(sep) != 1:
        raise ValueError(f"csv sep must be a single character, got {sep!r}")
    header = next(csv.reader([first], delimiter=sep))
    return header, sep


def _csv_rows(
    spec: _Spec, chunk_rows: int | None, columns: str, advance: Callable[[int], None]
) -> Iterator[_Rows]:
    header, sep = _csv_header(spec.path, spec.sep)
    wanted = [spec.user, spec.item] + ([spec.timestamp] if spec.timestamp else [])
    _check_columns(wanted, header, spec.path)
    if columns == "users":
        wanted = [spec.user]
    # Ids are read as text and typed here: pyarrow's inference would turn ids
    # >= 2**63 or "+5" into floats silently.
    types = {name: pa.string() for name in (spec.user, spec.item)}
    convert = pv.ConvertOptions(include_columns=wanted, column_types=types, strings_can_be_null=False)
    parse = pv.ParseOptions(delimiter=sep)
    how = {"auto": "classify", "int": "int", "str": "str"}[spec.ids]
    names = (spec.user, spec.item, spec.timestamp if columns == "all" else None)
    yield from _arrow_csv_rows(spec, chunk_rows, columns, advance, parse, convert, pv.ReadOptions(), names, how)


def _arrow_csv_rows(
    spec: _Spec,
    chunk_rows: int | None,
    columns: str,
    advance: Callable[[int], None],
    parse: pv.ParseOptions,
    convert: pv.ConvertOptions,
    read: pv.ReadOptions,
    names: tuple[str, str, str | None],
    how: str,
) -> Iterator[_Rows]:
    """Rows of a delimited file with a header, read by pyarrow in blocks."""
    stream, raw = _open_text_bytes(spec.path)
    kinds = _IdKinds()
    next_row = 1
    consumed = 0
    try:
        if chunk_rows is None:
            tables: Iterator[Any] = iter([_arrow_call(spec, parse, lambda: pv.read_csv(stream, read, parse, convert))])
        else:
            block = _chunk_bytes_for(spec.path, "csv", chunk_rows)
            read = pv.ReadOptions(
                skip_rows=read.skip_rows, column_names=read.column_names, block_size=block
            )
            reader = _arrow_call(spec, parse, lambda: pv.open_csv(stream, read, parse, convert))
            tables = _arrow_batches(spec, parse, reader)
        for table in tables:
            rows = _table_rows(table, spec, names, how, next_row, kinds, columns)
            next_row += table.num_rows
            advance(raw.tell() - consumed)
            consumed = raw.tell()
            yield rows
    finally:
        stream.close()
        raw.close()
    if next_row == 1:
        raise ValueError(f"{spec.path} has a header but no rows")


def _arrow_call(spec: _Spec, parse: pv.ParseOptions, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        _raise_csv_error(spec, parse, error)


def _arrow_batches(spec: _Spec, parse: pv.ParseOptions, reader: Any) -> Iterator[pa.RecordBatch]:
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            _raise_csv_error(spec, parse, error)
        yield batch


def _raise_csv_error(spec: _Spec, parse: pv.ParseOptions, error: Exception) -> None:
    if "CSV parse error" in str(error):
        _find_ragged_line(spec.path, parse)  # names the line when it can
    raise ValueError(f"{spec.path}: {_arrow_message(error)}") from error


def _find_ragged_line(path: Path, parse: pv.ParseOptions) -> None:
    """Raise for the first line whose number of fields differs from the header's."""
    stream, raw = _open_text_bytes(path)
    try:
        text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
        quoting = csv.QUOTE_MINIMAL if parse.quote_char else csv.QUOTE_NONE
        reader = csv.reader(text, delimiter=parse.delimiter, quoting=quoting)
        expected = None
        for fields in reader:
            if not fields or fields == [""]:
                continue  # pyarrow skips empty lines too
            if expected is None:
                expected = len(fields)
            elif len(fields) != expected:
                content = _short(parse.delimiter.join(fields))
                raise ValueError(
                    f"{path}, line {reader.line_num}: expected {expected} fields like the header, "
                    f"got {len(fields)}: {content!r}"
                )
    except csv.Error:
        return  # leave it to pyarrow's message
    finally:
        stream.close()
        raw.close()


def _arrow_message(error: Exception) -> str:
    message = str(error).strip()
    if "conversion error" in message:
        message += " (a column's type is inferred from the first rows; pass ids='str' for text ids)"
    return message


# =====================================================================
# RecBole atomic .inter files
# =====================================================================
def _inter_header(path: Path) -> list[tuple[str, str]]:
    sample = _sample_text(path)
    if not sample.strip():
        raise ValueError(f"{path} is empty: no header and no rows")
    first = sample.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace")
    fields = []
    for field in first.split("\t"):
        name, colon, kind = field.rpartition(":")
        if not colon or kind not in _RECBOLE_TYPES or not name:
            raise ValueError(
                f"{path}, line 1: header field {field!r} is not 'name:type' with type in "
                f"{sorted(_RECBOLE_TYPES)} (RecBole atomic files start with a typed header)"
            )
        fields.append((name, kind))
    return fields


def _looks_like_inter_header(line: bytes) -> bool:
    fields = line.decode("utf-8", errors="replace").split("\t")
    return all(f.rpartition(":")[2] in _RECBOLE_TYPES and f.rpartition(":")[0] for f in fields)


def _inter_rows(
    spec: _Spec, chunk_rows: int | None, columns: str, advance: Callable[[int], None]
) -> Iterator[_Rows]:
    fields = _inter_header(spec.path)
    present = [name for name, _ in fields]
    user = spec.user if spec.user in present or spec.user != "user" else "user_id"
    item = spec.item if spec.item in present or spec.item != "item" else "item_id"
    timestamp = spec.timestamp
    if timestamp is None and "timestamp" in present:
        timestamp = "timestamp"
    wanted = [user, item] + ([timestamp] if timestamp else [])
    _check_columns(wanted, present, spec.path)
    kinds = dict(fields)
    for role, name in (("user", user), ("item", item)):
        if kinds[name] != "token":
            raise TypeError(f"{spec.path}: {role} field {name!r} has RecBole type {kinds[name]}; expected token")
    types = {name: pa.string() for name in (user, item)}
    if timestamp:
        if kinds[timestamp] != "float":
            raise TypeError(f"{spec.path}: timestamp field {timestamp!r} has type {kinds[timestamp]}; expected float")
        types[timestamp] = pa.float64()
    include = [user] if columns == "users" else wanted
    convert = pv.ConvertOptions(include_columns=include, column_types=types, strings_can_be_null=False)
    parse = pv.ParseOptions(delimiter="\t", quote_char=False, escape_char=False)
    read = pv.ReadOptions(skip_rows=1, column_names=present)
    how = {"auto": "canonical", "int": "int", "str": "str"}[spec.ids]
    names = (user, item, timestamp if columns == "all" else None)
    yield from _arrow_csv_rows(spec, chunk_rows, columns, advance, parse, convert, read, names, how)


# =====================================================================
# Parquet
# =====================================================================
def _is_parquet(path: Path) -> bool:
    if path.suffix.lower() in _PARQUET_SUFFIXES:
        return True
    with open(path, "rb") as handle:
        return handle.read(4) == b"PAR1"


def _open_parquet(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as error:
        raise ValueError(f"{path} is not a readable Parquet file: {error}") from error


def _parquet_rows(
    spec: _Spec, chunk_rows: int | None, columns: str, advance: Callable[[int], None]
) -> Iterator[_Rows]:
    parquet = _open_parquet(spec.path)
    present = list(parquet.schema_arrow.names)
    wanted = [spec.user, spec.item] + ([spec.timestamp] if spec.timestamp else [])
    _check_columns(wanted, present, spec.path)
    if columns == "users":
        wanted = [spec.user]
    how = {"auto": "typed", "int": "int", "str": "str"}[spec.ids]
    names = (spec.user, spec.item, spec.timestamp if columns == "all" else None)
    kinds = _IdKinds()
    if parquet.metadata.num_rows == 0:
        raise ValueError(f"{spec.path} has no rows")
    try:
        if chunk_rows is None:
            tables: Iterator[Any] = iter([parquet.read(columns=wanted)])
        else:
            tables = parquet.iter_batches(batch_size=chunk_rows, columns=wanted)
        next_row = 1
        for table in tables:
            rows = _table_rows(table, spec, names, how, next_row, kinds, columns)
            next_row += table.num_rows
            advance(table.num_rows)
            yield rows
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as error:
        raise ValueError(f"{spec.path} is not a readable Parquet file: {error}") from error


# =====================================================================
# streaming in batches of whole users
# =====================================================================
class _SeenUsers:
    """Which user ids have been seen, to spot a user that comes back.

    Files sorted by user (the common case) only need the last id; the sorted
    set of all ids is built the first time the order breaks.
    """

    def __init__(self) -> None:
        self._pieces: list[np.ndarray] = []
        self._last: Any = None
        self._sorted: np.ndarray | None = None

    def add(self, values: np.ndarray) -> int:
        """Record ``values``; return the index of the first repeated one, or -1."""
        if len(values) == 0:
            return -1
        if self._sorted is None:
            increasing = bool((values[1:] > values[:-1]).all())
            if increasing and (self._last is None or values[0] > self._last):
                self._pieces.append(values.copy())
                self._last = values[-1]
                return -1
            self._sorted = np.sort(np.concatenate(self._pieces)) if self._pieces else values[:0].copy()
            self._pieces = []
        repeat = _first_repeat(values, self._sorted)
        if repeat < 0:
            self._sorted = np.sort(np.concatenate([self._sorted, np.unique(values)]), kind="stable")
        return repeat


def _first_repeat(values: np.ndarray, seen: np.ndarray) -> int:
    """Index of the first value that is in ``seen`` or occurs earlier in ``values``."""
    candidates = []
    if len(seen):
        position = np.searchsorted(seen, values).clip(max=len(seen) - 1)
        found = seen[position] == values
        if found.any():
            candidates.append(int(np.argmax(found)))
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    later_duplicates = order[1:][ordered[1:] == ordered[:-1]]
    if len(later_duplicates):
        candidates.append(int(later_duplicates.min()))
    return min(candidates) if candidates else -1


def _run_heads(users: np.ndarray, previous_last: Any) -> np.ndarray:
    """Positions where a new run of equal users starts."""
    change = np.ones(len(users), dtype=bool)
    change[1:] = users[1:] != users[:-1]
    if previous_last is not None and len(users) and users[0] == previous_last:
        change[0] = False
    return np.flatnonzero(change)


class _ContiguityCheck:
    """Verifies, chunk by chunk, that each user's rows form one run."""

    def __init__(self) -> None:
        self._seen = _SeenUsers()
        self._last: Any = None
        self.rows = 0

    def add(self, users: np.ndarray) -> int:
        """Return the index in ``users`` of the first row breaking contiguity, or -1."""
        heads = _run_heads(users, self._last)
        repeat = self._seen.add(users[heads])
        if len(users):
            self._last = users[-1]
        if repeat >= 0:
            return int(heads[repeat])
        self.rows += len(users)
        return -1


def _iter_batches(
    spec: _Spec, batch_rows: int, progress: bool, grouped: bool | None, tmp_dir: Any
) -> Iterator[Sequences]:
    total_rows = None
    if grouped is None and spec.format != "sasrec" and count_rows_hint(spec.path, spec.format) <= batch_rows // 2:
        batches: Iterator[_Rows] = _one_batch(spec, progress)  # small: no need to check the order
    elif spec.format == "sasrec":  # one line per user: whole users in every chunk
        batches = _whole_user_chunks(spec, batch_rows, progress)
    else:
        if grouped is None:
            grouped, total_rows = _scan_contiguity(spec, batch_rows, progress)
        if grouped:
            batches = _contiguous_batches(spec, batch_rows, progress)
        else:
            batches = _external_batches(spec, batch_rows, progress, total_rows, tmp_dir)
    produced = False
    for rows in batches:
        if len(rows):
            produced = True
            yield _group(rows, "first")
    if not produced:
        raise ValueError(f"{spec.path} holds no interactions")


def _progress_bar(spec: _Spec, progress: bool, description: str) -> Any:
    from tqdm.auto import tqdm

    if spec.format == "parquet":
        total = _open_parquet(spec.path).metadata.num_rows
        return tqdm(total=total, unit="rows", unit_scale=True, desc=description, file=sys.stderr, disable=not progress)
    total = os.path.getsize(spec.path)
    return tqdm(total=total, unit="B", unit_scale=True, desc=description, file=sys.stderr, disable=not progress)


def _scan_contiguity(spec: _Spec, batch_rows: int, progress: bool) -> tuple[bool, int | None]:
    """(are each user's rows contiguous?, rows counted) from one pass over the users."""
    check = _ContiguityCheck()
    with _progress_bar(spec, progress, "checking user order") as bar:
        with contextlib.closing(_row_chunks(spec, batch_rows, "users", bar.update)) as chunks:
            for rows in chunks:
                if check.add(rows.users) >= 0:
                    return False, None
    return True, check.rows


def _one_batch(spec: _Spec, progress: bool) -> Iterator[_Rows]:
    """A file that fits in one batch, read whole."""
    with _progress_bar(spec, progress, "reading") as bar:
        yield _Rows.concat(list(_row_chunks(spec, None, "all", bar.update)))


def _whole_user_chunks(spec: _Spec, batch_rows: int, progress: bool) -> Iterator[_Rows]:
    """sasrec: every chunk of whole lines already holds whole users."""
    with _progress_bar(spec, progress, "reading") as bar:
        yield from _row_chunks(spec, batch_rows, "all", bar.update)


def _contiguous_batches(spec: _Spec, batch_rows: int, progress: bool) -> Iterator[_Rows]:
    """Chunks cut at user boundaries; the trailing user moves to the next batch.

    Contiguity is verified on the way (cheaply), so that ``grouped=True`` on a
    file that is not grouped raises instead of splitting a user.
    """
    check = _ContiguityCheck()
    carried: list[_Rows] = []
    row_number = 0
    with _progress_bar(spec, progress, "reading") as bar:
        for rows in _row_chunks(spec, batch_rows, "all", bar.update):
            broken = check.add(rows.users)
            if broken >= 0:
                raise ValueError(
                    f"{spec.path}: user {rows.users[broken]} reappears in row {row_number + broken + 1} "
                    "after other users' rows; the file is not grouped by user (use grouped=None or False)"
                )
            row_number += len(rows)
            if len(rows) == 0:
                continue
            if carried and carried[-1].users[-1] != rows.users[0]:
                yield _Rows.concat(carried)  # the carried user ended exactly at the chunk edge
                carried = []
            last_start = _run_heads(rows.users, None)[-1]
            if last_start > 0:
                yield _Rows.concat(carried + [rows.slice(0, last_start)])
                carried = []
            carried.append(rows.slice(last_start))
        if carried:
            yield _Rows.concat(carried)


def _external_batches(
    spec: _Spec, batch_rows: int, progress: bool, total_rows: int | None, tmp_dir: Any
) -> Iterator[_Rows]:
    """Hash-partition rows by user into temporary Parquet files, then group each."""
    if total_rows is None:
        total_rows = count_rows_hint(spec.path, spec.format)
    n_parts = int(min(_MAX_PARTITIONS, max(1, math.ceil(total_rows / batch_rows))))
    with tempfile.TemporaryDirectory(prefix="perflaw-groups-", dir=tmp_dir) as folder:
        writer = _PartitionWriter(Path(folder), n_parts, batch_rows)
        try:
            with _progress_bar(spec, progress, "partitioning by user") as bar:
                for rows in _row_chunks(spec, batch_rows, "all", bar.update):
                    writer.add(rows)
        finally:
            writer.close()
        from tqdm.auto import tqdm

        for part in tqdm(writer.paths, desc="grouping partitions", file=sys.stderr, disable=not progress):
            yield _read_partition(part)


class _PartitionWriter:
    """Appends rows to one Parquet file per hash partition of the user id.

    Rows are buffered per partition and flushed as row groups, so the memory
    held is about ``batch_rows`` rows whatever the number of partitions. Rows
    keep file order within each partition.
    """

    def __init__(self, folder: Path, n_parts: int, batch_rows: int) -> None:
        self.folder = folder
        self.n_parts = n_parts
        self.flush_rows = max(4096, batch_rows // n_parts)
        self.buffers: list[list[_Rows]] = [[] for _ in range(n_parts)]
        self.buffered = [0] * n_parts
        self.writers: dict[int, pq.ParquetWriter] = {}
        self.schema: pa.Schema | None = None

    @property
    def paths(self) -> list[Path]:
        return [self.folder / f"part-{p:05d}.parquet" for p in sorted(self.writers)]

    def add(self, rows: _Rows) -> None:
        if len(rows) == 0:
            return
        part = (_hash_users(rows.users) % np.uint64(self.n_parts)).astype(np.int64)
        order = _stable_argsort(part, self.n_parts)
        bounds = np.searchsorted(part[order], np.arange(self.n_parts + 1))
        for p in range(self.n_parts):
            if bounds[p] == bounds[p + 1]:
                continue
            take = order[bounds[p] : bounds[p + 1]]
            times = None if rows.times is None else rows.times[take]
            self.buffers[p].append(_Rows(rows.users[take], rows.items[take], times))
            self.buffered[p] += len(take)
            if self.buffered[p] >= self.flush_rows:
                self._flush(p)

    def _flush(self, p: int) -> None:
        rows = _Rows.concat(self.buffers[p])
        self.buffers[p], self.buffered[p] = [], 0
        if len(rows) == 0:
            return
        columns = {"user": _arrow(rows.users), "item": _arrow(rows.items)}
        if rows.times is not None:
            columns["time"] = _arrow(rows.times)
        table = pa.table(columns)
        if self.schema is None:
            self.schema = table.schema
        elif table.schema != self.schema:
            table = table.cast(self.schema)
        if p not in self.writers:
            # Spill files live seconds: favour speed over size.
            self.writers[p] = pq.ParquetWriter(
                self.folder / f"part-{p:05d}.parquet",
                self.schema,
                compression="lz4",
                use_dictionary=False,
                write_statistics=False,
            )
        self.writers[p].write_table(table)

    def close(self) -> None:
        try:
            for p in range(self.n_parts):
                self._flush(p)
        finally:
            for writer in self.writers.values():
                writer.close()


def _read_partition(path: Path) -> _Rows:
    table = pq.read_table(path)

    def column(name: str) -> np.ndarray:
        values = table.column(name)
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            return _strings(values)
        return _numpy(values)

    times = column("time") if "time" in table.column_names else None
    return _Rows(column("user"), column("item"), times)


def _hash_users(users: np.ndarray) -> np.ndarray:
    """A deterministic 64-bit hash of each user id (int or str), to pick a partition."""
    if users.dtype.kind in "iu":
        mixed = users.astype(np.int64).view(np.uint64).copy()
    else:
        codes = np.ascontiguousarray(users.astype(str))
        matrix = codes.view(np.uint32).reshape(len(codes), codes.dtype.itemsize // 4)
        mixed = np.zeros(len(codes), dtype=np.uint64)
        for column in matrix.T:
            # NUL padding must not change the hash, or the width of a chunk would.
            present = column != 0
            mixed[present] = mixed[present] * np.uint64(1_000_003) + column[present].astype(np.uint64)
    # murmur3's 64-bit finaliser spreads nearby ids over all partitions.
    mixed ^= mixed >> np.uint64(33)
    mixed *= np.uint64(0xFF51AFD7ED558CCD)
    mixed ^= mixed >> np.uint64(33)
    mixed *= np.uint64(0xC4CEB9FE1A85EC53)
    mixed ^= mixed >> np.uint64(33)
    return mixed
