"""The ``perflaw train`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("perflaw.ingest", reason="perflaw train reads data through perflaw.ingest")

from perflaw.cli import main  # noqa: E402
from perflaw.eval import METRIC_NAMES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY_FLAGS = ["--layers", "1", "--dim", "8", "--max-len", "6", "--epochs", "2", "--batch-size", "8",
              "--device", "cpu", "--torch-threads", "1"]


def test_train_writes_result_and_checkpoint(data_file, tmp_path, capsys):
    import torch

    threads = torch.get_num_threads()
    out = tmp_path / "run"
    try:
        code = main(["train", str(data_file), "--out", str(out), "--model", "sasrec", "--loss", "bce", *TINY_FLAGS])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    row = json.loads((out / "result.json").read_text())
    assert row["model"] == "sasrec" and row["loss"] == "bce" and row["dim"] == 8 and row["max_len"] == 6
    assert row["epochs_run"] == 2 and row["protocol"] == "full" and row["n_users"] == 30
    assert set(METRIC_NAMES) <= set(row) and set(row["valid_metrics"]) == set(METRIC_NAMES)
    assert row["data"] == str(data_file.resolve())
    assert (out / "best.pt").exists()
    assert "test hr@10=" in capsys.readouterr().out
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]

    # running it again resumes the finished run and reports the same test metrics
    again = main(["train", str(data_file), "--out", str(out), "--model", "sasrec", "--loss", "bce", "--no-progress",
                  *TINY_FLAGS])
    assert again == 0
    second = json.loads((out / "result.json").read_text())
    assert {k: second[k] for k in METRIC_NAMES} == {k: row[k] for k in METRIC_NAMES}


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--dim", "64", "--heads", "3"], "heads=3 is not valid"),
        (["--model", "gru4rec"], "invalid choice: 'gru4rec'"),
        (["--loss", "hinge"], "invalid choice: 'hinge'"),
        (["--max-len", "1"], "max_len must be >= 2"),
        (["--torch-threads", "0"], "--torch-threads must be >= 1"),
    ],
)
def test_bad_flags_exit_with_a_clear_error(data_file, tmp_path, capsys, flags, message):
    code = main(["train", str(data_file), "--out", str(tmp_path / "x"), "--device", "cpu", *flags])
    assert code == 2
    assert message in capsys.readouterr().err


def test_missing_data_file(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "x")]) == 2
    assert "nope.txt" in capsys.readouterr().err


def test_module_entry_point_runs_in_a_subprocess(data_file, tmp_path):
    out = tmp_path / "sub"
    env = os.environ | {"PYTHONPATH": str(ROOT / "python")}
    done = subprocess.run(
        [sys.executable, "-m", "perflaw.cli", "train", str(data_file), "--out", str(out), "--no-progress", *TINY_FLAGS],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "result.json").read_text())["model"] == "llama"
