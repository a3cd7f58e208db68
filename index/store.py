"""A corpus's vector index kept in agreement with the catalog.

The catalog is the source of truth (it holds every vector); the index snapshot on disk
is a derived, atomically written copy that records the catalog generation it reflects.
Opening or refreshing applies exactly the catalog changes since that generation, so
after any crash the index holds every catalog vector id and nothing else.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.catalog import Catalog
from index.errors import CorruptFileError
from index.snapshot import read_snapshot, write_snapshot
from index.vectors import EXACT, IVF, IVF_MIN_VECTORS, KINDS, ExactIndex, IVFIndex, Neighbors, VectorIndex, build_index

log = logging.getLogger(__name__)

AUTO = "auto"


@dataclass(frozen=True)
class IndexConfig:
    """How vectors are indexed."""

    kind: str = AUTO  # "exact", "ivf", or "auto" (exact below approx_threshold vectors)
    approx_threshold: int = 250_000  # auto switches to IVF at this many vectors
    nprobe: int = 0  # IVF lists probed per query; 0 tunes it at build time to target_recall
    target_recall: float = 0.95  # recall@10 against exact search that auto nprobe aims for

    def __post_init__(self) -> None:
        if self.kind not in (*KINDS, AUTO):
            raise ValueError(f"index kind must be one of {', '.join((*KINDS, AUTO))}, not {self.kind!r}")

    def kind_for(self, count: int) -> str:
        if self.kind != AUTO:
            return self.kind
        # IVF needs enough points to train its lists (see build_index).
        return IVF if count >= max(self.approx_threshold, IVF_MIN_VECTORS) else EXACT


class VectorStore:
    """One corpus (images or texts) of vectors: search it, refresh it, persist it."""

    def __init__(self, path: Path, catalog: Catalog, corpus: str, dim: int, config: IndexConfig) -> None:
        self.path = Path(path)
        self.catalog = catalog
        self.corpus = corpus
        self.dim = dim
        self.config = config
        self._lock = threading.Lock()
        self._index: VectorIndex = ExactIndex(dim)
        self._gen = -1  # catalog generation reflected by self._index; -1: nothing loaded
        self.repaired = False  # True when opening found the snapshot stale or damaged
        # Set by retrieval/ (a GPU searcher): maps the index about to be searched to what searches it.
        self.accelerate: Callable[[VectorIndex], VectorIndex] | None = None

    @property
    def index(self) -> VectorIndex:
        return self._index

    @property
    def generation(self) -> int:
        return self._gen

    def load(self) -> None:
        """Load the snapshot (if any and readable) and bring it up to date with the catalog."""
        with self._lock:
            if self.path.exists():
                try:
                    self._index, self._gen = read_snapshot(self.path, self.dim)
                except CorruptFileError as exc:
                    log.warning("%s; rebuilding from the catalog", exc)
                    self._index, self._gen = ExactIndex(self.dim), -1
            stale = self._gen != self.catalog.generation()
            self._sync_locked()
            self.repaired = stale and self.path.exists()

    def refresh(self) -> bool:
        """Apply catalog changes made since the last load or refresh; True if any."""
        with self._lock:
            return self._sync_locked()

    def _sync_locked(self) -> bool:
        target = self.catalog.generation()  # read before the changes: re-applying is harmless
        if target == self._gen:
            return False
        gone = self.catalog.deleted_since(self.corpus, self._gen)
        # Checked after reading the tombstones: a prune in between would have hidden some.
        # A snapshot ahead of the catalog (catalog replaced or restored) cannot be patched.
        if self._gen < 0 or self._gen > target or self._gen < self.catalog.tombstone_floor():
            self._index = self._rebuild(self.config.kind_for(len(self._index)))
        else:
            index = self._index.removed(gone) if len(gone) else self._index
            ids, vectors = self.catalog.vectors_since(self.corpus, self._gen, self.dim)
            self._index = index.upserted(ids, vectors) if len(ids) else index
        self._gen = target
        return True

    def _rebuild(self, kind: str) -> VectorIndex:
        ids, vectors = self.catalog.vectors_since(self.corpus, -1, self.dim)
        if self.config.kind != AUTO:
            kind = self.config.kind
        elif kind != IVF:
            kind = self.config.kind_for(len(ids))
        if kind == IVF and len(ids) >= IVF_MIN_VECTORS:
            return IVFIndex.build(self.dim, ids, vectors, self.config.nprobe, target_recall=self.config.target_recall)
        return build_index(EXACT, self.dim, ids, vectors)

    def persist(self) -> None:
        """Write the index snapshot atomically, switching kind if its size calls for it.

        Only the process holding the library's write lock may call this.
        """
        with self._lock:
            self._sync_locked()
            want = self.config.kind_for(len(self._index))
            if want != self._index.kind:
                self._index = self._rebuild(want)
            write_snapshot(self.path, self._index, self._gen)
            self.catalog.prune_tombstones(self._gen)

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[Neighbors]:
        """Top ``k`` ids per query row ``(q, dim)``, best first; only ``allowed`` ids if given."""
        index = self._index if self.accelerate is None else self.accelerate(self._index)
        return index.search(queries, k, allowed)

    def agrees_with_catalog(self) -> bool:
        """True when the index holds exactly the catalog's vector ids (for checks and tests)."""
        return np.array_equal(np.sort(self._index.ids()), self.catalog.vector_ids(self.corpus))
