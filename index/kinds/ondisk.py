"""On-disk IVF index: float vectors grouped by list in memory-mapped files, for collections
bigger than RAM.

A build lives in its own directory (``<snapshot>.d/<build>/``) of two row-aligned files,
``ids.bin`` (int64 per row) and ``vecs.bin`` (float32 ``(dim,)`` per row). List ``i`` owns
the rows ``[offset_i, offset_i + capacity_i)`` and has written the first ``size_i`` of them.
Which rows are live is said only by the table, a bitmap of dead rows and the row count in
use, which the snapshot (:mod:`index.snapshot`) holds and replaces atomically.

Flushing writes only rows no saved table refers to: the free tail of a list's region, or a
new region past the rows in use when a list outgrows its own (moving its live rows there,
which drops its dead ones). A crash before the new snapshot is renamed into place therefore
leaves the old snapshot pointing at untouched rows, and the catalog's changes since its
generation are applied again on the next open. Between flushes, changes stay in memory (an
exact overlay of added or replaced vectors and a set of removed ids), so processes that do
not hold the library's write lock never write the files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from index.kinds.exact import ExactIndex, topk
from index.vectors import ONDISK, Neighbors, as_matrix, last_wins

IDS_FILE = "ids.bin"
VECS_FILE = "vecs.bin"
_EMPTY = np.zeros(0, np.int64)


def _contains(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Mask of ``ids`` present in ``sorted_ids``."""
    if not len(sorted_ids) or not len(ids):
        return np.zeros(len(ids), bool)
    pos = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return sorted_ids[pos] == ids


@dataclass(frozen=True)
class Layout:
    """Where the rows of one build are, as the snapshot records it."""

    directory: Path  # the build directory holding ids.bin and vecs.bin
    centroids: np.ndarray  # float32 (nlist, dim), unit rows
    table: np.ndarray  # int64 (nlist, 3): offset, size, capacity of each list's region
    dead: np.ndarray  # bool (rows,): rows whose vector was removed or replaced
    rows: int  # rows allocated in the files

    def owned(self) -> np.ndarray:
        """Mask ``(rows,)`` of written rows that belong to a list's current region."""
        mask = np.zeros(self.rows, bool)
        for offset, size, _ in self.table:
            mask[offset : offset + size] = True
        return mask


class RowFiles:
    """The two files of a build, opened for reading (memory maps) and, by a writer, for pwrite."""

    def __init__(self, directory: Path, dim: int) -> None:
        self.directory = Path(directory)
        self.dim = dim
        self._maps: tuple[int, np.ndarray, np.ndarray] | None = None

    def maps(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Read-only maps ``(ids (rows,), vecs (rows, dim))`` of the first ``rows`` rows."""
        if self._maps is None or self._maps[0] < rows:
            if rows == 0:
                return _EMPTY, np.zeros((0, self.dim), np.float32)
            ids = np.memmap(self.directory / IDS_FILE, dtype="<i8", mode="r", shape=(rows,))
            vecs = np.memmap(self.directory / VECS_FILE, dtype="<f4", mode="r", shape=(rows, self.dim))
            self._maps = (rows, ids, vecs)
        return self._maps[1][:rows], self._maps[2][:rows]

    def write(self, row: int, ids: np.ndarray, vecs: np.ndarray) -> None:
        """Write rows starting at ``row`` (files grow as needed)."""
        for name, data, width in ((IDS_FILE, ids.astype("<i8"), 8), (VECS_FILE, vecs.astype("<f4"), 4 * self.dim)):
            fd = os.open(self.directory / name, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.pwrite(fd, np.ascontiguousarray(data).tobytes(), row * width)
            finally:
                os.close(fd)

    def reserve(self, rows: int, sync: bool = True) -> None:
        """Make both files at least ``rows`` rows long; with ``sync``, flush everything written to disk."""
        for name, width in ((IDS_FILE, 8), (VECS_FILE, 4 * self.dim)):
            fd = os.open(self.directory / name, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if os.fstat(fd).st_size < rows * width:
                    os.ftruncate(fd, rows * width)
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)

    def check(self, rows: int) -> str:
        """Why the files cannot hold ``rows`` rows ("" when they can)."""
        for name, width in ((IDS_FILE, 8), (VECS_FILE, 4 * self.dim)):
            path = self.directory / name
            if not path.exists():
                return f"{path} is missing"
            if path.stat().st_size < rows * width:
                return f"{path} is truncated"
        return ""


class OnDiskIndex:
    """IVF search over memory-mapped float rows; adds and removes without a rebuild."""

    kind = ONDISK

    def __init__(
        self,
        dim: int,
        layout: Layout,
        files: RowFiles,
        nprobe: int,
        trained_on: int,
        base_ids: np.ndarray | None = None,
        overlay: ExactIndex | None = None,
        removed_ids: np.ndarray | None = None,
    ) -> None:
        self.dim = dim
        self.layout = layout
        self.files = files
        self.nprobe = nprobe
        self.trained_on = trained_on  # vectors the centroids were trained on
        self.base_ids = self._live_base_ids() if base_ids is None else base_ids  # sorted live ids in the files
        self.overlay = overlay if overlay is not None else ExactIndex(dim)  # added or replaced since the flush
        self.removed_ids = _EMPTY if removed_ids is None else removed_ids  # sorted base ids gone since

    @property
    def nlist(self) -> int:
        return int(len(self.layout.centroids))

    def _live_base_ids(self) -> np.ndarray:
        ids, _ = self.files.maps(self.layout.rows)
        return np.sort(np.asarray(ids)[self.layout.owned() & ~self.layout.dead])

    def __len__(self) -> int:
        return len(self.base_ids) - len(self.removed_ids) + len(self.overlay)

    def ids(self) -> np.ndarray:
        kept = self.base_ids[~_contains(self.removed_ids, self.base_ids)]
        return np.concatenate([kept, self.overlay.ids()])

    def dirty(self) -> bool:
        """True when there are changes not yet written to the files."""
        return bool(len(self.overlay) or len(self.removed_ids))

    def _derive(self, overlay: ExactIndex, removed_ids: np.ndarray) -> OnDiskIndex:
        return OnDiskIndex(
            self.dim, self.layout, self.files, self.nprobe, self.trained_on, self.base_ids, overlay, removed_ids
        )

    def upserted(self, ids: np.ndarray, vectors: np.ndarray) -> OnDiskIndex:
        ids, vectors = last_wins(np.asarray(ids, np.int64), as_matrix(vectors, self.dim))
        gone = np.union1d(self.removed_ids, ids[_contains(self.base_ids, ids)])
        return self._derive(self.overlay.upserted(ids, vectors), gone)

    def removed(self, ids: np.ndarray) -> OnDiskIndex:
        ids = np.asarray(ids, np.int64)
        gone = np.union1d(self.removed_ids, ids[_contains(self.base_ids, ids)])
        overlay = self.overlay.removed(ids)
        if len(gone) == len(self.removed_ids) and overlay is self.overlay:
            return self
        return self._derive(overlay, gone)

    # ---- search ---------------------------------------------------------------------------

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None, nprobe: int = 0
    ) -> list[Neighbors]:
        """Top ``k`` per query: probed lists of the files, merged with the overlay.

        With ``allowed``, only those ids; when the probed lists hold fewer than ``k`` allowed
        ids, more lists are probed, up to all of them (then the search is exact).
        """
        queries = as_matrix(queries, self.dim)
        allowed_sorted = None if allowed is None else np.unique(np.asarray(allowed, np.int64))
        probes = min(nprobe or self.nprobe, self.nlist)
        out = []
        for query, extra in zip(queries, self.overlay.search(queries, k, allowed)):
            probe = probes
            while True:
                scores, ids = self._scan(query, probe, allowed_sorted)
                if len(ids) >= k or probe >= self.nlist:
                    break
                probe = min(probe * 4, self.nlist)
            scores = np.concatenate([scores, extra.scores])
            ids = np.concatenate([ids, extra.ids])
            top = min(k, len(ids))
            if top <= 0:
                out.append(Neighbors(np.zeros(0, np.float32), _EMPTY))
                continue
            s, i = topk(scores[:, None], ids, top)
            out.append(Neighbors(s[0].astype(np.float32), i[0]))
        return out

    def _scan(self, query: np.ndarray, probes: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Scores and ids of the live, allowed rows in the ``probes`` lists nearest ``query``."""
        if not self.nlist or not len(self.base_ids):
            return np.zeros(0, np.float32), _EMPTY
        near = self.layout.centroids @ query  # (nlist,)
        lists = np.argpartition(-near, probes - 1)[:probes] if probes < self.nlist else np.arange(self.nlist)
        ids_map, vecs_map = self.files.maps(self.layout.rows)
        all_s, all_i = [], []
        for offset, size, _ in self.layout.table[np.sort(lists)]:
            if not size:
                continue
            span = slice(offset, offset + size)
            keep = ~self.layout.dead[span]
            ids = np.asarray(ids_map[span])
            if len(self.removed_ids):
                keep &= ~_contains(self.removed_ids, ids)
            if allowed is not None:
                keep &= _contains(allowed, ids)
            if keep.any():
                all_s.append((vecs_map[span] @ query)[keep])  # (size,) inner products
                all_i.append(ids[keep])
        if not all_s:
            return np.zeros(0, np.float32), _EMPTY
        return np.concatenate(all_s), np.concatenate(all_i)

    def exact_truth(self, queries: np.ndarray, k: int) -> list[Neighbors]:
        """Exact top ``k`` over every live vector, streaming the files once (for recall checks)."""
        return self.search(queries, k, nprobe=self.nlist)

    def memory_bytes(self) -> int:
        """Resident bytes: centroids, table, dead bitmap, sorted ids and the overlay."""
        lay = self.layout
        return int(
            lay.centroids.nbytes
            + lay.table.nbytes
            + lay.rows // 8
            + self.base_ids.nbytes
            + self.removed_ids.nbytes
            + len(self.overlay) * (4 * self.dim + 8)
        )

    # ---- writing --------------------------------------------------------------------------

    def flushed(self) -> OnDiskIndex:
        """Write the in-memory changes into the files; returns the index the files now hold.

        Only the holder of the library's write lock may call this. Nothing the saved
        snapshot refers to is overwritten (see the module docstring); the files are fsynced
        before returning, so the snapshot written next may refer to the new rows.
        """
        if not self.dirty():
            return self
        lay = self.layout
        dead = lay.dead.copy()
        if len(self.removed_ids):
            ids_map, _ = self.files.maps(lay.rows)
            hit = lay.owned() & ~dead & _contains(self.removed_ids, np.asarray(ids_map))
            dead[hit] = True
        layout = replace(lay, dead=dead)
        layout = append_rows(layout, self.files, self.overlay.ids(), np.asarray(self.overlay.vectors()))
        self.files.reserve(layout.rows)
        base = np.union1d(self.base_ids[~_contains(self.removed_ids, self.base_ids)], self.overlay.ids())
        return OnDiskIndex(self.dim, layout, self.files, self.nprobe, self.trained_on, base)


def assign(centroids: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Nearest list ``(n,)`` of each vector (largest inner product with its centroid)."""
    out = np.empty(len(vectors), np.int64)
    for start in range(0, len(vectors), 1 << 14):
        out[start : start + (1 << 14)] = np.argmax(vectors[start : start + (1 << 14)] @ centroids.T, axis=1)
    return out


def append_rows(layout: Layout, files: RowFiles, ids: np.ndarray, vectors: np.ndarray) -> Layout:
    """Write ``ids``/``vectors`` into their lists' free rows; a full list moves to a new region.

    Returns the new layout; the old one still describes untouched rows.
    """
    if not len(ids):
        return layout
    table, dead, rows = layout.table.copy(), layout.dead, layout.rows
    lists = assign(layout.centroids, vectors)
    order = np.argsort(lists, kind="stable")
    bounds = np.searchsorted(lists[order], np.arange(len(table) + 1))
    grown: list[np.ndarray] = []
    for lst in np.flatnonzero(np.diff(bounds)):
        pick = order[bounds[lst] : bounds[lst + 1]]
        offset, size, capacity = (int(v) for v in table[lst])
        if size + len(pick) <= capacity:
            files.write(offset + size, ids[pick], vectors[pick])
            table[lst, 1] = size + len(pick)
            continue
        ids_map, vecs_map = files.maps(layout.rows)
        live = np.flatnonzero(~dead[offset : offset + size]) + offset
        new_ids = np.concatenate([np.asarray(ids_map[live]), ids[pick]])
        new_vecs = np.concatenate([np.asarray(vecs_map[live]), vectors[pick]])
        capacity = max(16, 2 * len(new_ids))
        files.write(rows, new_ids, new_vecs)
        table[lst] = (rows, len(new_ids), capacity)
        grown.append(np.zeros(capacity, bool))
        rows += capacity
    if grown:
        dead = np.concatenate([dead, *grown])
        files.reserve(rows, sync=False)  # a moved list's unwritten tail still counts as file rows
    return replace(layout, table=table, dead=dead, rows=rows)
