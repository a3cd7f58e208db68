"""A SQLite catalog opened for a command-line search's few reads, without importing SQLAlchemy.

Importing SQLAlchemy and mapping the catalog's tables costs ~0.3 s of a ~1.2 s search on a
2-core machine (benchmarks/README.md, "Opening a tower, and the search command after it").
A search of a library whose index is up to date reads little from its catalog: the schema
version and the generation counter on open, the rows of its hits, the keyword index's
phrase lookups and the texts behind the hits' documents (for ``match``), the text rows of
``--texts`` hits, the changes a vector snapshot has not seen yet, and for an image query
the row of that file and the frame sizes of the videos. :func:`open_catalog` with
``quick=True`` gives a :class:`QuickCatalog` for a SQLite catalog file: those reads run on
the standard library's ``sqlite3``, with the same SQL the full catalog's queries compile to. Anything else (a
write, a filter, a stale index, another schema version) and any of those reads that fails
goes to a full :class:`index.catalog.Catalog`, opened on first need, which behaves as it
always does (its errors name the fix, it migrates, it writes). Tests compare every read
with the full catalog's on the same file.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from index.records import IMAGE_COLUMNS, DocSources, ImageRecord, TextRecord, image_record
from index.schema_names import CATALOG_SCHEMA, IMAGES, SIDECAR, floor_key
from index.video_records import group_frames

if TYPE_CHECKING:
    from index.catalog import Catalog

__all__ = ["QuickCatalog", "open_catalog"]

log = logging.getLogger(__name__)

_CHUNK = 500
_SQLITE = "sqlite:///"
_T = TypeVar("_T")


def open_catalog(url: str, quick: bool = False) -> Catalog:
    """The catalog at ``url``: a :class:`QuickCatalog` when ``quick`` and it is a SQLite file
    at the current schema, else the full :class:`index.catalog.Catalog` (see the module docs).

    Raises:
        what :class:`index.catalog.Catalog` raises, when the full one is opened.
    """
    if quick and url.startswith(_SQLITE):
        quick_catalog = QuickCatalog.attempt(url)
        if quick_catalog is not None:
            return cast("Catalog", quick_catalog)  # it answers every Catalog call (see __getattr__)
    from index.catalog import Catalog

    return Catalog(url)


class QuickCatalog:
    """A catalog's reads on ``sqlite3``; every other attribute is the full catalog's."""

    read_only = False  # the full catalog says True only when a full disk forced it; this one never writes

    def __init__(self, url: str, connection: sqlite3.Connection) -> None:
        self.url = url
        self._connection = connection
        self._lock = threading.Lock()  # one statement at a time on the shared connection
        self._full: Catalog | None = None
        self._wanted = ""  # the last attribute asked of the full catalog (for the debug log)
        self.keywords = QuickKeywords(self)

    @classmethod
    def attempt(cls, url: str) -> QuickCatalog | None:
        """A quick catalog of the SQLite file of ``url``, or None: no such file, another schema
        version, or anything else unusual (the full catalog then says what)."""
        path = Path(url[len(_SQLITE) :])
        if not path.is_file():
            return None
        try:
            connection = sqlite3.connect(str(path), check_same_thread=False, timeout=30.0)
        except sqlite3.Error:
            return None
        try:
            connection.execute("PRAGMA busy_timeout=30000")
            row = connection.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is not None and int(row[0]) == CATALOG_SCHEMA:
                return cls(url, connection)
        except (sqlite3.Error, ValueError):
            pass
        connection.close()
        return None

    # ---- the full catalog, for everything else ------------------------------------------

    def full(self) -> Catalog:
        """The full catalog on the same database (opened on the first call)."""
        with self._lock:
            if self._full is None:
                from index.catalog import Catalog

                log.debug("opening the full catalog for a call the quick one does not make (%s)", self._wanted)
                self._full = Catalog(self.url)
            return self._full

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not set yet (a copy being made): never the full catalog's
            raise AttributeError(name)
        self._wanted = name
        return getattr(self.full(), name)

    def close(self) -> None:
        with self._lock:
            self._connection.close()
            full, self._full = self._full, None
        if full is not None:
            full.close()

    def _read(self, fast: Callable[[], _T], slow: Callable[[], _T]) -> _T:
        """``fast()`` under the lock; on any sqlite3 error or odd value, ``slow()`` (the full catalog's call)."""
        try:
            with self._lock:
                return fast()
        except (sqlite3.Error, TypeError, ValueError) as exc:  # (a missing or odd meta row: damage)
            log.debug("quick catalog read failed (%s); asking the full catalog", exc)
            return slow()

    def _rows(self, sql: str, values: Sequence[object]) -> list[tuple]:
        """Rows of ``sql`` holding one ``IN ({})`` for ``values``, chunked (call under the lock)."""
        rows: list[tuple] = []
        for start in range(0, len(values), _CHUNK):
            chunk = list(values[start : start + _CHUNK])
            marks = ", ".join("?" * len(chunk))
            rows += self._connection.execute(sql.format(marks), chunk).fetchall()
        return rows

    # ---- the reads ----------------------------------------------------------------------

    def generation(self) -> int:
        """The number of committed write transactions so far."""
        sql = "SELECT value FROM meta WHERE key = 'generation'"
        return self._read(lambda: int(self._connection.execute(sql).fetchone()[0]), lambda: self.full().generation())

    def images(self, ids: Sequence[int]) -> dict[int, ImageRecord]:
        """Rows for ``ids`` (missing ids are left out)."""
        wanted = [int(i) for i in ids]
        sql = f"SELECT {', '.join(IMAGE_COLUMNS)} FROM images WHERE id IN ({{}})"
        return self._read(
            lambda: {row[0]: image_record(row) for row in self._rows(sql, wanted)}, lambda: self.full().images(ids)
        )

    def vectors_for(self, ids: Sequence[int]) -> dict[int, bytes]:
        """Stored vector bytes of ``ids``, photos' and videos' moments' (rows without one are left out)."""
        wanted = [int(i) for i in ids]

        def fast() -> dict[int, bytes]:
            sql = "SELECT id, vector FROM images WHERE id IN ({}) AND vector IS NOT NULL"
            found = {row_id: blob for row_id, blob in self._rows(sql, wanted) if blob is not None}
            missing = [i for i in wanted if i not in found]
            if missing:  # a video's moments share the image index
                found.update(self._rows("SELECT id, vector FROM moments WHERE id IN ({})", missing))
            return found

        return self._read(fast, lambda: self.full().vectors_for(ids))

    # What a vector store reads to catch up with writes its snapshot has not seen (say a search
    # after add-texts, which saves the texts' snapshot only, so the images' is one generation behind).

    def tombstone_floor(self, corpus: str) -> int:
        """Tombstones of ``corpus`` at or below this generation were pruned."""
        sql = "SELECT value FROM meta WHERE key = ?"
        return self._read(
            lambda: int(self._connection.execute(sql, (floor_key(corpus),)).fetchone()[0]),
            lambda: self.full().tombstone_floor(corpus),
        )

    def deleted_since(self, corpus: str, gen: int) -> np.ndarray:
        """Vector ids deleted after ``gen``."""
        sql = "SELECT vector_id FROM tombstones WHERE corpus = ? AND gen > ?"

        def fast() -> np.ndarray:
            ids = {row[0] for row in self._connection.execute(sql, (corpus, int(gen)))}
            return np.asarray(sorted(ids), dtype=np.int64)

        return self._read(fast, lambda: self.full().deleted_since(corpus, gen))

    def vectors_since(self, corpus: str, gen: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """Ids and vectors ``(n,), (n, dim)`` of rows whose vector changed after ``gen`` (a damaged
        vector sends the whole read to the full catalog, which leaves it out and says so)."""
        tables = ("images", "moments") if corpus == IMAGES else ("texts",)

        def fast() -> tuple[np.ndarray, np.ndarray]:
            rows: list[tuple[int, bytes]] = []
            for table in tables:
                sql = f"SELECT id, vector FROM {table} WHERE vector_gen > ? AND vector IS NOT NULL ORDER BY id"
                rows += self._connection.execute(sql, (int(gen),)).fetchall()
            if any(len(blob) != 4 * dim for _, blob in rows):
                raise ValueError("a stored vector of another size")
            ids = np.asarray([i for i, _ in rows], dtype=np.int64)
            vectors = np.frombuffer(b"".join(blob for _, blob in rows), dtype="<f4").reshape(len(rows), dim)
            return ids, np.ascontiguousarray(vectors, dtype=np.float32)  # as the full catalog's: no copy

        return self._read(fast, lambda: self.full().vectors_since(corpus, gen, dim))

    def texts(self, ids: Sequence[int]) -> dict[int, TextRecord]:
        """Text rows for ``ids`` (missing ids are left out): the hits of ``xmr search --texts``."""
        wanted = [int(i) for i in ids]
        sql = "SELECT id, body, source, image_path FROM texts WHERE id IN ({})"
        return self._read(
            lambda: {row[0]: TextRecord(*row) for row in self._rows(sql, wanted)}, lambda: self.full().texts(ids)
        )

    def moment_frames(self) -> dict[tuple[int, int], np.ndarray]:
        """Sorted moment vector ids by the upright frame size ``(width, height)`` of their video."""
        sql = (
            "SELECT moments.id, images.width, images.height FROM moments JOIN images ON images.id = moments.video_id"
            " WHERE images.width > 0 AND images.height > 0"
        )
        return self._read(
            lambda: group_frames(self._connection.execute(sql).fetchall()), lambda: self.full().moment_frames()
        )

    def image_by_path(self, path: str) -> ImageRecord | None:
        sql = f"SELECT {', '.join(IMAGE_COLUMNS)} FROM images WHERE path = ?"

        def fast() -> ImageRecord | None:
            row = self._connection.execute(sql, (path,)).fetchone()
            return None if row is None else image_record(row)

        return self._read(fast, lambda: self.full().image_by_path(path))


class QuickKeywords:
    """The keyword index's reads a search makes (SQLite FTS5), else the full catalog's."""

    def __init__(self, catalog: QuickCatalog) -> None:
        self._catalog = catalog

    def __getattr__(self, name: str) -> Any:
        return getattr(self._catalog.full().keywords, name)

    def doc_count(self) -> int:
        """Images in the keyword index."""
        sql = "SELECT count(*) FROM keyword_docs"
        catalog = self._catalog
        return catalog._read(
            lambda: int(catalog._connection.execute(sql).fetchone()[0]),
            lambda: catalog.full().keywords.doc_count(),
        )

    def phrase_ids(self, phrase: Sequence[str], source: str | None = None) -> np.ndarray:
        """Sorted ids of the images whose ``source`` (any, when None) holds ``phrase``."""
        from index.keywords import db_token

        if not phrase:
            return np.zeros(0, np.int64)
        query = '"' + " ".join(db_token(t) for t in phrase) + '"'
        if source is not None:
            query = f"{source} : {query}"
        sql = "SELECT rowid AS image_id FROM keyword_fts WHERE keyword_fts MATCH ?"
        catalog = self._catalog

        def fast() -> np.ndarray:
            found = {row[0] for row in catalog._connection.execute(sql, (query,))}
            return np.array(sorted(found), dtype=np.int64)  # not np.unique: it imports numpy.ma (~20 ms)

        return catalog._read(fast, lambda: catalog.full().keywords.phrase_ids(phrase, source))

    def sources(self, ids: Sequence[int]) -> dict[int, DocSources]:
        """The raw texts behind the documents of ``ids`` (ids without one are left out)."""
        catalog = self._catalog
        wanted = [int(i) for i in ids]
        return catalog._read(lambda: _sources(catalog, wanted), lambda: catalog.full().keywords.sources(ids))


def _sources(catalog: QuickCatalog, ids: list[int]) -> dict[int, DocSources]:
    """What :func:`index.keyword_docs.read_sources` reads, on ``sqlite3`` (call under the lock)."""
    rows = catalog._rows("SELECT id, path, content_hash, description FROM images WHERE id IN ({})", ids)
    tags = dict(catalog._rows("SELECT image_id, tags_raw FROM keyword_docs WHERE image_id IN ({})", ids))
    rows = [r for r in rows if r[0] in tags]
    captions: dict[str, list[str]] = {}
    sidecars = [SIDECAR + r[1] for r in rows]
    for source, body in catalog._rows("SELECT source, body FROM texts WHERE source IN ({}) ORDER BY id", sidecars):
        captions.setdefault(source[len(SIDECAR) :], []).append(body)
    lines: dict[str, list[tuple[str, float, tuple[float, ...]]]] = {}
    hashes = sorted({r[2] for r in rows if r[2]})
    sql = "SELECT content_hash, text, confidence, box FROM ocr_lines WHERE content_hash IN ({}) ORDER BY content_hash, line"
    for content_hash, body, score, box in catalog._rows(sql, hashes):
        lines.setdefault(content_hash, []).append((body, float(score), tuple(float(v) for v in box.split(","))))
    return {
        image_id: DocSources(
            path=path,
            content_hash=content_hash,
            captions=tuple([*captions.get(path, ()), *([description] if description else [])]),
            tags=tuple(t for t in tags[image_id].splitlines() if t),
            ocr=tuple(lines.get(content_hash, ())),
        )
        for image_id, path, content_hash, description in rows
    }
