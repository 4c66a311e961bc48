"""Every sub-command over bad arguments and bad files: one line on stderr, a non-zero exit, no traceback."""

from __future__ import annotations

import sqlite3
import sys

import pytest

from perflaw.cli import main

BIG = str(2**64)


@pytest.fixture()
def files(tmp_path):
    """A set of bad inputs, by name."""
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "garbage.bin").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "good.txt").write_text("".join(f"{u} 1 2 3 4 5 6\n" for u in range(1, 9)))
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "bad.toml").write_text("this is = = not toml [")
    (tmp_path / "no_data.toml").write_text('name = "x"\n[data]\npaths = ["/nonexistent/data.txt"]\n')
    (tmp_path / "garbage.csv").write_text("x,y\n1,2,3,4\n\x00\x01\n")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with sqlite3.connect(foreign / "results.sqlite") as db:
        db.execute("CREATE TABLE cats (name TEXT)")
    checkpoint = tmp_path / "corrupt_ckpt"
    checkpoint.mkdir()
    (checkpoint / "last.pt").write_bytes(b"not a checkpoint at all")
    return tmp_path


CASES = [
    ("quality", ["{missing}"]),
    ("quality", ["{tmp}"]),
    ("quality", ["{tmp}/empty.txt"]),
    ("quality", ["{tmp}/garbage.bin"]),
    ("quality", ["{tmp}/good.txt", "--m", BIG]),
    ("quality", ["{tmp}/good.txt", "--max-len", BIG]),
    ("quality", ["{tmp}/good.txt", "--m", "-1"]),
    ("quality", ["{tmp}/good.txt", "--threads", "0"]),
    ("quality", ["{tmp}/good.txt", "--format", "parquet"]),
    ("fit", ["{missing}"]),
    ("fit", ["{tmp}/garbage.csv"]),
    ("fit", ["{tmp}/empty.txt"]),
    ("fit", ["{tmp}/foreign/results.sqlite"]),
    ("fit", ["{tmp}/foreign"]),
    ("plot", ["{tmp}/garbage.csv", "--out", "{tmp}/plots"]),
    ("train", ["{missing}", "--out", "{tmp}/t"]),
    ("train", ["{tmp}/good.txt", "--out", "{tmp}/a_file", "--device", "cpu", "--epochs", "1"]),
    ("train", ["{tmp}/good.txt", "--out", "{tmp}/corrupt_ckpt", "--device", "cpu", "--epochs", "1"]),
    ("train", ["{tmp}/good.txt", "--out", "{tmp}/t", "--max-len", BIG]),
    ("train", ["{tmp}/good.txt", "--out", "{tmp}/t", "--epochs", "0"]),
    ("train", ["{tmp}/good.txt", "--out", "{tmp}/t", "--device", "tpu"]),
    ("sweep", ["{missing}"]),
    ("sweep", ["{tmp}/bad.toml"]),
    ("sweep", ["{tmp}/no_data.toml"]),
    ("report", ["{missing}"]),
    ("report", ["{tmp}/foreign"]),
    ("report", ["{tmp}/garbage.csv", "--out", "{tmp}/a_file"]),
    ("demo", ["--out", "{tmp}/a_file", "--size", "tiny"]),
]


@pytest.mark.parametrize("command,argv", CASES, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CASES)])
def test_a_bad_call_is_one_line_and_a_non_zero_exit(files, capsys, command, argv):
    argv = [a.format(tmp=files, missing=files / "missing.txt") for a in argv]
    code = main([command, *argv])
    err = capsys.readouterr().err
    assert code != 0, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith(f"perflaw {command}") or "usage:" in err, err
    assert "internal error" not in err, err


def test_a_missing_extra_names_the_install_command(files, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails as if it were absent
    code = main(["train", str(files / "good.txt"), "--out", str(files / "t"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert 'pip install "perflaw[train]"' in err and "Traceback" not in err


def run_with_handler(monkeypatch, command, handler, argv):
    """``main`` with the sub-command's handler replaced (to raise what no real input can here)."""
    import perflaw.cli as cli

    parser = cli.build_parser()
    parser._subparsers._group_actions[0].choices[command].set_defaults(func=handler)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    return main([command, *argv])


def raising(error):
    def handler(_args):
        raise error

    return handler


@pytest.mark.parametrize(
    "error,code,expected",
    [
        (PermissionError(13, "Permission denied", "/data/x.txt"), 2, "perflaw quality: error: permission denied: /data/x.txt"),
        (IsADirectoryError(21, "Is a directory", "/data"), 2, "perflaw quality: error: is a directory: /data"),
        (OverflowError("Python int too large to convert to C long"), 2, "perflaw quality: error: Python int too large"),
        (sqlite3.DatabaseError("file is not a database"), 2, "perflaw quality: error: file is not a database"),
        (KeyboardInterrupt(), 130, "perflaw quality: interrupted"),
        (RuntimeError("boom"), 1, "perflaw quality: internal error (RuntimeError: boom)"),
    ],
)
def test_each_kind_of_failure_is_one_line_with_its_exit_code(files, capsys, monkeypatch, error, code, expected):
    assert run_with_handler(monkeypatch, "quality", raising(error), [str(files / "good.txt")]) == code
    err = capsys.readouterr().err
    assert err.startswith(expected) and len(err.strip().splitlines()) == 1 and "Traceback" not in err
