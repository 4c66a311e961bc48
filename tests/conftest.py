"""Shared fixtures: the real data next to the repository (../shared/data), when it is there."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def beauty_path() -> Path:
    path = SHARED_DATA / "beauty.txt"
    if not path.exists():
        pytest.skip(f"real data not found at {path} (../shared/data next to the repository)")
    return path
