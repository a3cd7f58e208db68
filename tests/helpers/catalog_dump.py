"""Every row of a catalog read with plain SQL, for comparing two catalogs (SQLite or PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from index.catalog import Catalog

__all__ = ["dump"]


def dump(catalog: Catalog) -> dict[str, list]:
    """Every table's rows, read with plain SQL; tombstones as a sorted multiset (their seq
    order means nothing); the id counters (which must never hand out an id twice)."""
    engine = create_engine(catalog.url)
    with engine.connect() as db:

        def rows(sql: str) -> list[tuple]:
            return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in db.execute(text(sql))]

        out = {
            "images": rows("SELECT * FROM images ORDER BY id"),
            "texts": rows("SELECT * FROM texts ORDER BY id"),
            "tombstones": sorted(rows("SELECT corpus, vector_id, gen FROM tombstones")),
            "meta": rows("SELECT * FROM meta ORDER BY key"),
            "sequence": rows(
                "SELECT name, seq FROM sqlite_sequence ORDER BY name"
                if engine.dialect.name == "sqlite"
                else "SELECT sequencename, last_value FROM pg_sequences ORDER BY sequencename"
            ),
        }
    engine.dispose()
    return out
