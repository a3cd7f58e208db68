"""Catalogs as older xmr versions left them, for migration tests."""

from __future__ import annotations

from sqlalchemy import create_engine, text

__all__ = ["downgrade_to_1"]


def downgrade_to_1(url: str, floor: int | None = None) -> None:
    """Make the catalog at ``url`` look as schema 1 left it: no ``images.phash`` (schema 2), no
    OCR tables and no keyword index (schema 3), no ``images.dev``/``images.ino`` and one shared
    tombstone floor instead of one per corpus (schema 4, set to ``floor`` when given), and the
    schema row saying 1."""
    engine = create_engine(url)
    with engine.begin() as db:
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
