"""The checked arguments of one read, as every format reader receives them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = ["Spec", "Advance", "no_progress"]

# Called with progress units: bytes read (text), or rows (Parquet).
Advance = Callable[[int], None]


@dataclass(frozen=True)
class Spec:
    """Checked arguments of one read."""

    path: Path
    format: str  # a concrete format, never "auto"
    user: str
    item: str
    timestamp: str | None
    sep: str | None
    ids: str
    # sasrec/pairs only: "either" lets the whole file decide (in-memory auto).
    layout: str = ""


def no_progress(_: int) -> None:
    return None
