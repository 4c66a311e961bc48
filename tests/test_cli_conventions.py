"""CLI conventions: --json on every command with a result, help on every option, one name per thing,
--dry-run that matches what a run trains, --set checked like the spec."""

from __future__ import annotations

import argparse
import json

import pytest

from perflaw.cli import build_parser, main

pytest.importorskip("torch")


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


def test_every_option_has_help_and_lists_its_allowed_values():
    for name, parser in subcommands().items():
        for action in options(parser):
            assert action.help and action.help.strip(), f"perflaw {name} {action.option_strings[0]} has no help"
            for choice in action.choices or ():
                assert str(choice) in action.help or str(choice) in (action.metavar or ""), \
                    f"perflaw {name} {action.option_strings[0]}: {choice!r} not listed"


def test_the_same_thing_has_the_same_flag_everywhere():
    flags = {name: {s for a in options(p) for s in a.option_strings} for name, p in subcommands().items()}
    for name in ("train", "sweep", "demo"):
        assert "--no-progress" in flags[name] and "--quiet" not in flags[name], name
        assert "--torch-threads" in flags[name] and "--threads" not in flags[name], name
    assert "--threads" in flags["quality"]  # kernel threads: a different thing, a different name
    for name in ("train", "sweep", "report", "demo", "quality", "fit"):
        assert "--json" in flags[name], name


@pytest.fixture()
def data(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("".join(f"{u} " + " ".join(str(1 + (u * 7 + k) % 20) for k in range(8)) + "\n" for u in range(1, 41)))
    return path


@pytest.fixture()
def spec(tmp_path, data):
    path = tmp_path / "spec.toml"
    path.write_text(f'name = "q"\n[[datasets]]\nname = "d"\npath = "{data}"\n[grid]\nlayers = [1]\ndim = [4, 8]\n'
                    '[data]\nmax_len = [8]\n[train]\nepochs = 1\ndevice = "cpu"\n')
    return path


def run_json(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_json_output_of_every_command_parses(tmp_path, data, spec, capsys):
    out = tmp_path / "out"
    train = run_json(capsys, ["train", str(data), "--out", str(tmp_path / "t"), "--epochs", "1", "--dim", "8",
                              "--layers", "1", "--device", "cpu", "--json", "--no-progress"])
    assert train["layers"] == 1 and "ndcg@10" in train
    sweep = run_json(capsys, ["sweep", str(spec), "--out", str(out), "--json", "--no-progress"])
    assert sweep["finished"] == 2 and sweep["failed"] == 0
    quality = run_json(capsys, ["quality", str(data), "--json"])
    assert quality["users"] == 40 and quality["d_prime"] > 0
    report = run_json(capsys, ["report", str(out), "--json", "--n-boot", "0"])
    assert "panels" in report
    fit = run_json(capsys, ["fit", str(out), "--json", "--n-boot", "0", "--form", "scaling", "--no-holdout"])
    assert "panels" in fit


def test_dry_run_lists_what_a_real_run_trains_and_what_is_done(tmp_path, spec, capsys):
    out = tmp_path / "out"
    before = run_json(capsys, ["sweep", str(spec), "--out", str(out), "--dry-run", "--json"])
    assert [r["status"] for r in before["runs"]] == ["pending", "pending"] and not out.exists()
    run_json(capsys, ["sweep", str(spec), "--out", str(out), "--json", "--no-progress"])
    after = run_json(capsys, ["sweep", str(spec), "--out", str(out), "--dry-run", "--json"])
    assert [r["status"] for r in after["runs"]] == ["done", "done"]
    from perflaw.store import open_results

    stored = {(r["layers"], r["dim"], r["seed"]): r["params"] for r in open_results(out).rows()}
    planned = {(r["layers"], r["dim"], r["seed"]): r["params"] for r in after["runs"]}
    assert planned == stored


def test_set_overrides_spec_fields_and_is_checked_like_the_spec(tmp_path, spec, capsys):
    plan = run_json(capsys, ["sweep", str(spec), "--dry-run", "--json", "--set", "grid.dim=[4, 8, 16]",
                             "--set", "name=other"])
    assert [r["dim"] for r in plan["runs"]] == [4, 8, 16] and plan["name"] == "other"
    assert main(["sweep", str(spec), "--dry-run", "--set", "train.lr=fast"]) == 2
    assert "lr must be a number" in capsys.readouterr().err
    assert main(["sweep", str(spec), "--dry-run", "--set", "grid.width=[1]"]) == 2
    assert "unknown key" in capsys.readouterr().err
