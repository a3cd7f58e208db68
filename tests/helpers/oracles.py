"""Seeded synthetic vectors and brute-force oracles shared by the index tests.

Nothing here uses the code under test: the oracle is float64 numpy over the full matrix.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
from hypothesis import settings

from index.records import Embedded, Failed, FileStat, ImageMeta

# Hypothesis: modest, no deadline (sqlite and faiss timings vary), no .hypothesis/ folder.
FAST = settings(max_examples=40, deadline=None, database=None)
# Scores computed in float32 by numpy/faiss vs float64 here differ by a few ulps.
TOL = 1e-5


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """``(n, dim)`` float32 random directions, L2-normalised."""
    x = rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered_rows(
    rng: np.random.Generator, n: int, dim: int, clusters: int, spread: float = 0.15
) -> tuple[np.ndarray, np.ndarray]:
    """``(n, dim)`` unit rows around ``clusters`` random centres, and the centres."""
    centres = unit_rows(rng, clusters, dim)
    x = centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), centres


def brute_force(ids: np.ndarray, vectors: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` (scores float64, ids) of one query by full argsort of ``vectors @ query``."""
    scores = np.asarray(vectors, np.float64) @ np.asarray(query, np.float64)  # (n,)
    order = np.argsort(-scores, kind="stable")[:k]
    return scores[order], np.asarray(ids, np.int64)[order]


def assert_topk(got, ids: np.ndarray, vectors: np.ndarray, query: np.ndarray, k: int, tol: float = TOL) -> None:
    """``got`` (a Neighbors) is a correct top-``k`` of ``query`` over ``ids``/``vectors``.

    Tie-tolerant: among hits whose scores are within ``tol`` any order and choice is fine,
    but every returned score must be the id's true score, best first, with the oracle's
    top-k scores, and no id that is clearly better than the k-th may be missing.
    """
    ids = np.asarray(ids, np.int64)
    k_eff = min(k, len(ids))
    assert got.ids.dtype == np.int64 and got.scores.dtype == np.float32
    assert got.ids.shape == got.scores.shape == (k_eff,)
    assert len(set(got.ids.tolist())) == k_eff, "duplicate ids in one result"
    true = np.asarray(vectors, np.float64) @ np.asarray(query, np.float64)  # (n,)
    by_id = dict(zip(ids.tolist(), true.tolist()))
    assert set(got.ids.tolist()) <= set(by_id), "returned an id that is not in the index"
    if k_eff == 0:
        return
    np.testing.assert_allclose(got.scores, [by_id[i] for i in got.ids.tolist()], atol=tol)
    assert np.all(np.diff(got.scores) <= tol), "not best first"
    want_scores, _ = brute_force(ids, vectors, query, k_eff)
    np.testing.assert_allclose(got.scores, want_scores, atol=tol)
    clearly_better = set(ids[true > want_scores[-1] + tol].tolist())
    assert clearly_better <= set(got.ids.tolist())


def stat(path: str, size: int = 100, mtime_ns: int = 1) -> FileStat:
    return FileStat(path, size, mtime_ns)


def embedded(
    path: str, vector: np.ndarray, content_hash: str | None = None, size: int = 100, mtime_ns: int = 1
) -> Embedded:
    """A catalog write of ``vector`` for ``path`` (float32 little-endian bytes)."""
    return Embedded(
        stat(path, size, mtime_ns),
        content_hash if content_hash is not None else f"hash-of-{path}",
        ImageMeta(width=40, height=30, format="JPEG", orientation=1, camera="Tiny Cam"),
        np.asarray(vector, "<f4").tobytes(),
    )


def failed(path: str, error: str = "cannot decode", content_hash: str = "") -> Failed:
    return Failed(stat(path), error, content_hash)


def rewrite_snapshot_header(path: Path, **changes: object) -> None:
    """Edit the JSON header of a vector snapshot in place, keeping its payload (and its
    checksum footer valid, so the edit is read as written, not as damage)."""
    import io

    from index.checksums import SummedWriter, read_footer

    data = Path(path).read_bytes()
    footer = read_footer(Path(path), len(data))
    if footer is not None:
        data = data[: footer[0]]
    (length,) = struct.unpack("<I", data[8:12])
    header = json.loads(data[12 : 12 + length])
    header.update(changes)
    raw = json.dumps(header).encode()
    body = data[:8] + struct.pack("<I", len(raw)) + raw + data[12 + length :]
    if footer is not None:
        out = io.BytesIO()
        summed = SummedWriter(out)
        summed.write(body)
        summed.finish()
        body = out.getvalue()
    Path(path).write_bytes(body)
