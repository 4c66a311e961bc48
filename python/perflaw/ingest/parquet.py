"""Parquet files: named, typed columns, read whole or in record batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from perflaw.ids import IdKinds
from perflaw.ingest.rows import Rows, check_columns, table_rows
from perflaw.ingest.spec import Advance, Spec
from perflaw.errors import PerflawError

__all__ = ["PARQUET_SUFFIXES", "is_parquet", "open_parquet", "parquet_rows"]

# The file suffixes read as Parquet, here and by the law's results tables.
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")


def is_parquet(path: Path) -> bool:
    """A Parquet suffix, or Parquet's magic bytes ``PAR1`` at the start."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return True
    with open(path, "rb") as handle:
        return handle.read(4) == b"PAR1"


def open_parquet(path: Path) -> pq.ParquetFile:
    try:
        # pre_buffer=False: pre-buffered column chunks stay cached for the file's life, so memory
        # would grow with the file while streaming it (3.5 GiB for a billion tokens)
        return pq.ParquetFile(path, pre_buffer=False)
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as error:
        raise PerflawError(f"{path} is not a readable Parquet file: {error}") from error


def parquet_rows(spec: Spec, chunk_rows: int | None, columns: str, advance: Advance) -> Iterator[Rows]:
    parquet = open_parquet(spec.path)
    present = list(parquet.schema_arrow.names)
    wanted = [spec.user, spec.item] + ([spec.timestamp] if spec.timestamp else [])
    check_columns(wanted, present, spec.path)
    if columns == "users":
        wanted = [spec.user]
    how = {"auto": "typed", "int": "int", "str": "str"}[spec.ids]
    names = (spec.user, spec.item, spec.timestamp if columns == "all" else None)
    kinds = IdKinds()
    if parquet.metadata.num_rows == 0:
        raise PerflawError(f"{spec.path} has no rows")
    try:
        if chunk_rows is None:
            tables: Iterator[Any] = iter([parquet.read(columns=wanted)])
        else:
            tables = parquet.iter_batches(batch_size=chunk_rows, columns=wanted)
        next_row = 1
        for table in tables:
            rows = table_rows(table, str(spec.path), names, how, next_row, kinds, columns)
            next_row += table.num_rows
            advance(table.num_rows)
            yield rows
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as error:
        raise PerflawError(f"{spec.path} is not a readable Parquet file: {error}") from error
