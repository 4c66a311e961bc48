"""Flags generated from the config dataclasses: every setting has one, and a default is written once."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from perflaw.commands.flags import add_config_flags, values_from_args
from perflaw.law.options import FORM_NAMES, FitOptions
from perflaw.training.config import TrainConfig


def parser_for(config_class, names=None):
    parser = argparse.ArgumentParser(prog="x")
    return parser, add_config_flags(parser, config_class, names)


def test_every_train_config_field_has_a_documented_flag():
    _, names = parser_for(TrainConfig)
    assert names == [f.name for f in dataclasses.fields(TrainConfig)]


def test_no_flags_give_the_dataclass_defaults():
    parser, names = parser_for(TrainConfig)
    args = parser.parse_args([])
    assert TrainConfig(**values_from_args(args, TrainConfig, names)) == TrainConfig()


def test_help_shows_each_default_and_the_allowed_values():
    parser, _ = parser_for(TrainConfig)
    by_dest = {action.dest: action for action in parser._actions}
    for f in dataclasses.fields(TrainConfig):
        text = by_dest[f.name].help
        if f.default is not None and not isinstance(f.default, bool):
            assert f"(default: {f.default})" in text, f.name
        for choice in f.metadata.get("choices", ()):
            assert choice in text, (f.name, choice)


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["--max-len", "20", "--lr", "0.01"], {"max_len": 20, "lr": 0.01}),
        (["--patience", "0", "--grad-clip", "0"], {"patience": None, "grad_clip": None}),
        (["--compile"], {"compile": True}),
        (["--no-compile"], {"compile": False}),
        (["--heads", "4", "--model", "sasrec"], {"heads": 4, "model": "sasrec"}),
    ],
)
def test_flags_map_onto_fields(argv, expected):
    parser, names = parser_for(TrainConfig)
    assert values_from_args(parser.parse_args(argv), TrainConfig, names) == expected


def test_a_value_outside_the_choices_is_refused_by_the_parser(capsys):
    parser, _ = parser_for(TrainConfig)
    with pytest.raises(SystemExit):
        parser.parse_args(["--protocol", "leave-two-out"])
    assert "invalid choice: 'leave-two-out'" in capsys.readouterr().err


def test_fit_option_flags_and_no_holdout():
    parser, names = parser_for(FitOptions, ["n_boot", "holdout", "loss"])
    values = values_from_args(parser.parse_args(["--no-holdout", "--n-boot", "5"]), FitOptions, names)
    assert values == {"holdout": False, "n_boot": 5}
    assert FitOptions(**values) == FitOptions(holdout=False, n_boot=5)


def test_unknown_field_names_are_an_error():
    with pytest.raises(ValueError, match="no documented field"):
        parser_for(FitOptions, ["n_boots"])


def test_form_names_without_scipy_match_the_registry():
    from perflaw.law.forms import FORMS

    assert FORM_NAMES == tuple(FORMS)


def test_the_law_names_import_without_scipy_or_pandas():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from perflaw.law.options import FitOptions, FORM_NAMES, LOSSES\n"
        "import perflaw.commands.law\n"
        "heavy = sorted(m for m in ('scipy', 'pandas', 'torch') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
