"""Fixtures of the storage-layer tests: a catalog on SQLite and on PostgreSQL, seeded generators."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from index.catalog import Catalog, sqlite_url


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new catalog database: a SQLite file, and (where the machine has PostgreSQL) a server's."""
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    return sqlite_url(str(tmp_path / "catalog.sqlite"))


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    """A fresh catalog (each kind of database in turn), closed afterwards."""
    opened = Catalog(catalog_url)
    yield opened
    opened.close()
