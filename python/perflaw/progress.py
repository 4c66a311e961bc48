"""Progress on a terminal, plain lines in a log.

A bar is drawn only when stderr is a terminal and ``TQDM_DISABLE`` is not
set: SLURM or nohup logs never fill with carriage-return bars. Where there is
no bar, long work says what a bar would show as at most one plain line per
epoch or per run (:func:`log_line`).
"""

from __future__ import annotations

import os
import sys
from typing import Any

_TRUE = {"1", "true", "yes", "on"}


def bars_allowed() -> bool:
    """Whether a bar may be drawn: stderr is a terminal and TQDM_DISABLE is not set.

    Examples
    --------
    >>> import os
    >>> os.environ["TQDM_DISABLE"] = "1"; bars_allowed()
    False
    >>> del os.environ["TQDM_DISABLE"]
    """
    if os.environ.get("TQDM_DISABLE", "").strip().lower() in _TRUE:
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def progress_bar(progress: bool, **options: Any) -> Any:
    """A tqdm bar on stderr when ``progress`` is asked for and :func:`bars_allowed`; else a disabled one.

    A disabled bar accepts every call and draws nothing (it does not count
    either: ``bar.disable`` tells a caller to log plain lines instead).

    Examples
    --------
    >>> bar = progress_bar(False, total=3)
    >>> bar.update(2); bar.disable
    True
    """
    # plain tqdm, not tqdm.auto: a bar is only ever drawn on a terminal's stderr, never
    # as a notebook widget, and tqdm.auto imports asyncio (about 20 ms a first call)
    from tqdm import tqdm

    return tqdm(file=sys.stderr, disable=not (progress and bars_allowed()), dynamic_ncols=True, **options)


def log_line(text: str) -> None:
    """One plain line on stderr (what a bar would have shown), flushed at once."""
    print(text, file=sys.stderr, flush=True)
