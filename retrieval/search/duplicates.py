"""Duplicate groups in a library, in three tiers, without comparing all pairs twice or reading a photo.

- ``exact``: files with the same bytes (the content hash).
- ``near``: the same picture re-encoded, resized, lightly cropped, turned by EXIF, converted
  to PNG or stripped of metadata: vectors at least ``near_score`` alike *and* perceptual
  hashes (:mod:`retrieval.images.phash`) at most ``near_bits`` apart. The vectors find the
  candidates; the hash tells a copy from a second shot of the same scene.
- ``similar``: burst shots and near-identical scenes: vectors at least ``similar_score`` alike.

Candidates come from one range search over the vectors (every pair above the lower of the
two thresholds, the upper triangle only, in blocks): O(n^2 d) multiply-adds but no more
memory than one block of scores. Copies with the same bytes share a vector, so only one of
each set takes part. Groups are the connected components of the links (as photo apps
group them), so a burst of ten shots is one group even when its first and last shots are
further apart than the threshold. A group's tier is the loosest link it needs: a picture,
its byte-for-byte copy and a resized copy form one ``near`` group. Each group names a
suggested keeper: the most pixels, then the earliest capture (else file) time, then the
first path. Nothing here deletes or moves a file. Photos only: videos are not compared.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from index.records import ImageRecord
from index.schema_names import IMAGES
from retrieval.errors import QueryError
from retrieval.images.phash import HASH_BITS, hamming_to
from retrieval.results import DuplicateGroup, DuplicateMember, DuplicateReport

if TYPE_CHECKING:
    from index.catalog import Catalog

__all__ = ["TIERS", "DuplicateConfig", "find_duplicates", "range_pairs"]

EXACT, NEAR, SIMILAR = "exact", "near", "similar"
TIERS = (EXACT, NEAR, SIMILAR)


@dataclass(frozen=True)
class DuplicateConfig:
    """What counts as a duplicate (defaults measured in benchmarks/bench_duplicates.py).

    ``near_bits`` 12 keeps the near tier precise (a near copy is one you could delete): on the
    benchmark's photos it found 91% of the copies at 95% precision; 8-10% crops that move more
    bits, and second shots, fall to the similar tier when their vectors are close enough.
    """

    tiers: tuple[str, ...] = TIERS  # the tiers to look for: links of the others are not made
    similar_score: float = 0.95  # similar: the vectors' cosine is at least this (xmr duplicates --min-score)
    near_score: float = 0.85  # near: the vectors' cosine is at least this before the hashes are compared
    near_bits: int = 12  # near: the perceptual hashes differ in at most this many of their 63 bits
    query_block: int = 1024  # range search: query rows per block
    row_block: int = 16384  # range search: rows scored against a query block at once (64 MB of float32)

    def __post_init__(self) -> None:
        tiers = (self.tiers,) if isinstance(self.tiers, str) else tuple(self.tiers)
        object.__setattr__(self, "tiers", tiers)
        unknown = [t for t in tiers if t not in TIERS]
        if unknown or not tiers:
            raise QueryError(
                f"duplicate tiers are {', '.join(TIERS)} (one or more), not {', '.join(unknown) or 'none'}"
            )
        for name in ("similar_score", "near_score"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not -1.0 <= value <= 1.0:
                raise QueryError(f"{name} must be a cosine similarity between -1 and 1, not {value!r}")
        if not 0 <= self.near_bits <= HASH_BITS:
            raise QueryError(f"near_bits must be between 0 and {HASH_BITS}, not {self.near_bits!r}")
        if self.query_block < 1 or self.row_block < 1:
            raise QueryError("query_block and row_block must be at least 1")


def find_duplicates(catalog: Catalog, dim: int, config: DuplicateConfig = DuplicateConfig()) -> DuplicateReport:
    """Group the indexed images of ``catalog`` (vectors of width ``dim``) into duplicate groups.

    Reads the catalog only: the vectors and perceptual hashes stored at index time.
    """
    start = time.perf_counter()
    records, vectors = _indexed(catalog, dim)  # (n,), (n, dim)
    n = len(records)
    phashes = np.asarray([-1 if r.phash is None else r.phash for r in records], np.int64)  # (n,); -1: none
    forest = {tier: _Forest(n) for tier in TIERS}  # links of that tier or a tighter one
    reps = _link_copies(records, forest)
    thresholds = [config.near_score] * (NEAR in config.tiers) + [config.similar_score] * (SIMILAR in config.tiers)
    if thresholds and len(reps) > 1:
        for i, j, scores in _tiles(vectors[reps], min(thresholds), config):
            _link(reps[i], reps[j], scores, phashes, config, forest)
    groups = _groups(records, vectors, phashes, forest, config)
    return DuplicateReport(
        groups=groups,
        images=n,
        without_hash=int((phashes < 0).sum()),
        seconds=time.perf_counter() - start,
    )


def range_pairs(
    vectors: np.ndarray, threshold: float, query_block: int = 1024, row_block: int = 16384
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of rows ``i < j`` of ``vectors (n, d)`` whose inner product is at least ``threshold``.

    Returns ``(i, j, score)``, each ``(m,)``, ordered by ``i`` then ``j``. Each pair is scored
    once (the upper triangle), a ``(row_block, query_block)`` tile at a time.
    """
    config = DuplicateConfig(query_block=query_block, row_block=row_block)
    found = list(_tiles(np.ascontiguousarray(vectors, np.float32), threshold, config))
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    i, j, s = (np.concatenate(column) for column in zip(*found))
    order = np.lexsort((j, i))
    return i[order], j[order], s[order]


def _tiles(vectors: np.ndarray, threshold: float, config: DuplicateConfig) -> Iterator[tuple[np.ndarray, ...]]:
    """``(i, j, score)`` arrays of the pairs ``i < j`` at or above ``threshold``, one tile at a time."""
    n = len(vectors)
    for q0 in range(0, n, config.query_block):
        queries = vectors[q0 : q0 + config.query_block]  # (q, d)
        for r0 in range(q0, n, config.row_block):
            scores = vectors[r0 : r0 + config.row_block] @ queries.T  # (r, q)
            rows, cols = np.nonzero(scores >= threshold)
            i, j = cols + q0, rows + r0
            keep = j > i  # the upper triangle: each pair once, never a row with itself
            yield i[keep].astype(np.int64), j[keep].astype(np.int64), scores[rows[keep], cols[keep]]


def _indexed(catalog: Catalog, dim: int) -> tuple[list[ImageRecord], np.ndarray]:
    """The photos with a vector and their vectors, aligned (an index run may write meanwhile).

    Videos are left out: their vectors are their moments' (which ``iter_vectors`` yields too,
    and no photo record matches), and a perceptual hash is a photo's."""
    records = {r.id: r for r in catalog.indexed_images()}
    chunks = [(ids, vecs) for ids, vecs in catalog.iter_vectors(IMAGES, -1, dim)]
    ids = np.concatenate([c[0] for c in chunks]) if chunks else np.zeros(0, np.int64)
    vectors = np.concatenate([c[1] for c in chunks]) if chunks else np.zeros((0, dim), np.float32)
    keep = np.asarray([int(i) in records for i in ids], bool)
    return [records[int(i)] for i in ids[keep]], np.ascontiguousarray(vectors[keep])


def _link_copies(records: list[ImageRecord], forest: dict[str, _Forest]) -> np.ndarray:
    """Link rows with the same bytes in every tier; return one row per content (the rest share its vector)."""
    first: dict[str, int] = {}
    reps = []
    for row, record in enumerate(records):
        known = first.get(record.content_hash) if record.content_hash else None
        if known is None:
            first[record.content_hash] = row
            reps.append(row)
            continue
        for tree in forest.values():
            tree.union(known, row)
    return np.asarray(reps, np.int64)


def _link(
    a: np.ndarray, b: np.ndarray, scores: np.ndarray, phashes: np.ndarray, config: DuplicateConfig, forest: dict
) -> None:
    """Link the pairs ``(a[k], b[k])`` of one tile in the tiers their score and hashes qualify for."""
    near = np.zeros(len(a), bool)
    if NEAR in config.tiers:
        hashed = (phashes[a] >= 0) & (phashes[b] >= 0)  # (m,)
        near = (scores >= config.near_score) & hashed & (hamming_to(phashes[a], phashes[b]) <= config.near_bits)
        for x, y in zip(a[near].tolist(), b[near].tolist()):
            forest[NEAR].union(x, y)
            forest[SIMILAR].union(x, y)
    if SIMILAR in config.tiers:
        similar = (scores >= config.similar_score) & ~near
        for x, y in zip(a[similar].tolist(), b[similar].tolist()):
            forest[SIMILAR].union(x, y)


def _groups(
    records: list[ImageRecord], vectors: np.ndarray, phashes: np.ndarray, forest: dict, config: DuplicateConfig
) -> tuple[DuplicateGroup, ...]:
    loosest = next(t for t in reversed(TIERS) if t in config.tiers)
    groups = []
    for rows in forest[loosest].components():
        if len(rows) < 2:
            continue
        tier = next(t for t in TIERS if forest[t].same_set(rows))
        if tier not in config.tiers:
            continue  # e.g. an exact group when only near or similar ones were asked for
        groups.append(_group(tier, [records[r] for r in rows], vectors[rows], phashes[rows], rows, forest))
    order = {t: i for i, t in enumerate(TIERS)}
    return tuple(sorted(groups, key=lambda g: (order[g.tier], -len(g.members), g.keeper.path)))


def _group(
    tier: str, members: list[ImageRecord], vectors: np.ndarray, phashes: np.ndarray, rows: list[int], forest: dict
) -> DuplicateGroup:
    keep = min(range(len(members)), key=lambda m: _keeper_key(members[m]))
    keeper = members[keep]
    scores = vectors @ vectors[keep]  # (m,)
    bits = hamming_to(phashes, np.full(len(members), phashes[keep]))
    out = []
    for m, record in enumerate(members):
        if m == keep:
            relation = "keeper"
        elif record.content_hash and record.content_hash == keeper.content_hash:
            relation = EXACT
        elif forest[NEAR].find(rows[m]) == forest[NEAR].find(rows[keep]):
            relation = NEAR
        else:
            relation = SIMILAR
        hashed = phashes[m] >= 0 and phashes[keep] >= 0
        out.append(
            DuplicateMember(
                id=record.id,
                path=record.path,
                relation=relation,
                score=1.0 if m == keep else float(scores[m]),
                bits=int(bits[m]) if hashed else None,
                width=record.width,
                height=record.height,
                size=record.size,
                format=record.format,
                captured_at=record.captured_at,
            )
        )
    others = sorted((o for o in out if o.relation != "keeper"), key=lambda o: o.path)
    return DuplicateGroup(tier, (out[keep], *others), _reason(keeper, [r for i, r in enumerate(members) if i != keep]))


def _pixels(record: ImageRecord) -> int:
    return (record.width or 0) * (record.height or 0)


def _when(record: ImageRecord) -> datetime:
    """Capture time, else the file's modification time (naive local, like EXIF times)."""
    return record.captured_at or datetime.fromtimestamp(record.mtime_ns / 1e9)


def _keeper_key(record: ImageRecord) -> tuple:
    return (-_pixels(record), _when(record), record.path)


def _reason(keeper: ImageRecord, others: list[ImageRecord]) -> str:
    """Why ``keeper`` comes first, in words."""
    size = f"{keeper.width}x{keeper.height}"
    largest_other = max(others, key=_pixels)
    if _pixels(keeper) > _pixels(largest_other):
        return f"most pixels: {size} (the next largest is {largest_other.width}x{largest_other.height})"
    ties = [o for o in others if _pixels(o) == _pixels(keeper)]
    when = "capture" if keeper.captured_at else "file date"
    if all(_when(keeper) < _when(o) for o in ties):
        return f"most pixels ({size}, as {len(ties)} other{'s' * (len(ties) > 1)}), then the earliest {when}: {_when(keeper):%Y-%m-%d %H:%M:%S}"
    return f"same pixels ({size}) and {when} as {len(ties)} other{'s' * (len(ties) > 1)}: the first by path"


class _Forest:
    """Union-find over rows ``0..n-1`` (path halving, union by size)."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)
        self.size = np.ones(n, np.int64)

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return int(x)

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a == b:
            return
        if self.size[a] < self.size[b]:
            a, b = b, a
        self.parent[b] = a
        self.size[a] += self.size[b]

    def same_set(self, rows: list[int]) -> bool:
        root = self.find(rows[0])
        return all(self.find(r) == root for r in rows[1:])

    def components(self) -> list[list[int]]:
        """Rows grouped by set, only sets of two or more, each in row order."""
        roots = [self.find(x) for x in range(len(self.parent))]
        found: dict[int, list[int]] = {}
        for row, root in enumerate(roots):
            found.setdefault(root, []).append(row)
        return [rows for rows in found.values() if len(rows) > 1]
