"""Checked arguments shared by the public entry points of :mod:`perflaw.ingest`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from perflaw.errors import PerflawError, PerflawTypeError, MissingFileError

__all__ = ["FORMATS", "ID_MODES", "existing_file", "check_choice", "positive", "reject_unknown"]

FORMATS = ("auto", "sasrec", "pairs", "inter", "movielens", "csv", "parquet")
ID_MODES = ("auto", "int", "str")


def existing_file(path: Any) -> Path:
    """``path`` as a Path to an existing file, or the error a user expects."""
    if not isinstance(path, (str, os.PathLike)):
        raise PerflawTypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise MissingFileError(2, "No such file", str(path))
    if path.is_dir():
        raise PerflawError(f"{path} is a directory; expected one interaction file")
    if not path.is_file():
        # A FIFO or a device (/dev/zero) would block or never end; files are read twice
        # (a sample to detect the format, then the data), which a stream cannot give.
        raise PerflawError(f"{path} is not a regular file (a pipe, a device or a socket); "
                           "write the data to a file first")
    return path


def check_choice(value: Any, choices: tuple[str, ...], name: str) -> str:
    if value not in choices:
        raise PerflawError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise PerflawTypeError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise PerflawError(f"{name} must be >= 1, got {value}")
    return int(value)


def reject_unknown(options: dict[str, Any]) -> None:
    if options:
        raise PerflawTypeError(f"unknown option(s) {sorted(options)}; known: ids")
