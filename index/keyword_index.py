"""The keyword index over ``keyword_docs``: SQLite FTS5 or PostgreSQL full-text search.

Both see the same tokens (:mod:`index.keywords` splits the text before it is stored), so
a phrase matches the same images on either. Each source is a column (SQLite) or a weight
(PostgreSQL: tags A, captions B, ocr C, names D); a phrase matches inside one source only.
The index is written by the database itself in the transaction that writes a document
row (FTS5 triggers; a generated tsvector column), so it never disagrees with the catalog.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import Integer, column, func, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import TextualSelect

from index.keyword_docs import DocSources, read_sources
from index.keywords import SOURCES, db_token
from index.schema import KeywordDocRow

__all__ = ["SOURCES", "KeywordIndex", "create_keyword_index", "phrase_ids_clause"]

_PG_WEIGHTS = {"tags": "A", "captions": "B", "ocr": "C", "names": "D"}

_SQLITE_DDL = (
    # External content: the text lives once, in keyword_docs; FTS5 keeps only its index.
    "CREATE VIRTUAL TABLE IF NOT EXISTS keyword_fts USING fts5(names, captions, tags, ocr, "
    "content='keyword_docs', content_rowid='image_id', tokenize='unicode61 remove_diacritics 0')",
    "CREATE TRIGGER IF NOT EXISTS keyword_docs_ai AFTER INSERT ON keyword_docs BEGIN "
    "INSERT INTO keyword_fts(rowid, names, captions, tags, ocr) VALUES (new.image_id, new.names, new.captions, new.tags, new.ocr); END",
    "CREATE TRIGGER IF NOT EXISTS keyword_docs_ad AFTER DELETE ON keyword_docs BEGIN "
    "INSERT INTO keyword_fts(keyword_fts, rowid, names, captions, tags, ocr) VALUES ('delete', old.image_id, old.names, old.captions, old.tags, old.ocr); END",
    "CREATE TRIGGER IF NOT EXISTS keyword_docs_au AFTER UPDATE ON keyword_docs BEGIN "
    "INSERT INTO keyword_fts(keyword_fts, rowid, names, captions, tags, ocr) VALUES ('delete', old.image_id, old.names, old.captions, old.tags, old.ocr); "
    "INSERT INTO keyword_fts(rowid, names, captions, tags, ocr) VALUES (new.image_id, new.names, new.captions, new.tags, new.ocr); END",
)
_PG_VECTOR = " || ".join(
    f"setweight(to_tsvector('simple', {name}), '{weight}')" for name, weight in _PG_WEIGHTS.items()
)
_PG_DDL = (
    f"ALTER TABLE keyword_docs ADD COLUMN IF NOT EXISTS tsv tsvector GENERATED ALWAYS AS ({_PG_VECTOR}) STORED",
    "CREATE INDEX IF NOT EXISTS keyword_docs_tsv ON keyword_docs USING GIN (tsv)",
)


def create_keyword_index(connection: Connection) -> None:
    """Create the dialect's full-text index over ``keyword_docs`` (idempotent; in the caller's transaction)."""
    for statement in _SQLITE_DDL if connection.dialect.name == "sqlite" else _PG_DDL:
        connection.execute(text(statement))


def phrase_ids_clause(dialect: str, phrase: Sequence[str], source: str | None = None, name: str = "q") -> TextualSelect:
    """A SELECT of the ids of the images whose ``source`` (any, when None) holds ``phrase``
    (tokens from :func:`index.keywords.tokens`) as consecutive tokens; its parameter is ``name``."""
    words = [db_token(t) for t in phrase]
    if dialect == "sqlite":
        query = '"' + " ".join(words) + '"'
        if source is not None:
            query = f"{source} : {query}"
        sql = f"SELECT rowid AS image_id FROM keyword_fts WHERE keyword_fts MATCH :{name}"
    else:
        weights = [_PG_WEIGHTS[source]] if source is not None else list(_PG_WEIGHTS.values())
        # One weight per alternative: a phrase must not run from one source into the next.
        query = " | ".join("(" + " <-> ".join(f"{w}:{weight}" for w in words) + ")" for weight in weights)
        sql = f"SELECT image_id FROM keyword_docs WHERE tsv @@ to_tsquery('simple', :{name})"
    return text(sql).bindparams(**{name: query}).columns(column("image_id", Integer))


class KeywordIndex:
    """Reads of the keyword index (thread-safe: each call opens its own session)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    def phrase_ids(self, phrase: Sequence[str], source: str | None = None) -> np.ndarray:
        """Sorted ids of the images whose ``source`` (any, when None) holds ``phrase``."""
        if not phrase:
            return np.zeros(0, np.int64)
        with Session(self.engine) as session:
            found = session.scalars(phrase_ids_clause(self.dialect, phrase, source))
            return np.unique(np.fromiter(found, dtype=np.int64))

    def doc_count(self) -> int:
        """Images in the keyword index (every indexed image has a document)."""
        with Session(self.engine) as session:
            return int(session.scalar(select(func.count()).select_from(KeywordDocRow)) or 0)

    def sources(self, ids: Sequence[int]) -> dict[int, DocSources]:
        """The raw texts behind the documents of ``ids`` (ids without one are left out)."""
        with Session(self.engine) as session:
            return read_sources(session, [int(i) for i in ids])
