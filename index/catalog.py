"""The catalog: what each vector is (SQLAlchemy 2.0 typed ORM; SQLite by default).

Every write happens in one transaction that also bumps a generation counter, and every
row whose vector changed records the generation that changed it; deletions leave a
tombstone with their generation. A vector index snapshot that remembers the generation
it was built at can therefore be brought up to date with exactly the changes since
(see :mod:`index.store`), which keeps catalog and index in agreement across crashes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np
from sqlalchemy import and_, create_engine, delete, event, func, or_, select
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    IntegrityError,
    InternalError,
    NoSuchModuleError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, defer

from index.catalog_writes import SIDECAR, insert_texts, remove_rows, write_batch
from index.errors import (
    CatalogUnavailableError,
    CorruptFileError,
    LibraryVersionError,
    MissingDependencyError,
    XmrError,
)
from index.files import disk_full_error, free_bytes, is_disk_full
from index.keyword_docs import OcrRecord, ocr_read, prune_ocr, write_ocr
from index.keyword_index import KeywordIndex, phrase_ids_clause
from index.keywords import tokens
from index.layout import sqlite_url
from index.migrations import create_extras, upgrade
from index.moments import moment_records, moment_vectors, moments_of, video_record, write_video_ops
from index.records import (
    FAILED,
    IMAGE_COLUMNS,
    INDEXED,
    PARTIAL,
    PHOTOS,
    VIDEOS,
    Captions,
    Embedded,
    Failed,
    FileStat,
    ImageFilter,
    ImageRecord,
    Moved,
    TextRecord,
    image_record,
)
from index.schema import (
    CATALOG_SCHEMA,
    IMAGE,
    IMAGES,
    TEXTS,
    VIDEO,
    Base,
    ImageRow,
    Meta,
    MomentRow,
    TextRow,
    Tombstone,
)
from index.schema_names import floor_key
from index.video_records import MomentRecord, VideoOp, VideoRecord, group_frames

__all__ = ["CATALOG_SCHEMA", "IMAGES", "SIDECAR", "TEXTS", "Catalog", "same_database", "shown_url", "sqlite_url"]

log = logging.getLogger(__name__)


def shown_url(url: str) -> str:
    """``url`` with its password masked (for messages and ``xmr info``)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # not a URL: nothing to mask
        return url


def same_database(a: str, b: str) -> bool:
    """Whether two catalog URLs name the same database (the password and driver may differ)."""
    try:
        first, second = make_url(a), make_url(b)
    except ArgumentError:
        return a == b

    def key(url: URL) -> tuple:
        return (url.get_backend_name(), url.username, url.host, url.port, url.database, sorted(url.query.items()))

    return key(first) == key(second)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 (DBAPI objects)
    cursor = dbapi_connection.cursor()
    # WAL lets searches read while an index run writes; NORMAL is crash-safe under WAL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _to_record(row: ImageRow) -> ImageRecord:
    return image_record([getattr(row, name) for name in IMAGE_COLUMNS])


def _time_condition(bound: datetime, newer: bool):  # noqa: ANN202 (SQL expression)
    """Capture time against ``bound``; rows without one use their modification time."""
    # Naive datetimes are local time, like EXIF; clamp to what a 64-bit column holds.
    bound_ns = max(-(2**63), min(2**63 - 1, int(bound.timestamp() * 1e9)))
    if newer:
        return or_(ImageRow.captured_at >= bound, and_(ImageRow.captured_at.is_(None), ImageRow.mtime_ns >= bound_ns))
    return or_(ImageRow.captured_at < bound, and_(ImageRow.captured_at.is_(None), ImageRow.mtime_ns < bound_ns))


def _filter_conditions(where: ImageFilter, dialect: str) -> list:
    """SQL conditions on images rows for ``where``'s folders, extensions, dates and texts."""
    conditions = []
    prefixes = tuple(root.rstrip("/") + "/" for root in where.under)
    if prefixes:
        # A range on the indexed path column ("/a/b/" <= path < "/a/b0") uses the index
        # and compares bytes, where LIKE would scan every row and ignore case.
        conditions.append(
            or_(*(and_(ImageRow.path >= p, ImageRow.path < p[:-1] + chr(ord(p[-1]) + 1)) for p in prefixes))
        )
    if where.extensions:
        conditions.append(
            or_(*(func.lower(ImageRow.path).endswith(e.lower(), autoescape=True) for e in where.extensions))
        )
    for bound, newer in ((where.after, True), (where.before, False)):
        if bound is not None:
            conditions.append(_time_condition(bound, newer))
    for number, words in enumerate(where.contains):  # all its words, in a row, in one of the file's texts
        conditions.append(ImageRow.id.in_(phrase_ids_clause(dialect, tokens(words), name=f"contains{number}")))
    return conditions


class Catalog:
    """The catalog database. Thread-safe: each call opens its own short session."""

    def __init__(self, url: str) -> None:
        """Open (and create if needed) the catalog at a SQLAlchemy ``url``.

        Raises:
            CorruptFileError: the SQLite file cannot be opened or is not an xmr catalog.
            CatalogUnavailableError: the database server cannot be reached, or refuses.
            MissingDependencyError: the URL's database driver is not installed.
            LibraryVersionError: the catalog was written by a newer xmr.
        """
        self.url = url
        # One write transaction at a time per process: an index run writes from its commit
        # thread and its OCR thread, and a document is made from what the other committed.
        self._write_lock = threading.Lock()
        self.read_only = False  # True when a full disk left only a read-only open (see _open_read_only)
        try:
            self.engine: Engine = create_engine(url, pool_pre_ping=True)
        except NoSuchModuleError as exc:
            raise CatalogUnavailableError(
                f"{shown_url(url)} names a database or driver SQLAlchemy does not know ({exc}); e.g. postgresql+psycopg://user@host/xmr"
            ) from exc
        except ArgumentError as exc:
            raise CatalogUnavailableError(
                f"{shown_url(url)} is not a SQLAlchemy database URL ({exc}); e.g. postgresql+psycopg://user@host/xmr"
            ) from exc
        except ImportError as exc:  # the dialect's DBAPI module
            hint = " (pip install 'xmr[postgres]')" if url.startswith("postgres") else ""
            raise MissingDependencyError(
                f"the catalog URL {shown_url(url)} needs the database driver {exc.name or exc}, which is not installed{hint}."
            ) from exc
        try:
            if self.engine.dialect.name == "sqlite":
                event.listen(self.engine, "connect", _sqlite_pragmas)
            self._create_tables()
            self._check_schema()
        except SQLAlchemyError as exc:
            self.engine.dispose()
            reason = f"{exc.__class__.__name__}: {getattr(exc, 'orig', None) or exc}"
            if self.engine.dialect.name == "sqlite" and is_disk_full(exc, self._folder()):
                if self._open_read_only():
                    return
                raise disk_full_error(self._folder(), reason, "opening the catalog") from exc
            if self.engine.dialect.name == "sqlite":
                raise CorruptFileError(
                    f"cannot open the catalog at {url} ({reason}). If it is a file that was damaged, "
                    "restore it from a backup or index again into a new library directory."
                ) from exc
            raise CatalogUnavailableError(
                f"cannot use the catalog database {shown_url(url)} ({reason.strip()}). Check that the "
                "server is running, the database exists (e.g. createdb NAME) and the URL's user and "
                "password are right."
            ) from exc

    def _create_tables(self) -> None:
        # Two processes opening a new catalog at once (an index run starting while a
        # search opens it) can both see a table missing; the loser retries and finds it.
        for attempt in range(5):
            try:
                Base.metadata.create_all(self.engine)
                return
            except (OperationalError, ProgrammingError, IntegrityError) as exc:
                # SQLite: "table ... already exists"; PostgreSQL: that, or a duplicate key
                # in its catalog of types when both CREATE TABLEs run at the same moment.
                # SQLite also answers "database is locked" at once when two openers' lock upgrades cross.
                if (
                    not any(s in str(exc) for s in ("already exists", "duplicate key", "database is locked"))
                    or attempt == 4
                ):
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _check_schema(self) -> None:
        for attempt in range(8):
            try:
                self._check_schema_once()
                return
            except IntegrityError:  # another process wrote the first rows just now
                if attempt == 7:
                    raise
            except OperationalError as exc:
                # SQLite: a reader upgrading to a writer while another opener writes gets
                # "database is locked" at once (waiting could deadlock); start over.
                if "database is locked" not in str(exc) or attempt == 7:
                    raise
            time.sleep(0.05 * (attempt + 1))

    def _check_schema_once(self) -> None:
        with Session(self.engine) as session, session.begin():
            version = session.get(Meta, "schema")
            if version is None:
                session.add(Meta(key="schema", value=str(CATALOG_SCHEMA)))
                session.add(Meta(key="generation", value="0"))
                session.add(Meta(key="tombstone_floor", value="0"))  # read by xmr before schema 4
                for corpus in (IMAGES, TEXTS):
                    session.add(Meta(key=floor_key(corpus), value="0"))
                session.flush()  # the INSERT opens SQLite's transaction before the DDL below
                create_extras(session)
                return
            found = int(version.value)
        if found > CATALOG_SCHEMA:
            raise LibraryVersionError(
                f"the catalog at {shown_url(self.url)} has schema {found}; this xmr reads up "
                f"to {CATALOG_SCHEMA}. Upgrade xmr (pip install -U xmr)."
            )
        if found < CATALOG_SCHEMA:
            self._upgrade()

    def _upgrade(self) -> None:
        """Run the numbered migrations (:mod:`index.migrations`) in one transaction.

        In a transaction of its own, which :func:`index.migrations.upgrade` opens by updating
        the schema row: a read of the schema earlier in the same transaction would make SQLite
        refuse the write when another process migrated meanwhile.
        """
        with Session(self.engine) as session, session.begin():
            found = upgrade(session)
        if found < CATALOG_SCHEMA:
            log.info("catalog %s: schema %d -> %d", shown_url(self.url), found, CATALOG_SCHEMA)

    def _open_read_only(self) -> bool:
        """Open a SQLite catalog on a full disk for reading only; False when that is not safe.

        A normal open needs a few KB for SQLite's shared-memory and WAL files, so on a full
        disk even a search failed. When the WAL holds no frame (every commit is in the
        database file: no writer is active, none crashed mid-way), the file is opened as
        immutable, which needs no extra file: searches and ``info`` work, and any write is a
        :class:`DiskFullError`. Otherwise the newest commits would be missed: refused.
        """
        database = self.engine.url.database or ""
        wal = Path(f"{database}-wal")
        if not database or database == ":memory:" or (wal.exists() and wal.stat().st_size > 0):
            return False
        uri = URL.create("sqlite", database=f"file:{quote(database)}", query={"immutable": "1", "uri": "true"})
        engine = create_engine(uri, pool_pre_ping=True)
        try:
            with Session(engine) as session:
                version = session.get(Meta, "schema")
                session.get(Meta, "generation")
        except SQLAlchemyError:
            engine.dispose()
            return False
        if version is None or int(version.value) != CATALOG_SCHEMA:  # a new or old catalog needs writing first
            engine.dispose()
            return False
        log.warning(
            "the disk holding %s is full (%s bytes free): the catalog is open read-only; searches work, "
            "indexing needs free space",
            self._folder(),
            f"{free_bytes(self._folder()):,}",
        )
        self.engine, self.read_only = engine, True
        return True

    def _folder(self) -> str:
        """The folder of a SQLite catalog file (where a full disk would be); "." otherwise."""
        database = self.engine.url.database or ""
        return str(Path(database).resolve().parent) if database and database != ":memory:" else "."

    @contextlib.contextmanager
    def _session(self, doing: str = "reading the catalog") -> Iterator[Session]:
        """A session whose database errors become typed errors naming the fix.

        A full disk is :class:`DiskFullError` (not damage); a damaged SQLite file is
        :class:`CorruptFileError` naming the repair; a database that cannot be reached or
        written is :class:`CatalogUnavailableError`. Integrity and programming errors pass
        through unchanged (callers retry on them).
        """
        try:
            with Session(self.engine) as session:
                yield session
        except (IntegrityError, ProgrammingError):
            raise
        except (OperationalError, InternalError, DatabaseError) as exc:
            raise self._translate(exc, doing) from exc

    def _translate(self, exc: DatabaseError, doing: str) -> XmrError:
        reason = f"{getattr(exc, 'orig', None) or exc}"
        sqlite = self.engine.dialect.name == "sqlite"
        if self.read_only or is_disk_full(exc, self._folder() if sqlite else None):
            where = self._folder() if sqlite else shown_url(self.url)
            return disk_full_error(where, reason, doing)
        if sqlite and not isinstance(exc, OperationalError):  # "database disk image is malformed", "not a database"
            path = self.engine.url.database
            return CorruptFileError(
                f"the catalog {path} is damaged ({reason}) while {doing}. Your photos are untouched. "
                f"Stop other xmr processes, keep a copy of it, then either restore it from a backup or "
                f"repair it:  sqlite3 {path} .recover | sqlite3 {path}.recovered  and move "
                f"{Path(str(path)).name}.recovered in its place (then run  xmr index  on your folders)."
            )
        return CatalogUnavailableError(
            f"cannot use the catalog {shown_url(self.url)} while {doing} ({reason}). Check that its "
            "files are readable and writable by you and that no other program holds them (for a "
            "server: that it runs); then run the same command again."
        )

    def close(self) -> None:
        self.engine.dispose()

    # ---- generation bookkeeping -------------------------------------------------------

    def generation(self) -> int:
        """The number of committed write transactions so far."""
        with self._session() as session:
            return int(session.get(Meta, "generation").value)  # type: ignore[union-attr]

    def tombstone_floor(self, corpus: str) -> int:
        """Tombstones of ``corpus`` at or below this generation were pruned."""
        with self._session() as session:
            return int(session.get(Meta, floor_key(corpus)).value)  # type: ignore[union-attr]

    @staticmethod
    def _bump(session: Session) -> int:
        row = session.get(Meta, "generation", with_for_update=True)
        assert row is not None  # created with the schema
        row.value = str(int(row.value) + 1)
        return int(row.value)

    def prune_tombstones(self, corpus: str, through_gen: int) -> None:
        """Forget deletions of ``corpus`` at or below ``through_gen`` (its snapshot at that gen has them).

        Each corpus has its own floor: pruning the texts' tombstones (after ``add-texts``)
        leaves the image snapshot valid, so it is not rebuilt on every open.
        """
        with self._session("pruning deletions") as session, session.begin():
            session.execute(delete(Tombstone).where(Tombstone.corpus == corpus, Tombstone.gen <= through_gen))
            floor = session.get(Meta, floor_key(corpus))
            assert floor is not None  # made with the schema (or by migration 3)
            floor.value = str(max(int(floor.value), through_gen))

    # ---- reads --------------------------------------------------------------------------

    def files_under(self, roots: Sequence[str]) -> dict[str, ImageRecord]:
        """Catalog rows whose path lies under any of ``roots`` (absolute directory or file paths)."""
        found: dict[str, ImageRecord] = {}
        with self._session() as session:
            for root in roots:
                prefix = root.rstrip("/") + "/"
                query = select(ImageRow).where(
                    (ImageRow.path == root) | (ImageRow.path.startswith(prefix, autoescape=True))
                )
                for row in session.scalars(query):
                    if row.path == root or row.path.startswith(prefix):  # SQLite LIKE ignores case
                        found[row.path] = _to_record(row)
        return found

    def by_hash(self, hashes: Iterable[str]) -> dict[str, ImageRecord]:
        """One indexed row per content hash among ``hashes``."""
        wanted = [h for h in set(hashes) if h]
        found: dict[str, ImageRecord] = {}
        with self._session() as session:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                query = select(ImageRow).where(ImageRow.content_hash.in_(chunk), ImageRow.state == INDEXED)
                for row in session.scalars(query):
                    found.setdefault(row.content_hash, _to_record(row))
        return found

    def images(self, ids: Sequence[int]) -> dict[int, ImageRecord]:
        """Rows for ``ids`` (missing ids are left out)."""
        found: dict[int, ImageRecord] = {}
        with self._session() as session:
            for start in range(0, len(ids), 500):
                chunk = [int(i) for i in ids[start : start + 500]]
                for row in session.scalars(select(ImageRow).where(ImageRow.id.in_(chunk))):
                    found[row.id] = _to_record(row)
        return found

    def vectors_for(self, ids: Sequence[int]) -> dict[int, bytes]:
        """Stored vector bytes of ``ids`` (rows without a vector are left out)."""
        found: dict[int, bytes] = {}
        with self._session() as session:
            for start in range(0, len(ids), 500):
                chunk = [int(i) for i in ids[start : start + 500]]
                query = select(ImageRow.id, ImageRow.vector).where(ImageRow.id.in_(chunk), ImageRow.vector.is_not(None))
                found.update({row_id: blob for row_id, blob in session.execute(query) if blob is not None})
            missing = [int(i) for i in ids if int(i) not in found]
            if missing:  # a video's moments share the image index
                found.update(moment_vectors(session, missing))
        return found

    def select_images(self, where: ImageFilter) -> np.ndarray:
        """Sorted vector ids that pass ``where``: photos, and the moments of videos (time: capture
        time, else mtime; folders, extensions and texts: the file's)."""
        return self._select(where, files=False)

    def select_files(self, where: ImageFilter) -> np.ndarray:
        """Sorted catalog ids of the files that pass ``where``: photos with a vector and videos with
        a moment (the ids the keyword index ranks, where :meth:`select_images` gives vector ids)."""
        return self._select(where, files=True)

    def _select(self, where: ImageFilter, files: bool) -> np.ndarray:
        # SQLite compares paths as bytes, so the range below is exact there; a server whose
        # collation orders paths otherwise gets a second, exact check in Python.
        recheck = bool(where.under) and self.engine.dialect.name != "sqlite"
        conditions = _filter_conditions(where, self.engine.dialect.name)
        queries = []
        if where.media != VIDEOS:
            queries.append(select(ImageRow.id, ImageRow.path).where(ImageRow.vector.is_not(None), *conditions))
        if where.media != PHOTOS and files:
            has_moment = select(MomentRow.id).where(MomentRow.video_id == ImageRow.id).exists()
            queries.append(select(ImageRow.id, ImageRow.path).where(ImageRow.kind == VIDEO, has_moment, *conditions))
        elif where.media != PHOTOS:  # a video passes by its file; its moments are what the index holds
            joined = select(MomentRow.id, ImageRow.path).join(ImageRow, ImageRow.id == MomentRow.video_id)
            queries.append(joined.where(*conditions))
        prefixes = tuple(root.rstrip("/") + "/" for root in where.under)
        ids: list[int] = []
        with self._session() as session:
            for query in queries:
                if recheck:
                    ids += (row.id for row in session.execute(query) if row.path.startswith(prefixes))
                else:
                    ids += session.scalars(query.with_only_columns(query.selected_columns[0]))
        return np.sort(np.asarray(ids, dtype=np.int64))

    def text_keys(self, source: str) -> set[tuple[str, str | None]]:
        """(body, image path) of every text already added from ``source``."""
        with self._session() as session:
            query = select(TextRow.body, TextRow.image_path).where(TextRow.source == source)
            return {(body, image) for body, image in session.execute(query)}

    def add_texts(self, source: str, items: Sequence[tuple[str, str | None, bytes]]) -> int:
        """Insert (body, image path, vector) texts from ``source`` in one transaction."""
        with self._session("writing the catalog") as session, session.begin():
            gen = self._bump(session)
            insert_texts(session, ((body, source, image, vector) for body, image, vector in items), gen)
        return len(items)

    def remove_texts(self, source: str) -> int:
        """Delete every text added from ``source``; returns how many."""
        with self._session("writing the catalog") as session, session.begin():
            ids = list(session.scalars(select(TextRow.id).where(TextRow.source == source)))
            if ids:
                remove_rows(session, TEXTS, ids, self._bump(session))
            return len(ids)

    def texts(self, ids: Sequence[int]) -> dict[int, TextRecord]:
        """Text rows for ``ids`` (missing ids are left out)."""
        found: dict[int, TextRecord] = {}
        with self._session() as session:
            for start in range(0, len(ids), 500):
                chunk = [int(i) for i in ids[start : start + 500]]
                for row in session.scalars(select(TextRow).where(TextRow.id.in_(chunk))):
                    found[row.id] = TextRecord(row.id, row.body, row.source, row.image_path)
        return found

    def text_sources(self) -> dict[str, int]:
        """Text count per source."""
        with self._session() as session:
            query = select(TextRow.source, func.count()).group_by(TextRow.source).order_by(TextRow.source)
            return {source: int(count) for source, count in session.execute(query)}

    def image_by_path(self, path: str) -> ImageRecord | None:
        with self._session() as session:
            row = session.scalars(select(ImageRow).where(ImageRow.path == path)).first()
            return None if row is None else _to_record(row)

    def failures(self, limit: int | None = None) -> list[ImageRecord]:
        with self._session() as session:
            query = select(ImageRow).where(ImageRow.state == FAILED).order_by(ImageRow.path)
            if limit is not None:
                query = query.limit(limit)
            return [_to_record(row) for row in session.scalars(query)]

    def counts(self) -> dict[str, int]:
        """Counts of indexed images, failed files (photos and videos), texts, videos and their moments."""
        with self._session() as session:
            query = select(ImageRow.kind, ImageRow.state, func.count()).group_by(ImageRow.kind, ImageRow.state)
            by_kind = {(kind, state): int(count) for kind, state, count in session.execute(query)}
            texts = session.scalar(select(func.count()).select_from(TextRow)) or 0
            moments = session.scalar(select(func.count()).select_from(MomentRow)) or 0
        return {
            "images": by_kind.get((IMAGE, INDEXED), 0),
            "failed": sum(count for (_, state), count in by_kind.items() if state == FAILED),
            "texts": int(texts),
            "videos": by_kind.get((VIDEO, INDEXED), 0) + by_kind.get((VIDEO, PARTIAL), 0),
            "moments": int(moments),
        }

    def vectors_since(self, corpus: str, gen: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """Ids and vectors ``(n,), (n, dim)`` of rows whose vector changed after ``gen``."""
        chunks = list(self.iter_vectors(corpus, gen, dim))
        if not chunks:
            return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
        return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])

    def iter_vectors(
        self, corpus: str, gen: int, dim: int, batch: int = 10_000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """:meth:`vectors_since`, ``batch`` rows at a time (bounded memory): in id order per table
        (the image corpus yields its photos, then its videos' moments)."""
        tables = (ImageRow, MomentRow) if corpus == IMAGES else (TextRow,)
        with self._session() as session:
            for table in tables:
                query = (
                    select(table.id, table.vector)
                    .where(table.vector_gen > gen, table.vector.is_not(None))
                    .order_by(table.id)
                    .execution_options(yield_per=batch)
                )
                for rows in session.execute(query).partitions(batch):
                    good = [(i, blob) for i, blob in rows if blob is not None and len(blob) == 4 * dim]
                    if len(good) < len(rows):  # a damaged row must not take every other vector with it
                        log.warning(
                            "catalog %s: %s vectors of %s rows are not %d-d (ids %s); left out of the index. "
                            "Run  xmr index  on their folders to embed those images again.",
                            shown_url(self.url),
                            len(rows) - len(good),
                            table.__tablename__,
                            dim,
                            sorted(set(i for i, _ in rows) - set(i for i, _ in good))[:10],
                        )
                    vectors = np.frombuffer(b"".join(blob for _, blob in good), dtype="<f4").reshape(len(good), dim)
                    yield np.asarray([i for i, _ in good], np.int64), np.ascontiguousarray(vectors, dtype=np.float32)

    def bad_vectors(self, dim: int, roots: Sequence[str] = ()) -> list[ImageRecord]:
        """Indexed images whose stored vector is not ``dim`` floats (a damaged row), and videos with
        such a moment, under ``roots`` if given.

        An index run reads them again (their vectors are left out of the index meanwhile).
        """
        bad_moment = select(MomentRow.video_id).where(func.length(MomentRow.vector) != 4 * dim)
        query = select(ImageRow).where(
            or_(
                and_(ImageRow.vector.is_not(None), func.length(ImageRow.vector) != 4 * dim),
                ImageRow.id.in_(bad_moment),
            )
        )
        with self._session() as session:
            rows = [_to_record(row) for row in session.scalars(query)]
        if not roots:
            return rows
        prefixes = tuple(root.rstrip("/") + "/" for root in roots)
        return [r for r in rows if r.path in roots or r.path.startswith(prefixes)]

    def deleted_since(self, corpus: str, gen: int) -> np.ndarray:
        """Vector ids deleted after ``gen``."""
        with self._session() as session:
            query = select(Tombstone.vector_id).where(Tombstone.corpus == corpus, Tombstone.gen > gen)
            return np.asarray(sorted(set(session.scalars(query))), dtype=np.int64)

    def vector_ids(self, corpus: str, dim: int | None = None) -> np.ndarray:
        """Every id that has a vector (of ``dim`` floats, when given), sorted (in the image corpus:
        photos and moments)."""
        tables = (ImageRow, MomentRow) if corpus == IMAGES else (TextRow,)
        ids: list[int] = []
        with self._session() as session:
            for table in tables:
                query = select(table.id).where(table.vector.is_not(None))
                if dim is not None:
                    query = query.where(func.length(table.vector) == 4 * dim)
                ids += session.scalars(query)
        return np.sort(np.asarray(ids, dtype=np.int64))

    def indexed_images(self) -> list[ImageRecord]:
        """Every row with a vector, in id order (what ``xmr duplicates`` compares)."""
        with self._session() as session:
            query = (
                select(ImageRow)
                .options(defer(ImageRow.vector))  # the vectors come with iter_vectors, in bulk
                .where(ImageRow.vector.is_not(None))
                .order_by(ImageRow.id)
            )
            return [_to_record(row) for row in session.scalars(query.execution_options(yield_per=10_000))]

    def iter_paths(self) -> Iterator[str]:
        with self._session() as session:
            yield from session.scalars(select(ImageRow.path).order_by(ImageRow.path))

    # ---- writes -------------------------------------------------------------------------

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
        """Write one batch of indexing results in a single transaction; return the new generation.

        ``embedded`` rows are inserted or, for a known path, updated with their new vector;
        ``failed`` rows record the error (and drop any old vector); ``moved`` rows change path
        and keep their vector; ``removed`` ids are deleted; ``touched`` files changed only
        their modification time. ``captions`` replaces the sidecar texts of the image paths
        it names (empty to drop them); moves carry their texts along. New rows get ids in
        the order given, ``embedded`` before ``failed``. The rows are written in bulk (see
        :mod:`index.catalog_writes`). ``hashed`` sets the perceptual hash of rows (by path) that
        were read again only to make one (rows from before catalog schema 2).

        Raises:
            ValueError: a move targets a path another row still holds; nothing was written.
            DiskFullError: the disk is full; nothing of this batch was written.
            CatalogUnavailableError, CorruptFileError: the database refused the write
                (permissions, damage); nothing of this batch was written.
        """
        with self._write_lock, self._session("writing a batch (nothing of it was written)") as session:
            with session.begin():
                gen = self._bump(session)
                write_batch(session, gen, embedded, failed, moved, removed, touched, captions, hashed)
                return gen

    # ---- videos -------------------------------------------------------------------------

    def apply_videos(self, ops: Sequence[VideoOp]) -> int:
        """Write video indexing steps (:mod:`index.video_records`) in order, in one transaction;
        return the new generation.

        Raises:
            ValueError: a step names a video that has no row (nothing was written).
            DiskFullError: the disk is full; nothing of this batch was written.
            CatalogUnavailableError, CorruptFileError: the database refused the write
                (permissions, damage); nothing of this batch was written.
        """
        with self._write_lock, self._session("writing a batch of video moments (nothing of it was written)") as session:
            with session.begin():
                gen = self._bump(session)
                write_video_ops(session, gen, ops)
                return gen

    def moments(self, ids: Sequence[int]) -> dict[int, MomentRecord]:
        """The moments among vector ids ``ids`` (photo ids and missing ids are left out)."""
        with self._session() as session:
            return moment_records(session, ids)

    def moments_of(self, video_id: int) -> list[MomentRecord]:
        """Every moment of the video whose images row is ``video_id``, in time order."""
        with self._session() as session:
            return moments_of(session, video_id)

    def moment_frames(self) -> dict[tuple[int, int], np.ndarray]:
        """Sorted moment vector ids by the upright frame size ``(width, height)`` of their video
        (videos whose size is not known are left out)."""
        query = (
            select(MomentRow.id, ImageRow.width, ImageRow.height)
            .join(ImageRow, ImageRow.id == MomentRow.video_id)
            .where(ImageRow.width > 0, ImageRow.height > 0)
        )
        with self._session() as session:
            return group_frames(session.execute(query).all())

    def video(self, video_id: int) -> VideoRecord | None:
        """The videos row (duration, codec, progress) of a video file, or None."""
        with self._session() as session:
            return video_record(session, video_id)

    # ---- text read from photos, the keyword index, settings ---------------------------

    @property
    def keywords(self) -> KeywordIndex:
        """Reads of the keyword index."""
        return KeywordIndex(self.engine)

    def apply_ocr(self, records: Sequence[OcrRecord]) -> int:
        """Store text read from images (keyed by content hash) and refresh the keyword documents
        of every image with those bytes, in one transaction; return the new generation.

        Raises:
            CorruptFileError: the database refused the write; nothing of it was written.
        """
        with self._write_lock, self._session("writing text read from photos (nothing of it was written)") as session:
            with session.begin():
                gen = self._bump(session)  # a new generation: cached --contains selections go stale
                write_ocr(session, records)
                return gen

    def ocr_read(self, hashes: Iterable[str], with_errors: bool = True) -> set[str]:
        """Which of ``hashes`` had their text read (``with_errors``: or tried and failed)."""
        with self._session() as session:
            return ocr_read(session, hashes, with_errors)

    def prune_ocr(self) -> int:
        """Forget text read from bytes that no catalogued file has any more; return how many."""
        with self._write_lock, self._session("writing the catalog") as session, session.begin():
            return prune_ocr(session)

    def setting(self, key: str) -> str | None:
        """A library setting remembered in the catalog (e.g. ``ocr``), or None."""
        with self._session() as session:
            row = session.get(Meta, f"setting:{key}")
            return None if row is None else row.value

    def set_setting(self, key: str, value: str) -> None:
        """Remember a library setting (see :meth:`setting`)."""
        with self._write_lock, self._session("writing the catalog") as session, session.begin():
            row = session.get(Meta, f"setting:{key}")
            if row is None:
                session.add(Meta(key=f"setting:{key}", value=value))
            else:
                row.value = value
