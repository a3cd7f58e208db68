"""ONNX exports: Immich's layout, vectors equal to torch's, checked before written, cached by weights."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retrieval.errors import ExportError
from retrieval.models import export as export_module
from retrieval.models.export import ensure_export, export_model
from retrieval.models.exports import cached_export, exports_dir, read_export
from retrieval.models.onnx_encoder import OnnxEncoder
from retrieval.models.specs import ModelSpec
from tests.helpers.text_corpus import tiny_hf_tokenizer, varied_strings
from tests.helpers.tiny_model import make_tiny_model

MIN_COSINE = 0.9999


def _photos(folder: Path) -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in sorted(folder.iterdir())]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


def test_the_export_has_immichs_layout_and_passes_the_onnx_checker(tiny_export_dir: Path, tiny_encoder) -> None:  # noqa: ANN001
    import onnx

    for name in ("config.json", "textual/model.onnx", "textual/tokenizer.json", "textual/tokenizer_config.json"):
        assert (tiny_export_dir / name).is_file(), name
    for name in ("visual/model.onnx", "visual/preprocess_cfg.json", "xmr_export.json"):
        assert (tiny_export_dir / name).is_file(), name
    assert json.loads((tiny_export_dir / "config.json").read_text())["embed_dim"] == 32
    preprocess = json.loads((tiny_export_dir / "visual/preprocess_cfg.json").read_text())
    assert (
        preprocess["size"] == [32, 32] and preprocess["mean"] == [0.5] * 3 and preprocess["resize_mode"] == "shortest"
    )
    assert json.loads((tiny_export_dir / "textual/tokenizer_config.json").read_text())["pad_token"] == "!"
    meta = json.loads((tiny_export_dir / "xmr_export.json").read_text())
    assert meta["model"] == tiny_encoder.identity.to_dict() and meta["text_trim"] is True
    for tower, name in (("textual", "text"), ("visual", "image")):
        model = onnx.load(str(tiny_export_dir / tower / "model.onnx"))
        onnx.checker.check_model(model)
        dims = model.graph.input[0].type.tensor_type.shape.dim
        assert model.graph.input[0].name == name and dims[0].dim_param  # dynamic batch
        assert model.graph.output[0].name == "embedding"
    text_dims = onnx.load(str(tiny_export_dir / "textual/model.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert text_dims[1].dim_param  # dynamic sequence: short texts run short


def test_export_vectors_equal_torch(tiny_export_dir: Path, tiny_encoder, photo_source: Path) -> None:  # noqa: ANN001
    onnx = OnnxEncoder(read_export(tiny_export_dir), device="cpu")
    assert onnx.identity.same_model(tiny_encoder.identity)
    texts = varied_strings(300, seed=7)
    ours = onnx.encode_texts(texts)
    assert ours.dtype == np.float32 and ours.shape == (300, 32)
    assert _cosines(ours, tiny_encoder.encode_texts(texts)).min() >= MIN_COSINE
    one_by_one = np.concatenate([onnx.encode_texts([t]) for t in texts[:40]])  # each cut to its own length
    assert _cosines(one_by_one, ours[:40]).min() >= MIN_COSINE
    images = _photos(photo_source)
    pixels = onnx.stack([onnx.preprocess(i) for i in images])
    assert pixels.shape == (len(images), 3, 32, 32) and pixels.dtype == np.float32
    theirs = tiny_encoder.encode_images(tiny_encoder.stack([tiny_encoder.preprocess(i) for i in images]))
    assert np.array_equal(pixels, tiny_encoder.stack([tiny_encoder.preprocess(i) for i in images]).numpy())
    assert _cosines(onnx.encode_images(pixels), theirs).min() >= MIN_COSINE
    assert onnx.encode_texts([]).shape == (0, 32)


def test_random_vit_b_32_export_equals_torch(tmp_path: Path, photo_source: Path) -> None:
    """The default architecture (random weights: nothing to download), as --model ViT-B-32 --pretrained random."""
    from retrieval.models.encoder import load_encoder

    encoder = load_encoder(ModelSpec("ViT-B-32", "random"), device="cpu")
    info = export_model(encoder, tmp_path / "b32")
    onnx = OnnxEncoder(info, device="cpu")
    texts = ["a photo of a dog", "", "two cats on a red sofa " * 20, "日本の桜 🌸 &amp; <b>", "sunset"]
    assert _cosines(onnx.encode_texts(texts), encoder.encode_texts(texts)).min() >= MIN_COSINE
    images = _photos(photo_source)
    theirs = encoder.encode_images(encoder.stack([encoder.preprocess(i) for i in images]))
    ours = onnx.encode_images(onnx.stack([onnx.preprocess(i) for i in images]))
    assert ours.shape == (len(images), 512) and _cosines(ours, theirs).min() >= MIN_COSINE


def test_export_refuses_a_folder_that_is_not_empty(tiny_encoder, tmp_path: Path) -> None:  # noqa: ANN001
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        export_model(tiny_encoder, tmp_path / "out")
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_a_failed_export_leaves_nothing_behind(tiny_encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    def broken(*args: object) -> None:
        raise ExportError("the image tower has no ONNX form here")

    monkeypatch.setattr(export_module, "_export_image", broken)
    with pytest.raises(ExportError, match="image tower"):
        export_model(tiny_encoder, tmp_path / "out")
    assert os.listdir(tmp_path) == []  # neither the folder nor its temporary


def test_an_export_that_disagrees_with_torch_is_not_written(
    tiny_encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    monkeypatch.setattr(export_module, "MIN_COSINE", 1.5)  # no export can pass
    with pytest.raises(ExportError, match="disagree with torch"):
        export_model(tiny_encoder, tmp_path / "out")
    assert os.listdir(tmp_path) == []


def test_the_cache_exports_once_and_is_keyed_by_the_weights_sha256(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = make_tiny_model(tmp_path / "model", seed=3)
    spec = ModelSpec(f"local-dir:{model}")
    assert cached_export(spec) is None
    first = ensure_export(spec)
    assert first.folder.parent == exports_dir() and first.made_by_xmr

    def no_second_export(*args: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(export_module, "export_model", no_second_export)
    again = ensure_export(spec)
    assert again.folder == first.folder and cached_export(spec) == again
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    # New weights under the same path: the old export is not current any more, a new one is made.
    replaced = make_tiny_model(tmp_path / "other", seed=4)
    shutil.copyfile(replaced / "open_clip_model.safetensors", model / "open_clip_model.safetensors")
    assert cached_export(spec) is None
    second = ensure_export(spec)
    assert second.folder != first.folder
    assert second.identity.weights_sha256 != first.identity.weights_sha256
    assert not [p for p in exports_dir().iterdir() if p.name.endswith(".tmp")]


def test_a_second_folder_with_the_same_weights_reopens_from_itself_not_from_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retrieval.library import Library

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = make_tiny_model(tmp_path / "first", seed=3)
    second = tmp_path / "second"
    shutil.copytree(first, second)  # the same weights: one export serves both
    spec = ModelSpec(f"local-dir:{second}")
    assert ensure_export(ModelSpec(f"local-dir:{first}")).folder == ensure_export(spec).folder
    shutil.rmtree(first)  # the folder the export was first made from is gone
    for found in (ensure_export(spec), cached_export(spec)):
        assert found is not None and found.identity.spec == f"local-dir:{second}"
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (48, 40), (200, 40, 40)).save(photos / "red.png")
    with Library.open(tmp_path / "library", model=f"local-dir:{second}", device="cpu", runtime="onnx") as lib:
        assert lib.index([photos]).added == 1
    with Library.open(tmp_path / "library", device="cpu", runtime="onnx") as lib:  # reopened from its manifest
        assert [hit.path for hit in lib.search("red", k=1)] == [str(photos / "red.png")]


KILLED_EXPORT = """
import os, sys
from pathlib import Path
from index.atomic import temp_dir
folder = temp_dir(Path(sys.argv[1]))
(folder / "visual").mkdir()
(folder / "visual" / "model.onnx").write_bytes(b"half an export")
os._exit(9)  # killed like kill -9 midway through writing the export
"""


def test_an_export_killed_midway_leaves_a_folder_the_next_export_removes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    from index.atomic import temp_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    exports_dir().mkdir(parents=True)
    repo = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    killed = subprocess.run([sys.executable, "-c", KILLED_EXPORT, str(exports_dir() / "tiny")], env=env, timeout=120)
    assert killed.returncode == 9
    (dead,) = [p for p in exports_dir().iterdir() if p.name.endswith(".tmp")]
    live = temp_dir(exports_dir() / "other")  # this process's: an export still being written
    spec = ModelSpec(f"local-dir:{make_tiny_model(tmp_path / 'model', seed=3)}")
    ensure_export(spec)
    assert not dead.exists() and live.is_dir()
    assert [p for p in exports_dir().iterdir() if p.name.endswith(".tmp")] == [live]


def test_an_export_named_by_its_folder_keeps_its_models_identity(tiny_export_dir: Path, tiny_encoder) -> None:  # noqa: ANN001
    info = read_export(tiny_export_dir)
    assert info.identity.same_model(tiny_encoder.identity)
    assert (info.identity.spec, info.identity.spec_pretrained) == (str(tiny_export_dir), "")


def test_a_changed_tower_in_an_xmr_export_is_refused(tiny_export_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_export_dir, tmp_path / "copy"))
    with open(copy / "visual/model.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ExportError, match="changed since xmr exported it"):
        read_export(copy)


def test_a_model_with_a_hugging_face_tokenizer_exports_its_tokenizer_json(tmp_path: Path) -> None:
    """SigLIP-style: open_clip reads the tokenizer from the model folder (HFTokenizer); the export
    writes it as tokenizer.json and xmr's tokenizer gives its ids without transformers."""
    from retrieval.models.encoder import load_encoder
    from retrieval.models.tokenizer import HF

    text = {"vocab_size": 400, "hf_tokenizer_name": "local", "tokenizer_kwargs": {"clean": "canonicalize"}}
    model = make_tiny_model(tmp_path / "siglip-ish", seed=5, text=text)
    tiny_hf_tokenizer(tmp_path / "tok", "siglip")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tmp_path / "tok" / name, model / name)
    encoder = load_encoder(ModelSpec(f"local-dir:{model}"), device="cpu")
    assert type(encoder.tokenizer).__name__ == "HFTokenizer"
    info = export_model(encoder, tmp_path / "export")
    assert info.tokenizer.family == HF and info.tokenizer.clean == "canonicalize"
    assert (tmp_path / "export" / "textual" / "tokenizer.json").is_file()
    texts = varied_strings(500, seed=9)
    onnx = OnnxEncoder(info, device="cpu")
    assert np.array_equal(onnx.tokenizer(texts), encoder.tokenizer(texts).numpy())
    assert _cosines(onnx.encode_texts(texts), encoder.encode_texts(texts)).min() >= MIN_COSINE
