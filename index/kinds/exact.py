"""Exact inner-product search: numpy blockwise top-k on CPU, faiss flat on a GPU."""

from __future__ import annotations

import numpy as np

from index.deps import faiss_has_gpu, require_faiss
from index.vectors import EXACT, Neighbors, as_matrix, last_wins, membership

# Rows scored per block in exact search: bounds the (block, queries) score matrix.
_BLOCK = 1 << 17


def topk(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` per column of ``scores (n, q)``; returns ``(q, k')`` scores and ids."""
    n = scores.shape[0]
    if k < n:
        part = np.argpartition(-scores, k - 1, axis=0)[:k]  # (k, q)
    else:
        part = np.broadcast_to(np.arange(n)[:, None], scores.shape)
    top = np.take_along_axis(scores, part, axis=0)  # (k, q)
    order = np.argsort(-top, axis=0, kind="stable")
    rows = np.take_along_axis(part, order, axis=0)
    return np.take_along_axis(top, order, axis=0).T, ids[rows].T


class ExactIndex:
    """Brute-force inner product: numpy matmul on CPU (faster than faiss flat here), faiss on GPU."""

    kind = EXACT

    def __init__(self, dim: int, ids: np.ndarray | None = None, vectors: np.ndarray | None = None):
        self.dim = dim
        self._ids = np.zeros(0, np.int64) if ids is None else np.asarray(ids, np.int64)
        self._vecs = np.zeros((0, dim), np.float32) if vectors is None else vectors
        self._gpu = None  # faiss GPU index, built on first search when a GPU exists

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def ids(self) -> np.ndarray:
        return self._ids

    def vectors(self) -> np.ndarray:
        return self._vecs

    def memory_bytes(self) -> int:
        """Resident bytes: every search reads the whole matrix, memory-mapped or not."""
        return int(self._ids.nbytes + 4 * self.dim * len(self))

    def upserted(self, ids: np.ndarray, vectors: np.ndarray) -> ExactIndex:
        ids, vectors = last_wins(np.asarray(ids, np.int64), as_matrix(vectors, self.dim))
        keep = ~np.isin(self._ids, ids)
        if keep.all():  # only new ids: one copy of the matrix, not a masked copy and another
            return ExactIndex(self.dim, np.concatenate([self._ids, ids]), np.concatenate([self._vecs, vectors]))
        new_ids = np.concatenate([self._ids[keep], ids])
        new_vecs = np.concatenate([np.asarray(self._vecs)[keep], vectors])
        return ExactIndex(self.dim, new_ids, np.ascontiguousarray(new_vecs))

    def removed(self, ids: np.ndarray) -> ExactIndex:
        keep = ~np.isin(self._ids, np.asarray(ids, np.int64))
        if keep.all():
            return self
        return ExactIndex(self.dim, self._ids[keep], np.ascontiguousarray(self._vecs[keep]))

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[Neighbors]:
        """Top ``k`` per query; with ``allowed``, only among those ids (still exact)."""
        queries = as_matrix(queries, self.dim)
        keep = None
        if allowed is not None:
            keep, _ = membership(self._ids, allowed)
            if keep.sum() * 4 < len(keep):  # a small selection: scan just its rows
                rows = np.flatnonzero(keep)
                return ExactIndex(self.dim, self._ids[rows], self._vecs[rows]).search(queries, k)
        n = len(self)
        k = min(k, n if keep is None else int(keep.sum()))
        if k <= 0:
            return [Neighbors(np.zeros(0, np.float32), np.zeros(0, np.int64)) for _ in queries]
        gpu = self._gpu_index() if keep is None else None
        if gpu is not None:
            scores, rows = gpu.search(queries, k)
            return [Neighbors(s[r >= 0], self._ids[r[r >= 0]]) for s, r in zip(scores, rows)]
        best_s: np.ndarray | None = None
        best_i: np.ndarray | None = None
        for start in range(0, n, _BLOCK):
            block = self._vecs[start : start + _BLOCK]
            scores = block @ queries.T  # (b, q)
            if keep is not None:  # a large selection: score everything, drop the rest
                scores[~keep[start : start + _BLOCK]] = -np.inf
            s, i = topk(scores, self._ids[start : start + _BLOCK], k)
            if best_s is None:
                best_s, best_i = s, i
            else:  # merge the running best with this block's best
                s_all = np.concatenate([best_s, s], axis=1).T
                i_all = np.concatenate([best_i, i], axis=1).T
                best_s, best_i = _merge(s_all, i_all, k)
        assert best_s is not None and best_i is not None
        return [Neighbors(s[np.isfinite(s)].astype(np.float32), i[np.isfinite(s)]) for s, i in zip(best_s, best_i)]

    def _gpu_index(self):  # noqa: ANN202 (faiss object)
        if self._gpu is not None or len(self) < 50_000:
            return self._gpu
        faiss = require_faiss()
        if not faiss_has_gpu(faiss):
            return None
        flat = faiss.IndexFlatIP(self.dim)
        flat.add(np.ascontiguousarray(self._vecs))
        self._gpu = faiss.index_cpu_to_gpu(gpu_resources(faiss), 0, flat)
        return self._gpu


def _merge(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of ``scores (m, q)`` with matching ``ids (m, q)``; returns ``(q, k)``."""
    order = np.argsort(-scores, axis=0, kind="stable")[:k]
    return np.take_along_axis(scores, order, axis=0).T, np.take_along_axis(ids, order, axis=0).T


_GPU_RES = None


def gpu_resources(faiss):  # noqa: ANN001, ANN202
    global _GPU_RES
    if _GPU_RES is None:
        _GPU_RES = faiss.StandardGpuResources()
    return _GPU_RES
