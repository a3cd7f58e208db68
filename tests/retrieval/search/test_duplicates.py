"""Duplicate groups against brute-force oracles, and end to end on real photos and their copies."""

from __future__ import annotations

import itertools
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from index.catalog import Catalog, sqlite_url
from index.records import ImageMeta
from retrieval import DuplicateConfig, QueryError
from retrieval.images.phash import hamming
from retrieval.search.duplicates import find_duplicates, range_pairs
from tests.helpers.oracles import embedded


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_range_pairs_is_every_pair_above_the_threshold_once() -> None:
    rng = np.random.default_rng(0)
    centres = _unit(rng.standard_normal((6, 8)))
    vectors = _unit(np.repeat(centres, 9, axis=0) + 0.25 * rng.standard_normal((54, 8)))
    scores = vectors @ vectors.T
    want = sorted((i, j) for i, j in itertools.combinations(range(54), 2) if scores[i, j] >= 0.8)
    assert 20 < len(want) < 54 * 53 / 2  # some, not all
    for query_block, row_block in ((7, 11), (54, 54), (1, 3), (100, 5)):
        i, j, s = range_pairs(vectors, 0.8, query_block, row_block)
        assert list(zip(i.tolist(), j.tolist())) == want
        np.testing.assert_allclose(s, scores[i, j], atol=1e-6)


def _oracle(vectors: np.ndarray, hashes: list[str], phashes: list[int | None], config: DuplicateConfig) -> set:
    """Tiers by brute force: every pair's link, then connected components by repeated merging."""
    n = len(vectors)
    links = {"exact": set(), "near": set(), "similar": set()}
    for a, b in itertools.combinations(range(n), 2):
        score = float(vectors[a] @ vectors[b])
        near = (
            "near" in config.tiers
            and score >= config.near_score
            and phashes[a] is not None
            and phashes[b] is not None
            and hamming(phashes[a], phashes[b]) <= config.near_bits
        )
        if hashes[a] == hashes[b]:
            links["exact"].add((a, b))
        elif near:
            links["near"].add((a, b))
        elif "similar" in config.tiers and score >= config.similar_score:
            links["similar"].add((a, b))

    def components(edges: set) -> list[frozenset]:
        sets = [{x} for x in range(n)]
        for a, b in edges:
            sa, sb = next(s for s in sets if a in s), next(s for s in sets if b in s)
            if sa is not sb:
                sa |= sb
                sets.remove(sb)
        return [frozenset(s) for s in sets]

    levels = ["exact", "near", "similar"]
    loosest = max(levels.index(t) for t in config.tiers)
    used = set().union(*(links[t] for t in levels[: loosest + 1]))
    out = set()
    for group in components(used):
        if len(group) < 2:
            continue
        tier = next(
            t
            for i, t in enumerate(levels)
            if any(group <= c for c in components(set().union(*(links[x] for x in levels[: i + 1]))))
        )
        if tier in config.tiers:
            out.add((tier, group))
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("tiers", [("exact", "near", "similar"), ("near",), ("exact", "similar"), ("exact",)])
def test_groups_match_a_brute_force_oracle(tmp_path: Path, seed: int, tiers: tuple[str, ...]) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    centres = _unit(rng.standard_normal((8, 16)))
    vectors = _unit(centres[rng.integers(0, 8, n)] + rng.uniform(0.05, 0.5) * rng.standard_normal((n, 16)))
    base = rng.integers(0, 2**63, 8, dtype=np.int64)
    hashes = [f"h{rng.integers(0, 30)}" for _ in range(n)]  # few: byte-for-byte copies happen
    for a, b in itertools.combinations(range(n), 2):  # copies share their vector, as the catalog makes them
        if hashes[b] == hashes[a]:
            vectors[b] = vectors[a]
    phashes: list[int | None] = []
    for row in range(n):
        flips = sum(1 << int(bit) for bit in rng.choice(63, rng.integers(0, 30), replace=False))
        phashes.append(None if rng.random() < 0.1 else int(base[row % 8]) ^ flips)
    for a, b in itertools.combinations(range(n), 2):
        if hashes[b] == hashes[a]:
            phashes[b] = phashes[a]
    catalog = Catalog(sqlite_url(str(tmp_path / "c.sqlite")))
    rows = [
        replace(
            embedded(f"/p/{i:02d}.jpg", vectors[i], hashes[i]), meta=ImageMeta(10 + i % 3, 10, "JPEG", phash=phashes[i])
        )
        for i in range(n)
    ]
    catalog.apply(embedded=rows)
    config = DuplicateConfig(tiers=tiers, near_score=0.8, near_bits=12, similar_score=0.9, query_block=5, row_block=7)
    report = find_duplicates(catalog, 16, config)
    by_path = {f"/p/{i:02d}.jpg": i for i in range(n)}
    got = {(g.tier, frozenset(by_path[m.path] for m in g.members)) for g in report.groups}
    assert got == _oracle(vectors, hashes, phashes, config)
    assert report.images == n and report.without_hash == sum(p is None for p in phashes)
    for group in report.groups:
        keeper = group.keeper
        assert keeper.relation == "keeper" and keeper.score == 1.0
        assert keeper.width * keeper.height == max(m.width * m.height for m in group.members)
        for m in group.members[1:]:
            assert m.score == pytest.approx(float(vectors[by_path[m.path]] @ vectors[by_path[keeper.path]]), abs=1e-5)
            assert (m.relation == "exact") == (hashes[by_path[m.path]] == hashes[by_path[keeper.path]])
    catalog.close()


def test_config_refuses_unknown_tiers_and_bad_thresholds() -> None:
    with pytest.raises(QueryError, match="exact, near, similar"):
        DuplicateConfig(tiers=("exact", "blurry"))
    with pytest.raises(QueryError, match="between -1 and 1"):
        DuplicateConfig(similar_score=1.5)
    with pytest.raises(QueryError, match="near_bits"):
        DuplicateConfig(near_bits=64)
    assert DuplicateConfig(tiers="near").tiers == ("near",)


def _save(image: Image.Image, path: Path, **options: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def test_library_finds_copies_of_real_photos(open_library, photo_source: Path, tmp_path: Path) -> None:  # noqa: ANN001
    folder = tmp_path / "photos"
    originals = {p.stem: Image.open(p).convert("RGB") for p in sorted(photo_source.iterdir())}
    for name, image in originals.items():
        _save(image, folder / f"{name}.jpg", quality=95)
    astronaut, coffee = originals["astronaut"], originals["coffee"]
    (folder / "backup").mkdir()
    shutil.copy2(folder / "astronaut.jpg", folder / "backup" / "astronaut.jpg")  # same bytes, same file date
    _save(astronaut.resize((128, 128)), folder / "small" / "astronaut.jpg", quality=60)  # re-encoded, smaller
    exif = Image.Exif()
    exif[0x0112] = 8  # stored turned, EXIF turns it back
    _save(coffee.transpose(Image.Transpose.ROTATE_270), folder / "phone" / "coffee.jpg", quality=90, exif=exif)
    _save(coffee, folder / "png" / "coffee.png")
    lib = open_library()
    assert lib.index([folder]).failed == 0
    # The tiny test model's vectors mean little, so the vectors let every pair through and the
    # perceptual hash decides (similar is left out: random vectors would link everything).
    report = lib.duplicates(DuplicateConfig(tiers=("exact", "near"), near_score=-1.0))
    groups = {frozenset(Path(m.path).relative_to(folder).as_posix() for m in g.members): g for g in report.groups}
    assert set(groups) == {
        frozenset({"astronaut.jpg", "backup/astronaut.jpg", "small/astronaut.jpg"}),
        frozenset({"coffee.jpg", "phone/coffee.jpg", "png/coffee.png"}),
    }
    people = groups[frozenset({"astronaut.jpg", "backup/astronaut.jpg", "small/astronaut.jpg"})]
    assert people.tier == "near" and Path(people.keeper.path).parent == folder  # same pixels: the earlier file
    assert {Path(m.path).relative_to(folder).as_posix(): m.relation for m in people.members} == {
        "astronaut.jpg": "keeper",
        "backup/astronaut.jpg": "exact",
        "small/astronaut.jpg": "near",
    }
    assert "512x512" in people.reason
    assert report.images == 10 and report.without_hash == 0
    exact_only = lib.duplicates(DuplicateConfig(tiers="exact"))
    assert [(g.tier, len(g.members)) for g in exact_only.groups] == [("exact", 2)]
    assert "first by path" in exact_only.groups[0].reason
    assert all(Path(p).exists() for p in folder.rglob("*"))  # read-only: nothing moved or deleted


def test_index_run_adds_the_hash_to_rows_from_an_older_catalog(open_library, photos: Path) -> None:  # noqa: ANN001
    lib = open_library()
    lib.index([photos])
    from sqlalchemy import text

    with lib.catalog.engine.begin() as db:
        db.execute(text("UPDATE images SET phash = NULL"))
    before = {r.path: r for r in lib.catalog.files_under([str(photos)]).values()}
    again = lib.index([photos])
    assert (again.added, again.updated, again.encoded, again.unchanged) == (0, 0, 0, 6)
    after = {r.path: r for r in lib.catalog.files_under([str(photos)]).values()}
    assert all(after[p].phash is not None and after[p].id == before[p].id for p in before)
    assert lib.index([photos]).encoded == 0 and lib.duplicates().without_hash == 0
