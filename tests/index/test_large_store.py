"""VectorStore with compressed and on-disk kinds: catalog agreement, budgets, retraining, crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from index.catalog import IMAGES, Catalog
from index.config import IndexConfig, estimate_bytes, format_bytes, parse_bytes
from index.kinds.exact import ExactIndex
from index.kinds.ondisk_build import builds_dir
from index.snapshot import read_header
from index.store import VectorStore
from index.vectors import EXACT, IVF, IVFPQ, ONDISK, SQ8
from tests.helpers.oracles import assert_topk, clustered_rows, embedded

DIM = 16
REPO = Path(__file__).resolve().parents[2]


def _fill(catalog: Catalog, rng: np.random.Generator, n: int, prefix: str) -> None:
    vs, _ = clustered_rows(rng, n, DIM, 12, spread=0.1)
    catalog.apply(embedded=[embedded(f"{prefix}{i:05d}.jpg", v) for i, v in enumerate(vs)])


def _oracle(catalog: Catalog) -> tuple[np.ndarray, np.ndarray]:
    return catalog.vectors_since(IMAGES, -1, DIM)


def _store(path: Path, catalog: Catalog, config: IndexConfig) -> VectorStore:
    store = VectorStore(path, catalog, IMAGES, DIM, config)
    store.load()
    return store


def _check(store: VectorStore, catalog: Catalog, exact: bool) -> None:
    """Ids agree with the catalog; search is exact (all lists probed) or has recall@10 >= 0.9."""
    assert store.agrees_with_catalog() and store.generation == catalog.generation()
    ids, x = _oracle(catalog)
    queries = x[:: max(1, len(x) // 20)][:20]
    truth = ExactIndex(DIM, ids, x).search(queries, 10)
    got = store.search(queries, 10)
    if exact:
        for g, q in zip(got, queries):
            assert_topk(g, ids, x, q, 10)
    recall = np.mean([len(set(g.ids.tolist()) & set(t.ids.tolist())) / 10 for g, t in zip(got, truth)])
    assert recall >= 0.9


@pytest.mark.parametrize("kind", [SQ8, IVFPQ, ONDISK])
def test_store_kinds_follow_the_catalog_through_saves_and_reloads(tmp_path: Path, catalog: Catalog, kind: str) -> None:
    rng = np.random.default_rng(1)
    _fill(catalog, rng, 1200, "/a/")
    path = tmp_path / "images.vec"
    config = IndexConfig(kind=kind)
    store = _store(path, catalog, config)
    assert store.index.kind == kind
    store.persist()
    assert read_header(path)[0].kind == kind

    loaded = _store(path, catalog, config)
    assert loaded.index.kind == kind and loaded.repaired is False
    _check(loaded, catalog, exact=False)
    ids = catalog.vector_ids(IMAGES)
    catalog.apply(removed=ids[:100].tolist())
    _fill(catalog, rng, 150, "/b/")
    _fill(catalog, rng, 50, "/a/")  # same paths: replaced vectors
    assert loaded.refresh()
    _check(loaded, catalog, exact=False)
    loaded.persist()
    again = _store(path, catalog, config)
    assert again.index.kind == kind and again.repaired is False
    _check(again, catalog, exact=False)


def test_damaged_ondisk_files_are_rebuilt_from_the_catalog(tmp_path: Path, catalog: Catalog) -> None:
    _fill(catalog, np.random.default_rng(2), 300, "/a/")
    path = tmp_path / "images.vec"
    _store(path, catalog, IndexConfig(kind=ONDISK)).persist()
    (build,) = builds_dir(path).iterdir()
    (build / "vecs.bin").write_bytes(b"")
    store = _store(path, catalog, IndexConfig(kind=ONDISK))
    assert store.repaired is True and store.index.kind == ONDISK
    _check(store, catalog, exact=False)


# ---- budgets --------------------------------------------------------------------------------


def test_parse_and_format_bytes() -> None:
    assert parse_bytes("2GB") == 2 * 10**9 and parse_bytes("1.5 GiB") == int(1.5 * 2**30)
    assert parse_bytes("512mb") == 512 * 10**6 and parse_bytes("0") == 0 and parse_bytes("1024") == 1024
    for bad in ("", "lots", "2 parsecs", "-1GB"):
        with pytest.raises(ValueError, match="not a size"):
            parse_bytes(bad)
    assert format_bytes(1_536_000) == "1.5 MB" and format_bytes(12) == "12 B"


def test_budget_picks_the_cheapest_kind_that_fits() -> None:
    n, d = 1_000_000, 512
    sizes = [estimate_bytes(k, n, d) for k in (EXACT, SQ8, IVFPQ, ONDISK)]
    assert sizes == sorted(sizes, reverse=True) and estimate_bytes(IVF, n, d) > sizes[0]
    assert IndexConfig().kind_for(n, d) == IVF  # no budget: as before budgets existed
    assert IndexConfig(memory_budget=parse_bytes("3GB")).kind_for(n, d) == IVF
    assert IndexConfig(memory_budget=parse_bytes("1GB")).kind_for(n, d) == SQ8
    assert IndexConfig(memory_budget=parse_bytes("200MB")).kind_for(n, d) == IVFPQ
    assert IndexConfig(memory_budget=parse_bytes("50MB")).kind_for(n, d) == ONDISK
    assert IndexConfig(memory_budget=parse_bytes("1GB")).kind_for(100_000, d) == EXACT  # below the IVF threshold, fits
    assert IndexConfig(memory_budget=1).kind_for(500, d) == EXACT  # too few to train anything
    assert IndexConfig(kind=SQ8, memory_budget=1).kind_for(n, d) == SQ8  # an explicit kind wins
    with pytest.raises(ValueError):
        IndexConfig(memory_budget=-1)


def test_store_switches_to_a_compressed_kind_when_the_budget_calls_for_it(tmp_path: Path, catalog: Catalog) -> None:
    _fill(catalog, np.random.default_rng(3), 1100, "/a/")
    exact_size = estimate_bytes(EXACT, 1100, DIM)
    config = IndexConfig(approx_threshold=10**6, memory_budget=exact_size - 1)
    store = _store(tmp_path / "images.vec", catalog, config)
    assert store.index.kind == SQ8
    store.persist()  # after the save the float rows are read from the file, not held
    assert read_header(tmp_path / "images.vec")[0].kind == SQ8
    assert store.memory_bytes() <= config.memory_budget


# ---- retraining -----------------------------------------------------------------------------


def _grown_store(tmp_path: Path, catalog: Catalog, kind: str) -> VectorStore:
    """A saved store trained on 1,000 vectors whose catalog then grew to 2,100 (> 2x)."""
    rng = np.random.default_rng(4)
    _fill(catalog, rng, 1000, "/old/")
    config = IndexConfig(kind=kind, nprobe=4096, retrain_factor=2.0)  # every list probed: exact
    store = _store(tmp_path / "images.vec", catalog, config)
    store.persist()
    assert store.index.trained_on == 1000 and not store.retrain_due()  # type: ignore[attr-defined]
    _fill(catalog, rng, 1100, "/new/")
    store.refresh()
    assert store.retrain_due()
    return store


@pytest.mark.parametrize("kind", [IVF, ONDISK])
def test_searches_during_a_retrain_are_correct_and_the_swap_is_saved(
    tmp_path: Path, catalog: Catalog, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _grown_store(tmp_path, catalog, kind)
    old = store.index
    release, started = threading.Event(), threading.Event()
    real_build = store._build

    def slow_build(which: str):  # noqa: ANN202
        started.set()
        assert release.wait(30)
        return real_build(which)

    monkeypatch.setattr(store, "_build", slow_build)
    store.persist(retrain="background")
    assert started.wait(30)
    catalog.apply(removed=catalog.vector_ids(IMAGES)[:50].tolist())  # changes while it builds
    _fill(catalog, np.random.default_rng(5), 30, "/during/")
    assert store.refresh()
    assert store.index.trained_on == old.trained_on  # type: ignore[attr-defined]  # the old index serves
    _check(store, catalog, exact=True)
    store.persist(retrain="never")  # a save meanwhile must keep the tombstones the retrain needs
    release.set()
    assert store.finish_retrain(timeout=60)
    assert store.index.kind == kind and store.index.trained_on > 2000  # type: ignore[attr-defined]
    _check(store, catalog, exact=True)
    assert read_header(store.path)[0].trained_on == store.index.trained_on  # type: ignore[attr-defined]
    reloaded = _store(store.path, catalog, store.config)
    assert reloaded.index.trained_on == store.index.trained_on and not reloaded.repaired  # type: ignore[attr-defined]
    _check(reloaded, catalog, exact=True)


def test_a_failed_retrain_leaves_the_old_index_serving(
    tmp_path: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _grown_store(tmp_path, catalog, ONDISK)
    store.persist(retrain="never")
    before = store.path.read_bytes()

    def broken(which: str):  # noqa: ANN202
        raise OSError("disk full")

    monkeypatch.setattr(store, "_build", broken)
    store.persist()
    assert isinstance(store.retrain_error, OSError) and store.path.read_bytes() == before
    _check(store, catalog, exact=True)


CHILD = """
import sys, time, numpy as np
from pathlib import Path
import index.kinds.ondisk_build as ob
from index.catalog import Catalog, IMAGES
from index.config import IndexConfig
from index.store import VectorStore
path, url, marker = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
real = ob.append_rows
def slow(*args, **kwargs):
    out = real(*args, **kwargs)
    marker.write_text("building")
    time.sleep(60)
    return out
ob.append_rows = slow
store = VectorStore(path, Catalog(url), IMAGES, 16, IndexConfig(kind="ondisk", nprobe=4096, retrain_factor=2.0))
store.load()
store.persist()
"""


def test_kill_9_mid_retrain_leaves_the_old_index_usable(tmp_path: Path, catalog: Catalog) -> None:
    store = _grown_store(tmp_path, catalog, ONDISK)
    store.persist(retrain="never")
    snapshot = store.path.read_bytes()
    marker = tmp_path / "marker"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store.path), catalog.url, str(marker)], env=env, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "no marker"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert store.path.read_bytes() == snapshot  # the snapshot still names the old build
    assert len(list(builds_dir(store.path).iterdir())) == 2  # the old build and an orphan
    reopened = _store(store.path, catalog, store.config)
    assert reopened.repaired is False and reopened.index.trained_on == 1000  # type: ignore[attr-defined]
    _check(reopened, catalog, exact=True)
