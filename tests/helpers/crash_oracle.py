"""What a library must hold after a completed run, computed from the files on disk.

Each check returns the disagreements it finds as sentences (empty: none), so that a crash
sweep can count them over hundreds of kill points and show every one at the end. The
catalog is read with plain SQL; vectors are compared with a fresh embedding of each file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text

from index.catalog_writes import SIDECAR
from index.snapshot import read_snapshot
from tests.helpers.photo_tree import expected_captions, readable

__all__ = ["Embeddings", "catalog_rows", "library_problems", "temp_files", "texts_problems"]

TOLERANCE = 1e-4  # a batch of other sizes changes float32 sums by a few ulps


class Embeddings:
    """Fresh embeddings of files and texts by ``encoder``, remembered by content."""

    def __init__(self, encoder) -> None:  # noqa: ANN001 (the Encoder protocol)
        self.encoder = encoder
        self._images: dict[str, np.ndarray] = {}
        self._texts: dict[str, np.ndarray] = {}

    def image(self, path: Path) -> np.ndarray:
        from retrieval.images.decode import decode_file

        key = hashlib.sha256(path.read_bytes()).hexdigest()
        if key not in self._images:
            pixels = self.encoder.preprocess(decode_file(path).image)
            self._images[key] = np.asarray(self.encoder.encode_images(self.encoder.stack([pixels])))[0]
        return self._images[key]

    def texts(self, bodies: Iterable[str]) -> dict[str, np.ndarray]:
        bodies = list(bodies)
        missing = sorted(set(bodies) - set(self._texts))
        if missing:
            self._texts.update(zip(missing, np.asarray(self.encoder.encode_texts(missing))))
        return {body: self._texts[body] for body in bodies}


def catalog_rows(library: Path, sql: str) -> list[tuple]:
    """Rows of ``sql`` over the library's SQLite catalog (blobs as bytes)."""
    engine = create_engine(f"sqlite:///{library / 'catalog.sqlite'}")
    try:
        with engine.connect() as db:
            return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in db.execute(text(sql))]
    finally:
        engine.dispose()


def temp_files(folder: Path) -> list[str]:
    """Temp files (``.NAME.*.tmp``) in ``folder``: what a writer killed mid-write leaves."""
    return sorted(p.name for p in Path(folder).glob(".*.tmp"))


def _vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, "<f4")


def library_problems(library: Path, tree: Path, embeddings: Embeddings) -> list[str]:
    """Every way the library disagrees with the photos under ``tree`` after a completed run."""
    problems: list[str] = []
    images = catalog_rows(library, "SELECT id, path, state, vector FROM images ORDER BY id")
    on_disk = sorted(p for p in tree.rglob("*") if p.is_file() and p.suffix in (".jpg", ".png"))
    good = {str(p) for p in on_disk if readable(p)}
    bad = {str(p) for p in on_disk} - good
    indexed = [path for _, path, state, _ in images if state == "indexed"]
    failed = {path for _, path, state, _ in images if state == "failed"}
    if sorted(indexed) != sorted(good):
        problems.append(
            f"indexed images: missing {sorted(good - set(indexed))}, extra {sorted(set(indexed) - good)}, "
            f"repeated {sorted(p for p in set(indexed) if indexed.count(p) > 1)}"
        )
    if failed != bad:
        problems.append(f"failed files: want {sorted(bad)}, got {sorted(failed)}")
    for _, path, state, blob in images:
        if state == "indexed" and path in good and blob is not None:
            fresh = embeddings.image(Path(path))
            if np.abs(_vector(blob) - fresh).max() > TOLERANCE:
                problems.append(f"{path}: its vector is not the embedding of the file now")
        if state == "indexed" and blob is None:
            problems.append(f"{path}: indexed without a vector")
    problems += _caption_problems(library, good, embeddings)
    problems += _snapshot_problems(library, embeddings.encoder.dim)
    problems += [f"temp file left in the library: {name}" for name in temp_files(library)]
    return problems


def _caption_problems(library: Path, good: set[str], embeddings: Embeddings) -> list[str]:
    rows = catalog_rows(
        library, f"SELECT body, source, image_path, vector FROM texts WHERE source LIKE '{SIDECAR}%' ORDER BY id"
    )
    got: dict[str, list[str]] = {}
    problems = []
    for body, source, image_path, _ in rows:
        path = source[len(SIDECAR) :]
        got.setdefault(path, []).append(body)
        if image_path != path:
            problems.append(f"caption {body!r} of {path} is linked to {image_path}")
    for path in sorted(good | set(got)):
        want = expected_captions(Path(path)) if path in good else []
        if got.get(path, []) != want:
            problems.append(f"{path}: captions want {want} got {got.get(path, [])}")
    fresh = embeddings.texts(body for body, *_ in rows)
    for body, source, _, blob in rows:
        if np.abs(_vector(blob) - fresh[body]).max() > TOLERANCE:
            problems.append(f"caption {body!r} of {source}: its vector is not the embedding of its text")
    return problems


def _snapshot_problems(library: Path, dim: int, written: tuple[str, ...] = ("images", "texts")) -> list[str]:
    """The snapshots of the ``written`` corpora reflect the catalog's generation and hold exactly
    its vectors; the other corpus's may be older, but must come up to date when opened."""
    from index.catalog import Catalog
    from index.store import IndexConfig, VectorStore

    problems = []
    (generation,) = catalog_rows(library, "SELECT value FROM meta WHERE key = 'generation'")[0]
    for corpus in ("images", "texts"):
        path = library / f"{corpus}.vec"
        if not path.exists():
            problems.append(f"no {path.name} after a completed run")
            continue
        index, gen = read_snapshot(path, dim)
        if corpus not in written:
            catalog = Catalog(f"sqlite:///{library / 'catalog.sqlite'}")
            store = VectorStore(path, catalog, corpus, dim, IndexConfig())
            store.load()
            if gen > int(generation) or not store.agrees_with_catalog():
                problems.append(f"{path.name} (generation {gen}) does not come up to date with the catalog")
            catalog.close()
            continue
        if gen != int(generation):
            problems.append(f"{path.name} reflects generation {gen}, the catalog is at {generation}")
        rows = catalog_rows(library, f"SELECT id, vector FROM {corpus} WHERE vector IS NOT NULL ORDER BY id")
        if not np.array_equal(np.sort(index.ids()), np.asarray([i for i, _ in rows], np.int64)):
            problems.append(f"{path.name} holds other ids than the catalog's vectors")
        elif rows and index.kind == "exact":  # small libraries: the snapshot holds the float rows
            order = np.argsort(index.ids())
            stored = np.asarray(index.vectors())[order]
            if not np.array_equal(stored, np.stack([_vector(b) for _, b in rows])):
                problems.append(f"{path.name}: its vectors differ from the catalog's")
    return problems


def texts_problems(library: Path, source: Path, want: list[str], embeddings: Embeddings) -> list[str]:
    """The texts added from ``source`` are exactly ``want`` (once each), embedded; snapshots agree."""
    rows = catalog_rows(library, "SELECT body, source, vector FROM texts ORDER BY id")
    got = [body for body, src, _ in rows if src == str(source)]
    problems = []
    if sorted(got) != sorted(dict.fromkeys(want)):
        problems.append(f"texts of {source.name}: want {sorted(set(want))} got {sorted(got)}")
    fresh = embeddings.texts(got)
    for body, src, blob in rows:
        if src == str(source) and np.abs(_vector(blob) - fresh[body]).max() > TOLERANCE:
            problems.append(f"text {body!r}: its vector is not the embedding of its text")
    problems += _snapshot_problems(library, embeddings.encoder.dim, written=("texts",))
    problems += [f"temp file left in the library: {name}" for name in temp_files(library)]
    return problems
