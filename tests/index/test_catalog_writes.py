"""Bulk catalog writes leave exactly the tables that writing row by row leaves."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from index.catalog import Catalog, sqlite_url
from index.records import Captions, Embedded, ImageMeta, Moved
from tests.helpers.catalog_dump import dump
from tests.helpers.oracles import FAST, embedded, failed, stat, unit_rows
from tests.helpers.rowwise_catalog import RowwiseCatalog

DIM = 4
PATHS = [f"/lib/{i:02d}.jpg" for i in range(12)]
HASHES = ["h0", "h1", "h2", "h3"]  # few: copies (same bytes at several paths) are common


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def new_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Callable[[], str]:
    """Factory of URLs of new, empty catalog databases (SQLite files, or PostgreSQL's)."""
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres_server")
        return server.new_database
    folder = tmp_path_factory.mktemp("catalogs")
    names = itertools.count()
    return lambda: sqlite_url(str(folder / f"{next(names)}.sqlite"))


def _pair(new_url: Callable[[], str]) -> tuple[Catalog, RowwiseCatalog]:
    return Catalog(new_url()), RowwiseCatalog(new_url())


def _ids(catalog: Catalog) -> dict[str, int]:
    return {path: row.id for path, row in catalog.files_under(["/lib"]).items()}


def _captions(data: st.DataObject, rng: np.random.Generator, paths: list[str]) -> dict[str, Captions]:
    chosen = data.draw(st.lists(st.sampled_from(paths), unique=True, max_size=4), label="captioned") if paths else []
    found = {}
    for path in chosen:
        bodies = data.draw(
            st.lists(st.sampled_from(["a cat", "a dog", "sky", "sea"]), unique=True, max_size=3),
            label=path + " captions",
        )
        found[path] = Captions(
            int(rng.integers(0, 50)), tuple((b, unit_rows(rng, 1, DIM)[0].tobytes()) for b in bodies)
        )
    return found


def _embedded(path: str, content: str, rng: np.random.Generator) -> Embedded:
    """Same content, same vector (as a copy gets); metadata with and without EXIF fields."""
    vector = unit_rows(np.random.default_rng(HASHES.index(content)), 1, DIM)[0]
    exif = rng.random() < 0.5
    meta = ImageMeta(
        int(rng.integers(1, 5000)),
        int(rng.integers(1, 5000)),
        "JPEG" if exif else "PNG",
        datetime(2020, 1, 2, 3, 4, int(rng.integers(0, 60))) if exif else None,
        6 if exif else None,
        "Cam X" if exif else None,
        "a caption" if exif and rng.random() < 0.5 else None,
    )
    return Embedded(stat(path, int(rng.integers(1, 10**6)), int(rng.integers(1, 99))), content, meta, vector.tobytes())


def draw_batch(data: st.DataObject, ids: dict[str, int]) -> dict:
    """One random batch over PATHS given the catalog's ``path -> id``; every kind of change."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    free = [p for p in PATHS if p not in ids]
    known = [p for p in PATHS if p in ids]
    moved: list[Moved] = []
    for path in data.draw(st.lists(st.sampled_from(known), unique=True, max_size=2), label="movers") if known else []:
        target = free.pop() if free and data.draw(st.booleans(), label="to a free path") else None
        if target is None:
            continue
        moved.append(Moved(ids[path], stat(target, 100, int(rng.integers(1, 99))), path if rng.random() < 0.7 else ""))
        if data.draw(st.booleans(), label="chain") and moved[-1].old_path:
            other = [p for p in known if p != path and p not in {m.old_path for m in moved}]
            if other:  # another row moves onto the path just vacated
                moved.append(Moved(ids[other[0]], stat(path, 100, 5), other[0]))
    busy = (
        {m.old_path for m in moved}
        | {m.stat.path for m in moved}
        | {p for p, i in ids.items() if i in {m.id for m in moved}}
    )
    rest = [p for p in PATHS if p not in busy]
    picks = data.draw(st.lists(st.sampled_from(rest), unique=True, max_size=6), label="picks") if rest else []
    batch: dict[str, list] = {"embedded": [], "failed": [], "removed": [], "touched": []}
    for path in picks:
        action = data.draw(
            st.sampled_from(["embed", "fail", "remove", "touch"] if path in ids else ["embed", "fail", "touch"]),
            label=path,
        )
        content = data.draw(st.sampled_from(HASHES), label=path + " hash")
        if action == "embed":
            batch["embedded"].append(_embedded(path, content, rng))
        elif action == "fail":
            batch["failed"].append(
                failed(path, "x" * int(rng.integers(1, 3000)), content if rng.random() < 0.5 else "")
            )
        elif action == "remove":
            batch["removed"].append(ids[path])
        else:
            batch["touched"].append(stat(path, 100, int(rng.integers(100, 200))))
    written = [i.stat.path for i in (*batch["embedded"], *batch["failed"])] + [m.stat.path for m in moved]
    return {**batch, "moved": moved, "captions": _captions(data, rng, written + [p for p in known if p not in busy])}


def test_bulk_writes_equal_row_by_row_writes(new_url: Callable[[], str], request: pytest.FixtureRequest) -> None:
    # PostgreSQL gets fewer examples: each needs two new databases (the SQL is the same).
    examples = FAST.max_examples if "sqlite" in request.node.callspec.id else 12

    @settings(FAST, max_examples=examples, phases=[Phase.explicit, Phase.generate])
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        bulk, rows = _pair(new_url)
        try:
            for _ in range(data.draw(st.integers(1, 6), label="steps")):
                batch = draw_batch(data, _ids(rows))
                assert bulk.apply(**batch) == rows.apply(**batch)
                assert dump(bulk) == dump(rows)
        finally:
            bulk.close()
            rows.close()

    check()


def test_move_onto_a_catalogued_path_is_refused_by_both(new_url: Callable[[], str], rng: np.random.Generator) -> None:
    bulk, rows = _pair(new_url)
    v = unit_rows(rng, 2, DIM)
    for catalog in (bulk, rows):
        catalog.apply(embedded=[embedded("/lib/a.jpg", v[0], "ha"), embedded("/lib/b.jpg", v[1], "hb")])
        a = _ids(catalog)["/lib/a.jpg"]
        with pytest.raises(ValueError, match="still catalogued"):
            catalog.apply(
                moved=[Moved(a, stat("/lib/c.jpg")), Moved(a, stat("/lib/b.jpg"))],
                embedded=[embedded("/lib/d.jpg", v[0])],
            )
    assert dump(bulk) == dump(rows)
    assert bulk.image_by_path("/lib/c.jpg") is None and bulk.image_by_path("/lib/d.jpg") is None  # all rolled back
    bulk.close()
    rows.close()


def test_a_large_batch_spans_several_in_lists(new_url: Callable[[], str], rng: np.random.Generator) -> None:
    """More than 500 paths, ids and captions in one batch (the writes chunk their IN lists)."""
    bulk, rows = _pair(new_url)
    vs = unit_rows(rng, 1300, DIM)
    first = [embedded(f"/big/{i:04d}.jpg", v, f"h{i % 700}") for i, v in enumerate(vs[:1200])]
    caps = {f"/big/{i:04d}.jpg": Captions(3, (("old", vs[i].tobytes()),)) for i in range(0, 1200, 2)}
    for catalog in (bulk, rows):
        catalog.apply(embedded=first, captions=caps)
        ids = {p: r.id for p, r in catalog.files_under(["/big"]).items()}
        again = [embedded(f"/big/{i:04d}.jpg", vs[1200 + i % 100]) for i in range(0, 1200, 3)]
        broken = [failed(f"/big/{i:04d}.jpg", "truncated") for i in range(1, 1200, 3)]
        moves = [
            Moved(ids[f"/big/{i:04d}.jpg"], stat(f"/big/moved/{i:04d}.jpg"), f"/big/{i:04d}.jpg")
            for i in range(2, 1200, 3)
        ]
        new_caps = {f"/big/{i:04d}.jpg": Captions(4, (("new", vs[i].tobytes()),)) for i in range(0, 1200, 3)}
        catalog.apply(embedded=again, failed=broken, moved=moves, captions=new_caps)
        catalog.apply(
            removed=[ids[f"/big/{i:04d}.jpg"] for i in range(0, 1200, 6)],
            touched=[stat(f"/big/{i:04d}.jpg", 1, 2) for i in range(3, 1200, 6)],
        )
    assert dump(bulk) == dump(rows)
    bulk.close()
    rows.close()
