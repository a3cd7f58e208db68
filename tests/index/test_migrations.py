"""Old catalogs upgrade in place: schema 1 (no perceptual hashes, no file identities, one tombstone
floor, no videos) and schema 4 (no videos) open at the current schema with their rows intact,
once, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, inspect, text

from index.catalog import CATALOG_SCHEMA, IMAGES, TEXTS, Catalog, sqlite_url
from index.records import Embedded, FileStat, ImageMeta
from index.schema_names import floor_key
from tests.helpers.catalog_dump import dump
from tests.helpers.old_catalogs import downgrade_to_1, downgrade_to_4
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
    new = 4  # columns added since schema 1, at the end: phash (2), dev and ino (4), kind (5)
    assert [row[:-new] for row in after["images"]] == before["images"]  # same rows, the new columns
    # phash, dev, ino: unknown until read again; kind: every older row is a photo
    assert [row[-new:] for row in after["images"]] == [(None, None, None, "image")] * 2
    assert dict(after["meta"])["schema"] == str(CATALOG_SCHEMA) == "5"
    assert upgraded.image_by_path("/p/a.jpg").phash is None
    assert upgraded.image_by_path("/p/a.jpg").kind == "image"  # type: ignore[union-attr]
    assert upgraded.counts()["videos"] == upgraded.counts()["moments"] == 0  # schema 5's tables are there
    upgraded.close()
    Catalog(url).close()  # opening again finds nothing left to do


def test_schema_4_catalog_gets_videos_keeping_its_rows_and_identities(url: str) -> None:
    catalog = Catalog(url)
    stat = FileStat("/p/a.jpg", 10, 100, 7, 2**64 - 5)  # an identity that needs all 64 bits
    catalog.apply(embedded=[Embedded(stat, "h", ImageMeta(4, 4, "JPEG"), np.eye(4, dtype="<f4")[0].tobytes())])
    catalog.prune_tombstones(IMAGES, 1)
    catalog.close()
    downgrade_to_4(url)
    before = dump(_Raw(url))  # type: ignore[arg-type]

    upgraded = Catalog(url)
    after = dump(upgraded)
    assert [row[:-1] for row in after["images"]] == before["images"]  # same rows, kind at the end
    assert [row[-1] for row in after["images"]] == ["image"]
    assert dict(after["meta"]) == {**dict(before["meta"]), "schema": str(CATALOG_SCHEMA)}  # floors kept
    row = upgraded.image_by_path("/p/a.jpg")
    assert row is not None and (row.kind, row.dev, row.ino) == ("image", 7, 2**64 - 5)
    assert upgraded.tombstone_floor(IMAGES) == 1 and upgraded.tombstone_floor(TEXTS) == 0
    assert upgraded.counts()["videos"] == upgraded.counts()["moments"] == 0
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


# ---- 4: file identities and a tombstone floor per corpus (issue 23) ----------------------

DIM = 8


def _schema_1(url: str) -> None:
    """A catalog as schema 1 left it: no images.dev/ino, one shared tombstone floor (at 2)."""
    catalog = Catalog(url)
    vectors = np.eye(DIM, dtype="<f4")[:3]
    catalog.apply(
        embedded=[
            Embedded(
                FileStat(f"/lib/{i}.jpg", 10 + i, 100 + i, 1, 1000 + i), f"h{i}", ImageMeta(4, 4, "JPEG"), v.tobytes()
            )
            for i, v in enumerate(vectors)
        ]
    )
    catalog.add_texts("/t.txt", [("a cat", None, vectors[0].tobytes())])
    catalog.close()
    downgrade_to_1(url, floor=2)


def _sql(url: str, *statements: str) -> list:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            results = [connection.execute(text(s)) for s in statements]
            return [r.all() if s.startswith("SELECT") else None for s, r in zip(statements, results)]
    finally:
        engine.dispose()


def test_schema_1_gets_file_identity_columns_and_a_floor_per_corpus(catalog_url: str) -> None:
    _schema_1(catalog_url)
    catalog = Catalog(catalog_url)
    try:
        rows = catalog.files_under(["/lib"])
        assert sorted(rows) == ["/lib/0.jpg", "/lib/1.jpg", "/lib/2.jpg"]
        assert all(r.dev is None and r.ino is None for r in rows.values())  # unknown: not served until checked
        assert [r.size for r in sorted(rows.values(), key=lambda r: r.id)] == [10, 11, 12]
        assert catalog.tombstone_floor(IMAGES) == catalog.tombstone_floor(TEXTS) == 2
        assert catalog.vectors_since(IMAGES, -1, DIM)[0].tolist() == sorted(r.id for r in rows.values())
        assert catalog.text_sources() == {"/t.txt": 1}
        catalog.apply(touched=[FileStat("/lib/1.jpg", 11, 101, 5, 2**64 - 3)])  # identities round-trip, unsigned
        row = catalog.image_by_path("/lib/1.jpg")
        assert row is not None and (row.dev, row.ino) == (5, 2**64 - 3)
    finally:
        catalog.close()
    schema, floor = _sql(
        catalog_url,
        "SELECT value FROM meta WHERE key = 'schema'",
        f"SELECT value FROM meta WHERE key = '{floor_key(IMAGES)}'",
    )
    assert schema == [(str(CATALOG_SCHEMA),)] and floor == [("2",)]


def test_two_processes_opening_an_old_catalog_migrate_it_once(catalog_url: str) -> None:
    _schema_1(catalog_url)
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            Catalog(catalog_url).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    catalog = Catalog(catalog_url)
    try:
        columns = [c["name"] for c in inspect(catalog.engine).get_columns("images")]
        assert columns.count("dev") == 1 and columns.count("ino") == 1 and columns.count("kind") == 1
        assert catalog.tombstone_floor(IMAGES) == catalog.tombstone_floor(TEXTS) == 2
    finally:
        catalog.close()
