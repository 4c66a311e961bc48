"""The two entry points: :func:`read_sequences` (a whole file in memory) and
:func:`iter_batches` (a file of any size in batches of whole users).

Both read rows through the same per-format readers (:mod:`.readers`) and
group them into users with the same grouping as ``Sequences.from_table``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

from perflaw.ingest.checks import FORMATS, ID_MODES, check_choice, existing_file, positive, reject_unknown
from perflaw.ingest.detect import detect
from perflaw.ingest.readers import row_chunks
from perflaw.ingest.rows import Rows, UserRuns, to_sequences
from perflaw.ingest.spec import Spec, no_progress
from perflaw.ingest.streaming import stream_batches, stream_user_runs
from perflaw.sequences import Sequences
from perflaw.errors import PerflawError, PerflawTypeError

__all__ = ["read_sequences", "iter_batches", "iter_user_runs"]


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
        The file. Text files may be compressed (gzip, bz2, xz, zstd or lz4),
        recognised by their first bytes whatever the file is named.
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
    reject_unknown(options)
    spec = _resolve(path, format, user, item, timestamp, sep, ids, streaming=False)
    chunks = list(row_chunks(spec, chunk_rows=None, columns="all", advance=no_progress))
    rows = Rows.concat(chunks)
    if len(rows) == 0:
        raise PerflawError(f"{spec.path} holds no interactions")
    return to_sequences(rows, "first" if spec.format in ("sasrec", "pairs") else "sorted")


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
    return stream_batches(spec, positive(batch_rows, "batch_rows"), bool(progress), _grouped(grouped), _tmp_dir(tmp_dir))


def iter_user_runs(
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
) -> Iterator[UserRuns]:
    """Stream a file as batches of whole users with raw item keys, for corpus statistics.

    The users and items are those of :func:`iter_batches`, but items are not
    relabelled: each batch is a :class:`~perflaw.ingest.rows.UserRuns` of CSR
    offsets and ``Sequences.stable_item_keys()``. This is the fast path of
    ``perflaw.data_quality(path)``.

    Parameters
    ----------
    path, format, batch_rows, user, item, timestamp, sep, progress, tmp_dir, ids
        As for :func:`iter_batches`.
    grouped : bool, optional
        ``None`` (default): the file is read once as if each user's rows were
        contiguous, and :class:`~perflaw.errors.NotGroupedError` is raised,
        after some batches, as soon as a user comes back; start again with
        ``grouped=False``. ``True`` and ``False`` as for :func:`iter_batches`.

    Yields
    ------
    UserRuns
        Batches of whole users.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "seqs.txt"
    >>> _ = path.write_text("1 10 11 10\\n2 20\\n")
    >>> [(b.offsets.tolist(), b.keys.tolist()) for b in iter_user_runs(path)]
    [([0, 3, 4], [10, 11, 10, 20])]
    """
    spec = _resolve(path, format, user, item, timestamp, sep, ids, streaming=True)
    return stream_user_runs(spec, positive(batch_rows, "batch_rows"), bool(progress), _grouped(grouped), _tmp_dir(tmp_dir))


def _grouped(grouped: Any) -> bool | None:
    if grouped not in (None, True, False):
        raise PerflawTypeError(f"grouped must be None, True or False, got {grouped!r}")
    return grouped


def _tmp_dir(tmp_dir: Any) -> Any:
    if tmp_dir is not None and not Path(tmp_dir).is_dir():
        raise PerflawError(f"tmp_dir {str(tmp_dir)!r} is not an existing folder")
    return tmp_dir


def _resolve(
    path: Any, format: Any, user: Any, item: Any, timestamp: Any, sep: Any, ids: Any, streaming: bool
) -> Spec:
    path = existing_file(path)
    format = check_choice(format, FORMATS, "format")
    ids = check_choice(ids, ID_MODES, "ids")
    for name, value in (("user", user), ("item", item)):
        if not isinstance(value, str) or not value:
            raise PerflawTypeError(f"{name} must be a non-empty column name, got {value!r}")
    if timestamp is not None and (not isinstance(timestamp, str) or not timestamp):
        raise PerflawTypeError(f"timestamp must be a column name or None, got {timestamp!r}")
    if sep is not None and (not isinstance(sep, str) or not sep):
        raise PerflawTypeError(f"sep must be a non-empty string or None, got {sep!r}")
    # In memory the whole file decides between the two text layouts; a stream
    # must commit before reading, so it decides on the first MiB.
    fmt = detect(path, text_layout=streaming) if format == "auto" else format
    layout = ""
    if fmt in ("sasrec", "pairs"):
        layout = "either" if format == "auto" and not streaming else fmt
    return Spec(path, fmt, user, item, timestamp, sep, ids, layout)
