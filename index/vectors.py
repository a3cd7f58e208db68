"""The vector-index contract shared by every kind, and the helpers they have in common.

Kinds live one per module in :mod:`index.kinds`: ``exact`` (brute force), ``ivf`` (faiss
IVF-Flat), ``compressed`` (IVF-SQ8 and IVF-PQ codes, reranked with float vectors) and
``ondisk`` (an IVF layout memory-mapped from disk); :mod:`index.kinds.factory` builds one
by name. This module imports none of them.

Array contract at every boundary: ids ``int64 (n,)``; vectors ``float32``, C-contiguous,
``(n, d)``, L2-normalised; scores are inner products (cosine similarity). Indexes are
immutable once published to searchers: mutations return a new index (copy on write),
so searches in other threads never see a half-applied batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from index.errors import DimensionMismatchError

EXACT = "exact"
IVF = "ivf"
SQ8 = "sq8"
IVFPQ = "ivfpq"
ONDISK = "ondisk"
KINDS = (EXACT, IVF, SQ8, IVFPQ, ONDISK)
AUTO_NPROBE = 0  # nprobe value meaning "tune to the recall target at build time"
IVF_MIN_VECTORS = 1000  # fewer points than this cannot train IVF lists well: stay exact


@dataclass(frozen=True)
class Neighbors:
    """The hits of one query, best first; FAISS's -1 padding already removed."""

    scores: np.ndarray  # float32 (k,)
    ids: np.ndarray  # int64 (k,)


class VectorIndex(Protocol):
    kind: str
    dim: int

    def __len__(self) -> int: ...
    def ids(self) -> np.ndarray: ...
    def upserted(self, ids: np.ndarray, vectors: np.ndarray) -> VectorIndex: ...
    def removed(self, ids: np.ndarray) -> VectorIndex: ...
    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[Neighbors]: ...


def as_matrix(vectors: np.ndarray, dim: int) -> np.ndarray:
    """Check and coerce to the array contract: float32, C-contiguous, (n, dim)."""
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        raise DimensionMismatchError(
            f"expected vectors of width {dim}, got shape {tuple(np.shape(vectors))}; "
            "the library was built with another model"
        )
    return matrix


def normalize(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise rows (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def membership(ids: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``(mask over ids, lookup table or None)``: which ``ids`` are in ``allowed``.

    Catalog ids are dense, so a boolean lookup table is one vectorised pass (np.isin and
    intersect1d sort, which cost ~1 s at a million ids); sparse ids fall back to np.isin.
    """
    allowed = np.asarray(allowed, np.int64)
    if not len(ids) or not len(allowed):
        return np.zeros(len(ids), bool), None
    top = max(int(ids.max()), int(allowed.max()))
    if top > 4 * (len(ids) + len(allowed)) + 4096 or int(allowed.min()) < 0:
        return np.isin(ids, allowed), None
    table = np.zeros(top + 1, bool)
    table[allowed] = True
    return table[ids], table


def last_wins(ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop earlier duplicates of an id, as a sequence of single upserts would."""
    if len(ids) != len(vectors):
        raise DimensionMismatchError(f"{len(ids)} ids for {len(vectors)} vectors")
    _, last = np.unique(ids[::-1], return_index=True)
    pick = np.sort(len(ids) - 1 - last)
    return ids[pick], np.ascontiguousarray(vectors[pick])
