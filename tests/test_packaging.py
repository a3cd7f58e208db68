"""What ``pip install .`` ships: every top-level package and module of the repository."""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_every_top_level_package_and_module_is_in_pyproject() -> None:
    # An editable install from the repository root finds anything; a wheel only what is listed.
    tomllib = pytest.importorskip("tomllib")
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools["packages"]["find"]["include"]
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}
    assert {"retrieval", "index", "xmr_cli"} <= packages
    assert [name for name in sorted(packages) if not any(fnmatch(name, pattern) for pattern in patterns)] == []
    assert sorted(p.stem for p in REPO.glob("*.py")) == sorted(setuptools["py-modules"])
