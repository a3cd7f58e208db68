"""Committing batch N in a background thread while batch N+1 is encoded changes nothing.

The oracle is the same run with ``commit_ahead=False`` (each batch committed before the
next is looked at). A catalog that holds each transaction back until the next batch's
look-up has run makes the overlap happen every time, not by luck of timing.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from index.catalog import Catalog, sqlite_url
from index.records import FileStat, ImageMeta
from retrieval.ingest.commit import Progress, Read, commit_reads
from retrieval.ingest.config import IngestConfig
from retrieval.ingest.scan import Plan
from tests.helpers.catalog_dump import dump
from tests.helpers.files import add_broken_files

DIM = 8
META = ImageMeta(4, 4, "JPEG")


class LateCatalog(Catalog):
    """``apply`` off the main thread waits until the next batch has asked ``by_hash``."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.cond = threading.Condition()
        self.reset()

    def reset(self) -> None:
        self.lookups = self.applies = self.overlapped = 0

    def by_hash(self, hashes):  # noqa: ANN001, ANN201
        found = super().by_hash(hashes)
        with self.cond:
            self.lookups += 1
            self.cond.notify_all()
        return found

    def apply(self, **kwargs):  # noqa: ANN003, ANN201
        if threading.current_thread() is not threading.main_thread():
            with self.cond:
                self.applies += 1
                if self.cond.wait_for(lambda: self.lookups > self.applies, timeout=0.5):
                    self.overlapped += 1
        return super().apply(**kwargs)


class PixelEncoder:
    """Vector = a fixed function of the pixels (equal bytes, equal vector); counts images encoded."""

    device = "cpu"

    def __init__(self) -> None:
        self.images = 0

    def stack(self, pixels: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(pixels)

    def encode_images(self, pixels: torch.Tensor) -> np.ndarray:
        self.images += len(pixels)
        seeds = pixels.reshape(len(pixels), -1)[:, 0].int().tolist()
        rows = np.stack([np.random.default_rng(s).standard_normal(DIM) for s in seeds])
        return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        return self.encode_images(torch.tensor([[[[len(t)]]] for t in texts], dtype=torch.float32))


def _read(path: str, content: int | None, mtime: int = 1) -> Read:
    stat = FileStat(path, 100, mtime)
    if content is None:
        return Read(stat, error="truncated or corrupt image data")
    return Read(stat, f"hash{content}", torch.full((3, 2, 2), float(content)), META)


def _seed(catalog: Catalog, encoder: PixelEncoder) -> Plan:
    """An earlier run indexed /p and /p2 (content 1) and /q (content 2); the plan re-reads /p and /q."""
    commit_reads(
        [_read("/p", 1), _read("/p2", 1), _read("/q", 2)],
        Plan(todo=[]),
        encoder,
        catalog,
        IngestConfig(commit_ahead=False),
    )
    rows = catalog.files_under(["/"])
    return Plan(previous={"/p": rows["/p"], "/q": rows["/q"]})


# In batches of two: /p changes to content 3 while /r, one batch later, holds /p's old bytes
# (the look-up finds /p's old row while its rewrite is in flight, and must then find /p2's); /x's bytes are copied by /y
# and /w one and two batches later; /q fails; /u, /v and /t share new bytes within and across batches.
READS = [
    ("/p", 3),
    ("/x", 5),
    ("/r", 1),
    ("/y", 5),
    ("/q", None),
    ("/w", 5),
    ("/u", 7),
    ("/v", 7),
    ("/t", 7),
    ("/s", 3),
]


def _run(catalog: Catalog, ahead: bool, on_progress=None) -> tuple[object, PixelEncoder]:  # noqa: ANN001
    encoder = PixelEncoder()
    plan = _seed(catalog, encoder)
    plan.todo = [FileStat(p, 100, 1) for p, _ in READS]
    encoder.images = 0
    getattr(catalog, "reset", lambda: None)()
    tally = commit_reads(
        [_read(p, c) for p, c in READS],
        plan,
        encoder,
        catalog,
        IngestConfig(batch_size=2, commit_ahead=ahead),
        on_progress,
    )
    return tally, encoder


def test_commit_ahead_writes_what_committing_in_turn_writes(tmp_path: Path) -> None:
    serial = Catalog(sqlite_url(str(tmp_path / "serial.sqlite")))
    ahead = LateCatalog(sqlite_url(str(tmp_path / "ahead.sqlite")))
    want, want_encoder = _run(serial, ahead=False)
    got, got_encoder = _run(ahead, ahead=True)
    assert ahead.overlapped >= 3  # the look-ups really ran while the batch before was in flight
    assert dump(ahead) == dump(serial)
    assert got == want and got_encoder.images == want_encoder.images
    assert (want.added, want.updated, want.encoded, len(want.failed)) == (
        8,
        1,
        4,
        1,
    )  # /p,/x,/u,/v encoded; /r,/y,/w,/t,/s copies
    serial.close()
    ahead.close()


def test_interrupt_keeps_exactly_the_reported_batches(tmp_path: Path) -> None:
    catalog = LateCatalog(sqlite_url(str(tmp_path / "c.sqlite")))
    seen: list[Progress] = []

    def stop(progress: Progress) -> None:
        seen.append(progress)
        if progress.done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(catalog, ahead=True, on_progress=stop)
    assert [p.done for p in seen] == [2, 4]
    assert not [t for t in threading.enumerate() if t.name.startswith("xmr-commit")]  # nothing still writing
    rows = catalog.files_under(["/"])
    assert sorted(rows) == ["/p", "/p2", "/q", "/r", "/x", "/y"]  # the seed, then two batches of READS
    assert rows["/q"].state == "indexed" and rows["/p"].content_hash == "hash3"
    catalog.close()


def test_a_failed_transaction_surfaces_and_stops_the_run(tmp_path: Path) -> None:
    class Full(LateCatalog):
        def apply(self, **kwargs):  # noqa: ANN003, ANN201
            if kwargs.get("embedded") and kwargs["embedded"][0].stat.path == "/r":
                raise OSError("disk full")
            return super().apply(**kwargs)

    catalog = Full(sqlite_url(str(tmp_path / "c.sqlite")))
    with pytest.raises(OSError, match="disk full"):
        _run(catalog, ahead=True)
    assert sorted(catalog.files_under(["/"])) == ["/p", "/p2", "/q", "/x"]
    catalog.close()


def test_library_index_same_catalog_with_and_without_commit_ahead(open_library, photos: Path, tmp_path: Path) -> None:  # noqa: ANN001
    """Copies across batches, broken files, then an edit, a move and a deletion, in batches of two."""
    good = sorted(photos.rglob("*.jpg"))
    for source in good[:2]:
        shutil.copy2(source, photos / f"copy-of-{source.name}")
    add_broken_files(photos, good[0])
    libraries = {ahead: open_library(tmp_path / f"lib-{ahead}") for ahead in (False, True)}
    reports = {
        ahead: [lib.index([photos], config=IngestConfig(batch_size=2, commit_ahead=ahead))]
        for ahead, lib in libraries.items()
    }
    (photos / f"copy-of-{good[0].name}").write_bytes(good[1].read_bytes())  # edited: now a copy of another photo
    next(photos.rglob("coffee.png")).rename(photos / "moved.png")
    (photos / "notes.jpg").unlink()
    for ahead, lib in libraries.items():
        reports[ahead].append(lib.index([photos], config=IngestConfig(batch_size=2, commit_ahead=ahead)))
    summary = {
        a: [
            (r.added, r.updated, r.moved, r.removed, r.unchanged, r.failed, r.encoded, sorted(r.failures))
            for r in reports[a]
        ]
        for a in reports
    }
    assert summary[True] == summary[False]
    assert summary[True][0][5] == 4 and summary[True][1][2:4] == (1, 1)  # broken files; the move and the deletion
    assert dump(libraries[True].catalog) == dump(libraries[False].catalog)
    for lib in libraries.values():
        assert lib.images.agrees_with_catalog()


def test_an_in_memory_catalog_commits_in_turn() -> None:
    """SQLite in memory is one database per thread: writing it from a committer thread would lose the rows."""
    catalog = Catalog("sqlite://")
    tally, _ = _run(catalog, ahead=True)
    assert tally.added == 8 and len(catalog.files_under(["/"])) == 11  # the seed's 3 and 8 new paths
    catalog.close()
