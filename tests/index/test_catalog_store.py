"""The catalog (SQLite in a temp dir) and the vector store that follows its generations."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import Phase, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from index.catalog import IMAGES, Catalog, sqlite_url
from index.errors import CorruptFileError, LibraryVersionError
from index.kinds.exact import ExactIndex
from index.records import FAILED, INDEXED, Moved
from index.snapshot import read_header, write_snapshot
from index.store import IndexConfig, VectorStore
from index.vectors import EXACT, IVF
from tests.helpers.oracles import (
    FAST,
    assert_topk,
    embedded,
    failed,
    rewrite_snapshot_header,
    stat,
    unit_rows,
)

DIM = 8


def _vec_bytes(v: np.ndarray) -> bytes:
    return np.asarray(v, "<f4").tobytes()


def _id(catalog: Catalog, path: str) -> int:
    record = catalog.image_by_path(path)
    assert record is not None, path
    return record.id


# ---- Catalog.apply ---------------------------------------------------------------------


def test_embedded_inserts_then_updates_the_same_row(catalog: Catalog, rng: np.random.Generator) -> None:
    v1, v2 = unit_rows(rng, 2, DIM)
    g1 = catalog.apply(embedded=[embedded("/lib/a.jpg", v1, "h1")])
    first = catalog.image_by_path("/lib/a.jpg")
    assert first is not None and first.state == INDEXED and first.error is None
    assert (first.content_hash, first.size, first.width, first.height, first.format) == ("h1", 100, 40, 30, "JPEG")
    assert (first.orientation, first.camera) == (1, "Tiny Cam")
    assert catalog.vectors_for([first.id]) == {first.id: _vec_bytes(v1)}

    g2 = catalog.apply(embedded=[embedded("/lib/a.jpg", v2, "h2", size=250, mtime_ns=9)])
    second = catalog.image_by_path("/lib/a.jpg")
    assert second is not None and second.id == first.id  # same path: same row, same vector id
    assert (second.content_hash, second.size, second.mtime_ns) == ("h2", 250, 9)
    ids, vecs = catalog.vectors_since(IMAGES, g1, DIM)
    assert ids.tolist() == [first.id] and vecs.dtype == np.float32 and vecs.flags.c_contiguous
    np.testing.assert_array_equal(vecs, v2[None, :])
    assert catalog.vectors_since(IMAGES, g2, DIM)[0].size == 0
    assert catalog.vectors_since(IMAGES, g2, DIM)[1].shape == (0, DIM)
    assert catalog.deleted_since(IMAGES, 0).size == 0  # an update is not a deletion


def test_failed_drops_the_vector_and_leaves_a_tombstone(catalog: Catalog, rng: np.random.Generator) -> None:
    va, vb, vc = unit_rows(rng, 3, DIM)
    g1 = catalog.apply(embedded=[embedded("/lib/a.jpg", va), embedded("/lib/b.jpg", vb)])
    a, b = _id(catalog, "/lib/a.jpg"), _id(catalog, "/lib/b.jpg")
    g2 = catalog.apply(failed=[failed("/lib/a.jpg", "x" * 5000, "hash-a"), failed("/lib/new.jpg", "truncated")])

    row = catalog.image_by_path("/lib/a.jpg")
    assert row is not None and row.id == a and row.state == FAILED and row.content_hash == "hash-a"
    assert row.error == "x" * 2000  # long errors are cut
    assert catalog.vectors_for([a, b]) == {b: _vec_bytes(vb)}
    assert catalog.vector_ids(IMAGES).tolist() == [b]
    assert catalog.deleted_since(IMAGES, g1).tolist() == [a]  # never-embedded new.jpg: no tombstone
    assert catalog.counts() == {"images": 1, "failed": 2, "texts": 0, "videos": 0, "moments": 0}
    assert [r.path for r in catalog.failures()] == ["/lib/a.jpg", "/lib/new.jpg"]
    assert [r.path for r in catalog.failures(limit=1)] == ["/lib/a.jpg"]

    g3 = catalog.apply(failed=[failed("/lib/a.jpg", "still broken")])
    assert catalog.deleted_since(IMAGES, g2).size == 0  # no vector left to delete

    catalog.apply(embedded=[embedded("/lib/a.jpg", vc)])  # fixed file: indexed again, same id
    again = catalog.image_by_path("/lib/a.jpg")
    assert again is not None and again.id == a and again.state == INDEXED and again.error is None
    assert catalog.vectors_since(IMAGES, g3, DIM)[0].tolist() == [a]
    assert catalog.counts() == {"images": 2, "failed": 1, "texts": 0, "videos": 0, "moments": 0}


def test_moved_keeps_id_and_vector(catalog: Catalog, rng: np.random.Generator) -> None:
    va, vb = unit_rows(rng, 2, DIM)
    g1 = catalog.apply(embedded=[embedded("/lib/a.jpg", va, "ha"), embedded("/lib/b.jpg", vb, "hb")])
    a = _id(catalog, "/lib/a.jpg")
    catalog.apply(moved=[Moved(a, stat("/lib/sub/a2.jpg", 100, 77))])
    assert catalog.image_by_path("/lib/a.jpg") is None
    moved = catalog.image_by_path("/lib/sub/a2.jpg")
    assert moved is not None and (moved.id, moved.content_hash, moved.mtime_ns, moved.state) == (a, "ha", 77, INDEXED)
    assert catalog.vectors_for([a]) == {a: _vec_bytes(va)}
    assert catalog.vectors_since(IMAGES, g1, DIM)[0].size == 0  # the index needs no change
    assert catalog.deleted_since(IMAGES, g1).size == 0


def test_move_onto_a_catalogued_path_writes_nothing(catalog: Catalog, rng: np.random.Generator) -> None:
    va, vb = unit_rows(rng, 2, DIM)
    catalog.apply(embedded=[embedded("/lib/a.jpg", va), embedded("/lib/b.jpg", vb)])
    a, b = _id(catalog, "/lib/a.jpg"), _id(catalog, "/lib/b.jpg")
    gen = catalog.generation()
    with pytest.raises(ValueError, match="still catalogued"):
        catalog.apply(moved=[Moved(a, stat("/lib/b.jpg"))], embedded=[embedded("/lib/c.jpg", va)])
    assert catalog.generation() == gen
    assert (_id(catalog, "/lib/a.jpg"), _id(catalog, "/lib/b.jpg")) == (a, b)
    assert catalog.image_by_path("/lib/c.jpg") is None  # the whole batch rolled back


def test_removed_deletes_rows_and_leaves_tombstones(catalog: Catalog, rng: np.random.Generator) -> None:
    vs = unit_rows(rng, 3, DIM)
    g1 = catalog.apply(embedded=[embedded(f"/lib/{n}.jpg", v) for n, v in zip("abc", vs)])
    a, b, c = (_id(catalog, f"/lib/{n}.jpg") for n in "abc")
    catalog.apply(removed=[a, c])
    assert set(catalog.images([a, b, c])) == {b}
    assert catalog.deleted_since(IMAGES, g1).tolist() == sorted([a, c])
    assert catalog.vector_ids(IMAGES).tolist() == [b]
    assert catalog.counts()["images"] == 1
    assert list(catalog.iter_paths()) == ["/lib/b.jpg"]


def test_touched_updates_stat_only(catalog: Catalog, rng: np.random.Generator) -> None:
    (v,) = unit_rows(rng, 1, DIM)
    g1 = catalog.apply(embedded=[embedded("/lib/a.jpg", v, "ha", size=10, mtime_ns=1)])
    catalog.apply(touched=[stat("/lib/a.jpg", 10, 555), stat("/lib/unknown.jpg", 1, 1)])
    row = catalog.image_by_path("/lib/a.jpg")
    assert row is not None and (row.size, row.mtime_ns, row.content_hash, row.state) == (10, 555, "ha", INDEXED)
    assert catalog.vectors_since(IMAGES, g1, DIM)[0].size == 0
    assert catalog.image_by_path("/lib/unknown.jpg") is None  # touching creates nothing
    assert catalog.counts() == {"images": 1, "failed": 0, "texts": 0, "videos": 0, "moments": 0}


def test_generation_increments_once_per_apply_and_persists(catalog_url: str, rng: np.random.Generator) -> None:
    catalog = Catalog(catalog_url)
    vs = unit_rows(rng, 4, DIM)
    assert catalog.generation() == 0 and catalog.tombstone_floor(IMAGES) == 0
    gens = [
        catalog.apply(),
        catalog.apply(embedded=[embedded(f"/lib/{i}.jpg", v) for i, v in enumerate(vs)]),
        catalog.apply(failed=[failed("/lib/x.jpg"), failed("/lib/y.jpg")], touched=[stat("/lib/0.jpg", 1, 2)]),
        catalog.apply(removed=[_id(catalog, "/lib/1.jpg"), _id(catalog, "/lib/2.jpg")]),
    ]
    assert gens == [1, 2, 3, 4] and catalog.generation() == 4
    ids, _ = catalog.vectors_since(IMAGES, 0, DIM)
    assert {catalog.images(ids.tolist())[i].path for i in ids.tolist()} == {"/lib/0.jpg", "/lib/3.jpg"}
    catalog.close()
    reopened = Catalog(catalog_url)
    assert reopened.generation() == 4 and reopened.counts()["failed"] == 2
    reopened.close()


def test_files_under_matches_whole_path_components_only(catalog: Catalog, rng: np.random.Generator) -> None:
    paths = [
        "/a/b",
        "/a/b/x.jpg",
        "/a/b/sub/y.jpg",
        "/a/bc/z.jpg",
        "/a/b.jpg",
        "/a/x.jpg",
        "/p/100%/in.jpg",
        "/p/100x/out.jpg",
        "/p/1000/out.jpg",
        "/p/a_b/in.jpg",
        "/p/axb/out.jpg",
        "/p/a_b2/out.jpg",
        "/p/back\\slash/in.jpg",
        "/p/back/slash/out.jpg",
        "/c/Trip/out.jpg",
        "/c/trip/in.jpg",
    ]
    vs = unit_rows(rng, len(paths), DIM)
    catalog.apply(embedded=[embedded(p, v) for p, v in zip(paths, vs)])

    def under(*roots: str) -> set[str]:
        found = catalog.files_under(list(roots))
        assert all(found[p].path == p for p in found)
        return set(found)

    assert under("/a/b") == {"/a/b", "/a/b/x.jpg", "/a/b/sub/y.jpg"}
    assert under("/a/b/") == {"/a/b/x.jpg", "/a/b/sub/y.jpg"}
    assert under("/a/b/x.jpg") == {"/a/b/x.jpg"}  # a root may be a file
    assert under("/a/b/sub", "/a/bc") == {"/a/b/sub/y.jpg", "/a/bc/z.jpg"}
    assert under("/p/100%") == {"/p/100%/in.jpg"}  # % is not a LIKE wildcard here
    assert under("/p/a_b") == {"/p/a_b/in.jpg"}  # nor is _
    assert under("/p/back\\slash") == {"/p/back\\slash/in.jpg"}
    assert under("/c/trip") == {"/c/trip/in.jpg"}  # paths are case-sensitive (SQLite LIKE is not)
    assert under("/nowhere") == set()
    assert under("/") == set(paths)


def test_by_hash_returns_one_indexed_row_per_hash(catalog: Catalog, rng: np.random.Generator) -> None:
    vs = unit_rows(rng, 3, DIM)
    catalog.apply(
        embedded=[
            embedded("/lib/a.jpg", vs[0], "same"),
            embedded("/lib/copy-of-a.jpg", vs[0], "same"),
            embedded("/lib/b.jpg", vs[1], "other"),
        ],
        failed=[failed("/lib/broken.jpg", content_hash="dead"), failed("/lib/unread.jpg")],
    )
    found = catalog.by_hash(["same", "other", "dead", "", "missing", "same"])
    assert set(found) == {"same", "other"}
    assert found["same"].path in {"/lib/a.jpg", "/lib/copy-of-a.jpg"}
    assert found["other"].path == "/lib/b.jpg" and found["other"].state == INDEXED
    assert catalog.by_hash([]) == {} and catalog.by_hash([""]) == {}
    many = catalog.by_hash([f"h{i}" for i in range(1200)] + ["other"])  # more than one chunk
    assert set(many) == {"other"}


def test_vector_ids_are_never_reused(catalog_url: str, rng: np.random.Generator) -> None:
    catalog = Catalog(catalog_url)
    vs = unit_rows(rng, 5, DIM)
    catalog.apply(embedded=[embedded(f"/lib/{n}.jpg", v) for n, v in zip("abc", vs)])
    ids = {n: _id(catalog, f"/lib/{n}.jpg") for n in "abc"}
    top = max(ids.values())
    catalog.apply(removed=[top])  # deleting the highest id is what plain rowid would reuse
    catalog.apply(embedded=[embedded("/lib/d.jpg", vs[3])])
    assert _id(catalog, "/lib/d.jpg") > top
    catalog.close()
    reopened = Catalog(catalog_url)
    reopened.apply(removed=[_id(reopened, "/lib/d.jpg")])
    reopened.apply(embedded=[embedded("/lib/e.jpg", vs[4])])
    assert _id(reopened, "/lib/e.jpg") > top + 1
    reopened.close()


def test_opening_a_new_catalog_from_several_places_at_once(catalog_url: str) -> None:
    # An index run and a search opening a new library together both create the tables.
    start = threading.Barrier(4)
    opened: list[Catalog] = []
    errors: list[BaseException] = []

    def open_it() -> None:
        start.wait()
        try:
            opened.append(Catalog(catalog_url))
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(opened) == 4
    assert {c.generation() for c in opened} == {0}
    for catalog in opened:
        catalog.close()


def test_catalog_from_a_newer_xmr_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    Catalog(sqlite_url(str(path))).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    db.close()
    with pytest.raises(LibraryVersionError, match="(?i)upgrade"):
        Catalog(sqlite_url(str(path)))


def test_catalog_that_is_not_a_database_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    path.write_bytes(b"this is not a sqlite database" * 100)
    with pytest.raises(CorruptFileError):
        Catalog(sqlite_url(str(path)))


# ---- VectorStore -----------------------------------------------------------------------

PATHS = [f"/lib/{i:02d}.jpg" for i in range(10)]
QUERIES = unit_rows(np.random.default_rng(99), 3, DIM)


def _store(path: Path, catalog: Catalog, config: IndexConfig | None = None, dim: int = DIM) -> VectorStore:
    store = VectorStore(path, catalog, IMAGES, dim, config or IndexConfig(kind=EXACT))
    store.load()
    return store


def _catalog_vectors(catalog: Catalog) -> tuple[np.ndarray, np.ndarray]:
    """The oracle's data: every (id, vector) the catalog holds, read straight from SQL."""
    engine = create_engine(catalog.url)  # its own connection, not the catalog's ORM
    with engine.connect() as db:
        rows = db.execute(text("SELECT id, vector FROM images WHERE vector IS NOT NULL ORDER BY id")).all()
    engine.dispose()
    ids = np.array([r[0] for r in rows], np.int64)
    vecs = np.array([np.frombuffer(bytes(r[1]), "<f4") for r in rows], np.float32).reshape(len(rows), DIM)
    return ids, vecs


def _check_store(store: VectorStore, catalog: Catalog) -> None:
    """Index ids == catalog vector ids, and search == brute force over the catalog's vectors."""
    assert store.generation == catalog.generation()
    assert store.agrees_with_catalog()
    ids, vecs = _catalog_vectors(catalog)
    assert sorted(store.index.ids().tolist()) == ids.tolist()
    for k in (3, len(ids) + 2):
        for q, got in zip(QUERIES, store.search(QUERIES, k)):
            assert_topk(got, ids, vecs, q, k)


def _draw_batch(data: st.DataObject, model: dict[str, np.ndarray | None], catalog: Catalog) -> dict:
    """One random catalog write over PATHS; updates ``model`` (path -> vector or None if failed)."""
    picks = data.draw(st.lists(st.sampled_from(PATHS), max_size=5, unique=True), label="paths")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    targets = [p for p in PATHS if p not in model and p not in picks]
    batch: dict[str, list] = {"embedded": [], "failed": [], "moved": [], "removed": [], "touched": []}
    new = dict(model)
    for path in picks:
        known = path in model
        choices = ["embed", "fail", "remove", "touch", "move"] if known else ["embed", "fail"]
        action = data.draw(st.sampled_from(choices), label=path)
        if action == "move" and not (targets and model[path] is not None):
            action = "touch"
        if action == "embed":
            vector = unit_rows(rng, 1, DIM)[0]
            if rng.random() < 0.3 and new:  # exact duplicates make ties in search
                vector = next((v for v in new.values() if v is not None), vector)
            batch["embedded"].append(embedded(path, vector))
            new[path] = vector
        elif action == "fail":
            batch["failed"].append(failed(path))
            new[path] = None
        elif action == "remove":
            batch["removed"].append(_id(catalog, path))
            del new[path]
        elif action == "touch":
            batch["touched"].append(stat(path, 100, int(rng.integers(2, 1000))))
        else:
            target = targets.pop()
            batch["moved"].append(Moved(_id(catalog, path), stat(target)))
            new[target] = new.pop(path)
    model.clear()
    model.update(new)
    return batch


def _check_catalog(catalog: Catalog, model: dict[str, np.ndarray | None]) -> None:
    rows = catalog.files_under(["/lib"])
    assert set(rows) == set(model)
    vectors = catalog.vectors_for([r.id for r in rows.values()])
    for path, vector in model.items():
        row = rows[path]
        assert row.state == (FAILED if vector is None else INDEXED)
        assert vectors.get(row.id) == (None if vector is None else _vec_bytes(vector))


@pytest.fixture(scope="module")
def empty_catalog_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new, closed catalog file: copying it is ten times faster than creating one."""
    path = tmp_path_factory.mktemp("template") / "catalog.sqlite"
    Catalog(sqlite_url(str(path))).close()
    return path


# No shrinking: every example opens a SQLite catalog, and shrinking a failure took minutes;
# the failing example's draws are printed as generated.
@settings(FAST, phases=[Phase.explicit, Phase.generate])
@given(data=st.data())
def test_store_follows_any_sequence_of_catalog_writes(empty_catalog_file: Path, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(empty_catalog_file, f"{tmp}/catalog.sqlite")
        catalog = Catalog(sqlite_url(f"{tmp}/catalog.sqlite"))
        path = Path(tmp) / "images.vec"
        stores = {"a": _store(path, catalog), "b": _store(path, catalog)}
        model: dict[str, np.ndarray | None] = {}
        try:
            for _ in range(data.draw(st.integers(1, 7), label="steps")):
                catalog.apply(**_draw_batch(data, model, catalog))
                _check_catalog(catalog, model)
                # Two stores over one snapshot file: one may persist (and prune tombstones)
                # while the other lags behind, which forces its full-rebuild path.
                who = data.draw(st.sampled_from(["a", "b", "-"]), label="store")
                action = data.draw(st.sampled_from(["refresh", "persist", "reopen"]), label="action")
                if who == "-":
                    continue
                if 0 <= stores[who].generation < catalog.tombstone_floor(IMAGES):
                    event("store behind the tombstone floor")  # shown by --hypothesis-show-statistics
                if action == "reopen":
                    stores[who] = _store(path, catalog)
                elif action == "persist":
                    stores[who].persist()
                    assert read_header(path)[0].generation == catalog.generation()
                    assert catalog.tombstone_floor(IMAGES) == catalog.generation()
                else:
                    assert stores[who].refresh() is True
                    assert stores[who].refresh() is False  # nothing new
                _check_store(stores[who], catalog)
            for store in (*stores.values(), _store(path, catalog)):
                store.refresh()
                _check_store(store, catalog)
        finally:
            catalog.close()


def _fill(catalog: Catalog, rng: np.random.Generator, n: int, prefix: str = "/lib/img") -> np.ndarray:
    vs = unit_rows(rng, n, DIM)
    catalog.apply(embedded=[embedded(f"{prefix}{i:04d}.jpg", v) for i, v in enumerate(vs)])
    return vs


def test_stale_snapshot_is_brought_up_to_date_on_load(
    tmp_path: Path, catalog: Catalog, rng: np.random.Generator
) -> None:
    _fill(catalog, rng, 60)
    path = tmp_path / "images.vec"
    first = _store(path, catalog)
    assert first.repaired is False  # no snapshot yet: nothing to repair
    first.persist()
    persisted_at = catalog.generation()

    fresh = _store(path, catalog)
    assert fresh.repaired is False and fresh.generation == persisted_at
    _check_store(fresh, catalog)

    ids = catalog.vector_ids(IMAGES)
    catalog.apply(removed=ids[:10].tolist())
    catalog.apply(embedded=[embedded("/lib/img0020.jpg", unit_rows(rng, 1, DIM)[0])])
    catalog.apply(failed=[failed("/lib/img0030.jpg")])
    _fill(catalog, rng, 5, prefix="/lib/more")
    assert read_header(path)[0].generation == persisted_at < catalog.generation()

    reopened = _store(path, catalog)
    assert reopened.repaired is True
    _check_store(reopened, catalog)
    assert len(reopened.index) == 60 - 10 - 1 + 5


def test_store_older_than_the_tombstone_floor_rebuilds(
    tmp_path: Path, catalog: Catalog, rng: np.random.Generator
) -> None:
    _fill(catalog, rng, 40)
    path = tmp_path / "images.vec"
    writer, lagging = _store(path, catalog), _store(path, catalog)
    old_gen = lagging.generation
    doomed = catalog.vector_ids(IMAGES)[:7].tolist()
    catalog.apply(removed=doomed)
    catalog.apply(failed=[failed("/lib/img0039.jpg")])
    writer.persist()  # prunes the tombstones that `lagging` would need
    assert catalog.tombstone_floor(IMAGES) == catalog.generation() > old_gen
    assert catalog.deleted_since(IMAGES, old_gen).size == 0  # an incremental update would miss them

    assert lagging.refresh() is True
    _check_store(lagging, catalog)
    assert not set(doomed) & set(lagging.index.ids().tolist())
    for got in lagging.search(unit_rows(rng, 5, DIM), 100):
        assert not set(doomed) & set(got.ids.tolist())


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "other-dim"])
def test_damaged_snapshot_is_rebuilt_from_the_catalog(
    tmp_path: Path, catalog: Catalog, rng: np.random.Generator, damage: str
) -> None:
    _fill(catalog, rng, 50)
    path = tmp_path / "images.vec"
    _store(path, catalog).persist()
    if damage == "garbage":
        path.write_bytes(rng.bytes(3000))
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:-13])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        write_snapshot(path, ExactIndex(DIM * 2, np.arange(3), np.ones((3, DIM * 2), np.float32)), catalog.generation())

    store = _store(path, catalog)  # no exception
    assert store.repaired is True
    _check_store(store, catalog)
    store.persist()
    assert read_header(path)[0].dim == DIM
    again = _store(path, catalog)
    assert again.repaired is False
    _check_store(again, catalog)


def test_snapshot_from_a_newer_xmr_is_not_rebuilt_over(
    tmp_path: Path, catalog: Catalog, rng: np.random.Generator
) -> None:
    _fill(catalog, rng, 10)
    path = tmp_path / "images.vec"
    _store(path, catalog).persist()
    rewrite_snapshot_header(path, version=9, future=True)
    before = path.read_bytes()
    with pytest.raises(LibraryVersionError):
        _store(path, catalog)
    assert path.read_bytes() == before


def test_snapshot_ahead_of_the_catalog_is_rebuilt(tmp_path: Path, rng: np.random.Generator) -> None:
    # The catalog was replaced (restored from a backup, or deleted and indexed again):
    # the snapshot's ids mean other files now, so it must not be trusted.
    path = tmp_path / "images.vec"
    old = Catalog(sqlite_url(str(tmp_path / "old.sqlite")))
    for _ in range(3):
        _fill(old, rng, 20, prefix=f"/lib/gen{old.generation()}-")
    _store(path, old).persist()
    old.close()

    new = Catalog(sqlite_url(str(tmp_path / "new.sqlite")))
    _fill(new, rng, 15, prefix="/lib/new-")
    assert new.generation() < read_header(path)[0].generation
    store = _store(path, new)
    assert store.repaired is True
    _check_store(store, new)
    new.close()


def test_auto_config_switches_to_ivf_and_back(tmp_path: Path, catalog: Catalog) -> None:
    rng = np.random.default_rng(7)
    _fill(catalog, rng, 1100)
    path = tmp_path / "images.vec"
    # nprobe above the number of lists: faiss probes them all, so results are exact.
    config = IndexConfig(kind="auto", approx_threshold=1000, nprobe=4096)
    store = _store(path, catalog, config)
    assert store.index.kind == IVF
    store.persist()
    assert read_header(path)[0].kind == IVF

    loaded = _store(path, catalog, config)
    assert loaded.index.kind == IVF and loaded.repaired is False
    _check_store(loaded, catalog)

    catalog.apply(removed=catalog.vector_ids(IMAGES)[:200].tolist())
    assert loaded.refresh()
    assert loaded.index.kind == IVF  # updated in place, not rebuilt
    _check_store(loaded, catalog)
    loaded.persist()  # 900 < threshold: back to exact
    assert loaded.index.kind == EXACT and read_header(path)[0].kind == EXACT
    _check_store(loaded, catalog)
    back = _store(path, catalog, config)
    assert back.index.kind == EXACT
    _check_store(back, catalog)


def test_auto_config_below_the_ivf_minimum_stays_exact(
    tmp_path: Path, catalog: Catalog, rng: np.random.Generator
) -> None:
    _fill(catalog, rng, 300)
    path = tmp_path / "images.vec"
    store = _store(path, catalog, IndexConfig(kind="auto", approx_threshold=100))
    store.persist()  # asks for IVF, but IVF needs 1,000 vectors to train
    assert store.index.kind == EXACT and read_header(path)[0].kind == EXACT
    _check_store(_store(path, catalog, IndexConfig(kind="auto", approx_threshold=100)), catalog)


def test_index_config_kinds() -> None:
    with pytest.raises(ValueError, match="bogus"):
        IndexConfig(kind="bogus")
    assert IndexConfig().kind_for(10**6) == IVF and IndexConfig().kind_for(10) == EXACT
    assert IndexConfig(approx_threshold=1500).kind_for(1500) == IVF
    assert IndexConfig(approx_threshold=1500).kind_for(1499) == EXACT
    # Below the IVF minimum auto stays exact whatever the threshold (no rebuild per persist).
    assert IndexConfig(approx_threshold=50).kind_for(999) == EXACT
    assert IndexConfig(approx_threshold=50).kind_for(1000) == IVF
    assert IndexConfig(kind=EXACT).kind_for(10**7) == EXACT
    assert IndexConfig(kind=IVF).kind_for(1) == IVF
