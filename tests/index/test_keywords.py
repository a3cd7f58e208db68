"""The keyword index on SQLite (FTS5) and PostgreSQL (tsvector + GIN), against a Python oracle.

Every phrase lookup and ``contains`` filter must give exactly the images a brute-force
token match over the raw texts gives; documents must follow moves, copies, edits and
removals; an old catalog is migrated with its documents; a killed writer leaves the
index and the catalog in agreement.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from index.catalog import Catalog
from index.errors import FilterError
from index.keyword_docs import OcrRecord, name_words
from index.keyword_index import SOURCES
from index.keywords import contains_phrase, parse_query, tokens
from index.records import Captions, Embedded, FileStat, ImageFilter, ImageMeta, Moved
from index.schema import CATALOG_SCHEMA

VOCAB = [
    "receipt",
    "42.50",
    "Total",
    "café",
    "Straße",
    "東京",
    "plan",
    "Q3",
    "sign",
    "station",
    "the",
    "at",
    "x_1",
    "ÉTÉ",
    "19.99",
]
BOX = (0.1, 0.1, 0.9, 0.1, 0.9, 0.2, 0.1, 0.2)
VEC = np.ones(4, "<f4").tobytes()


def _words(rng: np.random.Generator, most: int) -> str:
    return " ".join(rng.choice(VOCAB, size=int(rng.integers(0, most + 1))))


def _library(rng: np.random.Generator, count: int) -> list[dict]:
    """Seeded images: a path, a description, tags, a sidecar caption and OCR lines of their own."""
    images = []
    for n in range(count):
        folder = rng.choice(["Japan trip", "receipts 2024", "misc", "Café"])
        images.append(
            {
                "path": f"/photos/{folder}/{_words(rng, 2).replace(' ', '_') or 'img'}_{n}.jpg",
                "hash": f"h{n:04d}",
                "description": _words(rng, 3) or None,
                "tags": [w for w in (_words(rng, 2), _words(rng, 1)) if w],
                "caption": _words(rng, 3),
                "ocr": [w for w in (_words(rng, 4), _words(rng, 3)) if w],
            }
        )
    return images


def _write(catalog: Catalog, images: list[dict]) -> None:
    embedded = [
        Embedded(
            FileStat(i["path"], 1, 1),
            i["hash"],
            ImageMeta(
                10,
                10,
                "JPEG",
                description=i["description"],
                title=(i["tags"] or [None])[0],
                keywords=tuple(i["tags"][1:]),
            ),
            VEC,
        )
        for i in images
    ]
    captions = {i["path"]: Captions(1, ((i["caption"], VEC),)) for i in images if i["caption"]}
    catalog.apply(embedded=embedded, captions=captions)
    catalog.apply_ocr([OcrRecord(i["hash"], "test", tuple((line, 0.9, BOX) for line in i["ocr"])) for i in images])


def _oracle_texts(image: dict) -> dict[str, list[str]]:
    return {
        "names": name_words(image["path"]),
        "captions": [
            *([image["caption"]] if image["caption"] else []),
            *([image["description"]] if image["description"] else []),
        ],
        "tags": image["tags"],
        "ocr": image["ocr"],
    }


def _oracle(images: list[dict], ids: dict[str, int], phrase: tuple[str, ...], source: str | None) -> list[int]:
    found = []
    for image in images:
        texts = _oracle_texts(image)
        sources = [source] if source else list(SOURCES)
        if any(contains_phrase([t for x in texts[s] for t in tokens(x)], phrase) for s in sources):
            found.append(ids[image["path"]])
    return sorted(found)


def _ids(catalog: Catalog, images: list[dict]) -> dict[str, int]:
    return {i["path"]: catalog.image_by_path(i["path"]).id for i in images}  # type: ignore[union-attr]


def test_phrases_and_contains_match_exactly_what_the_oracle_finds(catalog: Catalog, rng: np.random.Generator) -> None:
    images = _library(rng, 60)
    _write(catalog, images)
    ids = _ids(catalog, images)
    phrases = {p for _ in range(40) for p in parse_query(_words(rng, 2))}
    phrases |= {
        tuple(tokens("42.50")),
        tuple(tokens("total 42")),
        tuple(tokens("東京")),
        ("japan", "trip"),
        ("cafe",),
        ("nothing",),
    }
    checked = 0
    for phrase in sorted(phrases):
        for source in (None, *SOURCES):
            expected = _oracle(images, ids, phrase, source)
            assert catalog.keywords.phrase_ids(phrase, source).tolist() == expected, (phrase, source)
            checked += bool(expected)
        got = catalog.select_images(ImageFilter(contains=(" ".join(phrase),))).tolist()
        assert got == _oracle(images, ids, phrase, None), phrase
    assert checked > 30  # the phrases do find things
    both = catalog.select_images(ImageFilter(contains=("receipt", "42.50"))).tolist()
    assert both == sorted(set(_oracle(images, ids, ("receipt",), None)) & set(_oracle(images, ids, ("42", "50"), None)))


def test_a_phrase_never_runs_from_one_source_into_the_next(catalog: Catalog) -> None:
    catalog.apply(embedded=[Embedded(FileStat("/p/red.jpg", 1, 1), "h1", ImageMeta(1, 1, "JPEG", title="car"), VEC)])
    catalog.apply_ocr([OcrRecord("h1", "test", (("wheel", 0.9, BOX),))])
    assert catalog.keywords.phrase_ids(("red", "car")).tolist() == []  # names end "red", tags start "car"
    assert catalog.keywords.phrase_ids(("car", "wheel")).tolist() == []
    assert catalog.keywords.phrase_ids(("wheel",), "ocr").tolist() == [1]


def test_documents_follow_moves_copies_edits_and_removals(catalog: Catalog) -> None:
    meta = ImageMeta(1, 1, "JPEG")
    catalog.apply(embedded=[Embedded(FileStat("/p/a/one.jpg", 1, 1), "h1", meta, VEC)])
    catalog.apply_ocr([OcrRecord("h1", "test", (("Receipt 42.50", 0.9, BOX),))])
    words = catalog.keywords
    assert words.phrase_ids(("42", "50")).tolist() == [1]
    catalog.apply(moved=[Moved(1, FileStat("/p/b/two.jpg", 1, 2), "/p/a/one.jpg")])  # a move keeps the text read
    assert words.phrase_ids(("42", "50")).tolist() == [1] and words.phrase_ids(("two",)).tolist() == [1]
    assert words.phrase_ids(("one",)).tolist() == []
    catalog.apply(
        embedded=[Embedded(FileStat("/p/c/copy.jpg", 1, 1), "h1", meta, VEC)]
    )  # a copy: same bytes, same text
    assert words.phrase_ids(("42", "50")).tolist() == [1, 2]
    assert catalog.ocr_read(["h1", "h2"]) == {"h1"}
    catalog.apply(
        embedded=[Embedded(FileStat("/p/c/copy.jpg", 2, 3), "h2", meta, VEC)]
    )  # edited: other bytes, not read yet
    assert words.phrase_ids(("42", "50")).tolist() == [1]
    catalog.apply(removed=[1])
    assert words.phrase_ids(("42", "50")).tolist() == [] and words.doc_count() == 1
    assert catalog.prune_ocr() == 1 and catalog.ocr_read(["h1"]) == set()  # no file has those bytes now


def test_an_unreadable_image_loses_its_document(catalog: Catalog) -> None:
    from index.records import Failed

    catalog.apply(embedded=[Embedded(FileStat("/p/sign.jpg", 1, 1), "h1", ImageMeta(1, 1, "JPEG"), VEC)])
    assert catalog.keywords.phrase_ids(("sign",)).tolist() == [1]
    catalog.apply(failed=[Failed(FileStat("/p/sign.jpg", 2, 2), "truncated", "h2")])
    assert catalog.keywords.phrase_ids(("sign",)).tolist() == [] and catalog.keywords.doc_count() == 0


def test_contains_refuses_texts_without_words() -> None:
    with pytest.raises(FilterError, match="at least one letter or digit"):
        ImageFilter(contains=("!!",))
    assert ImageFilter(contains="42.50").contains == ("42.50",)


def _make_schema_1(catalog: Catalog) -> None:
    """Turn a new catalog back into what schema 1 was: no OCR tables, no keyword index."""
    with catalog.engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.execute(text("DROP TABLE keyword_fts"))  # its triggers go with keyword_docs
        for table in ("keyword_docs", "ocr_lines", "ocr_results"):
            connection.execute(text(f"DROP TABLE {table}"))
        connection.execute(text("UPDATE meta SET value = '1' WHERE key = 'schema'"))


def test_a_schema_1_catalog_is_migrated_with_its_documents(catalog_url: str) -> None:
    old = Catalog(catalog_url)
    old.apply(
        embedded=[
            Embedded(
                FileStat("/p/Japan trip/a.jpg", 1, 1),
                "h1",
                ImageMeta(1, 1, "JPEG", description="the station sign"),
                VEC,
            )
        ],
        captions={"/p/Japan trip/a.jpg": Captions(1, (("Q3 plan", VEC),))},
    )
    _make_schema_1(old)
    old.close()
    migrated = Catalog(catalog_url)
    try:
        assert migrated.keywords.phrase_ids(("japan", "trip")).tolist() == [1]
        assert migrated.keywords.phrase_ids(("station", "sign"), "captions").tolist() == [1]
        assert migrated.keywords.phrase_ids(tuple(tokens("Q3 plan"))).tolist() == [1]
        with migrated.engine.connect() as connection:
            assert connection.execute(text("SELECT value FROM meta WHERE key = 'schema'")).scalar() == str(
                CATALOG_SCHEMA
            )
        migrated.apply_ocr([OcrRecord("h1", "test", (("EXIT", 0.9, BOX),))])  # the new tables work
        assert migrated.keywords.phrase_ids(("exit",), "ocr").tolist() == [1]
    finally:
        migrated.close()


_WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from index.catalog import Catalog
    from index.keyword_docs import OcrRecord
    from index.records import Embedded, FileStat, ImageMeta, Moved
    catalog = Catalog(sys.argv[1])
    vec = np.ones(4, "<f4").tobytes()
    box = (0.0,) * 8
    n = 0
    while True:  # until killed: new images, their text, moves and removals, batch after batch
        batch = [Embedded(FileStat(f"/p/run/img{n + i}.jpg", 1, 1), f"h{n + i}", ImageMeta(1, 1, "JPEG", title=f"word{i}"), vec) for i in range(20)]
        catalog.apply(embedded=batch)
        catalog.apply_ocr([OcrRecord(f"h{n + i}", "test", ((f"line{n + i} total", 0.9, box),)) for i in range(20)])
        first = catalog.image_by_path(f"/p/run/img{n}.jpg")
        catalog.apply(moved=[Moved(first.id, FileStat(f"/p/moved/img{n}.jpg", 1, 1), first.path)], removed=[first.id + 1])
        n += 20
        print(n, flush=True)
    """
)


def test_a_killed_writer_leaves_the_keyword_index_in_step_with_the_catalog(catalog_url: str, tmp_path: Path) -> None:
    Catalog(catalog_url).close()  # created before the writer starts
    root = Path(__file__).resolve().parents[2]
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, catalog_url],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        for _ in range(3):  # a few batches in, then kill it mid-write
            assert writer.stdout is not None and writer.stdout.readline()
        time.sleep(0.05)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    catalog = Catalog(catalog_url)
    try:
        paths = list(catalog.iter_paths())
        assert len(paths) >= 40
        with catalog.engine.connect() as connection:
            docs = dict(connection.execute(text("SELECT image_id, ocr FROM keyword_docs")).all())
            if connection.dialect.name == "sqlite":
                connection.execute(text("INSERT INTO keyword_fts(keyword_fts) VALUES ('integrity-check')"))
        records = catalog.images([catalog.image_by_path(p).id for p in paths])  # type: ignore[union-attr]
        assert set(docs) == set(records)  # every image has a document, and only they do
        read = catalog.ocr_read(r.content_hash for r in records.values())
        for image_id, record in records.items():
            words = tokens(f"line{record.content_hash[1:]} total") if record.content_hash in read else []
            assert docs[image_id] == " ".join(words)
            assert catalog.keywords.phrase_ids(tuple(tokens(Path(record.path).stem)), "names").tolist() == [image_id]
        total = catalog.keywords.phrase_ids(("total",), "ocr").tolist()
        assert total == sorted(i for i, r in records.items() if r.content_hash in read)
    finally:
        catalog.close()
