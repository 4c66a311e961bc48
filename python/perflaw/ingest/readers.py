"""One reader per format, each yielding a file's rows in file order, in chunks."""

from __future__ import annotations

from typing import Iterator

from perflaw.ingest.delimited import csv_rows
from perflaw.ingest.inter import inter_rows
from perflaw.ingest.movielens import movielens_rows
from perflaw.ingest.parquet import parquet_rows
from perflaw.ingest.rows import Rows
from perflaw.ingest.spec import Advance, Spec
from perflaw.ingest.tokens import token_text_rows

__all__ = ["row_chunks"]

_READERS = {
    "sasrec": token_text_rows,
    "pairs": token_text_rows,
    "movielens": movielens_rows,
    "inter": inter_rows,
    "csv": csv_rows,
    "parquet": parquet_rows,
}


def row_chunks(spec: Spec, chunk_rows: int | None, columns: str, advance: Advance) -> Iterator[Rows]:
    """The file's rows in chunks of about ``chunk_rows`` (None: one chunk).

    ``columns="users"`` lets a reader skip the item and timestamp columns
    (the items of the yielded rows are then meaningless). ``advance`` is called
    with progress units (bytes, or rows for Parquet).
    """
    return _READERS[spec.format](spec, chunk_rows, columns, advance)
