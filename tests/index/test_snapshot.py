"""Single-file vector snapshots: round trips, damage, versions, atomic replacement."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest

import index.atomic as atomic_mod
from index.errors import CorruptFileError, LibraryVersionError
from index.kinds.exact import ExactIndex
from index.kinds.ivf import IVFIndex, ivf_lists
from index.snapshot import (
    MAGIC,
    SNAPSHOT_VERSION,
    read_header,
    read_snapshot,
    write_snapshot,
)
from index.vectors import EXACT, IVF
from tests.helpers.oracles import assert_topk, rewrite_snapshot_header, unit_rows

DIM = 12


@pytest.fixture(scope="module")
def ivf_index() -> tuple[IVFIndex, np.ndarray]:
    rng = np.random.default_rng(21)
    x = unit_rows(rng, 1100, DIM)
    ids = rng.choice(1_000_000, 1100, replace=False).astype(np.int64)
    return IVFIndex.build(DIM, ids, x, nprobe=5), x


@pytest.fixture
def exact_index(rng: np.random.Generator) -> ExactIndex:
    ids = rng.choice(100_000, 200, replace=False).astype(np.int64)
    return ExactIndex(DIM, ids, unit_rows(rng, 200, DIM))


def _framed(raw: bytes) -> bytes:
    return MAGIC + struct.pack("<I", len(raw)) + raw


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# ---- round trips -------------------------------------------------------------------------


def test_exact_round_trip(tmp_path: Path, exact_index: ExactIndex, rng: np.random.Generator) -> None:
    path = tmp_path / "images.vec"
    write_snapshot(path, exact_index, generation=17)
    header, _ = read_header(path)
    assert (header.version, header.kind, header.dim, header.count, header.generation) == (
        SNAPSHOT_VERSION,
        EXACT,
        DIM,
        200,
        17,
    )
    loaded, gen = read_snapshot(path, DIM)
    assert gen == 17 and isinstance(loaded, ExactIndex)
    np.testing.assert_array_equal(loaded.ids(), exact_index.ids())
    np.testing.assert_array_equal(np.asarray(loaded.vectors()), exact_index.vectors())
    queries = unit_rows(rng, 5, DIM)
    for got, want, q in zip(loaded.search(queries, 9), exact_index.search(queries, 9), queries):
        assert got.ids.tolist() == want.ids.tolist()
        np.testing.assert_array_equal(got.scores, want.scores)
        assert_topk(got, exact_index.ids(), exact_index.vectors(), q, 9)
    assert _files(tmp_path) == ["images.vec"]


def test_loaded_exact_index_survives_its_file_being_replaced(tmp_path: Path, exact_index: ExactIndex) -> None:
    path = tmp_path / "images.vec"
    write_snapshot(path, exact_index, 1)
    loaded, _ = read_snapshot(path, DIM)  # memory-mapped
    write_snapshot(path, ExactIndex(DIM), 2)  # replaced while the old one is still searched
    q = exact_index.vectors()[0]
    (got,) = loaded.search(q, 3)
    assert got.ids[0] == exact_index.ids()[0]
    # Copy-on-write updates of a memory-mapped index work and leave the file alone.
    grown = loaded.upserted(np.array([-5]), q).removed(exact_index.ids()[:10])
    assert len(grown) == 191 and -5 in grown.ids().tolist()
    assert read_snapshot(path, DIM)[1] == 2


def test_ivf_round_trip(tmp_path: Path, ivf_index: tuple[IVFIndex, np.ndarray]) -> None:
    index, x = ivf_index
    path = tmp_path / "images.vec"
    write_snapshot(path, index, generation=4)
    loaded, gen = read_snapshot(path, DIM)
    assert gen == 4 and isinstance(loaded, IVFIndex) and loaded.kind == IVF
    assert loaded.nprobe == 5 and loaded._index.nprobe == 5
    assert loaded._index.nlist == ivf_lists(1100)
    np.testing.assert_array_equal(loaded.ids(), index.ids())
    queries = x[:30] + 0.05
    for got, want in zip(loaded.search(queries, 10), index.search(queries, 10)):
        assert got.ids.tolist() == want.ids.tolist()
        np.testing.assert_array_equal(got.scores, want.scores)
    # The loaded index is a full IVF index: copy-on-write removal still works.
    smaller = loaded.removed(index.ids()[:100])
    assert len(smaller) == smaller._index.ntotal == 1000


def test_empty_index_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "texts.vec"
    write_snapshot(path, ExactIndex(DIM), generation=0)
    loaded, gen = read_snapshot(path, DIM)
    assert gen == 0 and len(loaded) == 0 and loaded.ids().dtype == np.int64
    (hit,) = loaded.search(np.ones(DIM, np.float32), 5)
    assert len(hit.ids) == 0
    assert len(loaded.upserted(np.array([1]), np.ones((1, DIM)))) == 1


# ---- damage ----------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0, 5, 11, 30, "ids", "vectors", -1])
def test_truncated_exact_snapshot_is_corrupt(tmp_path: Path, exact_index: ExactIndex, keep: object) -> None:
    path = tmp_path / "images.vec"
    write_snapshot(path, exact_index, 3)
    data = path.read_bytes()
    _, offset = read_header(path)
    cut = {"ids": offset + 8 * 100, "vectors": offset + 8 * 200 + 4 * DIM * 50}.get(keep, keep)
    path.write_bytes(data[:cut])
    with pytest.raises(CorruptFileError, match="images.vec"):
        read_snapshot(path, DIM)


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.99])
def test_truncated_ivf_snapshot_is_corrupt(
    tmp_path: Path, ivf_index: tuple[IVFIndex, np.ndarray], fraction: float
) -> None:
    path = tmp_path / "images.vec"
    write_snapshot(path, ivf_index[0], 3)
    _, offset = read_header(path)
    payload_start = offset + 8 * 1100
    data = path.read_bytes()
    path.write_bytes(data[: payload_start + int(fraction * (len(data) - payload_start))])
    with pytest.raises(CorruptFileError):
        read_snapshot(path, DIM)
    path.write_bytes(data[: offset + 80])  # inside the ids
    with pytest.raises(CorruptFileError):
        read_snapshot(path, DIM)


def test_trailing_bytes_after_an_exact_snapshot_are_corrupt(tmp_path: Path, exact_index: ExactIndex) -> None:
    path = tmp_path / "images.vec"
    write_snapshot(path, exact_index, 3)
    path.write_bytes(path.read_bytes() + b"\0" * 4)
    with pytest.raises(CorruptFileError):
        read_snapshot(path, DIM)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a snapshot at all, just some text\n",
        bytes(range(256)) * 8,
        MAGIC + struct.pack("<I", 1 << 30) + b"{}",  # header length past the end
        _framed(b"not json!"),
        _framed(b"[]"),  # JSON, but not an object
        _framed(b'{"kind": "ivf"}'),  # fields missing
        _framed(b'{"version": 1, "kind": "exact", "dim": 12, "count": 0, "generation": 0, "x": 1}'),
    ],
    ids=["empty", "text", "binary", "long-header", "bad-json", "json-list", "missing-fields", "unknown-field"],
)
def test_garbage_file_is_corrupt(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "images.vec"
    path.write_bytes(content)
    with pytest.raises(CorruptFileError):
        read_snapshot(path, DIM)


def test_unknown_kind_is_corrupt(tmp_path: Path, exact_index: ExactIndex) -> None:
    path = tmp_path / "images.vec"
    write_snapshot(path, exact_index, 3)
    rewrite_snapshot_header(path, kind="hnsw")
    with pytest.raises(CorruptFileError, match="hnsw"):
        read_snapshot(path, DIM)


@pytest.mark.parametrize("which", ["exact", "ivf"])
def test_wrong_dim_is_corrupt(tmp_path: Path, exact_index: ExactIndex, ivf_index, which: str) -> None:
    path = tmp_path / "images.vec"
    write_snapshot(path, exact_index if which == "exact" else ivf_index[0], 3)
    with pytest.raises(CorruptFileError, match=f"{DIM}-d vectors.*{DIM + 4}-d"):
        read_snapshot(path, DIM + 4)


@pytest.mark.parametrize(
    "changes",
    [{"version": SNAPSHOT_VERSION + 1}, {"version": SNAPSHOT_VERSION + 1, "quantizer": "pq8"}],
    ids=["same-fields", "new-field"],
)
def test_newer_snapshot_version_is_a_version_error(tmp_path: Path, exact_index: ExactIndex, changes: dict) -> None:
    # A newer writer may also add header fields: that must still read as "upgrade xmr",
    # not as damage (damage is rebuilt over, which would destroy the newer file).
    path = tmp_path / "images.vec"
    write_snapshot(path, exact_index, 3)
    rewrite_snapshot_header(path, **changes)
    with pytest.raises(LibraryVersionError, match="(?i)upgrade"):
        read_snapshot(path, DIM)


# ---- atomic replacement --------------------------------------------------------------------


class _FailingIndex(ExactIndex):
    """Writes its header and ids, then fails while producing the vectors (disk full)."""

    def vectors(self) -> np.ndarray:
        raise OSError(28, "No space left on device")


def test_failed_write_leaves_the_old_snapshot_and_no_temp_file(tmp_path: Path, exact_index: ExactIndex) -> None:
    path = tmp_path / "images.vec"
    write_snapshot(path, exact_index, 5)
    before = path.read_bytes()
    broken = _FailingIndex(DIM, np.arange(300), unit_rows(np.random.default_rng(0), 300, DIM))
    with pytest.raises(OSError, match="No space"):
        write_snapshot(path, broken, 6)
    assert path.read_bytes() == before
    assert _files(tmp_path) == ["images.vec"]
    assert read_snapshot(path, DIM)[1] == 5


def test_failed_fsync_leaves_the_old_snapshot_and_no_temp_file(
    tmp_path: Path, exact_index: ExactIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "images.vec"
    write_snapshot(path, exact_index, 5)
    before = path.read_bytes()
    calls: list[int] = []

    def failing_fsync(fd: int) -> None:
        calls.append(fd)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(atomic_mod.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="Input/output"):
        write_snapshot(path, ExactIndex(DIM), 6)
    monkeypatch.undo()
    assert calls, "the write never reached fsync"
    assert path.read_bytes() == before
    assert _files(tmp_path) == ["images.vec"]


def test_first_write_that_fails_leaves_nothing(tmp_path: Path) -> None:
    broken = _FailingIndex(DIM, np.arange(3), unit_rows(np.random.default_rng(0), 3, DIM))
    with pytest.raises(OSError):
        write_snapshot(tmp_path / "images.vec", broken, 1)
    assert _files(tmp_path) == []
    assert not os.path.exists(tmp_path / "images.vec")
