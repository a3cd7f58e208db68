"""Vector indexes: exact (numpy or faiss GPU) and approximate (faiss IVF), inner product.

Array contract at every boundary: ids ``int64 (n,)``; vectors ``float32``, C-contiguous,
``(n, d)``, L2-normalised; scores are inner products (cosine similarity). Indexes are
immutable once published to searchers: mutations return a new index (copy on write),
so searches in other threads never see a half-applied batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from index.deps import faiss_has_gpu, require_faiss
from index.errors import DimensionMismatchError

EXACT = "exact"
IVF = "ivf"
KINDS = (EXACT, IVF)
AUTO_NPROBE = 0  # nprobe value meaning "tune to the recall target at build time"
IVF_MIN_VECTORS = 1000  # fewer points than this cannot train IVF lists well: stay exact
# Rows scored per block in exact search: bounds the (block, queries) score matrix.
_BLOCK = 1 << 17


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


def _topk(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
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

    def upserted(self, ids: np.ndarray, vectors: np.ndarray) -> ExactIndex:
        ids, vectors = _last_wins(np.asarray(ids, np.int64), as_matrix(vectors, self.dim))
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
            s, i = _topk(scores, self._ids[start : start + _BLOCK], k)
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
        self._gpu = faiss.index_cpu_to_gpu(_gpu_resources(faiss), 0, flat)
        return self._gpu


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


def _last_wins(ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop earlier duplicates of an id, as a sequence of single upserts would."""
    if len(ids) != len(vectors):
        raise DimensionMismatchError(f"{len(ids)} ids for {len(vectors)} vectors")
    _, last = np.unique(ids[::-1], return_index=True)
    pick = np.sort(len(ids) - 1 - last)
    return ids[pick], np.ascontiguousarray(vectors[pick])


def _merge(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of ``scores (m, q)`` with matching ``ids (m, q)``; returns ``(q, k)``."""
    order = np.argsort(-scores, axis=0, kind="stable")[:k]
    return np.take_along_axis(scores, order, axis=0).T, np.take_along_axis(ids, order, axis=0).T


_GPU_RES = None


def _gpu_resources(faiss):  # noqa: ANN001, ANN202
    global _GPU_RES
    if _GPU_RES is None:
        _GPU_RES = faiss.StandardGpuResources()
    return _GPU_RES


def ivf_lists(n: int) -> int:
    """Number of IVF lists for ``n`` vectors: about 4*sqrt(n), between 16 and 65536."""
    return int(min(65536, max(16, 4 * math.sqrt(max(n, 1)))))


class IVFIndex:
    """Approximate inner-product search: faiss IVF-Flat; supports removal by id."""

    kind = IVF

    def __init__(self, dim: int, index, ids: np.ndarray, nprobe: int = 32):  # noqa: ANN001 (faiss index)
        self.dim = dim
        self._index = index
        self._ids = np.asarray(ids, np.int64)
        self.nprobe = nprobe
        self._index.nprobe = nprobe
        self._gpu = None

    @classmethod
    def build(cls, dim: int, ids: np.ndarray, vectors: np.ndarray, nprobe: int = AUTO_NPROBE, seed: int = 0, target_recall: float = 0.95) -> IVFIndex:
        """Train the coarse quantizer on (a sample of) ``vectors`` and add them all.

        ``nprobe=0`` picks the smallest number of probed lists whose recall@10 against
        exact search reaches ``target_recall`` on a sample of the vectors themselves.
        """
        faiss = require_faiss()
        vectors = as_matrix(vectors, dim)
        nlist = ivf_lists(len(vectors))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = vectors
        if len(vectors) > nlist * 64:  # faiss's own advice: ~39-256 points per list
            rng = np.random.default_rng(seed)
            sample = vectors[np.sort(rng.choice(len(vectors), nlist * 64, replace=False))]
        index.train(np.ascontiguousarray(sample))
        index.add_with_ids(vectors, np.asarray(ids, np.int64))
        if nprobe <= 0:
            nprobe = tune_nprobe(index, vectors, np.asarray(ids, np.int64), target_recall, seed)
        return cls(dim, index, ids, nprobe)

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def ids(self) -> np.ndarray:
        return self._ids

    def _clone(self):  # noqa: ANN202
        return require_faiss().clone_index(self._index)

    def upserted(self, ids: np.ndarray, vectors: np.ndarray) -> IVFIndex:
        faiss = require_faiss()
        ids, vectors = _last_wins(np.asarray(ids, np.int64), as_matrix(vectors, self.dim))
        index = self._clone()
        present = ids[np.isin(ids, self._ids)]
        if len(present):  # removal scans every list: only pay it for replaced ids
            index.remove_ids(faiss.IDSelectorBatch(present))
        index.add_with_ids(vectors, ids)
        new_ids = np.concatenate([self._ids[~np.isin(self._ids, ids)], ids])
        return IVFIndex(self.dim, index, new_ids, self.nprobe)

    def removed(self, ids: np.ndarray) -> IVFIndex:
        ids = np.asarray(ids, np.int64)
        keep = ~np.isin(self._ids, ids)
        if keep.all():
            return self
        index = self._clone()
        index.remove_ids(require_faiss().IDSelectorBatch(ids))
        return IVFIndex(self.dim, index, self._ids[keep], self.nprobe)

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[Neighbors]:
        """Top ``k`` per query; with ``allowed``, only among those ids.

        A filter runs inside faiss (an id selector); when the probed lists hold fewer than
        ``k`` allowed ids, more lists are probed, up to all of them, so ``k`` hits come back
        whenever ``k`` allowed vectors exist.
        """
        queries = as_matrix(queries, self.dim)
        if allowed is None:
            k = min(k, len(self))
            if k <= 0:
                return [Neighbors(np.zeros(0, np.float32), np.zeros(0, np.int64)) for _ in queries]
            scores, ids = self._search_index().search(queries, k)
            return [Neighbors(s[i >= 0], i[i >= 0]) for s, i in zip(scores, ids)]
        mask, table = membership(self._ids, allowed)
        present = int(mask.sum())
        k = min(k, present)
        if k <= 0:
            return [Neighbors(np.zeros(0, np.float32), np.zeros(0, np.int64)) for _ in queries]
        faiss = require_faiss()
        if table is not None:  # a bitmap: built in one pass, O(1) membership inside faiss
            bits = np.packbits(table, bitorder="little")
            return self._filtered(queries, k, present, faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits)), bits)
        return self._filtered(queries, k, present, faiss.IDSelectorBatch(self._ids[mask]))

    def _filtered(self, queries: np.ndarray, k: int, present: int, selector, keep_alive: object = None) -> list[Neighbors]:  # noqa: ANN001
        """Search with ``selector``; ``keep_alive`` holds memory the selector points into."""
        faiss = require_faiss()
        nlist = self._index.nlist
        nprobe = self.nprobe
        if present * nprobe / nlist < 16 * k:
            # Few allowed vectors in the usual lists: probe them all. faiss scores only
            # selected ids, so this is an exact scan of the selection at O(n) id checks.
            nprobe = nlist
        while True:
            params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
            scores, ids = self._index.search(queries, k, params=params)
            if (ids >= 0).all() or nprobe >= nlist:
                return [Neighbors(s[i >= 0], i[i >= 0]) for s, i in zip(scores, ids)]
            nprobe = min(nprobe * 4, nlist)

    def _search_index(self):  # noqa: ANN202
        faiss = require_faiss()
        if self._gpu is None and faiss_has_gpu(faiss):
            self._gpu = faiss.index_cpu_to_gpu(_gpu_resources(faiss), 0, self._index)
            self._gpu.nprobe = self.nprobe
        return self._gpu or self._index

    def serialize(self) -> np.ndarray:
        return require_faiss().serialize_index(self._index)

    @classmethod
    def deserialize(cls, dim: int, ids: np.ndarray, payload: np.ndarray, nprobe: int) -> IVFIndex:
        index = require_faiss().deserialize_index(np.ascontiguousarray(payload))
        return cls(dim, index, ids, nprobe)


def tune_nprobe(index, vectors: np.ndarray, ids: np.ndarray, target: float, seed: int = 0, queries: int = 256) -> int:  # noqa: ANN001
    """Smallest power-of-two nprobe reaching ``target`` recall@10 on sampled stored vectors.

    Each sampled vector queries the index; its own id is left out of both result lists so
    the check measures neighbours, not self-matches.
    """
    rng = np.random.default_rng(seed + 1)
    rows = rng.choice(len(vectors), min(queries, len(vectors)), replace=False)
    sample = np.ascontiguousarray(vectors[rows])
    exact = ExactIndex(vectors.shape[1], ids, vectors).search(sample, 11)
    truth = [set(n.ids[n.ids != ids[r]][:10].tolist()) for n, r in zip(exact, rows)]
    nprobe = 8
    while nprobe < index.nlist:
        index.nprobe = nprobe
        _, found = index.search(sample, 11)
        hits = sum(len(t & set(f[f != ids[r]][:10].tolist())) for t, f, r in zip(truth, found, rows))
        if hits / max(1, sum(len(t) for t in truth)) >= target:
            return nprobe
        nprobe *= 2
    return int(index.nlist)


def build_index(kind: str, dim: int, ids: np.ndarray, vectors: np.ndarray, nprobe: int = AUTO_NPROBE) -> VectorIndex:
    """Build an index of ``kind`` over ``ids``/``vectors`` (IVF needs at least 1,000 vectors)."""
    if kind == IVF and len(ids) >= IVF_MIN_VECTORS:
        return IVFIndex.build(dim, ids, vectors, nprobe)
    return ExactIndex(dim, np.asarray(ids, np.int64), as_matrix(vectors, dim).copy())
