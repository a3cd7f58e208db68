"""Writing the keyword documents and the text read from photos, inside the caller's transaction.

An image's document is made from what the catalog holds in that same transaction: its
path (file and folder names), its sidecar captions and embedded description, its title
and keywords, and the OCR lines of its content hash. A video file's row gets one too
(its names and sidecar captions: OCR reads photos only), keyed like a photo's by its
``images`` id, not by its moments' vector ids. So whichever writer commits last
(a batch of new images, or the OCR results of their bytes) leaves the right document,
and moves and copies keep the text read from their bytes without reading it again.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from typing import cast

from sqlalchemy import Row, Table, delete, insert, select
from sqlalchemy.orm import Session

from index.keywords import NAME_FOLDERS, folder_words, index_text, name_words
from index.records import INDEXED, PARTIAL, DocSources, OcrRecord
from index.schema import ImageRow, KeywordDocRow, OcrLineRow, OcrResultRow, TextRow
from index.schema_names import SIDECAR

__all__ = [
    "NAME_FOLDERS",
    "DocSources",
    "OcrRecord",
    "drop_docs",
    "name_words",
    "ocr_read",
    "prune_ocr",
    "read_sources",
    "refresh_docs",
    "refresh_docs_for_paths",
    "write_ocr",
]

_CHUNK = 500

_IMAGES = cast(Table, ImageRow.__table__)
_DOCS = cast(Table, KeywordDocRow.__table__)
_LINES = cast(Table, OcrLineRow.__table__)
_RESULTS = cast(Table, OcrResultRow.__table__)
_TEXTS = cast(Table, TextRow.__table__)


def _names_text(path: str) -> str:
    """:func:`index_text` of :func:`name_words` (the folders' part made once per folder)."""
    folder, _, name = path.rpartition("/")
    return " ".join(t for t in (index_text([os.path.splitext(name)[0]]), _folders_text(folder)) if t)


@functools.lru_cache(maxsize=4096)
def _folders_text(folder: str) -> str:
    return index_text(folder_words(folder))


def _chunks(items: Sequence, size: int = _CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def drop_docs(session: Session, ids: Sequence[int]) -> None:
    """Delete the documents of ``ids`` (their index entries go with them)."""
    for chunk in _chunks([int(i) for i in ids]):
        session.execute(delete(_DOCS).where(_DOCS.c.image_id.in_(chunk)))


def refresh_docs(session: Session, ids: Sequence[int], tags: dict[int, list[str]] | None = None) -> None:
    """Rewrite the documents of images ``ids`` from the catalog as it is in this transaction.

    ``tags`` gives new titles and keywords (from a fresh read of the file); images not in it
    keep the ones their document had. Rows that are not indexed lose their document; a video
    whose moments are still being written (partial) has one, as its moments are searchable.
    """
    ids = sorted({int(i) for i in ids})
    if not ids:
        return
    rows: list[Row] = []
    kept: dict[int, str] = {}
    for chunk in _chunks(ids):
        rows += session.execute(
            select(_IMAGES.c.id, _IMAGES.c.path, _IMAGES.c.content_hash, _IMAGES.c.description, _IMAGES.c.state).where(
                _IMAGES.c.id.in_(chunk)
            )
        ).all()
        kept.update(
            session.execute(select(_DOCS.c.image_id, _DOCS.c.tags_raw).where(_DOCS.c.image_id.in_(chunk))).all()
        )
    indexed = [r for r in rows if r.state in (INDEXED, PARTIAL)]
    captions = _sidecar_captions(session, [r.path for r in indexed])
    ocr = _ocr_texts(session, [r.content_hash for r in indexed])
    drop_docs(session, ids)
    values = []
    for row in indexed:
        written = (tags or {}).get(row.id)
        raw = "\n".join(written) if written is not None else kept.get(row.id, "")
        texts = [*captions.get(row.path, ()), *([row.description] if row.description else [])]
        values.append(
            {
                "image_id": row.id,
                "names": _names_text(row.path),
                "captions": index_text(texts),
                "tags": index_text(raw.splitlines()),
                "ocr": index_text(ocr.get(row.content_hash, ())),
                "tags_raw": raw,
            }
        )
    if values:
        session.execute(insert(_DOCS), values)


def refresh_docs_for_paths(session: Session, paths: Sequence[str], tags: dict[str, list[str]] | None = None) -> None:
    """:func:`refresh_docs` for the rows at ``paths`` (``tags`` by path)."""
    by_path: dict[str, int] = {}
    for chunk in _chunks(list(paths)):
        by_path.update(session.execute(select(_IMAGES.c.path, _IMAGES.c.id).where(_IMAGES.c.path.in_(chunk))).all())
    refresh_docs(session, list(by_path.values()), {by_path[p]: t for p, t in (tags or {}).items() if p in by_path})


def write_ocr(session: Session, records: Sequence[OcrRecord]) -> None:
    """Store what was read from each content hash (replacing an earlier reading) and refresh
    the documents of the images with those bytes."""
    hashes = [r.content_hash for r in records]
    for chunk in _chunks(hashes):
        session.execute(delete(_LINES).where(_LINES.c.content_hash.in_(chunk)))
        session.execute(delete(_RESULTS).where(_RESULTS.c.content_hash.in_(chunk)))
    session.execute(
        insert(_RESULTS),
        [
            {"content_hash": r.content_hash, "engine": r.engine[:128], "lines": len(r.lines), "error": r.error}
            for r in records
        ],
    )
    lines = [
        {
            "content_hash": r.content_hash,
            "line": n,
            "text": body,
            "confidence": float(score),
            "box": ",".join(f"{v:.5f}" for v in box),
        }
        for r in records
        for n, (body, score, box) in enumerate(r.lines)
    ]
    if lines:
        session.execute(insert(_LINES), lines)
    ids: list[int] = []
    for chunk in _chunks(hashes):
        ids += session.scalars(
            select(_IMAGES.c.id).where(_IMAGES.c.content_hash.in_(chunk), _IMAGES.c.state == INDEXED)
        )
    refresh_docs(session, ids)


def _sidecar_captions(session: Session, paths: Sequence[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for chunk in _chunks([SIDECAR + p for p in paths]):
        query = select(_TEXTS.c.source, _TEXTS.c.body).where(_TEXTS.c.source.in_(chunk)).order_by(_TEXTS.c.id)
        for source, body in session.execute(query):
            found.setdefault(source[len(SIDECAR) :], []).append(body)
    return found


def _ocr_texts(session: Session, hashes: Sequence[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for chunk in _chunks(sorted({h for h in hashes if h})):
        query = (
            select(_LINES.c.content_hash, _LINES.c.text)
            .where(_LINES.c.content_hash.in_(chunk))
            .order_by(_LINES.c.content_hash, _LINES.c.line)
        )
        for content_hash, body in session.execute(query):
            found.setdefault(content_hash, []).append(body)
    return found


def read_sources(session: Session, ids: Sequence[int]) -> dict[int, DocSources]:
    """The raw texts behind the documents of ``ids`` (see :class:`DocSources`)."""
    rows: list[Row] = []
    tags: dict[int, str] = {}
    for chunk in _chunks(list(ids)):
        rows += session.execute(
            select(_IMAGES.c.id, _IMAGES.c.path, _IMAGES.c.content_hash, _IMAGES.c.description).where(
                _IMAGES.c.id.in_(chunk)
            )
        ).all()
        tags.update(
            session.execute(select(_DOCS.c.image_id, _DOCS.c.tags_raw).where(_DOCS.c.image_id.in_(chunk))).all()
        )
    rows = [r for r in rows if r.id in tags]
    captions = _sidecar_captions(session, [r.path for r in rows])
    lines: dict[str, list[tuple[str, float, tuple[float, ...]]]] = {}
    for chunk in _chunks(sorted({r.content_hash for r in rows if r.content_hash})):
        query = (
            select(_LINES.c.content_hash, _LINES.c.text, _LINES.c.confidence, _LINES.c.box)
            .where(_LINES.c.content_hash.in_(chunk))
            .order_by(_LINES.c.content_hash, _LINES.c.line)
        )
        for content_hash, body, score, box in session.execute(query):
            lines.setdefault(content_hash, []).append((body, float(score), tuple(float(v) for v in box.split(","))))
    return {
        r.id: DocSources(
            path=r.path,
            content_hash=r.content_hash,
            captions=tuple([*captions.get(r.path, ()), *([r.description] if r.description else [])]),
            tags=tuple(t for t in tags[r.id].splitlines() if t),
            ocr=tuple(lines.get(r.content_hash, ())),
        )
        for r in rows
    }


def ocr_read(session: Session, hashes: Iterable[str], with_errors: bool = True) -> set[str]:
    """Which of ``hashes`` have been read (``with_errors``: also those that failed)."""
    wanted = sorted({h for h in hashes if h})
    found: set[str] = set()
    for chunk in _chunks(wanted):
        query = select(_RESULTS.c.content_hash).where(_RESULTS.c.content_hash.in_(chunk))
        if not with_errors:
            query = query.where(_RESULTS.c.error.is_(None))
        found.update(session.scalars(query))
    return found


def prune_ocr(session: Session) -> int:
    """Forget text read from bytes no catalogued image has any more (edited or deleted files)."""
    orphans = list(
        session.scalars(
            select(_RESULTS.c.content_hash).where(_RESULTS.c.content_hash.not_in(select(_IMAGES.c.content_hash)))
        )
    )
    for chunk in _chunks(orphans):
        session.execute(delete(_LINES).where(_LINES.c.content_hash.in_(chunk)))
        session.execute(delete(_RESULTS).where(_RESULTS.c.content_hash.in_(chunk)))
    return len(orphans)
