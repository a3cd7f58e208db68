"""A library built on one runtime is searched on the other: same model, same top 10."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from retrieval import Library
from retrieval.errors import DeviceError
from retrieval.models.onnx_encoder import OnnxEncoder
from retrieval.models.runtime import FOR_IMAGES, FOR_QUERIES

QUERIES = ("a man riding a horse", "a cat", "coins on a table", "a rocket launch", "an old camera", "coffee")


@pytest.fixture
def many_photos(photos: Path) -> Path:
    """The six photos and four variants of each (rotated, cropped, grey, small): 30 images."""
    for path in sorted(p for p in photos.rglob("*.*")):
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        width, height = image.size
        variants = {
            "rot": image.rotate(90, expand=True),
            "crop": image.crop((0, 0, width // 2, height // 2)),
            "grey": ImageOps.grayscale(image).convert("RGB"),
            "small": image.resize((max(1, width // 5), max(1, height // 5))),
        }
        for name, variant in variants.items():
            variant.save(path.with_name(f"{path.stem}-{name}.png"))
    return photos


def _top10(lib: Library, photos: Path) -> list[list[tuple[str, float]]]:
    image_query = next(photos.rglob("astronaut-rot.png"))
    ranked = [lib.search(text=q, k=10) for q in QUERIES]
    with Image.open(image_query) as opened:
        ranked.append(lib.search(image=opened.convert("RGB").rotate(45), k=10))  # not indexed: the tower runs
    return [[(h.path, h.score) for h in hits] for hits in ranked]


@pytest.mark.parametrize(("built_on", "searched_on"), [("torch", "onnx"), ("onnx", "torch")])
def test_a_library_built_on_one_runtime_is_searched_on_the_other(
    many_photos: Path, tmp_path: Path, tiny_model_dir: Path, built_on: str, searched_on: str
) -> None:
    model = f"local-dir:{tiny_model_dir}"
    with Library.open(tmp_path / "lib", model=model, runtime=built_on, device="cpu") as lib:
        assert lib.index([many_photos]).added == 30
        expected = _top10(lib, many_photos)
        assert isinstance(lib.encoder_for(FOR_IMAGES), OnnxEncoder) == (built_on == "onnx")
    with Library.open(tmp_path / "lib", runtime=searched_on, device="cpu") as lib:
        got = _top10(lib, many_photos)
        assert isinstance(lib.encoder, OnnxEncoder) == (searched_on == "onnx")
    for mine, theirs in zip(got, expected):
        assert [path for path, _ in mine] == [path for path, _ in theirs]
        assert np.allclose([s for _, s in mine], [s for _, s in theirs], atol=2e-4)


def test_auto_runs_queries_and_cpu_images_on_onnx_and_token_caches_on_torch(
    photos: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    with Library.open(tmp_path / "lib", model=f"local-dir:{tiny_model_dir}", device="cpu") as lib:
        assert isinstance(lib.encoder, OnnxEncoder) and lib.encoder_for(FOR_QUERIES) is lib.encoder
        assert isinstance(lib.encoder_for(FOR_IMAGES), OnnxEncoder)
        lib.index([photos], cache_tokens=True)  # only torch gives image tokens
        assert "torch" in lib._encoders  # noqa: SLF001
        assert lib.search(text="a cat", k=3)
    with Library.open(tmp_path / "lib", runtime="onnx", device="cpu") as lib, pytest.raises(DeviceError, match="torch"):
        lib.index([photos])
