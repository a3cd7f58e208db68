"""Fast-load copies of ONNX towers (weights in an external file) and sessions without pre-packing."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from retrieval.models import fast_load
from retrieval.models.exports import read_export
from retrieval.models.fast_load import DATA, MODEL, fast_dir, fast_tower
from retrieval.models.onnx_encoder import OnnxEncoder

TEXTS = ["a red circle", "two blue squares left of a green triangle", "", "ünïcode ✓ <b>html</b>"]


@pytest.fixture
def every_tower_copied(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Copy towers of any size (the tiny model's are far under the real threshold) into a fresh cache."""
    monkeypatch.setattr(fast_load, "MIN_BYTES", 0)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _pixels() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)


def test_a_copied_tower_gives_the_very_same_vectors(
    tiny_export_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnxruntime as ort

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    info = read_export(tiny_export_dir)
    plain = OnnxEncoder(info, device="cpu")  # the tiny towers are under MIN_BYTES: opened as they are
    texts, images = plain.encode_texts(TEXTS), plain.encode_images(_pixels())
    assert not fast_dir().exists()
    monkeypatch.setattr(fast_load, "MIN_BYTES", 0)
    copy = fast_tower(info.text_path, ort)
    assert copy.parent.parent == fast_dir() and copy.name == MODEL
    assert (copy.parent / DATA).stat().st_size > copy.stat().st_size  # the weights live outside the graph
    fast = OnnxEncoder(info, device="cpu")
    assert np.array_equal(fast.encode_texts(TEXTS), texts)
    assert np.array_equal(fast.encode_images(_pixels()), images)
    assert len(list(fast_dir().iterdir())) == 2  # one copy per tower, nothing else left behind


def test_a_copy_is_made_once_and_reused(tiny_export_dir: Path, every_tower_copied: Path) -> None:
    import onnxruntime as ort

    info = read_export(tiny_export_dir)
    first = fast_tower(info.image_path, ort)
    stamp = first.stat().st_mtime_ns
    assert fast_tower(info.image_path, ort) == first
    assert first.stat().st_mtime_ns == stamp


def test_a_damaged_copy_is_removed_and_the_original_opened(
    tiny_export_dir: Path, every_tower_copied: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import onnxruntime as ort

    info = read_export(tiny_export_dir)
    expected = OnnxEncoder(info, device="cpu").encode_texts(TEXTS)
    copy = fast_tower(info.text_path, ort)
    with open(copy.parent / DATA, "r+b") as handle:  # cut short: its weights are gone
        handle.truncate(16)
    with caplog.at_level(logging.WARNING, logger="retrieval.models.onnx_encoder"):
        got = OnnxEncoder(info, device="cpu").encode_texts(TEXTS)
    assert np.array_equal(got, expected)
    assert "does not open" in caplog.text
    assert fast_tower(info.text_path, ort) == copy and (copy.parent / DATA).stat().st_size > 16  # made again


def test_a_cache_that_cannot_be_written_costs_only_speed(
    tiny_export_dir: Path, every_tower_copied: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import onnxruntime as ort

    info = read_export(tiny_export_dir)
    fast_dir().parent.mkdir(parents=True, exist_ok=True)
    fast_dir().write_text("a file where the cache folder goes")  # (read-only folders do not stop root)
    with caplog.at_level(logging.INFO, logger="retrieval.models.fast_load"):
        assert fast_tower(info.text_path, ort) == info.text_path
    assert "opening it as it is" in caplog.text
    assert np.isfinite(OnnxEncoder(info, device="cpu").encode_texts(TEXTS)).all()


def test_a_failing_copy_costs_only_speed(
    tiny_export_dir: Path, every_tower_copied: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A full disk (or anything onnxruntime fails at while writing) leaves no half copy behind."""
    import onnxruntime as ort

    info = read_export(tiny_export_dir)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fast_load.os, "fsync", full)
    with caplog.at_level(logging.INFO, logger="retrieval.models.fast_load"):
        assert fast_tower(info.text_path, ort) == info.text_path
    assert "No space left" in caplog.text
    assert list(fast_dir().iterdir()) == []  # the temporary folder is gone too
    monkeypatch.undo()
    assert np.isfinite(OnnxEncoder(info, device="cpu").encode_texts(TEXTS)).all()


def test_sessions_without_pre_packing_agree(tiny_export_dir: Path, tmp_path: Path) -> None:
    export = tmp_path / "export"
    shutil.copytree(tiny_export_dir, export)
    info = read_export(export)
    packed, quick = OnnxEncoder(info, device="cpu"), OnnxEncoder(info, device="cpu", prepack=False)
    assert np.sum(packed.encode_texts(TEXTS) * quick.encode_texts(TEXTS), 1).min() >= 0.99999
    assert np.sum(packed.encode_images(_pixels()) * quick.encode_images(_pixels()), 1).min() >= 0.99999


def test_an_index_run_on_onnxruntime_leaves_the_text_tower_ready(
    tiny_export_dir: Path, every_tower_copied: Path, photos: Path, tmp_path: Path
) -> None:
    """The first text search after indexing opens the copy instead of writing it."""
    import onnxruntime as ort

    from retrieval.library import Library

    info = read_export(tiny_export_dir)
    with Library.open(tmp_path / "lib", model=str(tiny_export_dir), runtime="onnx", device="cpu") as lib:
        assert lib.index([photos]).added > 0
    copies = sorted(p.name for p in fast_dir().iterdir())
    assert len(copies) == 2  # the image tower (opened to embed) and the text tower (prepared)
    text_copy = fast_tower(info.text_path, ort)
    assert text_copy.parent.name in copies
