"""Vectors of text queries already embedded, so that a repeated query needs no model.

Loading an open_clip model costs seconds (importing torch, torchvision and open_clip alone
takes most of them); a text query's vector costs milliseconds once the model is in memory.
A command-line ``xmr search`` pays the loading on every call, so the second page of
results (``--offset``) or the same search run again would cost as much as the first. This
cache keeps each text's unit vector in a small SQLite file in the library directory
(standard-library ``sqlite3``, whatever the catalog's URL): the text, its float32 vector
and when it was last used, at most ``capacity`` rows, least recently used dropped first.

The file records its format and the model whose vectors it holds; a file of another format
or another model is emptied before use. It is only a cache: an error reading or writing it
(a read-only directory, a locked or damaged file) is logged and the query is embedded as if
it were not there; a damaged file is deleted so the next query starts a new one.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import zlib
from pathlib import Path

import numpy as np

from index.records import is_utf8

log = logging.getLogger(__name__)

# 1: table vectors(text, vector float32 bytes, used); table meta(format, model).
# 2: vectors.crc, the CRC-32 of the text's UTF-8 and the vector's bytes, checked on every read:
#    a vector damaged in place (same length) was returned as the query. Older files are emptied.
FORMAT = 2
DEFAULT_CAPACITY = 10_000

_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
_VECTORS = (
    "CREATE TABLE IF NOT EXISTS vectors (text TEXT PRIMARY KEY, vector BLOB NOT NULL, used REAL NOT NULL, crc INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS vectors_used ON vectors (used)",
)


def _crc(text: str, blob: bytes) -> int:
    return zlib.crc32(blob, zlib.crc32(text.encode("utf-8")))


class QueryVectorCache:
    """Unit vectors ``(dim,)`` of text queries for one model, in the SQLite file ``path``."""

    def __init__(
        self, path: Path, model: str, dim: int, capacity: int = DEFAULT_CAPACITY, timeout: float = 2.0
    ) -> None:
        self.path = Path(path)
        self.timeout = timeout  # seconds to wait for another process's write before giving up
        self.model = model  # the model's identity, as a string; vectors of another are never returned
        self.dim = dim
        self.capacity = capacity
        self._lock = threading.Lock()

    def get(self, text: str) -> np.ndarray | None:
        """The cached vector of ``text``, or None (not cached, no file, the file unusable, or a
        text SQLite cannot store: lone surrogates are not UTF-8)."""
        if not is_utf8(text) or not self.path.exists():
            return None
        row = self._run(self._get, text)
        if row is None or len(row) != 4 * self.dim:
            return None
        return np.frombuffer(row, dtype="<f4").copy()

    def put(self, text: str, vector: np.ndarray) -> None:
        """Remember ``vector`` as the vector of ``text`` (best effort: failures are only logged;
        a text that is not valid UTF-8 is not remembered)."""
        data = np.ascontiguousarray(vector, dtype="<f4").reshape(-1)
        if data.shape[0] != self.dim:
            raise ValueError(f"a {data.shape[0]}-d vector for a {self.dim}-d cache")
        if not is_utf8(text):
            log.info("query %r not cached: it is not valid UTF-8", text)
            return
        self._run(self._put, text, data.tobytes())

    def __len__(self) -> int:
        if not self.path.exists():
            return 0
        return self._run(lambda db: db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]) or 0

    # ---- internals ------------------------------------------------------------------------

    def _run(self, operation, *args):  # noqa: ANN001, ANN202
        """``operation(db, *args)`` in one transaction; None when the file cannot be used."""
        with self._lock:
            try:
                db = sqlite3.connect(self.path, timeout=self.timeout)
            except sqlite3.Error as exc:
                log.info("query cache %s not opened (%s); embedding without it", self.path, exc)
                return None
            try:
                db.execute(
                    "PRAGMA synchronous = OFF"
                )  # no fsync: a killed process is still safe; a file an OS crash damages is replaced
                with db:
                    self._prepare(db)
                    return operation(db, *args)
            except sqlite3.DatabaseError as exc:
                self._discard(exc)
                return None
            finally:
                db.close()

    def _prepare(self, db: sqlite3.Connection) -> None:
        """Tables there, format and model ours (else emptied); checked on every call, since
        another process may delete or replace the file at any time (a few tens of µs)."""
        db.execute(_META)
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if meta != {"format": str(FORMAT), "model": self.model}:
            if meta:
                log.info(
                    "query cache %s was written for %s (format %s); emptied",
                    self.path,
                    meta.get("model"),
                    meta.get("format"),
                )
            db.execute("DROP TABLE IF EXISTS vectors")  # an older format's table has other columns
            db.execute("DELETE FROM meta")
            db.executemany("INSERT INTO meta VALUES (?, ?)", [("format", str(FORMAT)), ("model", self.model)])
        for statement in _VECTORS:
            db.execute(statement)

    def _get(self, db: sqlite3.Connection, text: str) -> bytes | None:
        row = db.execute("SELECT vector, crc FROM vectors WHERE text = ?", (text,)).fetchone()
        if row is None:
            return None
        blob = bytes(row[0])
        sound = _crc(text, blob) == row[1]
        if not sound:
            log.warning("query cache %s: the vector of %r is damaged; it is embedded again", self.path, text)
        try:
            if sound:
                db.execute("UPDATE vectors SET used = ? WHERE text = ?", (time.time(), text))
            else:
                db.execute("DELETE FROM vectors WHERE text = ?", (text,))
        except sqlite3.OperationalError:  # read-only or locked: the answer stands
            pass
        return blob if sound else None

    def _put(self, db: sqlite3.Connection, text: str, blob: bytes) -> None:
        db.execute("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)", (text, blob, time.time(), _crc(text, blob)))
        excess = db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] - self.capacity
        if excess > 0:
            db.execute("DELETE FROM vectors WHERE text IN (SELECT text FROM vectors ORDER BY used LIMIT ?)", (excess,))

    def _discard(self, exc: Exception) -> None:
        """A read-only or locked file is left alone; a damaged one is deleted (it is only a cache)."""
        if isinstance(exc, sqlite3.OperationalError):  # read-only, locked, disk full: not damage
            log.info("query cache %s not usable now (%s); embedding without it", self.path, exc)
            return
        log.warning("query cache %s is damaged (%s); deleted, a new one starts with the next query", self.path, exc)
        try:
            self.path.unlink(missing_ok=True)
        except OSError as unlink_error:
            log.warning("could not delete %s (%s); delete it by hand", self.path, unlink_error)
