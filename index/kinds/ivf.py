"""Approximate inner-product search: faiss IVF-Flat with removal by id and tuned nprobe."""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np

from index.deps import faiss_has_gpu, require_faiss
from index.kinds.exact import ExactIndex, gpu_resources
from index.vectors import AUTO_NPROBE, IVF, Neighbors, as_matrix, last_wins, membership

_Index = TypeVar("_Index", bound="IVFIndex")  # copy-on-write methods return the caller's own class


def ivf_lists(n: int) -> int:
    """Number of IVF lists for ``n`` vectors: about 4*sqrt(n), between 16 and 65536."""
    return int(min(65536, max(16, 4 * math.sqrt(max(n, 1)))))


def training_sample(vectors: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """At most ``size`` rows of ``vectors`` drawn without replacement, in their order."""
    if len(vectors) <= size:
        return np.ascontiguousarray(vectors)
    rng = np.random.default_rng(seed)
    return np.ascontiguousarray(vectors[np.sort(rng.choice(len(vectors), size, replace=False))])


class IVFIndex:
    """Approximate inner-product search: faiss IVF-Flat; supports removal by id.

    Subclasses change the codes stored in the lists (:mod:`index.kinds.compressed`); the list
    structure, filtering and copy-on-write updates are shared.
    """

    kind = IVF

    def __init__(self, dim: int, index, ids: np.ndarray, nprobe: int = 32, trained_on: int = 0):  # noqa: ANN001 (faiss index)
        self.dim = dim
        self._index = index
        self._ids = np.asarray(ids, np.int64)
        self.nprobe = nprobe
        self._index.nprobe = nprobe
        self.trained_on = trained_on or len(self._ids)  # vectors the lists were trained for
        self._gpu: Any = None  # the faiss GPU copy, made on the first search that can use it

    @classmethod
    def build(
        cls,
        dim: int,
        ids: np.ndarray,
        vectors: np.ndarray,
        nprobe: int = AUTO_NPROBE,
        seed: int = 0,
        target_recall: float = 0.95,
    ) -> IVFIndex:
        """Train the coarse quantizer on (a sample of) ``vectors`` and add them all.

        ``nprobe=0`` picks the smallest number of probed lists whose recall@10 against
        exact search reaches ``target_recall`` on a sample of the vectors themselves.
        """
        faiss = require_faiss()
        vectors = as_matrix(vectors, dim)
        nlist = ivf_lists(len(vectors))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        # faiss's own advice: ~39-256 points per list
        index.train(training_sample(vectors, nlist * 64, seed))
        index.add_with_ids(vectors, np.asarray(ids, np.int64))
        if nprobe <= 0:
            nprobe = tune_nprobe(index, vectors, np.asarray(ids, np.int64), target_recall, seed)
        return cls(dim, index, ids, nprobe, len(ids))

    def _with(self: _Index, index, ids: np.ndarray) -> _Index:  # noqa: ANN001
        """A new index of this class over ``index``/``ids`` (subclasses carry their extras)."""
        return type(self)(self.dim, index, ids, self.nprobe, self.trained_on)

    def memory_bytes(self) -> int:
        """Resident bytes: the faiss lists and quantizer, plus the id array."""
        return int((self._index.code_size + 16) * len(self) + 4 * self.dim * self._index.nlist)

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def ids(self) -> np.ndarray:
        return self._ids

    def _clone(self):  # noqa: ANN202
        return require_faiss().clone_index(self._index)

    def upserted(self: _Index, ids: np.ndarray, vectors: np.ndarray) -> _Index:
        faiss = require_faiss()
        ids, vectors = last_wins(np.asarray(ids, np.int64), as_matrix(vectors, self.dim))
        index = self._clone()
        present = ids[np.isin(ids, self._ids)]
        if len(present):  # removal scans every list: only pay it for replaced ids
            index.remove_ids(faiss.IDSelectorBatch(present))
        index.add_with_ids(vectors, ids)
        new_ids = np.concatenate([self._ids[~np.isin(self._ids, ids)], ids])
        return self._with(index, new_ids)

    def removed(self: _Index, ids: np.ndarray) -> _Index:
        ids = np.asarray(ids, np.int64)
        keep = ~np.isin(self._ids, ids)
        if keep.all():
            return self
        index = self._clone()
        index.remove_ids(require_faiss().IDSelectorBatch(ids))
        return self._with(index, self._ids[keep])

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

    def _filtered(
        self, queries: np.ndarray, k: int, present: int, selector, keep_alive: object = None
    ) -> list[Neighbors]:  # noqa: ANN001
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
            self._gpu = faiss.index_cpu_to_gpu(gpu_resources(faiss), 0, self._index)
            self._gpu.nprobe = self.nprobe
        return self._gpu or self._index

    def serialize(self) -> np.ndarray:
        return require_faiss().serialize_index(self._index)

    @classmethod
    def deserialize(cls, dim: int, ids: np.ndarray, payload: np.ndarray, nprobe: int, trained_on: int = 0) -> IVFIndex:
        index = require_faiss().deserialize_index(np.ascontiguousarray(payload))
        return cls(dim, index, ids, nprobe, trained_on)


def tune_nprobe(index, vectors: np.ndarray, ids: np.ndarray, target: float, seed: int = 0, queries: int = 256) -> int:  # noqa: ANN001
    """Smallest power-of-two nprobe reaching ``target`` recall@10 on sampled stored vectors.

    Each sampled vector queries the index; its own id is left out of both result lists so
    the check measures neighbours, not self-matches.
    """

    def found(sample: np.ndarray, nprobe: int) -> np.ndarray:
        index.nprobe = nprobe
        return index.search(sample, 11)[1]

    return tune_probes(found, int(index.nlist), vectors, ids, target, seed, queries)


def tune_probes(
    found, nlist: int, vectors: np.ndarray, ids: np.ndarray, target: float, seed: int = 0, queries: int = 256
) -> int:  # noqa: ANN001
    """:func:`tune_nprobe` for any IVF-like index: ``found(sample, nprobe)`` returns ``(q, 11)`` ids."""
    rng = np.random.default_rng(seed + 1)
    rows = rng.choice(len(vectors), min(queries, len(vectors)), replace=False)
    sample = np.ascontiguousarray(vectors[rows])
    exact = ExactIndex(vectors.shape[1], ids, vectors).search(sample, 11)
    truth = [set(n.ids[n.ids != ids[r]][:10].tolist()) for n, r in zip(exact, rows)]
    nprobe = 8
    while nprobe < nlist:
        got = found(sample, nprobe)
        hits = sum(len(t & set(f[f != ids[r]][:10].tolist())) for t, f, r in zip(truth, got, rows))
        if hits / max(1, sum(len(t) for t in truth)) >= target:
            return nprobe
        nprobe *= 2
    return int(nlist)
