"""Shared fixtures: a tiny open_clip model built once per session, real photos, broken files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Nothing in the default test run may wait on the network or touch the user's dirs.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.helpers.tiny_model import make_tiny_model  # noqa: E402

PHOTO_NAMES = ("astronaut", "coffee", "chelsea", "camera", "rocket", "coins")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The crash sweep (tests marked ``crash_full``, minutes each) runs only when a ``-m``
    expression names it; any other run, with or without its own ``-m``, skips it."""
    if "crash_full" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="the crash sweep: run it with  pytest -m crash_full tests/test_crash.py")
    for item in items:
        if "crash_full" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _isolated_dirs_for_the_session(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN202
    """The same isolation for session- and module-scoped fixtures, which are set up before any
    function-scoped one: a library a module builds must not use or fill the user's caches."""
    home = tmp_path_factory.getbasetemp() / "xdg"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(home / "cache"))
        patch.setenv("XDG_DATA_HOME", str(home / "data"))
        patch.delenv("XMR_LIBRARY", raising=False)
        yield


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.getbasetemp() / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.delenv("XMR_LIBRARY", raising=False)


@pytest.fixture(scope="session")
def postgres_server():  # noqa: ANN201
    """A throwaway PostgreSQL server (see tests/helpers/postgres.py); skips the test without one."""
    from tests.helpers.postgres import PostgresServer, Unavailable

    try:
        server = PostgresServer.start()
    except Unavailable as exc:
        if os.environ.get("XMR_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"XMR_REQUIRE_POSTGRES=1 but no PostgreSQL to test against: {exc}")
        pytest.skip(f"no PostgreSQL to test against: {exc}")
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:  # noqa: ANN001
    """The SQLAlchemy URL of a new, empty PostgreSQL database."""
    return postgres_server.new_database()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local-dir model folder (seed 0); copy it before changing it."""
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same architecture, other weights (seed 1)."""
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-other", seed=1)


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model_dir: Path):  # noqa: ANN201
    """The tiny model loaded once through the real loading path."""
    from retrieval.models.encoder import load_encoder
    from retrieval.models.specs import ModelSpec

    return load_encoder(ModelSpec(f"local-dir:{tiny_model_dir}"), device="cpu")


@pytest.fixture(scope="session")
def tiny_export_dir(tmp_path_factory: pytest.TempPathFactory, tiny_encoder) -> Path:  # noqa: ANN001
    """The tiny model's ONNX export folder (made once); copy it before changing it."""
    from retrieval.models.export import export_model

    return export_model(tiny_encoder, tmp_path_factory.mktemp("exports") / "tiny").folder


@pytest.fixture(scope="session")
def photo_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real photos that ship with scikit-image, saved once as JPEG and PNG."""
    import numpy as np
    import skimage.data
    from PIL import Image

    folder = tmp_path_factory.mktemp("photo-source")
    for i, name in enumerate(PHOTO_NAMES):
        array = getattr(skimage.data, name)()
        image = Image.fromarray(np.asarray(array))
        suffix = ".png" if i % 2 else ".jpg"
        image.convert("RGB").save(folder / f"{name}{suffix}", quality=92)
    return folder


@pytest.fixture
def photos(photo_source: Path, tmp_path: Path) -> Path:
    """A fresh, writable copy of the photo folder (nested one level for recursion)."""
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    for i, source in enumerate(sorted(photo_source.iterdir())):
        shutil.copy2(source, folder / ("nested" if i % 3 == 0 else ".") / source.name)
    return folder


@pytest.fixture
def open_library(tmp_path: Path, tiny_model_dir: Path, tiny_encoder):  # noqa: ANN001, ANN201
    """Factory: open (or create) a library with the tiny model; closed after the test."""
    from retrieval import Library

    opened = []

    def _open(directory: Path | None = None, **kwargs):  # noqa: ANN202, ANN003
        kwargs.setdefault("model", tiny_encoder)
        lib = Library.open(directory or tmp_path / "library", **kwargs)
        opened.append(lib)
        return lib

    yield _open
    for lib in opened:
        lib.close()
