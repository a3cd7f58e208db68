"""Fixtures for the server tests: indexed libraries of real photos and FastAPI test clients.

Most tests only read, so they share one library per module (``shared_library``); tests that
delete files or index more get a fresh one (``fresh_library``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the server tests need the serve extra: pip install -e '.[serve]'")
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx")

CAPTIONS = "a cat on a sofa\na cup of coffee\nan astronaut in a suit\na rocket on the launch pad\n"


def build_library(folder: Path, photo_source: Path, encoder):  # noqa: ANN001, ANN201
    """Copy the photos (plus a JPEG stored sideways with EXIF orientation 6), index them, add captions."""
    from PIL import Image

    from retrieval import Library

    photos = folder / "photos"
    (photos / "nested").mkdir(parents=True)
    for i, source in enumerate(sorted(photo_source.iterdir())):
        shutil.copy2(source, photos / ("nested" if i % 3 == 0 else ".") / source.name)
    with Image.open(next(photos.rglob("astronaut.jpg"))) as image:
        wide = image.convert("RGB").resize((300, 200))  # landscape pixels on disk
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display: upright it is 200 x 300
    wide.save(photos / "sideways.jpg", exif=exif, quality=90)
    (photos / "sideways.jpg.txt").write_text("an astronaut lying on her side\n")
    lib = Library.open(folder / "library", model=encoder)
    lib.index([photos])
    (folder / "captions.txt").write_text(CAPTIONS)
    lib.add_texts(folder / "captions.txt")
    return lib


@pytest.fixture(scope="module")
def shared_library(tmp_path_factory: pytest.TempPathFactory, photo_source: Path, tiny_encoder):  # noqa: ANN001, ANN201
    lib = build_library(tmp_path_factory.mktemp("served"), photo_source, tiny_encoder)
    yield lib
    lib.close()


@pytest.fixture
def fresh_library(tmp_path: Path, photo_source: Path, tiny_encoder):  # noqa: ANN001, ANN201
    lib = build_library(tmp_path, photo_source, tiny_encoder)
    yield lib
    lib.close()


@pytest.fixture
def served_photos(shared_library) -> Path:  # noqa: ANN001
    return shared_library.layout.root.parent / "photos"


def _client_factory(library, cache: Path):  # noqa: ANN001, ANN202
    from fastapi.testclient import TestClient

    from retrieval.serve import ServeConfig, create_app

    clients = []

    def _make(reranker: object = None, **overrides: object) -> TestClient:
        overrides.setdefault("cache_dir", cache)
        client = TestClient(
            create_app(library, ServeConfig(**overrides), reranker=reranker), base_url="http://127.0.0.1:8765"
        )  # type: ignore[arg-type]
        client.__enter__()  # runs the lifespan: the model loads before the first request
        clients.append(client)
        return client

    return _make, clients


@pytest.fixture(scope="module")
def make_client(shared_library, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201
    """Factory: a started TestClient for ``create_app(shared_library, ServeConfig(**overrides))``."""
    make, clients = _client_factory(shared_library, tmp_path_factory.mktemp("thumbs"))
    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def client(make_client):  # noqa: ANN001, ANN201
    return make_client()


@pytest.fixture
def fresh_client(fresh_library, tmp_path: Path):  # noqa: ANN001, ANN201
    make, clients = _client_factory(fresh_library, tmp_path / "thumbs")
    yield make()
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture(scope="module")
def ocr_library(tmp_path_factory: pytest.TempPathFactory, photo_source: Path, tiny_encoder):  # noqa: ANN001, ANN201
    """The served photos plus a receipt reading RECEIPT 42.50, indexed with OCR (the real model)."""
    pytest.importorskip("rapidocr_onnxruntime", reason="OCR needs the ocr extra")
    from retrieval.ingest.ocr import OcrConfig
    from tests.helpers.text_images import render_words

    folder = tmp_path_factory.mktemp("served-ocr")
    lib = build_library(folder, photo_source, tiny_encoder)
    box = render_words("coffee", "RECEIPT 42.50", folder / "photos" / "scan.jpg")
    lib.index([folder / "photos"], ocr=True, ocr_config=OcrConfig(workers=1, det_side=480))
    lib.receipt_box = box  # type: ignore[attr-defined]  (the rendered word's box, for the tests)
    yield lib
    lib.close()


@pytest.fixture(scope="module")
def ocr_client(ocr_library, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201
    make, clients = _client_factory(ocr_library, tmp_path_factory.mktemp("ocr-thumbs"))
    yield make()
    for c in clients:
        c.__exit__(None, None, None)
