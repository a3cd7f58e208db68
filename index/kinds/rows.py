"""Float vectors looked up by id: the exact copies that compressed indexes rerank with.

A :class:`FloatRows` is a base of rows sorted by id (usually memory-mapped from the index
snapshot, so it costs page cache, not resident memory) plus a small in-memory overlay of
vectors added or replaced since, and the ids removed from the base. Like the indexes it
is copy on write: ``upserted``/``removed`` return a new object and leave this one alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from index.vectors import as_matrix, last_wins

_EMPTY_IDS = np.zeros(0, np.int64)


def _find(sorted_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(positions, found mask)`` of ``ids`` in ``sorted_ids``."""
    if not len(sorted_ids):
        return np.zeros(len(ids), np.int64), np.zeros(len(ids), bool)
    pos = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return pos, sorted_ids[pos] == ids


class FloatRows:
    """Vectors ``(n, dim)`` by id: a sorted base plus an overlay that takes precedence."""

    def __init__(
        self,
        dim: int,
        base_ids: np.ndarray | None = None,  # int64 (n,), sorted ascending
        base_vecs: np.ndarray | None = None,  # float32 (n, dim), row i is base_ids[i]; may be a memmap
        over_ids: np.ndarray | None = None,  # int64 (m,), sorted: added or replaced since the base
        over_vecs: np.ndarray | None = None,  # float32 (m, dim)
        gone: np.ndarray | None = None,  # int64, sorted: base ids removed since
    ) -> None:
        self.dim = dim
        self.base_ids = _EMPTY_IDS if base_ids is None else base_ids
        self.base_vecs = np.zeros((0, dim), np.float32) if base_vecs is None else base_vecs
        self.over_ids = _EMPTY_IDS if over_ids is None else over_ids
        self.over_vecs = np.zeros((0, dim), np.float32) if over_vecs is None else over_vecs
        self.gone = _EMPTY_IDS if gone is None else gone

    @classmethod
    def of(cls, dim: int, ids: np.ndarray, vectors: np.ndarray) -> FloatRows:
        """Rows holding ``vectors`` (copied, sorted by id) under ``ids``."""
        ids, vectors = last_wins(np.asarray(ids, np.int64), as_matrix(vectors, dim))
        order = np.argsort(ids, kind="stable")
        return cls(dim, ids[order], np.ascontiguousarray(vectors[order]))

    def get(self, ids: np.ndarray) -> np.ndarray:
        """Vectors ``(len(ids), dim)`` of ``ids``; rows of unknown ids are zero."""
        ids = np.asarray(ids, np.int64)
        out = np.zeros((len(ids), self.dim), np.float32)
        pos_o, in_o = _find(self.over_ids, ids)
        out[in_o] = self.over_vecs[pos_o[in_o]]
        pos_b, in_b = _find(self.base_ids, ids)
        in_b &= ~in_o
        if in_b.any():
            rows = pos_b[in_b]
            order = np.argsort(rows)  # sorted reads of a memory map touch pages in order
            picked = np.empty((len(rows), self.dim), np.float32)
            picked[order] = self.base_vecs[rows[order]]
            out[in_b] = picked
        return out

    def upserted(self, ids: np.ndarray, vectors: np.ndarray) -> FloatRows:
        """Rows with ``ids`` set to ``vectors`` (the last of duplicate ids wins)."""
        ids, vectors = last_wins(np.asarray(ids, np.int64), as_matrix(vectors, self.dim))
        keep = ~np.isin(self.over_ids, ids)
        new_ids = np.concatenate([self.over_ids[keep], ids])
        order = np.argsort(new_ids, kind="stable")
        new_vecs = np.concatenate([self.over_vecs[keep], vectors])[order]
        return FloatRows(
            self.dim, self.base_ids, self.base_vecs, new_ids[order], np.ascontiguousarray(new_vecs), self.gone
        )

    def removed(self, ids: np.ndarray) -> FloatRows:
        """Rows without ``ids``."""
        ids = np.asarray(ids, np.int64)
        keep = ~np.isin(self.over_ids, ids)
        _, in_b = _find(self.base_ids, ids)
        gone = np.union1d(self.gone, ids[in_b])
        return FloatRows(self.dim, self.base_ids, self.base_vecs, self.over_ids[keep], self.over_vecs[keep], gone)

    def _live_base(self) -> np.ndarray:
        return ~np.isin(self.base_ids, np.union1d(self.gone, self.over_ids))

    def __len__(self) -> int:
        return int(self._live_base().sum()) + len(self.over_ids)

    def sorted_blocks(self, block: int = 1 << 16) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every live ``(ids (b,), vectors (b, dim))`` in ascending id order, ``block`` rows at a time."""
        live = np.flatnonzero(self._live_base())
        ids = np.concatenate([self.base_ids[live], self.over_ids])
        from_over = np.concatenate([np.zeros(len(live), bool), np.ones(len(self.over_ids), bool)])
        rows = np.concatenate([live, np.arange(len(self.over_ids))])
        order = np.argsort(ids, kind="stable")
        for start in range(0, len(order), block):
            sel = order[start : start + block]
            out = np.empty((len(sel), self.dim), np.float32)
            over = from_over[sel]
            out[over] = self.over_vecs[rows[sel][over]]
            out[~over] = self.base_vecs[rows[sel][~over]]  # ascending rows: sequential reads
            yield ids[sel], out

    def memory_bytes(self) -> int:
        """Resident bytes (a memory-mapped base counts only its ids)."""
        base = 0 if isinstance(self.base_vecs, np.memmap) else self.base_vecs.nbytes
        return int(self.base_ids.nbytes + base + self.over_ids.nbytes + self.over_vecs.nbytes + self.gone.nbytes)
