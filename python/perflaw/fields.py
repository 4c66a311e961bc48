"""Dataclass fields that carry their command-line help, so a default is written once.

The config dataclasses (``TrainConfig``, ``FitOptions``) declare each field
with :func:`setting`; ``perflaw.commands.flags`` turns the fields into flags
with that help, the allowed values and the default.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any


def setting(default: Any, help: str, **cli: Any) -> Any:
    """A dataclass field with a default and its command-line metadata.

    ``cli`` may hold ``choices`` (the allowed values), ``unset`` (what None means)
    and ``zero_disables`` (0 on the command line stands for None).

    Examples
    --------
    >>> from dataclasses import dataclass, fields
    >>> @dataclass
    ... class Config:
    ...     layers: int = setting(2, "number of blocks")
    >>> fields(Config)[0].metadata["help"]
    'number of blocks'
    """
    return field(default=default, metadata={"help": help, **cli})
