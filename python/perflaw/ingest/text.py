"""Text files read in blocks of whole lines, sampled and measured cheaply.

Parsing is vectorised (NumPy over the bytes of a block), never one Python
call per token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, TypeVar

import numpy as np

from perflaw.ingest.compression import open_bytes, read_bytes
from perflaw.ingest.spec import Advance
from perflaw.errors import PerflawError

__all__ = [
    "WHITESPACE", "WHITESPACE_TO_NEWLINE", "line_chunks", "parsed_line_chunks", "sample_with_position",
    "sample_text", "fields_per_line", "rows_in_text", "chunk_bytes_for", "line_text", "short",
]  # fmt: skip

_SAMPLE_BYTES = 1 << 20  # how much of a text file format detection and row estimates look at
_MIN_CHUNK_BYTES = 1 << 12
_MAX_CHUNK_BYTES = 1 << 30

# ASCII whitespace exactly as bytes.split() understands it.
WHITESPACE = b" \t\n\r\x0b\x0c"
_IS_WHITESPACE = np.zeros(256, dtype=bool)
_IS_WHITESPACE[list(WHITESPACE)] = True
WHITESPACE_TO_NEWLINE = bytes.maketrans(WHITESPACE, b"\n" * len(WHITESPACE))

Parsed = TypeVar("Parsed")


def newlines(block: bytes) -> bytes:
    """``block`` with every line end as LF: old Mac line ends (a bare CR), and CRLF then too.

    Without this, a file whose lines end in a bare CR would read as one line
    (CR is whitespace inside a line). Blocks without a bare CR are returned
    as they are, so the common case costs two counts.

    Examples
    --------
    >>> newlines(b"1 2 3\\r4 5\\r\\n6\\r")
    b'1 2 3\\n4 5\\n6\\n'
    """
    if block.count(b"\r") == block.count(b"\r\n"):
        return block
    return block.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def line_chunks(path: Path, chunk_bytes: int | None) -> Iterator[tuple[bytes, int, int]]:
    """(block of whole lines, number of its first line, raw bytes consumed so far)."""
    stream, raw = open_bytes(path)
    try:
        first_line = 1
        if chunk_bytes is None:
            data = newlines(read_bytes(stream, path))
            yield data, 1, raw.tell()
            return
        rest = b""
        while True:
            block = newlines(read_bytes(stream, path, chunk_bytes))
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


def parsed_line_chunks(
    path: Path, fmt: str, chunk_rows: int | None, advance: Advance, parse: Callable[[bytes, int], Parsed]
) -> Iterator[Parsed]:
    """``parse(data, first_line)`` on each chunk of whole lines, reporting bytes read
    to ``advance``; a file that yields no rows at all is an error."""
    consumed = 0
    any_rows = False
    for data, first_line, raw_pos in line_chunks(path, chunk_bytes_for(path, fmt, chunk_rows)):
        rows = parse(data, first_line)
        advance(raw_pos - consumed)
        consumed = raw_pos
        any_rows = any_rows or len(rows) > 0  # type: ignore[arg-type]
        yield rows
    if not any_rows:
        raise PerflawError(f"{path} holds no interactions")


def sample_with_position(path: Path) -> tuple[bytes, int, bool]:
    """The first whole lines of about 1 MiB (at least one line, however long it is),
    the raw bytes read, and whether that was the whole file."""
    stream, raw = open_bytes(path)
    try:
        data = newlines(read_bytes(stream, path, _SAMPLE_BYTES))
        while b"\n" not in data:  # a first line longer than the sample: read on to its end
            more = newlines(read_bytes(stream, path, _SAMPLE_BYTES))
            if not more:
                break
            data += more
        extra = read_bytes(stream, path, 1)
        complete = not extra
        position = raw.tell()
    finally:
        stream.close()
        raw.close()
    if not complete:  # the sample ends at its last whole line (there is one: see the loop)
        data = data[: data.rfind(b"\n") + 1]
    return data, position, complete


def sample_text(path: Path) -> bytes:
    return sample_with_position(path)[0]


def fields_per_line(data: bytes) -> tuple[np.ndarray, np.ndarray]:
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


def rows_in_text(data: bytes, fmt: str) -> int:
    """Interactions in a block of whole lines of a text format."""
    fields, _ = fields_per_line(data)
    if fmt == "sasrec":
        return int(fields.sum()) - len(fields)
    header = fmt in ("csv", "inter") or (fmt == "movielens" and not data.lstrip()[:1].isdigit())
    return max(0, len(fields) - int(header and len(fields) > 0))


def chunk_bytes_for(path: Path, fmt: str, chunk_rows: int | None) -> int | None:
    """Bytes per chunk so that a chunk holds about ``chunk_rows`` rows."""
    if chunk_rows is None:
        return None
    sample = sample_text(path)
    bytes_per_row = max(1.0, len(sample) / max(1, rows_in_text(sample, fmt)))
    return int(min(_MAX_CHUNK_BYTES, max(_MIN_CHUNK_BYTES, chunk_rows * bytes_per_row)))


def line_text(data: bytes, line_index: int) -> str:
    """Line ``line_index`` (0-based) of ``data``, shortened for messages."""
    line = data.split(b"\n")[line_index].rstrip(b"\r")
    return short(line.decode("utf-8", errors="replace"))


def short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
