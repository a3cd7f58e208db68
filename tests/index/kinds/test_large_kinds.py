"""Compressed (sq8, ivfpq) and on-disk indexes against a brute-force oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index.errors import CorruptFileError
from index.kinds.compressed import CompressedIndex, build_compressed, pq_subquantizers
from index.kinds.exact import ExactIndex
from index.kinds.ondisk import IDS_FILE, VECS_FILE, OnDiskIndex
from index.kinds.ondisk_build import (
    build_ondisk_from_arrays,
    builds_dir,
    remove_orphans,
)
from index.snapshot import read_snapshot, write_snapshot
from index.vectors import IVFPQ, ONDISK, SQ8
from tests.helpers.oracles import assert_topk, brute_force, clustered_rows

DIM, N = 32, 3000


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clustered unit rows with sparse ids, and held-out queries from the same clusters."""
    rng = np.random.default_rng(5)
    x, centres = clustered_rows(rng, N + 40, DIM, 30, spread=0.12)
    ids = np.sort(rng.choice(50_000, N, replace=False)).astype(np.int64)
    return ids, x[:N], x[N:]


@pytest.fixture(scope="module")
def built(data, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    ids, x, _ = data
    root = tmp_path_factory.mktemp("kinds")
    return {
        SQ8: build_compressed(SQ8, DIM, ids, x),
        IVFPQ: build_compressed(IVFPQ, DIM, ids, x),
        ONDISK: build_ondisk_from_arrays(root / "images.vec", DIM, ids, x),
    }


def _recall(index, ids: np.ndarray, x: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    truth = ExactIndex(DIM, ids, x).search(queries, k)
    got = index.search(queries, k)
    return float(np.mean([len(set(g.ids.tolist()) & set(t.ids.tolist())) / k for g, t in zip(got, truth)]))


@pytest.mark.parametrize("kind", [SQ8, IVFPQ, ONDISK])
def test_recall_at_10_against_exact(built, data, kind: str) -> None:
    ids, x, queries = data
    assert _recall(built[kind], ids, x, queries) >= 0.9


@pytest.mark.parametrize("kind", [SQ8, IVFPQ])
def test_refine_returns_exact_scores_and_helps_pq(built, data, kind: str) -> None:
    ids, x, queries = data
    index: CompressedIndex = built[kind]  # type: ignore[assignment]
    by_id = dict(zip(ids.tolist(), x))
    for got, q in zip(index.search(queries, 10), queries):
        np.testing.assert_allclose(got.scores, [by_id[i] @ q for i in got.ids.tolist()], atol=1e-5)
        assert np.all(np.diff(got.scores) <= 1e-6)
    codes_only = _recall(index.with_refine(0), ids, x, queries)
    assert _recall(index, ids, x, queries) >= codes_only
    if kind == IVFPQ:
        assert pq_subquantizers(DIM) == 4 and codes_only < 0.9  # 4-byte codes lose neighbours


def test_ondisk_probing_every_list_is_exact(built, data) -> None:
    ids, x, queries = data
    index: OnDiskIndex = built[ONDISK]  # type: ignore[assignment]
    for got, q in zip(index.search(queries, 7, nprobe=index.nlist), queries):
        assert_topk(got, ids, x, q, 7)


@pytest.mark.parametrize("kind", [SQ8, IVFPQ, ONDISK])
@pytest.mark.parametrize("share", [0.5, 0.01])
def test_filtered_search_returns_only_allowed_ids(built, data, kind: str, share: float) -> None:
    ids, x, queries = data
    rng = np.random.default_rng(int(share * 100))
    allowed = np.sort(rng.choice(ids, int(len(ids) * share), replace=False))
    allowed_with_unknown = np.concatenate([allowed, [10**7, 10**7 + 1]])
    for got in built[kind].search(queries[:10], 10, allowed_with_unknown):
        assert set(got.ids.tolist()) <= set(allowed.tolist())
        assert len(got.ids) == min(10, len(allowed))  # probing widens until k are found
    few = allowed[:3]
    sel = np.isin(ids, few)
    for got, q in zip(built[kind].search(queries[:5], 10, few), queries):
        _, want = brute_force(ids[sel], x[sel], q, 3)
        assert sorted(got.ids.tolist()) == sorted(want.tolist())


def _apply_ops(index, oracle: dict[int, np.ndarray], rng: np.random.Generator, rounds: int = 4):
    for _ in range(rounds):
        live = np.array(sorted(oracle), np.int64)
        gone = rng.choice(live, 40, replace=False)
        replaced = rng.choice(np.setdiff1d(live, gone), 30, replace=False)
        new = np.arange(60_000, 60_050, dtype=np.int64) + 100 * len(oracle)
        vecs, _ = clustered_rows(rng, 80, DIM, 5)
        index = index.removed(np.concatenate([gone, [10**8]])).upserted(np.concatenate([replaced, new]), vecs)
        for i in gone.tolist():
            del oracle[i]
        oracle.update(zip(np.concatenate([replaced, new]).tolist(), vecs))
    return index


@pytest.mark.parametrize("kind", [SQ8, IVFPQ, ONDISK])
def test_updates_follow_a_dict_oracle_and_copy_on_write(built, data, kind: str) -> None:
    ids, x, queries = data
    original = built[kind]
    before = [n.ids.tolist() for n in original.search(queries, 5)]
    oracle = dict(zip(ids.tolist(), x))
    index = _apply_ops(original, oracle, np.random.default_rng(11))
    assert sorted(index.ids().tolist()) == sorted(oracle) and len(index) == len(oracle)
    assert [n.ids.tolist() for n in original.search(queries, 5)] == before, "updates changed the published index"
    if kind == ONDISK:
        flushed = index.flushed()
        assert not flushed.dirty() and sorted(flushed.ids().tolist()) == sorted(oracle)
        assert [n.ids.tolist() for n in original.search(queries, 5)] == before, (
            "a flush changed rows the old index reads"
        )
        index = flushed
    o_ids = np.array(sorted(oracle), np.int64)
    o_x = np.array([oracle[i] for i in o_ids.tolist()], np.float32)
    assert _recall(index, o_ids, o_x, queries) >= 0.85
    if kind == ONDISK:
        for got, q in zip(index.search(queries, 10, nprobe=index.nlist), queries):
            assert_topk(got, o_ids, o_x, q, 10)
    else:
        np.testing.assert_array_equal(index.rows.get(o_ids), o_x)  # rerank reads the current vectors


@pytest.mark.parametrize("kind", [SQ8, IVFPQ, ONDISK])
def test_snapshot_round_trip(built, data, tmp_path: Path, kind: str) -> None:
    ids, x, queries = data
    index = _apply_ops(built[kind], dict(zip(ids.tolist(), x)), np.random.default_rng(3), rounds=1)
    if kind == ONDISK:
        index = index.flushed()
        path = Path(f"{index.layout.directory}").parents[1] / "images.vec"  # type: ignore[union-attr]
    else:
        path = tmp_path / "images.vec"
    write_snapshot(path, index, generation=9)
    loaded, gen = read_snapshot(path, DIM)
    assert gen == 9 and loaded.kind == kind and len(loaded) == len(index)
    assert sorted(loaded.ids().tolist()) == sorted(index.ids().tolist())
    assert loaded.nprobe == index.nprobe and loaded.trained_on == index.trained_on == N
    for a, b in zip(loaded.search(queries, 10), index.search(queries, 10)):
        assert a.ids.tolist() == b.ids.tolist()
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)
    if kind != ONDISK:
        assert isinstance(loaded.rows.base_vecs, np.memmap)  # type: ignore[union-attr]  # the rerank rows stay on disk


def test_damaged_files_raise_a_typed_error_naming_the_fix(data, tmp_path: Path) -> None:
    ids, x, _ = data
    path = tmp_path / "images.vec"
    ondisk = build_ondisk_from_arrays(path, DIM, ids, x)
    write_snapshot(path, ondisk, generation=1)
    vecs = ondisk.layout.directory / VECS_FILE
    with open(vecs, "r+b") as handle:
        handle.truncate(vecs.stat().st_size // 2)
    with pytest.raises(CorruptFileError, match="truncated.*rebuilt from the catalog"):
        read_snapshot(path, DIM)
    (ondisk.layout.directory / IDS_FILE).unlink()
    with pytest.raises(CorruptFileError, match="missing"):
        read_snapshot(path, DIM)

    sq8 = tmp_path / "sq8.vec"
    write_snapshot(sq8, build_compressed(SQ8, DIM, ids, x), generation=1)
    data_bytes = sq8.read_bytes()
    sq8.write_bytes(data_bytes[: len(data_bytes) - 1000])
    with pytest.raises(CorruptFileError, match="xmr info"):
        read_snapshot(sq8, DIM)


def test_ondisk_build_in_small_chunks_moves_lists_between_chunks(data, tmp_path: Path) -> None:
    # Chunks smaller than the lists' room: lists fill up and move while later chunks come.
    from index.kinds.ondisk_build import build_ondisk, new_build_dir

    ids, x, queries = data

    def chunks():  # noqa: ANN202
        for start in range(0, len(ids), 97):
            yield ids[start : start + 97], x[start : start + 97]

    index = build_ondisk(new_build_dir(tmp_path / "images.vec"), DIM, chunks, 300, x[:300])
    assert len(index) == len(ids) and index.layout.rows > 2 * len(ids)  # lists were moved
    for got, q in zip(index.search(queries, 10, nprobe=index.nlist), queries):
        assert_topk(got, ids, x, q, 10)
    write_snapshot(tmp_path / "images.vec", index, generation=1)
    loaded, _ = read_snapshot(tmp_path / "images.vec", DIM)
    assert sorted(loaded.ids().tolist()) == ids.tolist()


def test_orphan_build_directories_are_removed_when_old(data, tmp_path: Path) -> None:
    ids, x, _ = data
    path = tmp_path / "images.vec"
    keep = build_ondisk_from_arrays(path, DIM, ids[:500], x[:500]).layout.directory
    orphan = build_ondisk_from_arrays(path, DIM, ids[:500], x[:500]).layout.directory
    assert remove_orphans(path, [keep]) == 0  # young: another process may be using it
    assert remove_orphans(path, [keep], min_age_s=0) == 1
    assert sorted(builds_dir(path).iterdir()) == [keep] and not orphan.exists()
