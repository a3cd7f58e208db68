"""Exact vector search on a GPU with torch, for machines whose faiss has no GPU support.

faiss-gpu wheels are large and tied to one CUDA version, while a CUDA build of torch is
already here for the encoder. :class:`TorchExactIndex` keeps an fp16 copy of an exact
index's vectors on the device, scores queries with one matrix product per block and takes
the top ``k`` there; the few best candidates are then rescored in float32 against the
index's own vectors, so hits and scores are those of exact CPU search (only candidates
within fp16 rounding of the k-th score could be ordered differently before rescoring,
and a margin of extra candidates absorbs that).

:class:`GpuSearch` is the hook :class:`index.store.VectorStore` calls with the index it
is about to search (``index/`` never imports torch): it answers with a GPU searcher for
large exact indexes, built once per published index and extended in place when new
vectors were only appended, and with the index itself otherwise.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol, TypeGuard

import numpy as np

from index.deps import gpu_present
from index.vectors import Neighbors, VectorIndex, as_matrix, membership

if TYPE_CHECKING:
    import torch

__all__ = ["GpuSearch", "LazyGpuSearch", "RowIndex", "TorchExactIndex", "gpu_search_for", "search_hook"]

_SCORE_BYTES = 1 << 29  # bound on one block's (queries, rows) fp16 score matrix: 512 MiB
_MARGIN = 16  # extra fp16 candidates per query rescored in float32
# Bound on the error of an fp16 score of unit vectors, doubled (the k-th score errs too):
# inputs rounded to fp16 (2 x 2^-11 relative), the output rounded to fp16 (2^-12).
_FP16_SLACK = 2.5e-3


class RowIndex(VectorIndex, Protocol):
    """An index that holds its float rows (an exact index): what a GPU copy is made from."""

    def vectors(self) -> np.ndarray: ...  # float32 (n, d), in the order of ids()


class TorchExactIndex:
    """An exact index searched with torch on ``device`` over fp16 vectors; the same
    ``search`` contract as :class:`index.kinds.exact.ExactIndex` (which it wraps)."""

    def __init__(self, index: RowIndex, device: str = "cuda", vectors: torch.Tensor | None = None) -> None:
        import torch

        self.base = index
        self.kind = index.kind
        self.dim = index.dim
        self.device = torch.device(device)
        self._ids = np.asarray(index.ids(), np.int64)
        self._host = index.vectors()  # float32 (n, d), for rescoring
        self._dev = vectors if vectors is not None else _upload(self._host, self.device)  # fp16 (n, d)
        self._allowed: tuple[object, torch.Tensor] | None = None  # (allowed array, device mask) of the last filter

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def ids(self) -> np.ndarray:
        return self._ids

    def vectors(self) -> np.ndarray:
        return self._host

    def upserted(self, ids: np.ndarray, vectors: np.ndarray) -> VectorIndex:
        return self.base.upserted(ids, vectors)

    def removed(self, ids: np.ndarray) -> VectorIndex:
        return self.base.removed(ids)

    def extended(self, index: RowIndex) -> TorchExactIndex:
        """A searcher for ``index``, reusing this one's device rows when ``index`` only appended rows."""
        import torch

        n = len(self)
        new_ids = np.asarray(index.ids(), np.int64)
        if 0 < n <= len(new_ids) and np.array_equal(new_ids[:n], self._ids):
            tail = _upload(index.vectors()[n:], self.device)
            return TorchExactIndex(index, str(self.device), torch.cat([self._dev, tail]))
        return TorchExactIndex(index, str(self.device))

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[Neighbors]:
        """Top ``k`` per query row ``(q, dim)``, best first; with ``allowed``, only those ids."""
        import torch

        queries = as_matrix(queries, self.dim)
        mask = self._mask(allowed) if allowed is not None else None
        present = len(self) if mask is None else int(mask.sum())
        k = min(k, present)
        if k <= 0:
            return [Neighbors(np.zeros(0, np.float32), np.zeros(0, np.int64)) for _ in queries]
        take = min(k + _MARGIN, present)  # candidates to rescore
        with torch.inference_mode():
            q = torch.from_numpy(queries).to(self.device, torch.float16)  # (q, d)
            while True:
                scores, rows = self._candidates(q, take, mask)  # (q, take) fp16, best first
                # Done when every row left out scores, in fp16, clearly below each k-th best:
                # otherwise a true top-k row may hide among fp16 ties; widen and look again.
                last, kth = scores[:, -1].float(), scores[:, k - 1].float()
                if take >= present or bool(((last < kth - _FP16_SLACK) | ~torch.isfinite(last)).all()):
                    break
                take = min(take * 4, present)
            found = torch.where(torch.isfinite(scores), rows, torch.full_like(rows, -1)).cpu().numpy()  # -1: masked out
        return self._rescore(queries, found, k)

    def _candidates(self, q: torch.Tensor, take: int, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scores, rows)`` of the ``take`` best fp16 scores per query, best first, merged block by block."""
        import torch

        n = len(self)
        block = max(take, _SCORE_BYTES // (2 * q.shape[0]))
        best_s: torch.Tensor | None = None
        best_r: torch.Tensor | None = None
        for start in range(0, n, block):
            scores = q @ self._dev[start : start + block].T  # (q, b) fp16
            if mask is not None:
                scores.masked_fill_(~mask[start : start + block], float("-inf"))
            s, r = scores.topk(min(take, scores.shape[1]), dim=1)
            r = r + start
            if best_s is not None and best_r is not None:
                s, r = torch.cat([best_s, s], 1), torch.cat([best_r, r], 1)
                s, order = s.topk(min(take, s.shape[1]), dim=1)
                r = r.gather(1, order)
            best_s, best_r = s, r
        assert best_s is not None and best_r is not None
        return best_s, best_r

    def _rescore(self, queries: np.ndarray, rows: np.ndarray, k: int) -> list[Neighbors]:
        """Exact float32 scores of the candidate ``rows (q, take)``; the best ``k`` of each,
        ties broken by position as the CPU search does."""
        n = len(self)
        rows = np.sort(np.where(rows >= 0, rows, n), axis=1)  # masked-out slots (-1) last
        valid = rows < n
        picked = np.asarray(self._host[np.minimum(rows, n - 1).ravel()], np.float32).reshape(*rows.shape, self.dim)
        scores = np.einsum("qtd,qd->qt", picked, queries).astype(np.float32)  # (q, take)
        scores[~valid] = -np.inf
        best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        top = np.take_along_axis(scores, best, 1)
        ids = self._ids[np.take_along_axis(np.minimum(rows, n - 1), best, 1)]
        return [Neighbors(s[np.isfinite(s)], i[np.isfinite(s)]) for s, i in zip(top, ids)]

    def _mask(self, allowed: np.ndarray) -> torch.Tensor:
        """Device mask of ``allowed`` ids, kept for the next query with the same array (paging)."""
        import torch

        cached = self._allowed
        if cached is not None and cached[0] is allowed:
            return cached[1]
        keep, _ = membership(self._ids, allowed)
        mask = torch.from_numpy(keep).to(self.device)
        self._allowed = (allowed, mask)
        return mask


def _upload(vectors: np.ndarray, device: torch.device) -> torch.Tensor:
    """float32 rows -> fp16 on ``device``, converted there in chunks (no full host copy)."""
    import torch

    out = torch.empty((len(vectors), vectors.shape[1]), dtype=torch.float16, device=device)
    step = 1 << 18
    for start in range(0, len(vectors), step):
        chunk = torch.from_numpy(np.ascontiguousarray(vectors[start : start + step], np.float32))
        out[start : start + step] = chunk.to(device, non_blocking=False).half()
    return out


MIN_GPU_VECTORS = 50_000  # exact indexes smaller than this are searched on the CPU


def _large_exact(index: VectorIndex, min_vectors: int) -> TypeGuard[RowIndex]:
    return hasattr(index, "vectors") and len(index) >= max(1, min_vectors)


class GpuSearch:
    """The :class:`index.store.VectorStore` search hook: a GPU searcher for large exact indexes.

    Args:
        device: the torch device to search on.
        min_vectors: smaller indexes stay on the CPU (numpy is faster than a device round trip).
        memory_fraction: the fp16 copy must fit in this share of the device's free memory.
    """

    def __init__(self, device: str = "cuda", min_vectors: int = MIN_GPU_VECTORS, memory_fraction: float = 0.5) -> None:
        self.device = device
        self.min_vectors = min_vectors
        self.memory_fraction = memory_fraction
        self._lock = threading.Lock()
        self._last: tuple[VectorIndex, TorchExactIndex] | None = None

    def __call__(self, index: VectorIndex) -> VectorIndex:
        if not _large_exact(index, self.min_vectors):
            return index
        with self._lock:
            last = self._last
            if last is not None and last[0] is index:
                return last[1]
            if not self._fits(index, last):
                return index
            self._last = None  # let the old copy go before the new one is made
            searcher = last[1].extended(index) if last is not None else TorchExactIndex(index, self.device)
            self._last = (index, searcher)
            return searcher

    def _fits(self, index: VectorIndex, last: tuple[VectorIndex, TorchExactIndex] | None) -> bool:
        import torch

        if torch.device(self.device).type != "cuda":
            return True
        free, _ = torch.cuda.mem_get_info(torch.device(self.device))
        held = 2 * len(last[1]) * last[1].dim if last is not None else 0
        return 2 * len(index) * index.dim <= self.memory_fraction * (free + held)


def gpu_search_for(device: str) -> GpuSearch | None:
    """The GPU search hook for a library opened on ``device`` ("auto", "cpu", "cuda", ...),
    or None: no CUDA device, a CPU-only device asked for, or faiss searching on the GPU itself."""
    if device not in ("auto",) and not device.startswith("cuda"):
        return None
    if device == "auto" and not gpu_present():  # no NVIDIA driver: no need to import torch to know
        return None
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    from index.deps import faiss_has_gpu, require_faiss

    if faiss_has_gpu(require_faiss()):
        return None  # faiss's GPU indexes take over (index/kinds/exact.py, index/kinds/ivf.py)
    return GpuSearch("cuda" if device == "auto" else device)


class LazyGpuSearch:
    """Decides on the first search of a large exact index whether :func:`gpu_search_for`
    applies, so that opening a library, or searching a small or compressed index, does not
    import torch (seconds of a command-line search); afterwards it is that hook, or a pass-through."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._hook: GpuSearch | None = None
        self._decided = False
        self._lock = threading.Lock()

    def __call__(self, index: VectorIndex) -> VectorIndex:
        if not _large_exact(index, MIN_GPU_VECTORS):
            return index
        if not self._decided:
            with self._lock:
                if not self._decided:
                    self._hook = gpu_search_for(self.device)
                    self._decided = True
        return self._hook(index) if self._hook is not None else index


def search_hook(device: str) -> LazyGpuSearch | None:
    """The hook a library opened on ``device`` hands its vector stores (None on "cpu"/"mps")."""
    return LazyGpuSearch(device) if device == "auto" or device.startswith("cuda") else None
