"""Videos and their moments in the catalog: the writes of an index run, and the reads of a search.

A video file is a row of ``images`` (kind ``"video"``, no vector), so scanning, moving,
removing and filtering treat it like a photo; ``videos`` holds what its container says and
how far indexing got; ``moments`` holds its stretches, each with a vector of the image
index. Moment ids are taken from the images id sequence (:func:`allocate_ids`), so one id
space serves photos and moments, stays dense (the vector layer's filters use lookup tables)
and never reuses an id. Deleting a moment leaves an ``images`` tombstone like a photo's,
so the vector index follows with the same generation bookkeeping.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

from sqlalchemy import Table, delete, func, insert, select, text, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from index.keyword_docs import refresh_docs_for_paths
from index.records import FAILED, INDEXED, PARTIAL
from index.schema import IMAGES, VIDEO, ImageRow, MomentRow, Tombstone, VideoRow
from index.video_records import (
    AddMoments,
    CopyVideo,
    FailVideo,
    FinishVideo,
    MomentRecord,
    StartVideo,
    TouchVideo,
    VideoOp,
    VideoRecord,
)

__all__ = [
    "allocate_ids",
    "drop_moments",
    "forget_videos",
    "moment_records",
    "moment_vectors",
    "moments_of",
    "video_record",
    "write_video_ops",
]

_CHUNK = 500  # ids per IN (...) list
_ERROR_CHARS = 2000  # a failure's reason is cut to this many characters
_IMAGES = cast(Table, ImageRow.__table__)
_VIDEOS = cast(Table, VideoRow.__table__)
_MOMENTS = cast(Table, MomentRow.__table__)
_TOMBSTONES = cast(Table, Tombstone.__table__)
_NO_PHOTO_META = dict.fromkeys(("orientation", "camera", "description"))


def allocate_ids(session: Session, count: int) -> list[int]:
    """``count`` new vector ids from the images id sequence, inside the caller's write transaction.

    SQLite keeps an AUTOINCREMENT table's high-water mark in ``sqlite_sequence``; moving it
    reserves the ids (an images row inserted later gets a larger one). PostgreSQL hands out
    ``nextval`` of the column's sequence, which no other transaction gets again.
    """
    if count <= 0:
        return []
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        query = text("SELECT nextval(pg_get_serial_sequence('images', 'id')) FROM generate_series(1, :n)")
        return [int(i) for i in session.execute(query, {"n": count}).scalars()]
    if dialect != "sqlite":
        raise NotImplementedError(f"moments need SQLite or PostgreSQL as the catalog, not {dialect}")
    top = session.execute(text("SELECT seq FROM sqlite_sequence WHERE name = 'images'")).scalar()
    if top is None:  # no images row was ever inserted: start above anything present
        top = max(
            session.scalar(select(func.max(ImageRow.id))) or 0, session.scalar(select(func.max(MomentRow.id))) or 0
        )
        session.execute(text("INSERT INTO sqlite_sequence (name, seq) VALUES ('images', :seq)"), {"seq": top + count})
    else:
        session.execute(text("UPDATE sqlite_sequence SET seq = :seq WHERE name = 'images'"), {"seq": int(top) + count})
    return list(range(int(top) + 1, int(top) + count + 1))


def drop_moments(session: Session, video_ids: Iterable[int], gen: int) -> int:
    """Delete the moments of ``video_ids``, leaving an images tombstone for each; returns how many."""
    video_ids = [int(i) for i in video_ids]
    gone: list[int] = []
    for start in range(0, len(video_ids), _CHUNK):
        chunk = video_ids[start : start + _CHUNK]
        gone += session.scalars(select(_MOMENTS.c.id).where(_MOMENTS.c.video_id.in_(chunk)))
        session.execute(delete(_MOMENTS).where(_MOMENTS.c.video_id.in_(chunk)))
    if gone:
        session.execute(insert(_TOMBSTONES), [{"corpus": IMAGES, "vector_id": i, "gen": gen} for i in gone])
    return len(gone)


def forget_videos(session: Session, ids: Sequence[int], gen: int) -> None:
    """Drop the videos rows and moments of removed images rows (photos among them cost one query)."""
    if not ids:
        return
    drop_moments(session, ids, gen)
    for start in range(0, len(ids), _CHUNK):
        session.execute(delete(_VIDEOS).where(_VIDEOS.c.id.in_([int(i) for i in ids[start : start + _CHUNK]])))


def write_video_ops(session: Session, gen: int, ops: Sequence[VideoOp]) -> None:
    """Apply ``ops`` in order at generation ``gen`` (see :mod:`index.video_records`), then
    refresh the keyword documents of the videos they started, finished, copied or failed."""
    changed = [path for path in map(_doc_path, ops) if path is not None]
    for op in ops:
        if isinstance(op, StartVideo):
            _start(session, op, gen)
        elif isinstance(op, AddMoments):
            _add(session, op, gen)
        elif isinstance(op, FinishVideo):
            video_id = _row_id(session, op.path)
            session.execute(update(_IMAGES).where(_IMAGES.c.id == video_id).values(state=INDEXED))
            session.execute(update(_VIDEOS).where(_VIDEOS.c.id == video_id).values(done=op.done))
        elif isinstance(op, FailVideo):
            _fail(session, op, gen)
        elif isinstance(op, CopyVideo):
            _copy(session, op, gen)
        elif isinstance(op, TouchVideo):
            values = {"size": op.stat.size, "mtime_ns": op.stat.mtime_ns, **op.stat.stored_identity()}
            session.execute(update(_IMAGES).where(_IMAGES.c.path == op.stat.path).values(**values))
        else:  # pragma: no cover - a new op without a writer
            raise TypeError(f"unknown video write {op!r}")
    refresh_docs_for_paths(session, changed)


def _doc_path(op: VideoOp) -> str | None:
    """The video whose keyword document ``op`` changes (what it says, or whether it has one); None: none."""
    if isinstance(op, FinishVideo):
        return op.path
    if isinstance(op, (StartVideo, FailVideo, CopyVideo)):
        return op.stat.path
    return None


def _insert_file(session: Session, path: str, values: dict[str, object]) -> int:
    """Insert an images row for ``path``; its id."""
    result = cast(CursorResult, session.execute(insert(_IMAGES).values(path=path, captions_mtime_ns=0, **values)))
    return int(cast("tuple[int]", result.inserted_primary_key)[0])


def _write_file_row(session: Session, path: str, values: dict[str, object], gen: int) -> int:
    """Insert ``path``'s images row, or update it and forget the moments it had; its id."""
    found = session.scalar(select(_IMAGES.c.id).where(_IMAGES.c.path == path))
    if found is None:
        return _insert_file(session, path, values)
    session.execute(update(_IMAGES).where(_IMAGES.c.id == int(found)).values(**values))
    forget_videos(session, [int(found)], gen)
    return int(found)


def _row_id(session: Session, path: str) -> int:
    found = session.scalar(select(_IMAGES.c.id).where(_IMAGES.c.path == path))
    if found is None:
        raise ValueError(f"no catalog row for the video {path}; it must be started first")
    return int(found)


def _start(session: Session, op: StartVideo, gen: int) -> None:
    meta = op.meta
    values = {
        "size": op.stat.size,
        "mtime_ns": op.stat.mtime_ns,
        "content_hash": op.identity,
        "width": meta.width,
        "height": meta.height,
        "format": meta.format,
        "captured_at": meta.captured_at,
        **_NO_PHOTO_META,
        "state": PARTIAL,
        "error": None,
        "vector": None,
        "vector_gen": gen,
        "kind": VIDEO,
        **op.stat.stored_identity(),  # the file the identity was read from: /file serves only it
    }
    video_id = _write_file_row(session, op.stat.path, values, gen)
    video = {
        "duration": meta.duration,
        "codec": meta.codec[:32],
        "fps": meta.fps,
        "rotation": meta.rotation,
        "interval": op.interval,
        "done": 0.0,
    }
    session.execute(insert(_VIDEOS).values(id=video_id, **video))


def _add(session: Session, op: AddMoments, gen: int) -> None:
    video_id = _row_id(session, op.path)
    ids = allocate_ids(session, len(op.moments))
    if ids:
        rows = [
            {"id": i, "video_id": video_id, "start_s": m.start, "end_s": m.end, "vector": m.vector, "vector_gen": gen}
            for i, m in zip(ids, op.moments)
        ]
        session.execute(insert(_MOMENTS), rows)
    session.execute(update(_VIDEOS).where(_VIDEOS.c.id == video_id).values(done=op.done))


def _fail(session: Session, op: FailVideo, gen: int) -> None:
    values = {
        "size": op.stat.size,
        "mtime_ns": op.stat.mtime_ns,
        "content_hash": op.identity,
        "state": FAILED,
        "error": op.error[:_ERROR_CHARS],
        "vector": None,
        "vector_gen": gen,
        "kind": VIDEO,
        "dev": None,  # a failed file is never served
        "ino": None,
    }
    _write_file_row(session, op.stat.path, values, gen)


def _copy(session: Session, op: CopyVideo, gen: int) -> None:
    source = session.execute(select(_IMAGES).where(_IMAGES.c.id == op.source_id)).mappings().first()
    video = session.execute(select(_VIDEOS).where(_VIDEOS.c.id == op.source_id)).mappings().first()
    if source is None or video is None:
        raise ValueError(f"the video {op.source_id} to copy moments from is gone")
    keep = {k: source[k] for k in ("content_hash", "width", "height", "format", "captured_at", "kind")}
    values = {
        **keep,
        **_NO_PHOTO_META,
        "size": op.stat.size,
        "mtime_ns": op.stat.mtime_ns,
        **op.stat.stored_identity(),
        "state": INDEXED,
        "error": None,
        "vector": None,
        "vector_gen": gen,
    }
    video_id = _write_file_row(session, op.stat.path, values, gen)
    session.execute(insert(_VIDEOS).values(**{**dict(video), "id": video_id}))
    moments = (
        session.execute(select(_MOMENTS).where(_MOMENTS.c.video_id == op.source_id).order_by(_MOMENTS.c.id))
        .mappings()
        .all()
    )
    ids = allocate_ids(session, len(moments))
    if ids:
        rows = [{**dict(m), "id": i, "video_id": video_id, "vector_gen": gen} for i, m in zip(ids, moments)]
        session.execute(insert(_MOMENTS), rows)


# ---- reads ----------------------------------------------------------------------------


def moment_records(session: Session, ids: Sequence[int]) -> dict[int, MomentRecord]:
    """Moments among ``ids`` (other ids are left out)."""
    found: dict[int, MomentRecord] = {}
    columns = (_MOMENTS.c.id, _MOMENTS.c.video_id, _MOMENTS.c.start_s, _MOMENTS.c.end_s)
    for start in range(0, len(ids), _CHUNK):
        chunk = [int(i) for i in ids[start : start + _CHUNK]]
        for row in session.execute(select(*columns).where(_MOMENTS.c.id.in_(chunk))):
            found[row.id] = MomentRecord(row.id, row.video_id, row.start_s, row.end_s)
    return found


def moments_of(session: Session, video_id: int) -> list[MomentRecord]:
    """Every moment of a video, in time order."""
    columns = (_MOMENTS.c.id, _MOMENTS.c.video_id, _MOMENTS.c.start_s, _MOMENTS.c.end_s)
    query = select(*columns).where(_MOMENTS.c.video_id == video_id).order_by(_MOMENTS.c.start_s)
    return [MomentRecord(r.id, r.video_id, r.start_s, r.end_s) for r in session.execute(query)]


def video_record(session: Session, video_id: int) -> VideoRecord | None:
    """The ``videos`` row of a video file, or None."""
    row = session.execute(select(_VIDEOS).where(_VIDEOS.c.id == video_id)).first()
    if row is None:
        return None
    return VideoRecord(row.id, row.duration, row.codec, row.fps, row.rotation, row.interval, row.done)


def moment_vectors(session: Session, ids: Sequence[int]) -> dict[int, bytes]:
    """Vector bytes of the moments among ``ids``."""
    found: dict[int, bytes] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = [int(i) for i in ids[start : start + _CHUNK]]
        found.update(
            dict(session.execute(select(_MOMENTS.c.id, _MOMENTS.c.vector).where(_MOMENTS.c.id.in_(chunk))).all())
        )
    return found
