"""Old catalogs upgrade in place: schema 1 (no perceptual hashes, no keyword index, no videos)
opens at the newest schema with its rows intact."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from index.catalog import CATALOG_SCHEMA, Catalog, sqlite_url
from index.records import ImageMeta
from tests.helpers.catalog_dump import dump
from tests.helpers.old_catalogs import downgrade_to_1
from tests.helpers.oracles import embedded


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    return sqlite_url(str(tmp_path / "catalog.sqlite"))


def test_schema_1_catalog_upgrades_keeping_its_rows(url: str) -> None:
    catalog = Catalog(url)
    catalog.apply(embedded=[embedded("/p/a.jpg", [1, 0, 0, 0]), embedded("/p/b.jpg", [0, 1, 0, 0])])
    catalog.close()
    downgrade_to_1(url)
    before = dump(_Raw(url))  # type: ignore[arg-type]

    upgraded = Catalog(url)
    after = dump(upgraded)
    assert [row[:-2] for row in after["images"]] == before["images"]  # same rows, two more columns
    # phash (schema 2): unknown until read again; kind (schema 4): every older row is a photo
    assert [row[-2:] for row in after["images"]] == [(None, "image"), (None, "image")]
    assert dict(after["meta"])["schema"] == str(CATALOG_SCHEMA) == "4"
    assert upgraded.image_by_path("/p/a.jpg").phash is None
    assert upgraded.image_by_path("/p/a.jpg").kind == "image"  # type: ignore[union-attr]
    assert upgraded.counts()["videos"] == upgraded.counts()["moments"] == 0  # schema 4's tables are there
    upgraded.close()
    Catalog(url).close()  # opening again finds nothing left to do


def test_new_catalog_stores_the_hash(url: str) -> None:
    catalog = Catalog(url)
    item = embedded("/p/a.jpg", [1, 0, 0, 0])
    catalog.apply(embedded=[replace(item, meta=ImageMeta(8, 8, "JPEG", phash=2**62 + 5))])
    assert catalog.image_by_path("/p/a.jpg").phash == 2**62 + 5
    catalog.apply(hashed={"/p/a.jpg": 7})
    assert catalog.image_by_path("/p/a.jpg").phash == 7
    catalog.close()


class _Raw:
    """Just enough of a catalog for ``dump`` without opening (and so upgrading) it."""

    def __init__(self, url: str) -> None:
        self.url = url
