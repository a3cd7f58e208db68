"""Compressed IVF indexes: IVF-SQ8 (1 byte per dimension) and IVF-PQ (dim/8 bytes per vector).

Codes lose precision, so a search first gathers ``refine * k`` candidates from the codes
and then reranks them with the float vectors (:class:`index.kinds.rows.FloatRows`, memory-mapped
from the snapshot after the first save), returning exact scores. ``refine=0`` returns the
codes' own ranking and approximate scores (benchmarks compare both).
"""

from __future__ import annotations

import numpy as np

from index.deps import require_faiss
from index.kinds.ivf import IVFIndex, ivf_lists, training_sample, tune_probes
from index.kinds.rows import FloatRows
from index.vectors import AUTO_NPROBE, IVFPQ, SQ8, Neighbors, as_matrix

COMPRESSED_KINDS = (SQ8, IVFPQ)
DEFAULT_REFINE = 4  # candidates per wanted hit reranked with the float vectors
PQ_TRAIN = 65_536  # PQ codebooks (256 centroids per sub-space) train on this many points at most


def pq_subquantizers(dim: int) -> int:
    """PQ sub-spaces for ``dim``: the largest divisor of ``dim`` at most ``dim / 8`` (64 for 512)."""
    target = max(1, dim // 8)
    return max(m for m in range(1, target + 1) if dim % m == 0)


def code_bytes(kind: str, dim: int) -> int:
    """Bytes of one vector's code in the lists of ``kind``."""
    return dim if kind == SQ8 else pq_subquantizers(dim)


class CompressedIndex(IVFIndex):
    """IVF lists of SQ8 or PQ codes; search reranks ``refine * k`` candidates exactly."""

    def __init__(
        self,
        dim: int,
        index,
        ids: np.ndarray,
        nprobe: int = 32,
        trained_on: int = 0,
        *,
        kind: str = SQ8,
        rows: FloatRows | None = None,
        refine: int = DEFAULT_REFINE,
    ):  # noqa: ANN001
        super().__init__(dim, index, ids, nprobe, trained_on)
        self.kind = kind
        self.rows = rows if rows is not None else FloatRows(dim)
        self.refine = refine

    def _with(self, index, ids: np.ndarray) -> CompressedIndex:  # noqa: ANN001
        return CompressedIndex(
            self.dim, index, ids, self.nprobe, self.trained_on, kind=self.kind, rows=self.rows, refine=self.refine
        )

    def with_refine(self, refine: int) -> CompressedIndex:
        """The same index searching with another refine factor (0: codes only)."""
        return CompressedIndex(
            self.dim,
            self._index,
            self._ids,
            self.nprobe,
            self.trained_on,
            kind=self.kind,
            rows=self.rows,
            refine=refine,
        )

    def upserted(self, ids: np.ndarray, vectors: np.ndarray) -> CompressedIndex:
        new = super().upserted(ids, vectors)
        new.rows = self.rows.upserted(ids, vectors)  # not yet published: safe to set
        return new

    def removed(self, ids: np.ndarray) -> CompressedIndex:
        new = super().removed(ids)
        if new is not self:
            new.rows = self.rows.removed(ids)
        return new

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[Neighbors]:
        """Top ``k`` per query; candidates from the codes, reranked with the float vectors."""
        if self.refine <= 0:
            return super().search(queries, k, allowed)
        queries = as_matrix(queries, self.dim)
        found = super().search(queries, k * self.refine, allowed)
        out = []
        for query, cand in zip(queries, found):
            scores = self.rows.get(cand.ids) @ query  # (m,) exact inner products
            order = np.argsort(-scores, kind="stable")[:k]
            out.append(Neighbors(scores[order].astype(np.float32), cand.ids[order]))
        return out

    def memory_bytes(self) -> int:
        return super().memory_bytes() + self.rows.memory_bytes()


def new_faiss_index(kind: str, dim: int, nlist: int):  # noqa: ANN201 (faiss index)
    """An untrained faiss IVF index with ``nlist`` lists holding ``kind`` codes."""
    faiss = require_faiss()
    quantizer = faiss.IndexFlatIP(dim)
    if kind == SQ8:
        return faiss.IndexIVFScalarQuantizer(
            quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
    return faiss.IndexIVFPQ(quantizer, dim, nlist, pq_subquantizers(dim), 8, faiss.METRIC_INNER_PRODUCT)


def build_compressed(
    kind: str,
    dim: int,
    ids: np.ndarray,
    vectors: np.ndarray,
    nprobe: int = AUTO_NPROBE,
    seed: int = 0,
    target_recall: float = 0.95,
    refine: int = DEFAULT_REFINE,
) -> CompressedIndex:
    """Train and fill a ``kind`` (sq8 or ivfpq) index over ``ids``/``vectors``.

    ``nprobe=0`` tunes the probed lists so the *refined* search reaches ``target_recall``
    recall@10 against exact search on sampled stored vectors.
    """
    if kind not in COMPRESSED_KINDS:
        raise ValueError(f"not a compressed kind: {kind!r}")
    vectors = as_matrix(vectors, dim)
    ids = np.asarray(ids, np.int64)
    nlist = ivf_lists(len(vectors))
    index = new_faiss_index(kind, dim, nlist)
    index.train(training_sample(vectors, max(nlist * 64, PQ_TRAIN if kind == IVFPQ else 0), seed))
    index.add_with_ids(vectors, ids)
    built = CompressedIndex(
        dim, index, ids, max(nprobe, 1), len(ids), kind=kind, rows=FloatRows.of(dim, ids, vectors), refine=refine
    )
    if nprobe <= 0:

        def found(sample: np.ndarray, probes: int) -> list[np.ndarray]:
            built.nprobe = index.nprobe = probes
            return [n.ids for n in built.search(sample, 11)]

        built.nprobe = index.nprobe = tune_probes(found, nlist, vectors, ids, target_recall, seed)
    return built
