"""Delimited files with a header (CSV, TSV, ...), read by pyarrow's CSV engine in blocks.

Ids are read as text and typed by :mod:`perflaw.ids`: pyarrow's inference
would turn ids >= 2**63 or "+5" into floats silently.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.csv as pv

from perflaw.ids import IdKinds
from perflaw.ingest.compression import open_bytes
from perflaw.ingest.rows import Rows, check_columns, table_rows
from perflaw.ingest.spec import Advance, Spec
from perflaw.ingest.text import chunk_bytes_for, sample_text, short
from perflaw.errors import PerflawError

__all__ = ["csv_rows", "arrow_csv_rows"]


def _csv_header(path: Path, sep: str | None) -> tuple[list[str], str]:
    sample = sample_text(path)
    if not sample.strip():
        raise PerflawError(f"{path} is empty: no header and no rows")
    first = sample.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace")
    if sep is None:
        sep = next((c for c in (",", "\t", ";", "|") if c in first), ",")
    if len(sep) != 1:
        raise PerflawError(f"csv sep must be a single character, got {sep!r}")
    try:
        header = next(csv.reader([first], delimiter=sep))
    except csv.Error as error:
        raise PerflawError(f"{path}: the header line {short(first)!r} is not CSV ({error})") from None
    return header, sep


def csv_rows(spec: Spec, chunk_rows: int | None, columns: str, advance: Advance) -> Iterator[Rows]:
    header, sep = _csv_header(spec.path, spec.sep)
    wanted = [spec.user, spec.item] + ([spec.timestamp] if spec.timestamp else [])
    check_columns(wanted, header, spec.path)
    if columns == "users":
        wanted = [spec.user]
    types = {name: pa.string() for name in (spec.user, spec.item)}
    convert = pv.ConvertOptions(include_columns=wanted, column_types=types, strings_can_be_null=False)
    parse = pv.ParseOptions(delimiter=sep)
    how = {"auto": "classify", "int": "int", "str": "str"}[spec.ids]
    names = (spec.user, spec.item, spec.timestamp if columns == "all" else None)
    yield from arrow_csv_rows(spec, chunk_rows, columns, advance, parse, convert, pv.ReadOptions(), names, how)


def arrow_csv_rows(
    spec: Spec,
    chunk_rows: int | None,
    columns: str,
    advance: Advance,
    parse: pv.ParseOptions,
    convert: pv.ConvertOptions,
    read: pv.ReadOptions,
    names: tuple[str, str, str | None],
    how: str,
) -> Iterator[Rows]:
    """Rows of a delimited file with a header, read by pyarrow in blocks."""
    stream, raw = open_bytes(spec.path)
    kinds = IdKinds()
    next_row = 1
    consumed = 0
    try:
        if chunk_rows is None:
            tables: Iterator[Any] = iter([_arrow_call(spec, parse, lambda: pv.read_csv(stream, read, parse, convert))])
        else:
            block = chunk_bytes_for(spec.path, "csv", chunk_rows)
            read = pv.ReadOptions(
                skip_rows=read.skip_rows, column_names=read.column_names, block_size=block
            )
            reader = _arrow_call(spec, parse, lambda: pv.open_csv(stream, read, parse, convert))
            tables = _arrow_batches(spec, parse, reader)
        for table in tables:
            rows = table_rows(table, str(spec.path), names, how, next_row, kinds, columns)
            next_row += table.num_rows
            advance(raw.tell() - consumed)
            consumed = raw.tell()
            yield rows
    finally:
        stream.close()
        raw.close()
    if next_row == 1:
        raise PerflawError(f"{spec.path} has a header but no rows")


def _arrow_call(spec: Spec, parse: pv.ParseOptions, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        _raise_csv_error(spec, parse, error)


def _arrow_batches(spec: Spec, parse: pv.ParseOptions, reader: Any) -> Iterator[pa.RecordBatch]:
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            _raise_csv_error(spec, parse, error)
        yield batch


def _raise_csv_error(spec: Spec, parse: pv.ParseOptions, error: Exception) -> None:
    if "CSV parse error" in str(error):
        _find_ragged_line(spec.path, parse)  # names the line when it can
    raise PerflawError(f"{spec.path}: {_arrow_message(error)}") from error


def _find_ragged_line(path: Path, parse: pv.ParseOptions) -> None:
    """Raise for the first line whose number of fields differs from the header's."""
    stream, raw = open_bytes(path)
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
                content = short(parse.delimiter.join(fields))
                raise PerflawError(
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
