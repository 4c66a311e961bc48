"""Shared fixtures: the real data next to the repository (../shared/data), when it is there, and a tiny log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def beauty_path() -> Path:
    path = SHARED_DATA / "beauty.txt"
    if not path.exists():
        pytest.skip(f"real data not found at {path} (../shared/data next to the repository)")
    return path


@pytest.fixture
def data_file(tmp_path) -> Path:
    """A tiny sasrec log (30 users, 3-8 items of 29) for command-line and training tests."""
    rng = np.random.default_rng(0)
    lines = [" ".join(map(str, [user, *rng.integers(1, 30, size=rng.integers(3, 9))])) for user in range(1, 31)]
    path = tmp_path / "tiny.txt"
    path.write_text("\n".join(lines) + "\n")
    return path
