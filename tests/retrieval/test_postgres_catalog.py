"""A library whose catalog is on PostgreSQL behaves exactly like one on SQLite.

The same session of work (index with broken files and captions, search by text, image and
filters, add texts, move, copy, delete and re-index, reopen) runs against both catalogs;
SQLite's answers are the oracle. Needs a PostgreSQL server (tests/postgres.py starts one).
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from index.errors import (
    CatalogMismatchError,
    CatalogUnavailableError,
    MissingDependencyError,
)
from index.records import ImageFilter
from tests.helpers.files import add_broken_files


def _session(lib, photos: Path, notes: Path) -> list:  # noqa: ANN001
    """Everything a user might do in one sitting; answers with paths relative to ``photos``."""

    def rel(path: str) -> str:
        return str(Path(path).relative_to(photos))

    def hits(found) -> list:  # noqa: ANN001
        return [(rel(h.path), round(h.score, 4), h.width, h.height, h.format) for h in found]

    out: list = []
    report = lib.index([photos])
    out.append(("first run", report.added, report.failed, sorted(rel(p) for p, _ in report.failures)))
    out.append(("text", hits(lib.search(text="a cat on a table", k=20))))
    out.append(("page 2", hits(lib.search(text="a cat on a table", k=3, offset=3))))
    out.append(("image", hits(lib.search(image=next(photos.rglob("coffee.*")), k=4))))
    out.append(("under", hits(lib.search(text="a rocket", k=20, where=ImageFilter(under=(str(photos / "nested"),))))))
    out.append(("ext", hits(lib.search(text="a rocket", k=20, where=ImageFilter(extensions=(".png",))))))
    out.append(("after", hits(lib.search(text="a rocket", k=20, where=ImageFilter(after=datetime(2000, 1, 1))))))
    added = lib.add_texts(notes)
    out.append(
        (
            "texts",
            added.added,
            [(t.text, round(t.score, 4)) for t in lib.search_texts(image=next(photos.rglob("rocket.*")), k=5)],
        )
    )
    out.append(("texts again", lib.add_texts(notes).added))
    coffee = next(photos.rglob("coffee.*"))
    coffee.rename(photos / "nested" / f"moved{coffee.suffix}")
    shutil.copy2(next(photos.rglob("rocket.*")), photos / "rocket-copy.png")
    next(photos.rglob("coins.*")).unlink()
    again = lib.index([photos])
    out.append(("second run", again.added, again.moved, again.removed, again.unchanged, again.encoded))
    out.append(("after changes", hits(lib.search(text="a cat on a table", k=20))))
    out.append(("failures", sorted((rel(p), why) for p, why in lib.failures())))
    info = lib.info()
    out.append(("info", info.images, info.failed, info.texts))
    lib.remove_texts(notes)
    out.append(("texts removed", lib.info().texts))
    return out


def _setup(tmp_path: Path, photos: Path, name: str) -> tuple[Path, Path]:
    folder = tmp_path / name
    shutil.copytree(photos, folder, copy_function=shutil.copy2)
    add_broken_files(folder, next(folder.rglob("*.jpg")))
    notes = tmp_path / f"{name}-notes.txt"
    notes.write_text("a cup of coffee\na rocket on a launch pad\na cat\nsome coins\n")
    return folder, notes


def test_a_postgresql_catalog_answers_like_sqlite(
    open_library, photos: Path, tmp_path: Path, postgres_url: str
) -> None:  # noqa: ANN001
    from retrieval import Library

    answers = {}
    for kind, url in (("sqlite", ""), ("postgresql", postgres_url)):
        folder, notes = _setup(tmp_path, photos, kind)
        answers[kind] = _session(open_library(tmp_path / f"lib-{kind}", catalog_url=url), folder, notes)
    assert answers["postgresql"] == answers["sqlite"]
    assert answers["sqlite"][0][2] == 4  # the broken files were recorded, not fatal

    # The library remembers its catalog: reopening without a URL finds the same rows.
    directory = tmp_path / "lib-postgresql"
    assert json.loads((directory / "manifest.json").read_text())["catalog_url"] == postgres_url
    assert not (directory / "catalog.sqlite").exists()
    with Library.open(directory) as reopened:
        assert reopened.info().images == answers["postgresql"][-2][1]
        assert reopened.catalog.url == postgres_url


def test_another_catalog_url_for_an_existing_library_is_refused(
    open_library, tmp_path: Path, postgres_url: str, tiny_encoder
) -> None:  # noqa: ANN001
    from retrieval import Library

    open_library(tmp_path / "lib").close()  # a SQLite library
    with pytest.raises(CatalogMismatchError, match="--catalog-url"):
        Library.open(tmp_path / "lib", catalog_url=postgres_url)
    with_password = postgres_url.replace("xmr@", "xmr:secret@", 1)
    open_library(tmp_path / "pg", catalog_url=postgres_url).close()
    Library.open(tmp_path / "pg", catalog_url=with_password).close()  # same database, password given
    (tmp_path / "notes.txt").write_text("a cat\n")
    open_library(tmp_path / "pg").add_texts(tmp_path / "notes.txt")  # the catalog is in use now
    with pytest.raises(CatalogMismatchError, match="empty database"):  # two libraries, one catalog
        Library.open(tmp_path / "second", model=tiny_encoder, catalog_url=postgres_url)
    assert not (tmp_path / "second").exists()


def test_an_unreachable_catalog_leaves_no_library_and_hides_the_password(
    tmp_path: Path, tiny_encoder, postgres_url: str
) -> None:  # noqa: ANN001
    from retrieval import Library

    missing = postgres_url.replace("xmr@", "xmr:hunter2@", 1).replace("/xmr_test_", "/no_such_db_", 1)
    with pytest.raises(CatalogUnavailableError, match="(?s)createdb.*password") as caught:
        Library.open(tmp_path / "lib", model=tiny_encoder, catalog_url=missing)
    assert "hunter2" not in str(caught.value) and "***" in str(caught.value)
    assert not (tmp_path / "lib").exists()


def test_a_missing_database_driver_names_the_install(
    tmp_path: Path, tiny_encoder, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    from retrieval import Library

    monkeypatch.setitem(__import__("sys").modules, "MySQLdb", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match="MySQLdb"):
        Library.open(tmp_path / "lib", model=tiny_encoder, catalog_url="mysql://u@h/db")
    with pytest.raises(CatalogUnavailableError, match="does not know"):
        Library.open(tmp_path / "lib", model=tiny_encoder, catalog_url="postgresql+no_such_driver://u@h/db")
    with pytest.raises(CatalogUnavailableError, match="not a SQLAlchemy database URL"):
        Library.open(tmp_path / "lib", model=tiny_encoder, catalog_url="not a url")
    assert not (tmp_path / "lib").exists()
