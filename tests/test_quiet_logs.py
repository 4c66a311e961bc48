"""Bars on a terminal only; a log file gets plain lines (at most one per epoch or per run)."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytest.importorskip("torch")


def perflaw_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "perflaw.cli", *args]


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")}
    env["PYTHONPATH"] = str(REPO / "python") + os.pathsep + env.get("PYTHONPATH", "")
    return env | extra


@pytest.fixture()
def data(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("".join(f"{u} " + " ".join(str(1 + (u * 7 + k) % 20) for k in range(8)) + "\n" for u in range(1, 41)))
    return path


def run_to_a_file(tmp_path, *args):
    log = tmp_path / "stderr.log"
    with open(log, "w") as stderr:
        proc = subprocess.run(perflaw_command(*args), stdout=subprocess.PIPE, stderr=stderr, text=True,
                              env=environment(), timeout=300)
    return proc, log.read_text()


def run_on_a_terminal(*args, **env):
    """stderr (and stdout) on a pseudo-terminal, as in an interactive shell."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    proc = subprocess.Popen(perflaw_command(*args), stdout=child, stderr=child, env=environment(**env))
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=300)
    os.close(main)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


def test_train_into_a_log_file_writes_one_plain_line_per_epoch(tmp_path, data):
    proc, log = run_to_a_file(tmp_path, "train", str(data), "--out", str(tmp_path / "run"), "--epochs", "3",
                              "--dim", "8", "--layers", "1", "--device", "cpu", "--patience", "0")
    assert proc.returncode == 0, log
    assert "\r" not in log
    epoch_lines = [line for line in log.splitlines() if line.startswith("train llama 1x8:")]
    assert len(epoch_lines) == 3 and "epoch 3/3" in epoch_lines[-1]


def test_sweep_into_a_log_file_writes_one_plain_line_per_run(tmp_path, data):
    spec = tmp_path / "spec.toml"
    spec.write_text(f'name = "q"\n[[datasets]]\nname = "d"\npath = "{data}"\n[grid]\nlayers = [1]\ndim = [4, 8]\n'
                    '[data]\nmax_len = [8]\n[train]\nepochs = 1\ndevice = "cpu"\n')
    proc, log = run_to_a_file(tmp_path, "sweep", str(spec), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, log
    assert "\r" not in log
    assert sum(1 for line in log.splitlines() if "ndcg@10" in line) == 2


def test_a_terminal_gets_a_bar_unless_tqdm_disable_is_set(tmp_path, data):
    args = ["train", str(data), "--out", str(tmp_path / "t"), "--epochs", "2", "--dim", "8", "--layers", "1",
            "--device", "cpu", "--patience", "0"]
    code, shown = run_on_a_terminal(*args)
    assert code == 0 and "\r" in shown and "step" in shown
    code, shown = run_on_a_terminal(*args[:3], str(tmp_path / "t2"), *args[4:], TQDM_DISABLE="1")
    assert code == 0 and "step/s" not in shown
