"""Numbered steps that bring an older catalog up to :data:`index.schema.CATALOG_SCHEMA`.

Step ``n`` takes a catalog at schema ``n - 1`` to ``n``. Steps run inside the transaction
that then records the new version, so a catalog is never left half-migrated; new tables
are made before by ``create_all`` (which never alters a table that exists).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.orm import Session

__all__ = ["MIGRATIONS", "migrate"]


def _videos(session: Session) -> None:
    """2 (issue 19): videos. Every existing row is a photo: images.kind is added as "image"."""
    session.execute(text("ALTER TABLE images ADD COLUMN kind VARCHAR(8) NOT NULL DEFAULT 'image'"))
    session.execute(text("CREATE INDEX IF NOT EXISTS ix_images_kind ON images (kind)"))


MIGRATIONS: dict[int, Callable[[Session], None]] = {2: _videos}


def migrate(session: Session, version: int, target: int) -> None:
    """Run the steps after ``version`` up to ``target`` in ``session``'s transaction."""
    for step in range(version + 1, target + 1):
        MIGRATIONS[step](session)
