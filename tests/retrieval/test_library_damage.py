"""A library damaged after it was made: each kind of damage is seen, named with its fix, and
repaired from the catalog where the catalog holds what was lost (issue 23, items 5, 6, 9, 11).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

import cli
from index.snapshot import read_header, read_snapshot
from index.store import VectorStore


@pytest.fixture
def run(tmp_path: Path, tiny_model_dir: Path):  # noqa: ANN201
    """The CLI on the library in ``tmp_path / "library"`` (in process, through typer's runner)."""
    library = tmp_path / "library"
    runner = CliRunner()

    def _run(*args: str):  # noqa: ANN202
        return runner.invoke(cli.app, [*args, "--library", str(library)])

    _run.library = library  # type: ignore[attr-defined]
    _run.model = f"local-dir:{tiny_model_dir}"  # type: ignore[attr-defined]
    return _run


def _indexed(run, photos: Path) -> None:  # noqa: ANN001
    done = run("index", str(photos), "--model", run.model)
    assert done.exit_code == 0, done.output


def _one_line(output: str) -> str:
    return " ".join(output.split())


# ---- item 5: same-size damage to the vector index ------------------------------------------


def test_a_vector_index_overwritten_in_place_is_rebuilt_and_photos_find_themselves(open_library, photos: Path) -> None:  # noqa: ANN001
    lib = open_library()
    lib.index([photos])
    path, dim = lib.layout.image_vectors, lib.identity.embed_dim
    header, offset = read_header(path)
    lib.close()
    with open(path, "r+b") as handle:  # every row rewritten, the size kept: only checksums can tell
        handle.seek(offset + 8 * header.count)
        rows = np.random.default_rng(0).standard_normal((header.count, dim)).astype("<f4")
        handle.write(rows.tobytes())

    reopened = open_library(lib.layout.root)
    ids = reopened.catalog.vector_ids("images")
    stored = reopened.catalog.vectors_for(ids.tolist())
    for i in ids.tolist():  # each photo's own vector finds it first
        assert reopened.search_vector(np.frombuffer(stored[i], "<f4"), k=1)[0].id == i
    read_snapshot(path, dim)  # saved again, whole: it loads without a complaint


def test_an_index_run_repairs_a_damaged_index_a_reader_could_not_save(open_library, photos: Path) -> None:  # noqa: ANN001
    from index.lock import WriteLock

    lib = open_library()
    lib.index([photos])
    path = lib.layout.image_vectors
    data = bytearray(path.read_bytes())
    data[-200:-100] = bytes(100)  # zeros over the last rows
    path.write_bytes(bytes(data))
    held = WriteLock(lib.layout.lock)
    assert held.acquire()  # an index run elsewhere: the reader below may not save
    try:
        reader = open_library(lib.layout.root)
        assert reader.images.damaged and reader.images.agrees_with_catalog()
    finally:
        held.release()
    report = lib.index([photos])
    assert report.unchanged == 6
    index, _ = read_snapshot(path, lib.identity.embed_dim)
    assert np.array_equal(np.sort(index.ids()), lib.catalog.vector_ids("images"))


# ---- item 6: catalog damage after open ---------------------------------------------------------


def _damage_images_table(catalog: Path) -> None:
    """0xFF over the images table's root page (a small catalog: its only page), size kept: no
    valid page type, so SQLite reads it as "database disk image is malformed"."""
    with sqlite3.connect(catalog) as db:
        (page,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'images'").fetchone()
        (size,) = db.execute("PRAGMA page_size").fetchone()
    db.close()
    with open(catalog, "r+b") as handle:
        handle.seek((page - 1) * size)
        handle.write(b"\xff" * size)


def test_a_catalog_damaged_after_open_is_exit_2_naming_the_repair(run, photos: Path) -> None:  # noqa: ANN001
    _indexed(run, photos)
    _damage_images_table(run.library / "catalog.sqlite")
    # info and failures read no row of that table (counts come from an index): they still work
    for command in (
        ("search", "a cat"),
        ("search", "--image", str(next(photos.rglob("coffee.*")))),
        ("index", str(photos)),
    ):
        done = run(*command)
        said = _one_line(done.output)
        assert done.exit_code == 2, done.output
        assert "is damaged" in said and ".recover" in said and "photos are untouched" in said, said
        assert "internal error" not in said


def test_a_bad_vector_blob_is_left_out_then_embedded_again_by_the_next_run(run, photos: Path) -> None:  # noqa: ANN001
    from retrieval import Library

    _indexed(run, photos)
    with Library.open(run.library) as lib:
        bad = int(lib.catalog.vector_ids("images")[2])
        with lib.catalog.engine.begin() as connection:
            connection.execute(text("UPDATE images SET vector = :blob WHERE id = :id"), {"blob": b"\0" * 10, "id": bad})
    (run.library / "images.vec").unlink()  # the next open rebuilds from the catalog

    searched = run("search", "a cat", "-k", "10", "--json")
    assert searched.exit_code == 0, searched.output
    assert len(searched.stdout.splitlines()) == 5  # every good row; the bad one is left out

    again = run("index", str(photos), "--json")
    assert again.exit_code == 0, again.output
    assert '"updated": 1' in again.stdout
    with Library.open(run.library) as lib:
        assert lib.catalog.bad_vectors(lib.identity.embed_dim) == []
        assert len(lib.search(text="a cat", k=10)) == 6 and lib.images.agrees_with_catalog()


def test_a_folder_named_write_lock_is_exit_2_naming_the_fix(run, photos: Path) -> None:  # noqa: ANN001
    _indexed(run, photos)
    (run.library / "write.lock").unlink()
    (run.library / "write.lock").mkdir()
    done = run("index", str(photos))
    said = _one_line(done.output)
    assert done.exit_code == 2 and "is a folder, not xmr's lock file" in said and "rmdir" in said, said


# ---- item 9: texts added or removed leave the image index valid -------------------------------


def test_adding_or_removing_texts_does_not_rebuild_the_image_index_on_every_open(
    open_library, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    lib = open_library()
    lib.index([photos])
    captions = tmp_path / "captions.txt"
    captions.write_text("a cat on a sofa\na cup of coffee\n")
    lib.add_texts(captions)
    rebuilt: list[str] = []
    original = VectorStore._rebuild

    def counting(store: VectorStore, kind: str):  # noqa: ANN202
        rebuilt.append(store.corpus)
        return original(store, kind)

    monkeypatch.setattr(VectorStore, "_rebuild", counting)
    for _ in range(2):
        open_library(lib.layout.root).close()
    lib.remove_texts(captions)
    for _ in range(2):
        reopened = open_library(lib.layout.root)
        assert reopened.images.agrees_with_catalog() and reopened.texts.agrees_with_catalog()
    assert rebuilt == []


# ---- item 11: a library without its manifest ---------------------------------------------------


def test_a_library_without_its_manifest_is_not_called_missing(run, photos: Path) -> None:  # noqa: ANN001
    _indexed(run, photos)
    (run.library / "manifest.json").unlink()
    for command in (("info",), ("search", "a cat")):
        done = run(*command)
        said = _one_line(done.output)
        assert done.exit_code == 2, done.output
        assert "manifest.json" in said and "is missing" in said and "Restore" in said, said
        assert "index some photos first" not in said.lower()
