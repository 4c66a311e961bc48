"""Compressed text files, recognised by their content and decompressed by pyarrow.

The first bytes of a file name its codec (a file needs no suffix to be read);
pyarrow decompresses gzip, bz2, zstd and lz4 (frame) natively. pyarrow has no
xz/lzma codec, so those two go through the standard library.
"""

from __future__ import annotations

import lzma
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
from perflaw.errors import PerflawError

__all__ = ["compression_of", "logical_name", "open_bytes", "read_bytes"]

# (codec, leading bytes, the suffixes such files usually carry)
_CODECS = (
    ("gzip", b"\x1f\x8b", (".gz", ".gzip")),
    ("bz2", b"BZh", (".bz2",)),
    ("xz", b"\xfd7zXZ\x00", (".xz",)),
    ("zstd", b"\x28\xb5\x2f\xfd", (".zst", ".zstd")),
    ("lz4", b"\x04\x22\x4d\x18", (".lz4",)),
    # the legacy .lzma ("alone") header: properties 0x5d, then a dictionary size
    ("lzma", b"\x5d\x00\x00", (".lzma",)),
)
_STDLIB_CODECS = {"xz", "lzma"}
_DECOMPRESSION_ERRORS = (OSError, EOFError, lzma.LZMAError, pa.ArrowException)


def compression_of(path: Path) -> str | None:
    """The codec a file is compressed with, from its first bytes; None for plain files."""
    with open(path, "rb") as handle:
        head = handle.read(6)
    return next((codec for codec, magic, _ in _CODECS if head.startswith(magic)), None)


def logical_name(path: Path) -> str:
    """The file name without its compression suffix (``u.data.gz`` -> ``u.data``)."""
    codec = compression_of(path)
    suffix = path.suffix.lower()
    for name, _, suffixes in _CODECS:
        if name == codec and suffix in suffixes:
            return path.name[: -len(suffix)]
    return path.name


def open_bytes(path: Path) -> tuple[Any, Any]:
    """(decompressed stream, raw file): the raw file's ``tell()`` measures progress."""
    codec = compression_of(path)
    if codec in _STDLIB_CODECS:
        raw: BinaryIO = open(path, "rb")
        return lzma.open(raw, "rb"), raw
    native = pa.OSFile(str(path), "rb")
    if codec is None:
        return native, native
    return pa.CompressedInputStream(native, codec), native


def read_bytes(stream: Any, path: Path, size: int = -1) -> bytes:
    """Up to ``size`` bytes (all with -1); a broken compressed stream is a ValueError."""
    try:
        return stream.read() if size < 0 else stream.read(size)
    except _DECOMPRESSION_ERRORS as error:
        raise PerflawError(f"{path} could not be decompressed: {error}") from error
