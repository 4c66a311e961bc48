"""The ``perflaw`` command line: the only place that reads argv.

Each sub-command lives in the module that owns the feature; that module
exposes ``register(subparsers)``, which adds its parser and sets
``func`` to a handler taking the parsed namespace and returning an exit code.
Handlers import their heavy dependencies (torch, scipy) themselves, so
``perflaw --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sqlite3
import sys
import traceback

# Modules that contribute sub-commands, in the order shown by --help.
COMMAND_MODULES = [
    "perflaw.commands.quality",
    "perflaw.commands.law",
    "perflaw.commands.train",
    "perflaw.commands.sweep",
    "perflaw.commands.export",
]


def build_parser() -> argparse.ArgumentParser:
    from perflaw import __version__

    parser = argparse.ArgumentParser(
        prog="perflaw",
        description="Performance Law and data quality for sequential recommenders.",
    )
    parser.add_argument("--version", action="version", version=f"perflaw {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


# Optional dependencies and the extra that installs each.
EXTRAS = {"torch": "train", "ray": "ray", "mlflow": "mlflow", "tensorboard": "tensorboard"}


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command; every expected failure is one line on stderr and exit 2.

    Exit codes: 0 done, 2 a problem the user can fix (bad arguments, input,
    settings, files, a missing optional dependency), 130 interrupted, 1 an
    unexpected internal error (one line; ``PERFLAW_TRACEBACK=1`` shows it whole).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error, already printed by argparse
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # e.g. `perflaw quality x --json | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"perflaw {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns failures into exit codes
        message, code = describe_failure(exc)
        print(f"perflaw {args.command}: {message}", file=sys.stderr)
        if code == 1 and os.environ.get("PERFLAW_TRACEBACK"):
            traceback.print_exc()
        return code


def describe_failure(exc: BaseException) -> tuple[str, int]:
    """The one line to show for a failure, and the exit code.

    Examples
    --------
    >>> describe_failure(PermissionError(13, "Permission denied", "/data/x.txt"))
    ('error: permission denied: /data/x.txt', 2)
    """
    if isinstance(exc, ModuleNotFoundError) and exc.name and exc.name.split(".")[0] in EXTRAS:
        package = exc.name.split(".")[0]
        return f'error: this needs {package}: pip install "perflaw[{EXTRAS[package]}]"', 2
    if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
        what = exc.strerror.lower() if exc.strerror else str(exc)
        where = f": {exc.filename}" if exc.filename else ""
        return f"error: {what}{where}", 2
    if isinstance(exc, (ValueError, TypeError, OverflowError, ImportError, sqlite3.DatabaseError)):
        return f"error: {exc}", 2
    return f"internal error ({type(exc).__name__}: {exc}); please report it (PERFLAW_TRACEBACK=1 shows where)", 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
