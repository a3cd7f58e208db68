"""The quick catalog (sqlite3, no SQLAlchemy) reads exactly what the full catalog reads, and hands
everything else to it."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from index.catalog import Catalog
from index.keywords import SOURCES, tokens
from index.layout import sqlite_url
from index.quick_catalog import QuickCatalog, open_catalog
from index.records import (
    IMAGE_COLUMNS,
    Captions,
    Embedded,
    Failed,
    FileStat,
    ImageFilter,
    ImageMeta,
    ImageRecord,
    OcrRecord,
)
from index.schema import ImageRow
from index.schema_names import IMAGES, TEXTS

WORDS = ["receipt", "42.50", "Total", "café", "Straße", "東京", "plan", "sign", "the", "ÉTÉ"]
BOX = (0.1, 0.1, 0.9, 0.1, 0.9, 0.2, 0.1, 0.2)
VEC = np.ones(4, "<f4").tobytes()
REPO = Path(__file__).resolve().parents[2]


def _words(rng: np.random.Generator, most: int) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(0, most + 1))))


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    """A catalog of seeded photos: every column kind (dates, unsigned device numbers, NULLs),
    captions, embedded descriptions, tags, OCR lines, a failed file."""
    rng = np.random.default_rng(7)
    path = tmp_path / "catalog.sqlite"
    catalog = Catalog(sqlite_url(str(path)))
    embedded, captions, ocr = [], {}, []
    for n in range(40):
        name = f"/photos/{rng.choice(['Japan trip', 'receipts', 'Café'])}/{_words(rng, 2).replace(' ', '_') or 'img'}_{n}.jpg"
        meta = ImageMeta(
            int(rng.integers(1, 5000)),
            int(rng.integers(1, 5000)),
            "JPEG" if n % 3 else "PNG",
            captured_at=datetime(2020 + n % 5, 1 + n % 12, 1 + n % 28, n % 24, n % 60, n % 60, n * 1000)
            if n % 4
            else None,
            orientation=None if n % 5 == 0 else 1 + n % 8,
            camera=None if n % 2 else "Canon EOS",
            description=_words(rng, 3) or None,
            phash=None if n % 6 == 0 else int(rng.integers(0, 2**62)),
            title=_words(rng, 2) or None,
            keywords=tuple(w for w in (_words(rng, 1), _words(rng, 2)) if w),
        )
        dev = None if n % 7 == 0 else int(2**63 + n) if n % 2 else n  # st_dev above 2**63 is stored signed
        stat = FileStat(
            name, int(rng.integers(1, 10**9)), 1_700_000_000_000_000_000 + n, dev, None if dev is None else n
        )
        embedded.append(Embedded(stat, f"h{n:03d}", meta, VEC))
        if n % 2:
            captions[name] = Captions(1, ((_words(rng, 3) or "a caption", VEC),))
        ocr.append(
            OcrRecord(f"h{n:03d}", "test", tuple((_words(rng, 4) or "x", 0.5 + n / 100, BOX) for _ in range(n % 3)))
        )
    catalog.apply(embedded=embedded, captions=captions, failed=[Failed(FileStat("/photos/bad.jpg", 5, 6), "truncated")])
    catalog.apply_ocr(ocr)
    texts = [(_words(rng, 5) or "a text", None if n % 3 else f"/photos/p{n}.jpg", VEC) for n in range(12)]
    catalog.add_texts("/captions/a.txt", texts + [("Straße 東京 \u00e9", None, VEC)])
    catalog.add_texts("/captions/gone.txt", texts[:5])
    catalog.remove_texts("/captions/gone.txt")  # tombstones
    catalog.add_texts("/captions/c.txt", texts[5:])
    catalog.close()
    return path


def _both(path: Path) -> tuple[QuickCatalog, Catalog]:
    quick = QuickCatalog.attempt(sqlite_url(str(path)))
    assert quick is not None
    return quick, Catalog(sqlite_url(str(path)))


def test_the_columns_are_the_image_rows(catalog_file: Path) -> None:
    assert set(IMAGE_COLUMNS) == {c.name for c in ImageRow.__table__.columns} - {"vector", "vector_gen"}
    assert list(IMAGE_COLUMNS) == [f for f in ImageRecord.__dataclass_fields__]


def test_every_read_equals_the_full_catalogs(catalog_file: Path) -> None:
    quick, full = _both(catalog_file)
    ids = [int(i) for i in full.vector_ids("images")] + [999_999]
    assert len(ids) > 30
    assert quick.generation() == full.generation()
    assert quick.images(ids) == full.images(ids) and len(quick.images(ids)) == len(ids) - 1
    failed = full.failures()
    assert failed and quick.images([r.id for r in failed]) == {r.id: r for r in failed}
    for record in [*full.images(ids).values(), *failed]:
        assert quick.image_by_path(record.path) == full.image_by_path(record.path) == record
    assert quick.image_by_path("/photos/none.jpg") is None
    for corpus in (IMAGES, TEXTS):  # what a store reads to catch up with the catalog
        assert quick.tombstone_floor(corpus) == full.tombstone_floor(corpus)
        for gen in range(-1, full.generation() + 1):
            assert np.array_equal(quick.deleted_since(corpus, gen), full.deleted_since(corpus, gen))
            (qi, qv), (fi, fv) = quick.vectors_since(corpus, gen, 4), full.vectors_since(corpus, gen, 4)
            assert np.array_equal(qi, fi) and np.array_equal(qv, fv) and qv.dtype == fv.dtype and qv.flags.c_contiguous
    assert len(full.deleted_since(TEXTS, -1)) == 5 and len(full.vectors_since(IMAGES, -1, 4)[0]) == 40
    text_ids = [int(i) for i in full.vector_ids("texts")] + [999_999]
    assert quick.texts(text_ids) == full.texts(text_ids) and len(full.texts(text_ids)) == len(text_ids) - 1 > 13
    assert quick.vectors_for(ids) == full.vectors_for(ids) and len(full.vectors_for(ids)) == len(ids) - 1
    assert quick.keywords.doc_count() == full.keywords.doc_count() > 0
    sources = full.keywords.sources(ids)
    assert quick.keywords.sources(ids) == sources and any(s.ocr for s in sources.values())
    phrases = {tuple(tokens(w)) for w in WORDS} | {tuple(tokens("Japan trip")), ("no", "such")}
    for phrase in phrases:
        for source in (*SOURCES, None):
            assert np.array_equal(quick.keywords.phrase_ids(phrase, source), full.keywords.phrase_ids(phrase, source))
    assert quick._full is None  # none of that needed SQLAlchemy  # noqa: SLF001
    quick.close()
    full.close()


def test_anything_else_is_the_full_catalogs(catalog_file: Path) -> None:
    quick, full = _both(catalog_file)
    assert quick.counts() == full.counts()  # not a quick read: the full catalog opens
    assert quick._full is not None  # noqa: SLF001
    where = ImageFilter(under=("/photos/Café",))
    assert np.array_equal(quick.select_images(where), full.select_images(where)) and len(full.select_images(where))
    quick.close()
    full.close()


def test_a_missing_file_another_schema_or_not_a_catalog_opens_the_full_one(tmp_path: Path, catalog_file: Path) -> None:
    import sqlite3

    assert QuickCatalog.attempt(sqlite_url(str(tmp_path / "none.sqlite"))) is None
    assert isinstance(open_catalog(sqlite_url(str(tmp_path / "new.sqlite")), quick=True), Catalog)  # made as ever
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    assert QuickCatalog.attempt(sqlite_url(str(tmp_path / "junk.sqlite"))) is None
    with sqlite3.connect(catalog_file) as connection:
        connection.execute("UPDATE meta SET value = '4' WHERE key = 'schema'")
    assert QuickCatalog.attempt(sqlite_url(str(catalog_file))) is None  # the full catalog migrates (or refuses)
    assert not isinstance(open_catalog(sqlite_url(str(catalog_file)), quick=False), QuickCatalog)


def test_a_read_that_fails_is_the_full_catalogs_error(catalog_file: Path) -> None:
    """A table damaged after open: the quick read fails, the full catalog names the repair."""
    import sqlite3

    from index.errors import CorruptFileError

    quick = QuickCatalog.attempt(sqlite_url(str(catalog_file)))
    assert quick is not None
    with sqlite3.connect(catalog_file) as db:
        (page,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'images'").fetchone()
        (size,) = db.execute("PRAGMA page_size").fetchone()
    db.close()
    with open(catalog_file, "r+b") as handle:  # no valid page type: "database disk image is malformed"
        handle.seek((page - 1) * size)
        handle.write(b"\xff" * size)
    with pytest.raises(CorruptFileError, match="recover"):
        quick.images([1, 2])
    quick.close()


def test_a_search_imports_no_sqlalchemy(tmp_path: Path, tiny_model_dir: Path, photos: Path) -> None:
    """The command-line search of an up-to-date library, text and words and an image query."""
    from retrieval.library import Library

    library = tmp_path / "lib"
    with Library.open(library, model=f"local-dir:{tiny_model_dir}") as lib:
        lib.index([photos])
    query = next(photos.rglob("coffee.*"))
    probe = (
        "import sys, cli\n"
        f"for args in (['a cup of coffee'], ['--image', {str(query)!r}], ['coffee', '--mode', 'hybrid']):\n"
        "    try:\n"
        f"        cli.app(['search', *args, '-k', '3', '--library', {str(library)!r}])\n"
        "    except SystemExit as done:\n"
        "        assert not done.code, done.code\n"
        "print('sqlalchemy' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False"
