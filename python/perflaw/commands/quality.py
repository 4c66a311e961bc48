"""``perflaw quality PATH``: the data-quality summary of an interaction log."""

from __future__ import annotations

import argparse
import json
import sys

from perflaw.errors import PerflawError
from perflaw.ingest import FORMATS

# Inputs with at least this many interactions show a progress bar.
PROGRESS_ROWS = 5_000_000


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quality",
        help="approximate entropy, D′ and coding-length statistics of a dataset",
        description="Exact-match (r = 0) ApEn of every user's sequence, the data measure "
        "D′ = Σ|S|·ApEn′ (and the authors' pooled variant), the corpus block entropy "
        "and a Lempel-Ziv entropy-rate estimate. The file is streamed in batches of whole users.",
    )
    parser.add_argument("path", help="interaction file (sasrec text, pairs, .inter, MovieLens, CSV or Parquet)")
    parser.add_argument("--format", default="auto", choices=FORMATS, metavar="FORMAT",
                        help="input format; one of " + ", ".join(FORMATS) + " (default: auto, detected)")
    parser.add_argument("--m", type=int, default=2, help="ApEn embedding dimension, 1 to 65536 (default 2)")
    parser.add_argument("--max-len", type=int, default=None, help="use each user's last MAX_LEN items")
    parser.add_argument("--threads", type=int, default=None, help="kernel threads (default: PERFLAW_NUM_THREADS or all cores)")
    parser.add_argument("--user", default="user", help="user column (CSV/Parquet)")
    parser.add_argument("--item", default="item", help="item column (CSV/Parquet)")
    parser.add_argument("--timestamp", default=None, help="timestamp column (CSV/Parquet)")
    parser.add_argument("--no-block-entropy", action="store_true", help="skip the corpus window counts (saves memory)")
    parser.add_argument("--json", action="store_true", help="print DataQuality.to_dict() as JSON on stdout")
    parser.add_argument(
        "--ray", nargs="?", const="", default=None, metavar="ADDRESS",
        help="compute on a Ray cluster: ADDRESS is its head's HOST:PORT (default: RAY_ADDRESS or a cluster "
        "started on this machine); PATH is then Parquet: a file, a folder or a quoted glob, seen by every node",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from perflaw.ingest import count_rows_hint
    from perflaw.quality import data_quality

    if args.ray is not None:
        return _show(_quality_on_ray(args), args.json)
    read_options = {"user": args.user, "item": args.item, "timestamp": args.timestamp}
    if args.format not in ("csv", "parquet", "auto"):
        read_options = {}
    progress = count_rows_hint(args.path, args.format) >= PROGRESS_ROWS
    quality = data_quality(
        args.path,
        m=args.m,
        max_len=args.max_len,
        threads=args.threads,
        block_entropy=not args.no_block_entropy,
        format=args.format,
        progress=progress,
        **read_options,
    )
    return _show(quality, args.json)


def _show(quality, as_json: bool) -> int:
    if as_json:
        json.dump(quality.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_table(quality.to_dict()))
    return 0


def _quality_on_ray(args: argparse.Namespace):
    from perflaw.cluster import data_quality

    if args.format not in ("auto", "parquet"):
        raise PerflawError(f"--ray reads Parquet files; got --format {args.format}")
    return data_quality(
        args.path,
        m=args.m,
        max_len=args.max_len,
        address=args.ray or None,
        user=args.user,
        item=args.item,
        timestamp=args.timestamp,
        block_entropy=not args.no_block_entropy,
        threads=args.threads or 1,
        progress=sys.stderr.isatty(),
    )


# (label, key, format) rows of the readable summary
_ROWS = [
    ("users", "users", "{:,}"),
    ("tokens (after max_len)", "tokens", "{:,}"),
    ("m / max_len", None, None),
    ("ApEn mean / median (signed)", ("apen_mean", "apen_median"), "{:.6g}"),
    ("|ApEn| mean / median", ("apen_abs_mean", "apen_abs_median"), "{:.6g}"),
    ("ApEn′ = 1/|ApEn| mean / median", ("apen_prime", "apen_prime_median"), "{:.6g}"),
    ("D′ = Σ|S|·ApEn′ (paper)", "d_prime", "{:,.1f}"),
    ("D′ pooled = tokens / mean|ApEn| (authors' code)", "d_prime_pooled", "{:,.1f}"),
    ("excluded users (≤ m items / ApEn = 0)", ("excluded_short", "excluded_zero"), "{}"),
    ("block entropy H(X_m+1 | X_1..m), nats", "block_entropy", "{:.6g}"),
    ("LZ entropy rate (pooled / median), nats", ("lz_entropy_rate", "lz_entropy_rate_median"), "{:.6g}"),
    ("fingerprint", "fingerprint", "{}"),
]


def _cell(value, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def format_table(summary: dict) -> str:
    """The summary as aligned `label  value` lines."""
    lines = []
    for label, key, fmt in _ROWS:
        if key is None:
            value = f"{summary['m']} / {summary['max_len'] if summary['max_len'] else 'all'}"
        elif isinstance(key, tuple):
            value = " / ".join(_cell(summary[k], fmt) for k in key)
        else:
            value = _cell(summary[key], fmt)
        lines.append((label, value))
    width = max(len(label) for label, _ in lines)
    return "".join(f"{label:<{width}}  {value}\n" for label, value in lines)
