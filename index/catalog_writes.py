"""The catalog's batch writes as bulk SQL (SQLAlchemy Core executemany, no ORM objects).

An index run writes thousands of rows a second; building an ORM object per row and
letting the unit of work insert them one statement at a time cost more CPU than
encoding the images on a GPU. Here every kind of change in a batch becomes one
``executemany`` (or one statement per 500 ids), inside the caller's transaction.

What a batch writes is exactly what writing it row by row would (tested against a
row-by-row oracle): the same ids in the same order (new rows are inserted embedded
first, then failed, in the order given), the same tombstones and the same texts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from index.keyword_docs import drop_docs, refresh_docs_for_paths
from index.moments import forget_videos
from index.records import FAILED, INDEXED, Captions, Embedded, Failed, FileStat, Moved
from index.schema import IMAGES, TEXTS, ImageRow, TextRow, Tombstone
from index.schema_names import SIDECAR

__all__ = ["SIDECAR", "insert_texts", "remove_rows", "write_batch"]

_CHUNK = 500  # ids or paths per IN (...) list: well under SQLite's bound-parameter limit
_ERROR_CHARS = 2000  # a failure's reason is cut to this many characters

# The mapped classes' ``__table__`` is typed as a plain FromClause; the metadata holds them as Tables.
_IMAGES = ImageRow.metadata.tables[ImageRow.__tablename__]
_TEXTS = TextRow.metadata.tables[TextRow.__tablename__]
_TOMBSTONES = Tombstone.metadata.tables[Tombstone.__tablename__]


def write_batch(
    session: Session,
    gen: int,
    embedded: Sequence[Embedded] = (),
    failed: Sequence[Failed] = (),
    moved: Sequence[Moved] = (),
    removed: Sequence[int] = (),
    touched: Sequence[FileStat] = (),
    captions: dict[str, Captions] | None = None,
    hashed: dict[str, int] | None = None,
) -> None:
    """Write one batch of indexing results at generation ``gen`` (see ``Catalog.apply``).

    Raises:
        ValueError: a move targets a path that another row still holds (nothing written;
            the caller's transaction rolls back).
    """
    _move(session, moved)
    existing = _existing(session, [e.stat.path for e in embedded] + [f.stat.path for f in failed])
    _upsert_embedded(session, embedded, existing, gen)
    _upsert_failed(session, failed, existing, gen)
    if touched:
        session.execute(
            update(_IMAGES).where(_IMAGES.c.path == bindparam("b_path")),
            [{"b_path": s.path, "size": s.size, "mtime_ns": s.mtime_ns, **s.stored_identity()} for s in touched],
        )
    if hashed:
        session.execute(
            update(_IMAGES).where(_IMAGES.c.path == bindparam("b_path")),
            [{"b_path": path, "phash": value} for path, value in hashed.items()],
        )
    remove_rows(session, IMAGES, removed, gen)
    forget_videos(session, removed, gen)  # a removed video's moments leave the index with it
    _move_captions(session, moved)
    _replace_captions(session, captions or {}, gen)
    # Keyword documents last: they are made from the rows written above.
    drop_docs(session, removed)
    changed = [*(e.stat.path for e in embedded), *(f.stat.path for f in failed), *(m.stat.path for m in moved)]
    changed += list(captions or {})
    refresh_docs_for_paths(session, changed, {e.stat.path: e.meta.tags() for e in embedded})


def insert_texts(session: Session, rows: Iterable[tuple[str, str, str | None, bytes]], gen: int) -> None:
    """Insert ``(body, source, image path, vector)`` texts in order (ids ascend with it)."""
    values = [
        {"body": body, "source": source, "image_path": image, "image_id": None, "vector": vector, "vector_gen": gen}
        for body, source, image, vector in rows
    ]
    if values:
        session.execute(insert(_TEXTS), values)


def remove_rows(session: Session, corpus: str, ids: Sequence[int], gen: int) -> None:
    """Delete rows ``ids`` of ``corpus`` and leave a tombstone for each at ``gen``."""
    table = _IMAGES if corpus == IMAGES else _TEXTS
    for start in range(0, len(ids), _CHUNK):
        chunk = [int(i) for i in ids[start : start + _CHUNK]]
        session.execute(delete(table).where(table.c.id.in_(chunk)))
    _tombstones(session, corpus, ids, gen)


def _tombstones(session: Session, corpus: str, ids: Iterable[int], gen: int) -> None:
    values = [{"corpus": corpus, "vector_id": int(i), "gen": gen} for i in ids]
    if values:
        session.execute(insert(_TOMBSTONES), values)


def _existing(session: Session, paths: list[str]) -> dict[str, tuple[int, bool]]:
    """``path -> (id, has a vector)`` of the rows that already hold ``paths``."""
    found: dict[str, tuple[int, bool]] = {}
    for start in range(0, len(paths), _CHUNK):
        query = select(_IMAGES.c.path, _IMAGES.c.id, _IMAGES.c.vector.is_not(None)).where(
            _IMAGES.c.path.in_(paths[start : start + _CHUNK])
        )
        found.update((path, (row_id, bool(has_vector))) for path, row_id, has_vector in session.execute(query))
    return found


def _upsert_embedded(
    session: Session, items: Sequence[Embedded], existing: dict[str, tuple[int, bool]], gen: int
) -> None:
    new, old = [], []
    for item in items:
        meta = item.meta
        values = {
            "size": item.stat.size,
            "mtime_ns": item.stat.mtime_ns,
            "content_hash": item.content_hash,
            "width": meta.width,
            "height": meta.height,
            "format": meta.format,
            "captured_at": meta.captured_at,
            "orientation": meta.orientation,
            "camera": meta.camera,
            "description": meta.description,
            "phash": meta.phash,
            "state": INDEXED,
            "error": None,
            "vector": item.vector,
            "vector_gen": gen,
            **item.stat.stored_identity(),
        }
        row = existing.get(item.stat.path)
        if row is None:
            new.append({"path": item.stat.path, "captions_mtime_ns": 0, **values})
        else:  # same path, same row and vector id; its captions_mtime_ns is kept
            old.append({"b_id": row[0], **values})
    if new:
        session.execute(insert(_IMAGES), new)
    if old:
        session.execute(update(_IMAGES).where(_IMAGES.c.id == bindparam("b_id")), old)


def _upsert_failed(session: Session, items: Sequence[Failed], existing: dict[str, tuple[int, bool]], gen: int) -> None:
    new, old, lost = [], [], []
    for item in items:
        values = {
            "size": item.stat.size,
            "mtime_ns": item.stat.mtime_ns,
            "content_hash": item.content_hash,
            "state": FAILED,
            "error": item.error[:_ERROR_CHARS],
            "vector": None,
            "vector_gen": gen,
            "dev": None,  # a failed file is never served
            "ino": None,
        }
        row = existing.get(item.stat.path)
        if row is None:
            empty = dict.fromkeys(
                ("width", "height", "format", "captured_at", "orientation", "camera", "description", "phash")
            )
            new.append({"path": item.stat.path, "captions_mtime_ns": 0, **empty, **values})
            continue
        old.append({"b_id": row[0], **values})  # its metadata stays: what the file was when it last read
        if row[1]:
            lost.append(row[0])  # its vector leaves the index
    if new:
        session.execute(insert(_IMAGES), new)
    if old:
        session.execute(update(_IMAGES).where(_IMAGES.c.id == bindparam("b_id")), old)
    _tombstones(session, IMAGES, lost, gen)


def _move(session: Session, moved: Sequence[Moved]) -> None:
    """Each moved row takes its new path, in order (a row may move onto a path vacated before it)."""
    if not moved:
        return
    targets = [m.stat.path for m in moved]
    ids = [m.id for m in moved]
    holders: dict[str, int] = {}  # path -> id of the rows involved, as the moves go
    for start in range(0, len(moved), _CHUNK):
        query = select(_IMAGES.c.path, _IMAGES.c.id).where(
            _IMAGES.c.path.in_(targets[start : start + _CHUNK]) | _IMAGES.c.id.in_(ids[start : start + _CHUNK])
        )
        holders.update({path: row_id for path, row_id in session.execute(query)})
    paths = {row_id: path for path, row_id in holders.items()}
    for item in moved:
        holder = holders.get(item.stat.path)
        if holder is not None and holder != item.id:  # a file moved onto a path that holds another row
            raise ValueError(f"move target {item.stat.path} is still catalogued")
        holders.pop(paths.get(item.id, ""), None)
        holders[item.stat.path], paths[item.id] = item.id, item.stat.path
    session.execute(
        update(_IMAGES).where(_IMAGES.c.id == bindparam("b_id")),
        [
            {
                "b_id": m.id,
                "path": m.stat.path,
                "size": m.stat.size,
                "mtime_ns": m.stat.mtime_ns,
                **m.stat.stored_identity(),
            }
            for m in moved
        ],
    )


def _move_captions(session: Session, moved: Sequence[Moved]) -> None:
    """Sidecar texts follow their image to its new path."""
    values = [
        {"b_source": SIDECAR + m.old_path, "source": SIDECAR + m.stat.path, "image_path": m.stat.path}
        for m in moved
        if m.old_path
    ]
    if values:
        session.execute(update(_TEXTS).where(_TEXTS.c.source == bindparam("b_source")), values)


def _replace_captions(session: Session, captions: dict[str, Captions], gen: int) -> None:
    """The sidecar texts of each path become ``captions[path]``; its images row notes the mtime."""
    if not captions:
        return
    sources = [SIDECAR + path for path in captions]
    old: list[int] = []
    for start in range(0, len(sources), _CHUNK):
        query = select(_TEXTS.c.id).where(_TEXTS.c.source.in_(sources[start : start + _CHUNK])).order_by(_TEXTS.c.id)
        old += session.scalars(query)
    remove_rows(session, TEXTS, old, gen)
    insert_texts(
        session,
        ((body, SIDECAR + path, path, vector) for path, found in captions.items() for body, vector in found.items),
        gen,
    )
    session.execute(
        update(_IMAGES).where(_IMAGES.c.path == bindparam("b_path")),
        [{"b_path": path, "captions_mtime_ns": found.mtime_ns} for path, found in captions.items()],
    )
