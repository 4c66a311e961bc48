"""Command-line flags generated from a config dataclass, so a default is written once.

Each field becomes ``--field-name`` with its type, its allowed values and a
help text taken from the field's metadata:

* ``help``: what the setting does (required for a field to get a flag);
* ``choices``: the allowed values, listed in the help and checked by argparse;
* ``unset``: what ``None`` means for a field whose default is ``None``
  (for example "automatic: head size near 32");
* ``zero_disables``: ``0`` on the command line stands for ``None`` (off).

Flags left out keep the dataclass default (the parser's default is ``None``,
and :func:`values_from_args` passes on only the flags that were given), so
the default lives in the dataclass alone; the help shows it from there.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Iterable
from perflaw.errors import PerflawError, PerflawTypeError


def flag_fields(config_class: type, names: Iterable[str] | None = None) -> list[dataclasses.Field]:
    """The fields of ``config_class`` that carry a ``help`` text (optionally only ``names``).

    Examples
    --------
    >>> from perflaw.law.options import FitOptions
    >>> [f.name for f in flag_fields(FitOptions, ["seed", "ci"])]
    ['ci', 'seed']
    """
    wanted = None if names is None else set(names)
    out = [f for f in dataclasses.fields(config_class) if "help" in f.metadata]
    if wanted is not None:
        unknown = wanted - {f.name for f in out}
        if unknown:
            raise PerflawError(f"{config_class.__name__} has no documented field(s) {sorted(unknown)}")
        out = [f for f in out if f.name in wanted]
    return out


def add_config_flags(
    parser: argparse.ArgumentParser, config_class: type, names: Iterable[str] | None = None
) -> list[str]:
    """Add one flag per documented field of ``config_class``; return the field names.

    Examples
    --------
    >>> import argparse
    >>> from perflaw.law.options import FitOptions
    >>> parser = argparse.ArgumentParser()
    >>> add_config_flags(parser, FitOptions, ["n_boot"])
    ['n_boot']
    >>> vars(parser.parse_args(["--n-boot", "50"]))
    {'n_boot': 50}
    """
    hints = typing.get_type_hints(config_class)
    added = []
    for f in flag_fields(config_class, names):
        flag = "--" + f.name.replace("_", "-")
        kind = _scalar_type(hints[f.name], f.name)
        if kind is bool:  # --name / --no-name
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=_help(f))
        else:
            parser.add_argument(
                flag, dest=f.name, type=kind, default=None, choices=f.metadata.get("choices"),
                metavar=_metavar(f, kind), help=_help(f),
            )
        added.append(f.name)
    return added


def values_from_args(args: argparse.Namespace, config_class: type, names: Iterable[str]) -> dict[str, Any]:
    """The keyword arguments the given flags describe (flags left out are left out).

    Examples
    --------
    >>> import argparse
    >>> from perflaw.law.options import FitOptions
    >>> values_from_args(argparse.Namespace(n_boot=None, seed=3), FitOptions, ["n_boot", "seed"])
    {'seed': 3}
    """
    by_name = {f.name: f for f in dataclasses.fields(config_class)}
    values = {}
    for name in names:
        value = getattr(args, name)
        if value is None:
            continue
        if value == 0 and by_name[name].metadata.get("zero_disables"):
            value = None
        values[name] = value
    return values


def _scalar_type(hint: Any, name: str) -> type:
    """``int``, ``float``, ``str`` or ``bool`` from a hint such as ``int | None``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(options) == 1:
            hint = options[0]
    if hint in (int, float, str, bool):
        return hint
    raise PerflawTypeError(f"field {name!r} of type {hint!r} cannot be a command-line flag")


def _metavar(f: dataclasses.Field, kind: type) -> str | None:
    if f.metadata.get("choices"):
        return f.name.upper()
    return {int: "INT", float: "X", str: "TEXT"}.get(kind)


def _help(f: dataclasses.Field) -> str:
    text = f.metadata["help"]
    if f.metadata.get("choices"):
        text += "; one of " + ", ".join(map(str, f.metadata["choices"]))
    if f.metadata.get("zero_disables"):
        text += "; 0 turns it off"
    default = f.default
    if default is None:
        default_text = f.metadata.get("unset", "none")
    elif isinstance(default, bool):
        default_text = "on" if default else "off"
    else:
        default_text = str(default)
    # argparse formats help with %-style placeholders, so a literal % is doubled.
    return f"{text} (default: {default_text})".replace("%", "%%")
