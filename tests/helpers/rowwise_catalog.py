"""The oracle of the bulk catalog writes: the same batch written row by row with ORM objects.

This is how ``Catalog.apply`` wrote a batch before the writes became bulk SQL (see
:mod:`index.catalog_writes`); it is kept here, slow and obvious, so tests can check that
both leave identical tables.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from index.catalog import SIDECAR, Catalog
from index.records import FAILED, INDEXED, Captions, Embedded, Failed, FileStat, Moved
from index.schema import IMAGES, TEXTS, ImageRow, TextRow, Tombstone


class RowwiseCatalog(Catalog):
    """A catalog whose ``apply`` writes one ORM object per row (the reference behaviour)."""

    def apply(
        self,
        embedded: Sequence[Embedded] = (),
        failed: Sequence[Failed] = (),
        moved: Sequence[Moved] = (),
        removed: Sequence[int] = (),
        touched: Sequence[FileStat] = (),
        captions: dict[str, Captions] | None = None,
        hashed: dict[str, int] | None = None,
    ) -> int:
        with Session(self.engine) as session, session.begin():
            gen = self._bump(session)
            for item in moved:
                clash = session.scalars(select(ImageRow).where(ImageRow.path == item.stat.path)).first()
                if clash is not None and clash.id != item.id:
                    raise ValueError(f"move target {item.stat.path} is still catalogued")
                session.execute(
                    update(ImageRow)
                    .where(ImageRow.id == item.id)
                    .values(path=item.stat.path, size=item.stat.size, mtime_ns=item.stat.mtime_ns)
                )
            rows = {}
            for item in (*embedded, *failed):
                rows[item.stat.path] = session.scalars(select(ImageRow).where(ImageRow.path == item.stat.path)).first()
            for item in embedded:
                _embed(session, rows[item.stat.path], item, gen)
            for item in failed:
                _fail(session, rows[item.stat.path], item, gen)
            for stat in touched:
                session.execute(
                    update(ImageRow).where(ImageRow.path == stat.path).values(size=stat.size, mtime_ns=stat.mtime_ns)
                )
            for path, value in (hashed or {}).items():
                session.execute(update(ImageRow).where(ImageRow.path == path).values(phash=value))
            _remove(session, IMAGES, removed, gen)
            for item in moved:
                if item.old_path:
                    session.execute(
                        update(TextRow)
                        .where(TextRow.source == SIDECAR + item.old_path)
                        .values(source=SIDECAR + item.stat.path, image_path=item.stat.path)
                    )
            for path, found in (captions or {}).items():
                source = SIDECAR + path
                _remove(session, TEXTS, list(session.scalars(select(TextRow.id).where(TextRow.source == source))), gen)
                session.add_all(
                    TextRow(body=b, source=source, image_path=path, vector=v, vector_gen=gen) for b, v in found.items
                )
                session.execute(update(ImageRow).where(ImageRow.path == path).values(captions_mtime_ns=found.mtime_ns))
            return gen


def _embed(session: Session, row: ImageRow | None, item: Embedded, gen: int) -> None:
    if row is None:
        row = ImageRow(path=item.stat.path)
        session.add(row)
    meta = item.meta
    row.size, row.mtime_ns, row.content_hash = item.stat.size, item.stat.mtime_ns, item.content_hash
    row.width, row.height, row.format = meta.width, meta.height, meta.format
    row.captured_at, row.orientation, row.camera, row.description, row.phash = (
        meta.captured_at,
        meta.orientation,
        meta.camera,
        meta.description,
        meta.phash,
    )
    row.state, row.error, row.vector, row.vector_gen = INDEXED, None, item.vector, gen


def _fail(session: Session, row: ImageRow | None, item: Failed, gen: int) -> None:
    if row is None:
        row = ImageRow(path=item.stat.path)
        session.add(row)
    elif row.vector is not None:
        session.flush()
        session.add(Tombstone(corpus=IMAGES, vector_id=row.id, gen=gen))
    row.size, row.mtime_ns, row.content_hash = item.stat.size, item.stat.mtime_ns, item.content_hash
    row.state, row.error, row.vector, row.vector_gen = FAILED, item.error[:2000], None, gen


def _remove(session: Session, corpus: str, ids: Sequence[int], gen: int) -> None:
    table = ImageRow if corpus == IMAGES else TextRow
    for i in ids:
        session.execute(delete(table).where(table.id == int(i)))
        session.add(Tombstone(corpus=corpus, vector_id=int(i), gen=gen))
        session.flush()
