"""Python 3.10 is advertised (requires-python >= 3.10): the package's source is checked against it.

This machine has one Python (3.11), so vermin reads the source and reports the
minimum version each construct needs; anything newer than 3.10 fails here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "perflaw"


def test_the_package_source_runs_on_python_3_10():
    pytest.importorskip("vermin", reason="vermin checks the minimum Python version (pip install vermin)")
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())", "--target=3.10-", "--violations", "--eval-annotations", "--no-tips",
         str(PACKAGE)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_specs_are_read_with_tomli_where_tomllib_is_missing(tmp_path, monkeypatch):
    pytest.importorskip("tomli", reason="tomli is the TOML reader on Python 3.10")
    from perflaw import sweep

    monkeypatch.setitem(sys.modules, "tomllib", None)  # as on Python 3.10
    assert sweep._toml_module().__name__ == "tomli"
    path = tmp_path / "spec.toml"
    path.write_text('name = "x"\n[[datasets]]\nname = "s"\nsynth = {users = 20}\n[grid]\nlayers = [1]\n'
                    'dim = [4]\n[train]\nepochs = 1\ndevice = "cpu"\n')
    assert sweep.load_spec(path).name == "x"
