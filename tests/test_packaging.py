"""What ``pip install .`` ships: every package and module, their data files, and py.typed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from fnmatch import fnmatch

import pytest

from tests.helpers.paths import REPO


def test_every_top_level_package_and_module_is_in_pyproject() -> None:
    # An editable install from the repository root finds anything; a wheel only what is listed.
    tomllib = pytest.importorskip("tomllib")
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools["packages"]["find"]["include"]
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}
    assert {"retrieval", "index", "xmr_cli"} <= packages
    assert [name for name in sorted(packages) if not any(fnmatch(name, pattern) for pattern in patterns)] == []
    assert sorted(p.stem for p in REPO.glob("*.py")) == sorted(setuptools["py-modules"])


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The file names inside a wheel built from a copy of the sources (the checkout stays clean)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "cli.py"):
        shutil.copy2(REPO / name, source / name)
    for package in ("retrieval", "index", "xmr_cli"):
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(out),
        str(source),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (wheel,) = out.glob("xmr-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_the_wheel_carries_every_data_file_of_the_packages(wheel_files: set[str]) -> None:
    # Not only modules: a wheel without the shipped model configs cannot `xmr train --arch xmr-shapes-s`.
    data = sorted(
        str(p.relative_to(REPO))
        for package in ("retrieval", "index", "xmr_cli")
        for p in (REPO / package).rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    )
    assert "retrieval/training/configs/xmr-shapes-s.json" in data and "retrieval/serve/static/app.js" in data
    assert [name for name in data if name not in wheel_files] == []
    modules = [
        str(p.relative_to(REPO))
        for package in ("retrieval", "index", "xmr_cli")
        for p in (REPO / package).rglob("*.py")
    ]
    assert [name for name in modules if name not in wheel_files] == [] and "cli.py" in wheel_files


def test_the_packages_say_they_are_typed(wheel_files: set[str]) -> None:
    assert {"retrieval/py.typed", "index/py.typed", "xmr_cli/py.typed"} <= wheel_files
