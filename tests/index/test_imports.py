"""The storage layer never imports torch, and imports faiss only when an index needs it."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "open_clip", "faiss")

PROBE = f"""
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps({{"imported": sorted(sys.argv[1:]), "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


@pytest.fixture(scope="module")
def fresh_import() -> dict[str, list[str]]:
    """Import every module of the index package in a new interpreter; report what came along."""
    modules = sorted(m.name for m in pkgutil.walk_packages([str(REPO / "index")], prefix="index."))
    on_disk = sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for p in (REPO / "index").rglob("*.py")
        if p.parent != REPO / "index" or p.stem != "__init__"
    )
    assert modules == on_disk and "index.vectors" in modules and "index.kinds.exact" in modules
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "index", *modules],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(modules) <= set(report["imported"])
    return report


def test_index_package_never_imports_torch(fresh_import: dict[str, list[str]]) -> None:
    assert not {"torch", "torchvision", "open_clip"} & set(fresh_import["heavy"])


def test_index_package_imports_faiss_lazily(fresh_import: dict[str, list[str]]) -> None:
    # deps.py promises that `xmr --help` does not pay for faiss either.
    assert "faiss" not in fresh_import["heavy"]
