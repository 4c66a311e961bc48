"""RecBole atomic ``.inter`` files: tab-separated, with a typed header (``user_id:token ...``)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.csv as pv

from perflaw.ingest.delimited import arrow_csv_rows
from perflaw.ingest.rows import Rows, check_columns
from perflaw.ingest.spec import Advance, Spec
from perflaw.ingest.text import sample_text
from perflaw.errors import PerflawError, PerflawTypeError

__all__ = ["inter_rows", "looks_like_inter_header"]

_RECBOLE_TYPES = {"token", "token_seq", "float", "float_seq"}


def _inter_header(path: Path) -> list[tuple[str, str]]:
    sample = sample_text(path)
    if not sample.strip():
        raise PerflawError(f"{path} is empty: no header and no rows")
    first = sample.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace")
    fields = []
    for field in first.split("\t"):
        name, colon, kind = field.rpartition(":")
        if not colon or kind not in _RECBOLE_TYPES or not name:
            raise PerflawError(
                f"{path}, line 1: header field {field!r} is not 'name:type' with type in "
                f"{sorted(_RECBOLE_TYPES)} (RecBole atomic files start with a typed header)"
            )
        fields.append((name, kind))
    return fields


def looks_like_inter_header(line: bytes) -> bool:
    """Every tab-separated field of ``line`` is a RecBole ``name:type``."""
    fields = line.decode("utf-8", errors="replace").split("\t")
    return all(f.rpartition(":")[2] in _RECBOLE_TYPES and f.rpartition(":")[0] for f in fields)


def inter_rows(spec: Spec, chunk_rows: int | None, columns: str, advance: Advance) -> Iterator[Rows]:
    fields = _inter_header(spec.path)
    present = [name for name, _ in fields]
    user = spec.user if spec.user in present or spec.user != "user" else "user_id"
    item = spec.item if spec.item in present or spec.item != "item" else "item_id"
    timestamp = spec.timestamp
    if timestamp is None and "timestamp" in present:
        timestamp = "timestamp"
    wanted = [user, item] + ([timestamp] if timestamp else [])
    check_columns(wanted, present, spec.path)
    kinds = dict(fields)
    for role, name in (("user", user), ("item", item)):
        if kinds[name] != "token":
            raise PerflawTypeError(f"{spec.path}: {role} field {name!r} has RecBole type {kinds[name]}; expected token")
    types = {name: pa.string() for name in (user, item)}
    if timestamp:
        if kinds[timestamp] != "float":
            raise PerflawTypeError(f"{spec.path}: timestamp field {timestamp!r} has type {kinds[timestamp]}; expected float")
        types[timestamp] = pa.float64()
    include = [user] if columns == "users" else wanted
    convert = pv.ConvertOptions(include_columns=include, column_types=types, strings_can_be_null=False)
    parse = pv.ParseOptions(delimiter="\t", quote_char=False, escape_char=False)
    read = pv.ReadOptions(skip_rows=1, column_names=present)
    how = {"auto": "canonical", "int": "int", "str": "str"}[spec.ids]
    names = (user, item, timestamp if columns == "all" else None)
    yield from arrow_csv_rows(spec, chunk_rows, columns, advance, parse, convert, read, names, how)
