"""index.deps: optional dependencies found without importing them."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest

from index.deps import installed_version


def test_installed_version_agrees_with_importlib_metadata_for_every_installed_distribution() -> None:
    names = {d.metadata["Name"] for d in importlib.metadata.distributions()}
    assert len(names) > 30  # the whole venv, torch and open_clip among them
    assert {"numpy", "open_clip_torch", "onnxruntime"} <= names
    for name in sorted(names):
        assert installed_version(name) == importlib.metadata.version(name), name
    assert installed_version("OPEN-CLIP.torch") == importlib.metadata.version("open_clip_torch")  # PEP 503 names


def test_installed_version_is_empty_for_what_is_not_installed_and_reads_egg_info(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert installed_version("surely-not-installed-xmr-probe") == ""
    (tmp_path / "Old_Tool-1.2.3-py3.11.egg-info").mkdir()
    (tmp_path / "new_tool-4.5.6.dist-info").mkdir()
    (tmp_path / "not-a-folder").write_text("x")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "missing"), str(tmp_path / "not-a-folder"), str(tmp_path)])
    assert installed_version("old-tool") == "1.2.3"
    assert installed_version("new.tool") == "4.5.6"
    assert installed_version("numpy") == ""
