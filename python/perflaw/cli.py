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
import sys

# Modules that contribute sub-commands, in the order shown by --help.
COMMAND_MODULES = [
    "perflaw.commands.quality",
    "perflaw.commands.law",
    "perflaw.commands.train",
    "perflaw.commands.sweep",
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


def main(argv: list[str] | None = None) -> int:
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
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"perflaw {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `perflaw quality x --json | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"perflaw {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
