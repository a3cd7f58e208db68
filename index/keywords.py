"""Words for the keyword index: one tokenizer for documents, queries and the tests' oracles.

SQLite FTS5 and PostgreSQL full-text search split text differently (``42.50`` is two
tokens to one and a number to the other; a C-locale server drops letters outside ASCII).
So text is split here, once, and the database is given lower-case tokens separated by
single spaces, which both split the same way: a token is a run of letters or a run of
digits after compatibility decomposition, accents dropped and case folded; each Chinese
or Japanese character is a token of its own (those scripts write no spaces). Letters and
digits part because OCR often drops the space between them ("RECEIPT42.50"); a query is
split the same way, so "Q3" still finds "Q3" (as the phrase "q 3").
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence

__all__ = [
    "MAX_TOKEN",
    "NAME_FOLDERS",
    "SOURCES",
    "contains_phrase",
    "db_token",
    "folder_words",
    "index_text",
    "join_tokens",
    "name_words",
    "parse_query",
    "tokens",
]

MAX_TOKEN = 64  # characters kept of a token: longer runs are noise (hashes, OCR garbage)
_IDEOGRAPH_CLASS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
_IDEOGRAPHS = re.compile(f"[{_IDEOGRAPH_CLASS}]")
_IDEOGRAPH_SPLIT = re.compile(f"[{_IDEOGRAPH_CLASS}]|[^{_IDEOGRAPH_CLASS}]+")
_RUN = re.compile(r"[^\W\d_]+|\d+")  # a run of letters, or a run of digits


def tokens(text: str) -> list[str]:
    """The keyword tokens of ``text`` in order (see the module docstring)."""
    return list(_tokens(text))


@functools.lru_cache(maxsize=65536)  # folder names and repeated captions come back batch after batch
def _tokens(text: str) -> tuple[str, ...]:
    if text.isascii():
        folded = text.lower()
    else:
        decomposed = unicodedata.normalize("NFKD", text)
        folded = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    out: list[str] = []
    for run in _RUN.findall(folded):
        if folded.isascii() or not _IDEOGRAPHS.search(run):
            out.append(run[:MAX_TOKEN])
        else:  # each ideograph alone, the letters around them as runs
            out += [part[:MAX_TOKEN] for part in _IDEOGRAPH_SPLIT.findall(run)]
    return tuple(out)


def join_tokens(texts: Iterable[str]) -> str:
    """The token text of several texts (lines, captions, keywords): what the database indexes."""
    return " ".join(t for text in texts for t in tokens(text))


def parse_query(query: str) -> list[tuple[str, ...]]:
    """The phrases of a keyword query: each quoted part, and each other word (``42.50`` is
    the phrase ``42 50``); phrases without tokens are dropped, repeats kept once."""
    phrases: list[tuple[str, ...]] = []
    for quoted, word in re.findall(r'"([^"]*)"|(\S+)', query):
        phrase = tuple(tokens(quoted or word))
        if phrase and phrase not in phrases:
            phrases.append(phrase)
    return phrases


def contains_phrase(haystack: Sequence[str], phrase: Sequence[str]) -> bool:
    """Whether ``phrase`` occurs as consecutive tokens in ``haystack`` (the tests' oracle)."""
    n = len(phrase)
    return n > 0 and any(tuple(haystack[i : i + n]) == tuple(phrase) for i in range(len(haystack) - n + 1))


def db_token(token: str) -> str:
    """``token`` as the database stores it: ASCII as is, anything else as ``zx`` + UTF-8 hex,
    so a PostgreSQL server whose locale knows no letters beyond ASCII still keeps it whole."""
    return token if token.isascii() else "zx" + token.encode("utf-8").hex()


def index_text(texts: Iterable[str]) -> str:
    """The text the database indexes for ``texts``: their tokens in database form, space-separated."""
    return " ".join(db_token(t) for text in texts for t in tokens(text))


SOURCES = ("ocr", "captions", "tags", "names")  # keyword_docs columns, in the order a snippet prefers them
NAME_FOLDERS = 3  # folders above a file whose names go into its document ("2019 Japan trip")


def name_words(path: str) -> list[str]:
    """The file's name without its extension, then the names of up to :data:`NAME_FOLDERS` folders above it."""
    folder, _, name = path.rpartition("/")
    return [os.path.splitext(name)[0], *folder_words(folder)]


@functools.lru_cache(maxsize=4096)  # a batch's files share a few folders
def folder_words(folder: str) -> tuple[str, ...]:
    """The names of up to :data:`NAME_FOLDERS` folders of ``folder``, innermost first."""
    parts = [p for p in folder.split("/") if p]
    return tuple(reversed(parts[-NAME_FOLDERS:]))
