"""Fixtures for the server tests: an indexed library of real photos and a FastAPI test client."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the server tests need the serve extra: pip install -e '.[serve]'")
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx")


@pytest.fixture
def served_photos(photos: Path) -> Path:
    """The photo folder plus a JPEG stored sideways with EXIF orientation 6 (shown upright)."""
    from PIL import Image

    with Image.open(next(photos.rglob("astronaut.jpg"))) as image:
        wide = image.convert("RGB").resize((300, 200))  # landscape pixels on disk
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display: upright it is 200 x 300
    wide.save(photos / "sideways.jpg", exif=exif, quality=90)
    (photos / "sideways.jpg.txt").write_text("an astronaut lying on her side\n")
    return photos


@pytest.fixture
def library(open_library, served_photos: Path, tmp_path: Path):  # noqa: ANN001, ANN201
    lib = open_library()
    lib.index([served_photos])
    captions = tmp_path / "captions.txt"
    captions.write_text("a cat on a sofa\na cup of coffee\nan astronaut in a suit\na rocket on the launch pad\n")
    lib.add_texts(captions)
    return lib


@pytest.fixture
def make_client(library, tmp_path: Path):  # noqa: ANN001, ANN201
    """Factory: a started TestClient for ``create_app(library, ServeConfig(**overrides))``."""
    from fastapi.testclient import TestClient

    from retrieval.serve import ServeConfig, create_app

    clients = []

    def _make(reranker: object = None, **overrides: object) -> TestClient:
        overrides.setdefault("cache_dir", tmp_path / "thumbs")
        client = TestClient(create_app(library, ServeConfig(**overrides), reranker=reranker))  # type: ignore[arg-type]
        client.__enter__()  # runs the lifespan: the model loads before the first request
        clients.append(client)
        return client

    yield _make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client):  # noqa: ANN001, ANN201
    return make_client()
