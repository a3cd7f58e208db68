"""Catalogs as older xmr versions left them, for migration tests."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection

__all__ = ["downgrade_to_1", "downgrade_to_4"]


def downgrade_to_4(url: str) -> None:
    """Make the catalog at ``url`` look as schema 4 left it: no ``images.kind`` (and its index)
    and no ``videos`` and ``moments`` tables (schema 5), and the schema row saying 4."""
    engine = create_engine(url)
    with engine.begin() as db:
        _drop_schema_5(db)
        db.execute(text("UPDATE meta SET value = '4' WHERE key = 'schema'"))
    engine.dispose()


def downgrade_to_1(url: str, floor: int | None = None) -> None:
    """Make the catalog at ``url`` look as schema 1 left it: no ``images.phash`` (schema 2), no
    OCR tables and no keyword index (schema 3), no ``images.dev``/``images.ino`` and one shared
    tombstone floor instead of one per corpus (schema 4, set to ``floor`` when given), no
    ``images.kind`` and no ``videos`` and ``moments`` tables (schema 5), and the schema row saying 1."""
    engine = create_engine(url)
    with engine.begin() as db:
        _drop_schema_5(db)
        if db.dialect.name == "sqlite":
            db.execute(text("DROP TABLE IF EXISTS keyword_fts"))  # its triggers go with keyword_docs
        for table in ("keyword_docs", "ocr_lines", "ocr_results"):
            db.execute(text(f"DROP TABLE IF EXISTS {table}"))
        for column in ("phash", "dev", "ino"):
            db.execute(text(f"ALTER TABLE images DROP COLUMN {column}"))
        db.execute(text("DELETE FROM meta WHERE key LIKE 'tombstone_floor.%'"))
        if floor is not None:
            db.execute(text(f"UPDATE meta SET value = '{int(floor)}' WHERE key = 'tombstone_floor'"))
        db.execute(text("UPDATE meta SET value = '1' WHERE key = 'schema'"))
    engine.dispose()


def _drop_schema_5(db: Connection) -> None:
    """Drop what schema 5 (videos) added."""
    for table in ("moments", "videos"):
        db.execute(text(f"DROP TABLE IF EXISTS {table}"))
    db.execute(text("DROP INDEX IF EXISTS ix_images_kind"))  # SQLite drops no indexed column
    db.execute(text("ALTER TABLE images DROP COLUMN kind"))
