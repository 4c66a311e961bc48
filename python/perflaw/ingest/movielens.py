"""MovieLens ratings: ``ratings.dat`` (``::``), ``u.data`` (tab), ``ratings.csv`` (header ``userId,...``).

Four fields per line, ``user item rating timestamp``; each user's items are
ordered by the timestamp.
"""

from __future__ import annotations

import io
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from perflaw.arrays import numpy_view, string_array
from perflaw.ids import token_problem
from perflaw.ingest.rows import Rows
from perflaw.ingest.spec import Advance, Spec
from perflaw.ingest.text import parsed_line_chunks, sample_text, short
from perflaw.errors import PerflawError

__all__ = ["movielens_rows"]


def movielens_rows(spec: Spec, chunk_rows: int | None, columns: str, advance: Advance) -> Iterator[Rows]:
    sample = sample_text(spec.path)
    first = next((line for line in sample.split(b"\n") if line.strip()), b"")
    sep = spec.sep or _sniff_movielens_sep(first)
    has_header = is_header(first, sep)

    def parse(data: bytes, first_line: int) -> Rows:
        if first_line == 1 and has_header:
            data = data[data.find(b"\n") + 1 :] if b"\n" in data else b""
            first_line = 2
        return _parse_movielens_block(data, first_line, sep, spec)

    yield from parsed_line_chunks(spec.path, "movielens", chunk_rows, advance, parse)


def is_header(line: bytes, sep: str) -> bool:
    """Whether ``line`` is ratings.csv's header rather than a rating.

    Told by the rating and the timestamp, which are numbers on every data
    line whatever the ids are (so a first user named "alice" is not taken for
    a header).

    Examples
    --------
    >>> is_header(b"userId,movieId,rating,timestamp", ","), is_header(b"alice::m1::5::978300760", "::")
    (True, False)
    """
    fields = line.decode("utf-8", errors="replace").strip().split(sep if sep != " " else None)
    if len(fields) < 4:
        return bool(line.strip()) and not line.lstrip()[:1].isdigit()
    try:
        float(fields[2]), float(fields[3])
    except ValueError:
        return True
    return False


def _sniff_movielens_sep(first_line: bytes) -> str:
    for candidate in ("::", "\t", ","):
        if candidate.encode() in first_line:
            return candidate
    return " "


def _parse_movielens_block(data: bytes, first_line: int, sep: str, spec: Spec) -> Rows:
    if not data.strip():
        return Rows(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
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
    times = numpy_view(table.column("timestamp"))
    if spec.ids == "str":
        return Rows(string_array(users), string_array(items), times)
    return Rows(numpy_view(users), numpy_view(items), times)


def _diagnose_movielens(data: bytes, first_line: int, sep: str, spec: Spec) -> None:
    separator = sep.encode()
    for offset, line in enumerate(data.split(b"\n")):
        line = line.rstrip(b"\r")
        if not line.strip():
            continue
        number = first_line + offset
        text = short(line.decode("utf-8", errors="replace"))
        fields = line.split(separator)
        if len(fields) != 4:
            raise PerflawError(
                f"{spec.path}, line {number}: expected 4 fields "
                f"(user{sep}item{sep}rating{sep}timestamp), got {len(fields)}: {text!r}"
            )
        checked = [("timestamp", fields[3])]
        if spec.ids != "str":
            checked = [("user", fields[0]), ("item", fields[1])] + checked
        for role, token in checked:
            problem = token_problem(token.strip())
            if problem:
                raise PerflawError(f"{spec.path}, line {number}: {role}: {problem} in {text!r}")
    raise PerflawError(f"{spec.path}: could not parse the MovieLens lines from {first_line} on")
