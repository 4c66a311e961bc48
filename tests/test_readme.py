"""The README's Python example runs as written on a multi-dataset results table."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from perflaw.law.synthetic import synthetic_runs

README = Path(__file__).resolve().parents[1] / "README.md"


def _block_with(text: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    matching = [b for b in blocks if text in b]
    assert len(matching) == 1, f"expected one python block with {text!r} in README.md"
    return matching[0]


def test_readme_law_example_runs_on_a_multi_dataset_table(tmp_path, monkeypatch, capsys):
    runs = pd.concat([
        synthetic_runs(noise=0.001, seeds=2, seed=1, layers=(4, 8, 16, 32)),
        synthetic_runs(noise=0.001, seeds=2, seed=2, layers=(4, 8, 16, 32)).assign(dataset="toys", d_prime=2.0),
    ])
    runs.to_csv(tmp_path / "results.csv", index=False)
    monkeypatch.chdir(tmp_path)
    exec(compile(_block_with("answer_panels"), "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("syn0 (max_len 50): train N = ")
    assert printed[2].startswith("toys (max_len 50): train N = ")
