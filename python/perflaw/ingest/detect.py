"""Which format a file is in, and about how many interactions it holds."""

from __future__ import annotations

import os
from pathlib import Path

from perflaw.ingest.checks import FORMATS, check_choice, existing_file
from perflaw.ingest.compression import logical_name
from perflaw.ingest.inter import looks_like_inter_header
from perflaw.ingest.parquet import is_parquet, open_parquet
from perflaw.ingest.text import rows_in_text, sample_text, sample_with_position
from perflaw.ingest.tokens import sniff_text_layout
from perflaw.errors import PerflawError

__all__ = ["detect_format", "detect", "count_rows_hint"]


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format :func:`~perflaw.ingest.read_sequences` uses for ``format="auto"``.

    Rules, first match wins (a compressed file, gzip, bz2, xz, zstd or lz4,
    is recognised by its first bytes and looked through; its compression
    suffix is then ignored):

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
    return detect(existing_file(path), text_layout=True)


def detect(path: Path, text_layout: bool) -> str:
    """:func:`detect_format`; without ``text_layout``, "sasrec" stands for both text layouts."""
    if is_parquet(path):
        return "parquet"
    sample = sample_text(path)
    lines = [line for line in sample.split(b"\n", 1000)[:1000] if line.strip()]
    if not lines:
        raise PerflawError(f"{path} is empty: no interactions to read")
    first = lines[0].rstrip(b"\r")
    name = logical_name(path)
    suffix = Path(name).suffix.lower()
    if suffix == ".inter" or looks_like_inter_header(first):
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
    return sniff_text_layout(sample) if text_layout else "sasrec"


def _looks_like_u_data(lines: list[bytes]) -> bool:
    """Every line is ``user<TAB>item<TAB>rating<TAB>timestamp`` with a rating in
    0..10 and a Unix time of 9 or more digits (a sasrec line rarely is)."""
    for line in lines[:1000]:
        fields = line.rstrip(b"\r").split(b"\t")
        if len(fields) != 4 or not all(field.isdigit() for field in fields):
            return False
        if int(fields[2]) > 10 or len(fields[3].lstrip(b"0")) < 9:
            return False
    return True


def count_rows_hint(path: str | os.PathLike[str], format: str = "auto") -> int:
    """A cheap estimate of the number of interactions in a file.

    Use it to decide whether a job is large enough to show a progress bar or
    to stream with :func:`~perflaw.ingest.iter_batches`. Exact for Parquet
    (read from the footer) and for text files under 1 MiB; otherwise
    extrapolated from the first MiB: rows per byte there times the file size
    (for compressed files, times the compression ratio seen in that sample).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "seqs.txt"
    >>> _ = path.write_text("1 5 6 7\\n2 5 8\\n")
    >>> count_rows_hint(path)
    5
    """
    path = existing_file(path)
    fmt = detect_format(path) if format == "auto" else check_choice(format, FORMATS, "format")
    if fmt == "parquet":
        return open_parquet(path).metadata.num_rows
    sample, raw_read, complete = sample_with_position(path)
    rows = rows_in_text(sample, fmt)
    if complete or raw_read == 0:
        return max(rows, 0)
    return max(0, round(rows * os.path.getsize(path) / raw_read))
