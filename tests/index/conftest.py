"""Fixtures of the storage-layer tests: a SQLite catalog in a temp dir, seeded generators."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from index.catalog import Catalog, sqlite_url


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


@pytest.fixture
def catalog_url(tmp_path: Path) -> str:
    return sqlite_url(str(tmp_path / "catalog.sqlite"))


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    """A fresh SQLite catalog file in this test's temp dir, closed afterwards."""
    opened = Catalog(catalog_url)
    yield opened
    opened.close()
