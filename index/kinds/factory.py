"""The one place that builds a vector index of a kind by name (exact, ivf, sq8, ivfpq)."""

from __future__ import annotations

import numpy as np

from index.kinds.exact import ExactIndex
from index.vectors import (
    AUTO_NPROBE,
    EXACT,
    IVF,
    IVF_MIN_VECTORS,
    IVFPQ,
    SQ8,
    VectorIndex,
    as_matrix,
)

__all__ = ["build_index"]

DEFAULT_TARGET_RECALL = 0.95  # recall@10 against exact search that auto nprobe aims for


def build_index(
    kind: str,
    dim: int,
    ids: np.ndarray,
    vectors: np.ndarray,
    nprobe: int = AUTO_NPROBE,
    *,
    target_recall: float = DEFAULT_TARGET_RECALL,
    refine: int | None = None,
) -> VectorIndex:
    """Build an in-memory index of ``kind`` over ``ids`` ``(n,)`` and ``vectors`` ``(n, dim)``.

    Approximate kinds need at least ``IVF_MIN_VECTORS`` vectors to train; below that the
    index is exact. ``nprobe=0`` tunes the probed lists to ``target_recall``; ``refine``
    (sq8/ivfpq) is the number of candidates per hit reranked with float vectors (None: the
    kind's default). The on-disk kind needs a directory: see
    :func:`index.kinds.ondisk_build.build_ondisk`.

    Raises:
        ValueError: an unknown kind.
    """
    if kind not in (EXACT, IVF, SQ8, IVFPQ):
        raise ValueError(f"cannot build an in-memory index of kind {kind!r}")
    if kind != EXACT and len(ids) >= IVF_MIN_VECTORS:
        if kind == IVF:
            from index.kinds.ivf import IVFIndex

            return IVFIndex.build(dim, ids, vectors, nprobe, target_recall=target_recall)
        from index.kinds.compressed import DEFAULT_REFINE, build_compressed

        return build_compressed(
            kind,
            dim,
            ids,
            vectors,
            nprobe,
            target_recall=target_recall,
            refine=DEFAULT_REFINE if refine is None else refine,
        )
    return ExactIndex(dim, np.asarray(ids, np.int64), as_matrix(vectors, dim).copy())
