"""``perflaw export DIR --to csv|parquet|jsonl``: a sweep's runs as one file, for other tools.

One row per run, the columns of the results store's frame (what the fitter
reads: settings, data measures, sizes, timing, test metrics). CSV and Parquet
hold flat values, so the nested columns (``config``, ``valid_metrics``,
``history``) are written as JSON text; JSON Lines keeps them nested, and
writes NaN as null. The file is written atomically: a reader sees the old
file or the whole new one.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perflaw.atomic import json_ready
from perflaw.errors import MissingFileError, PerflawError

FORMATS = ("csv", "parquet", "jsonl")
SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def register(subparsers: Any) -> None:
    """Add the ``export`` sub-command."""
    parser = subparsers.add_parser(
        "export",
        help="write a sweep's runs as CSV, Parquet or JSON Lines",
        description="Write the runs of a sweep's results store as one file, one row per run, atomically, and "
        "print its path. Nested columns (config, valid_metrics, history) are JSON text in CSV and Parquet.",
    )
    parser.add_argument("results", metavar="DIR", help="a sweep folder, or its results.sqlite")
    parser.add_argument("--to", default=None, metavar="FORMAT",
                        help="csv, parquet or jsonl (default: from --out's suffix)")
    parser.add_argument("--out", default=None, metavar="FILE",
                        help="the file to write (default: runs.FORMAT next to the store, e.g. DIR/runs.csv)")
    parser.add_argument("--failed", action="store_true", help="include the failed runs (with their error)")
    parser.add_argument("--json", action="store_true", help="print the path, format and number of runs as JSON")
    parser.set_defaults(func=run)


@dataclass(frozen=True)
class Exported:
    """What :func:`export_runs` wrote."""

    path: Path
    format: str
    runs: int


def export_runs(source: str | Path, to: str | None = None, out: str | Path | None = None,
                include_failed: bool = False) -> Exported:
    """Writes the runs of the store in ``source`` to ``out`` as ``to`` (csv, parquet or jsonl), atomically.

    Parameters
    ----------
    source : path
        A sweep folder or its ``results.sqlite``.
    to : {"csv", "parquet", "jsonl"}, optional
        The format; default: from ``out``'s suffix.
    out : path, optional
        Default ``runs.<format>`` beside the store.
    include_failed : bool
        Also the failed runs (their columns of results are empty).

    Returns
    -------
    Exported
        The path written, the format and the number of runs.

    Examples
    --------
    >>> export_runs("perflaw-out/cpu-small", to="csv").path  # doctest: +SKIP
    PosixPath('perflaw-out/cpu-small/runs.csv')
    """
    from perflaw.atomic import atomic_path
    from perflaw.store import open_results

    fmt = resolve_format(to, out)
    store = open_results(source)
    try:
        frame = store.frame(include_failed=include_failed)
    finally:
        store.close()
    if frame.empty:
        hint = "" if include_failed else " (--failed includes the failed ones)"
        raise PerflawError(f"{store.path}: no {'' if include_failed else 'finished '}runs to export{hint}")
    path = Path(out) if out is not None else store.path.parent / f"runs.{fmt}"
    if not path.parent.is_dir():
        raise MissingFileError(f"the folder of {str(path)!r} does not exist")
    with atomic_path(path) as tmp:
        if fmt == "csv":
            flat_frame(frame).to_csv(tmp, index=False)
        elif fmt == "parquet":
            flat_frame(frame).to_parquet(tmp, index=False)
        else:
            tmp.write_text("".join(json.dumps(json_ready(row), allow_nan=False, default=str) + "\n"
                                   for row in frame.to_dict(orient="records")), encoding="utf-8")
    return Exported(path, fmt, len(frame))


def resolve_format(to: str | None, out: str | Path | None) -> str:
    """The format named by ``--to``, else by ``--out``'s suffix.

    Examples
    --------
    >>> resolve_format(None, "runs.parquet"), resolve_format("JSONL", None)
    ('parquet', 'jsonl')
    """
    if to is not None:
        if to.lower() not in FORMATS:
            raise PerflawError(f"unknown format {to!r}; choose one of {', '.join(FORMATS)}")
        return to.lower()
    suffix = Path(out).suffix.lower() if out is not None else ""
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    raise PerflawError(f"give the format: --to {'|'.join(FORMATS)} (or an --out file ending in .csv, .parquet or .jsonl)")


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def flat_frame(frame: Any) -> Any:
    """The frame with nested values (dicts, lists) as JSON text, for flat formats.

    Examples
    --------
    >>> import pandas as pd
    >>> flat_frame(pd.DataFrame({"a": [1], "config": [{"dim": 8}]}))["config"].tolist()
    ['{"dim": 8}']
    """
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if values.dtype == object and any(not (isinstance(v, str) or _is_null(v)) for v in values):
            out[column] = [v if isinstance(v, str) or _is_null(v) else json.dumps(json_ready(v), default=str)
                           for v in values]
    return out


def run(args: argparse.Namespace) -> int:
    """Handler: export, then print the path written (or, with --json, what was written)."""
    done = export_runs(args.results, to=args.to, out=args.out, include_failed=args.failed)
    if args.json:
        json.dump({"path": str(done.path), "format": done.format, "runs": done.runs}, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(done.path)
    return 0
