"""Catalogs as older xmr versions left them, for migration tests."""

from __future__ import annotations

from sqlalchemy import create_engine, text

__all__ = ["downgrade_to_1"]


def downgrade_to_1(url: str) -> None:
    """Make the catalog at ``url`` look as schema 1 left it: no ``images.phash`` (schema 2), no
    OCR tables and no keyword index (schema 3), no ``images.kind`` (and its index) and no
    ``videos`` and ``moments`` tables (schema 4), and the schema row saying 1."""
    engine = create_engine(url)
    with engine.begin() as db:
        if db.dialect.name == "sqlite":
            db.execute(text("DROP TABLE IF EXISTS keyword_fts"))  # its triggers go with keyword_docs
        for table in ("keyword_docs", "ocr_lines", "ocr_results", "moments", "videos"):
            db.execute(text(f"DROP TABLE IF EXISTS {table}"))
        db.execute(text("DROP INDEX IF EXISTS ix_images_kind"))  # SQLite drops no indexed column
        db.execute(text("ALTER TABLE images DROP COLUMN kind"))
        db.execute(text("ALTER TABLE images DROP COLUMN phash"))
        db.execute(text("UPDATE meta SET value = '1' WHERE key = 'schema'"))
    engine.dispose()
