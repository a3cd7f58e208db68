"""Numbered catalog migrations: each brings a catalog from schema N-1 to N, in one transaction.

A catalog records its schema in ``meta``; :func:`upgrade` runs the steps it lacks, under
a write lock on that row (two processes opening an old catalog at once migrate it once).
A new catalog is made at the newest schema directly (:func:`create_extras`).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import inspect, select, text, update
from sqlalchemy.orm import Session

from index.keyword_docs import refresh_docs
from index.keyword_index import create_keyword_index
from index.records import INDEXED
from index.schema import CATALOG_SCHEMA, IMAGES, TEXTS, ImageRow, Meta
from index.schema_names import floor_key

__all__ = ["MIGRATIONS", "create_extras", "upgrade"]

_BACKFILL_CHUNK = 2000  # images per document batch when an existing catalog gets its keyword index


def _to_2(session: Session) -> None:
    """2: ``images.phash``, each image's perceptual hash, for ``xmr duplicates``. Rows of an
    older catalog get NULL; the next index run reads those files once to fill it in (their
    vectors are kept: their bytes did not change)."""
    columns = {c["name"] for c in inspect(session.connection()).get_columns("images")}
    if "phash" not in columns:  # create_all made it already when the table was new
        session.execute(text("ALTER TABLE images ADD COLUMN phash BIGINT"))


def _to_3(session: Session) -> None:
    """3: the keyword index. The OCR and document tables were made by create_all; here the
    full-text index is added and every indexed image gets its document (names, captions,
    description; titles, keywords and OCR text come with later runs that read the files)."""
    create_keyword_index(session.connection())
    last = 0
    while True:
        ids = list(
            session.scalars(
                select(ImageRow.id)
                .where(ImageRow.id > last, ImageRow.state == INDEXED)
                .order_by(ImageRow.id)
                .limit(_BACKFILL_CHUNK)
            )
        )
        if not ids:
            return
        refresh_docs(session, ids)
        last = ids[-1]


def create_extras(session: Session) -> None:
    """What a new catalog needs beyond its tables (the dialect's full-text index)."""
    create_keyword_index(session.connection())


def _to_4(session: Session) -> None:
    """4 (issue 23): ``images.dev`` and ``images.ino`` record which file was indexed, so /file
    never serves a link or another file swapped in with a forged size and mtime; old rows get
    NULL (unknown: not served until the next index run hashes them again and fills them in).
    Tombstones get a floor per corpus: one shared floor made ``add-texts`` push every image
    snapshot behind it, and each open then rebuilt the image index from the catalog."""
    columns = {c["name"] for c in inspect(session.connection()).get_columns("images")}
    for name in ("dev", "ino"):
        if name not in columns:  # create_all made them already when the table was new
            session.execute(text(f"ALTER TABLE images ADD COLUMN {name} BIGINT"))
    shared = session.scalar(select(Meta.value).where(Meta.key == "tombstone_floor")) or "0"
    for corpus in (IMAGES, TEXTS):
        if session.get(Meta, floor_key(corpus)) is None:
            session.add(Meta(key=floor_key(corpus), value=shared))


def _to_5(session: Session) -> None:
    """5 (issue 19): videos. ``images.kind`` tells a photo's row from a video file's, whose
    vectors are its moments'. Every row of an older catalog is a photo, so the column is
    added with ``"image"`` as its default; the ``videos`` and ``moments`` tables were made by
    create_all (empty: nothing older knew videos)."""
    columns = {c["name"] for c in inspect(session.connection()).get_columns("images")}
    if "kind" not in columns:  # create_all made it already when the table was new
        session.execute(text("ALTER TABLE images ADD COLUMN kind VARCHAR(8) NOT NULL DEFAULT 'image'"))
    session.execute(text("CREATE INDEX IF NOT EXISTS ix_images_kind ON images (kind)"))


MIGRATIONS: dict[int, Callable[[Session], None]] = {
    2: _to_2,
    3: _to_3,
    4: _to_4,
    5: _to_5,
}  # schema reached -> the step that reaches it


def upgrade(session: Session) -> int:
    """Run the missing migrations in the caller's transaction; return the schema it had.

    The ``schema`` row is locked first (an UPDATE: SQLite takes its write lock, PostgreSQL
    locks the row), so a second process waits here and then finds nothing left to do. The
    UPDATE also opens the SQLite transaction: Python's sqlite3 would run DDL before the
    first write outside of one.
    """
    session.execute(update(Meta).where(Meta.key == "schema").values(value=Meta.value))
    found = int(session.scalar(select(Meta.value).where(Meta.key == "schema")) or CATALOG_SCHEMA)
    for version in range(found + 1, CATALOG_SCHEMA + 1):
        MIGRATIONS[version](session)
    if found < CATALOG_SCHEMA:
        session.execute(update(Meta).where(Meta.key == "schema").values(value=str(CATALOG_SCHEMA)))
    return found
