"""sasrec and pairs: ``user item item ...`` text, whitespace-separated tokens.

* sasrec (SASRec/ICLRec): one line per user, items in line order;
* pairs (SASRec's other format): one ``user item`` interaction per line.

Tokens are parsed by pyarrow's multi-threaded integer parser; the slow
line-by-line scan runs only after that failed, to name the offending line.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as pv

from perflaw.arrays import numpy_view
from perflaw.ids import token_problem
from perflaw.ingest.contiguity import SeenUsers
from perflaw.ingest.rows import Rows
from perflaw.ingest.spec import Advance, Spec
from perflaw.ingest.text import (
    WHITESPACE, WHITESPACE_TO_NEWLINE, fields_per_line, line_text, parsed_line_chunks, short,
)  # fmt: skip
from perflaw.errors import PerflawError

__all__ = ["token_text_rows", "sniff_text_layout"]


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


def token_text_rows(spec: Spec, chunk_rows: int | None, columns: str, advance: Advance) -> Iterator[Rows]:
    """Rows of a sasrec or pairs file (``spec.layout`` "either": the first chunk decides)."""
    layout = spec.layout
    seen = SeenUsers()

    def parse(data: bytes, first_line: int) -> Rows:
        nonlocal layout
        lines = _parse_token_lines(data, first_line, spec)
        if layout == "either":
            layout = _layout_of(lines)
        if layout == "pairs":
            return _pairs_rows(lines, data, first_line, spec)
        return _sasrec_rows(lines, data, first_line, spec, seen)

    yield from parsed_line_chunks(spec.path, spec.format, chunk_rows, advance, parse)


def sniff_text_layout(sample: bytes) -> str:
    """pairs when every line of ``sample`` holds two fields and some user repeats, else sasrec."""
    counts, _ = fields_per_line(sample)
    if len(counts) and (counts == 2).all():
        users = sample.split()[0::2]
        if len(set(users)) < len(users):
            return "pairs"
    return "sasrec"


def _layout_of(lines: _TokenLines) -> str:
    """pairs when every line holds exactly two fields and some user repeats."""
    if len(lines.counts) and (lines.counts == 2).all():
        users = lines.values[0::2]
        if len(np.unique(users)) < len(users):
            return "pairs"
    return "sasrec"


def _parse_token_lines(data: bytes, first_line: int, spec: Spec) -> _TokenLines:
    if spec.sep is not None and spec.sep.encode() not in WHITESPACE:
        data = data.replace(spec.sep.encode(), b" ")
    counts, line_index = fields_per_line(data)
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
    if b"x" in data or b"X" in data:
        return None  # pyarrow's parser reads "0x10" as 16: such a token is text, never the number
    # One token per line, then pyarrow's multi-threaded integer parser.
    one_per_line = data.translate(WHITESPACE_TO_NEWLINE)
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
    return numpy_view(column)


def _text_tokens_as_str(data: bytes, path: Path) -> np.ndarray:
    if b"\x00" in data:
        line = data.count(b"\n", 0, data.index(b"\x00")) + 1
        raise PerflawError(f"{path}: a NUL character in block line {line}; ids cannot contain NUL")
    tokens = pa.array(data.split(), type=pa.binary())
    try:
        text = tokens.cast(pa.string())
    except pa.ArrowInvalid as error:
        raise PerflawError(f"{path} is not valid UTF-8 text: {error}") from error
    return np.asarray(text.to_numpy(zero_copy_only=False), dtype=str)


def _sasrec_rows(lines: _TokenLines, data: bytes, first_line: int, spec: Spec, seen: SeenUsers) -> Rows:
    if len(lines.counts) and lines.counts.min() < 2:
        _diagnose_token_lines(data, first_line, spec)
    heads = lines.first_token
    line_users = lines.values[heads]
    repeat = seen.add(line_users)
    if repeat >= 0:
        _raise_repeated_sasrec_user(lines, line_users, repeat, spec)
    is_item = np.ones(len(lines.values), dtype=bool)
    is_item[heads] = False
    return Rows(np.repeat(line_users, lines.counts - 1), lines.values[is_item])


def _raise_repeated_sasrec_user(lines: _TokenLines, line_users: np.ndarray, repeat: int, spec: Spec) -> None:
    user = line_users[repeat]
    earlier = np.flatnonzero(line_users[:repeat] == user)
    where = f"lines {lines.line_numbers[earlier[0]]} and {lines.line_numbers[repeat]}" if len(earlier) else (
        f"line {lines.line_numbers[repeat]} and on an earlier line"
    )
    hint = ""
    if (lines.counts == 2).all():
        hint = "; each line looks like one `user item` interaction: use format='pairs'"
    raise PerflawError(
        f"{spec.path}: user {user} appears on {where}; a sasrec file has one line per user{hint}"
    )


def _pairs_rows(lines: _TokenLines, data: bytes, first_line: int, spec: Spec) -> Rows:
    if len(lines.counts) and not (lines.counts == 2).all():
        bad = int(np.argmax(lines.counts != 2))
        number = lines.line_numbers[bad]
        raise PerflawError(
            f"{spec.path}, line {number}: expected 2 fields (user item), got {lines.counts[bad]}: "
            f"{line_text(data, number - first_line)!r}"
            + ("; if lines hold whole sequences, use format='sasrec'" if lines.counts[bad] > 2 else "")
        )
    return Rows(lines.values[0::2], lines.values[1::2])


def _diagnose_token_lines(data: bytes, first_line: int, spec: Spec) -> None:
    """Find the first bad line of a block that failed the fast parse, and raise."""
    separator = spec.sep.encode() if spec.sep is not None and spec.sep.encode() not in WHITESPACE else None
    for offset, line in enumerate(data.split(b"\n")):
        fields = (line.replace(separator, b" ") if separator else line).split()
        if not fields:
            continue
        number = first_line + offset
        text = short(line.rstrip(b"\r").decode("utf-8", errors="replace"))
        if len(fields) == 1 and spec.layout in ("sasrec", "either"):
            raise PerflawError(f"{spec.path}, line {number}: a user id with no items: {text!r}")
        if len(fields) != 2 and spec.layout == "pairs":
            raise PerflawError(f"{spec.path}, line {number}: expected 2 fields (user item), got {len(fields)}: {text!r}")
        for token in fields:
            problem = token_problem(token)
            if problem:
                raise PerflawError(f"{spec.path}, line {number}: {problem} in {text!r}")
    raise PerflawError(f"{spec.path}: could not parse the lines from {first_line} on as integer ids")
