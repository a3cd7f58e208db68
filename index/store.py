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
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index.config import AUTO, IndexConfig
from index.errors import CorruptFileError
from index.kinds.exact import ExactIndex
from index.kinds.factory import build_index
from index.snapshot import read_snapshot, write_snapshot
from index.vectors import (
    EXACT,
    IVF_MIN_VECTORS,
    IVFPQ,
    ONDISK,
    SQ8,
    Neighbors,
    VectorIndex,
)

if TYPE_CHECKING:
    from index.catalog import Catalog

__all__ = ["AUTO", "IndexConfig", "VectorStore"]

log = logging.getLogger(__name__)


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
        self.damaged = False  # True when opening found the snapshot damaged (rebuilt from the catalog, not saved)
        self._retrain: threading.Thread | None = None  # background rebuild of a grown index
        self._retrain_gen: int | None = None  # catalog generation that rebuild started from
        self._building: Path | None = None  # on-disk build directory being written
        self.retrain_error: BaseException | None = None  # why the last retrain failed, if it did
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
                    self.damaged = True
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
        if self._gen < 0 or self._gen > target or self._gen < self.catalog.tombstone_floor(self.corpus):
            self._index = self._rebuild(self.config.kind_for(len(self._index), self.dim))
        else:
            index = self._index.removed(gone) if len(gone) else self._index
            ids, vectors = self.catalog.vectors_since(self.corpus, self._gen, self.dim)
            self._index = index.upserted(ids, vectors) if len(ids) else index
        self._gen = target
        return True

    def _rebuild(self, kind: str) -> VectorIndex:
        if self.config.kind != AUTO:
            kind = self.config.kind
        elif kind == EXACT:
            kind = self.config.kind_for(len(self.catalog.vector_ids(self.corpus, self.dim)), self.dim)
        return self._build(kind)

    def _build(self, kind: str) -> VectorIndex:
        """A fresh index of ``kind`` over every catalog vector (slow; takes no lock)."""
        cfg = self.config
        if kind == ONDISK:
            return self._build_ondisk()
        ids, vectors = self.catalog.vectors_since(self.corpus, -1, self.dim)
        return build_index(kind, self.dim, ids, vectors, cfg.nprobe, target_recall=cfg.target_recall, refine=cfg.refine)

    def _build_ondisk(self) -> VectorIndex:
        """Stream the catalog twice (a sample to train on, then every vector) into a new directory."""
        from index.kinds.ondisk_build import build_ondisk, new_build_dir, sample_size

        count = len(self.catalog.vector_ids(self.corpus, self.dim))
        rng = np.random.default_rng(0)
        share = min(1.0, sample_size(count) / max(count, 1))
        parts = [v[rng.random(len(v)) < share] for _, v in self.catalog.iter_vectors(self.corpus, -1, self.dim)]
        sample = np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)
        directory = self._building = new_build_dir(self.path)
        try:
            return build_ondisk(
                directory,
                self.dim,
                lambda: self.catalog.iter_vectors(self.corpus, -1, self.dim),
                count,
                sample,
                self.config.nprobe,
                self.config.target_recall,
            )
        finally:
            self._building = None

    def persist(self, retrain: str = "wait") -> None:
        """Write the index snapshot atomically, switching kind if its size calls for it.

        When the collection has grown past ``retrain_factor`` times what the IVF lists were
        trained on, a fresh index is built from the catalog in a background thread while
        the old one keeps serving searches; ``retrain`` says whether to ``"wait"`` for it
        and save it (the default), leave it running (``"background"``: call
        :meth:`finish_retrain` later) or not start it (``"never"``).

        Only the process holding the library's write lock may call this.
        """
        with self._lock:
            self._persist_locked()
            self.damaged = False
        if retrain != "never" and self.retrain_due():
            self.start_retrain()
            if retrain == "wait":
                self.finish_retrain()

    def _persist_locked(self) -> None:
        self._sync_locked()
        want = self.config.kind_for(len(self._index), self.dim)
        if want != self._index.kind:
            self._index = self._rebuild(want)
        flushed = getattr(self._index, "flushed", None)
        if flushed is not None:  # on-disk: append the changes to its files first
            self._index = flushed()
        write_snapshot(self.path, self._index, self._gen)
        # A running retrain catches up from its start generation: keep those tombstones.
        floor = self._gen if self._retrain_gen is None else min(self._gen, self._retrain_gen)
        self.catalog.prune_tombstones(self.corpus, floor)
        if self._index.kind in (SQ8, IVFPQ):  # serve the float rows from the file just written
            self._index, _ = read_snapshot(self.path, self.dim)
        if self._index.kind == ONDISK:
            from index.kinds.ondisk_build import remove_orphans

            remove_orphans(self.path, [p for p in (self._index.layout.directory, self._building) if p])  # type: ignore[attr-defined]

    # ---- retraining ---------------------------------------------------------------------

    def retrain_due(self) -> bool:
        """True when the index holds ``retrain_factor`` times more vectors than trained its lists."""
        trained = getattr(self._index, "trained_on", 0)
        factor = self.config.retrain_factor
        return bool(factor and trained) and len(self._index) > factor * max(trained, IVF_MIN_VECTORS)

    def start_retrain(self) -> threading.Thread:
        """Start (or return the running) background rebuild of the current kind from the catalog.

        Searches use the old index until the new one is complete; it is then brought up to
        date with the catalog changes made meanwhile and swapped in under the store lock.
        A failure or a crash leaves the old index (and its snapshot) in place.
        """
        with self._lock:
            if self._retrain is not None and self._retrain.is_alive():
                return self._retrain
            kind, gen = self._index.kind, self.catalog.generation()
            self._retrain_gen = gen
            self._retrain = threading.Thread(
                target=self._run_retrain, args=(kind, gen), name=f"xmr-retrain-{self.corpus}", daemon=True
            )
            self._retrain.start()
            return self._retrain

    def _run_retrain(self, kind: str, gen: int) -> None:
        try:
            fresh = self._build(kind)
        except Exception as exc:  # the old index keeps serving; the next persist tries again
            log.warning("retraining the %s index failed (%s); the old index keeps serving", kind, exc)
            self.retrain_error = exc
            with self._lock:
                self._retrain_gen = None
            return
        with self._lock:
            if self._index.kind == kind:  # the kind did not change meanwhile
                self._index, self._gen = fresh, gen
                self._sync_locked()  # changes committed while it was built
            self._retrain_gen = None
            self.retrain_error = None

    def finish_retrain(self, timeout: float | None = None) -> bool:
        """Wait for a running retrain and save its index; False if none finished.

        Only the process holding the library's write lock may call this.
        """
        thread = self._retrain
        if thread is None:
            return False
        thread.join(timeout)
        if thread.is_alive():
            return False
        self._retrain = None
        with self._lock:
            self._persist_locked()
        return self.retrain_error is None

    def memory_bytes(self) -> int:
        """Resident bytes of the current index (estimated where the kind does not say)."""
        from index.config import estimate_bytes

        measured = getattr(self._index, "memory_bytes", None)
        return int(measured()) if measured else estimate_bytes(self._index.kind, len(self._index), self.dim)

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[Neighbors]:
        """Top ``k`` ids per query row ``(q, dim)``, best first; only ``allowed`` ids if given."""
        index = self._index if self.accelerate is None else self.accelerate(self._index)
        return index.search(queries, k, allowed)

    def agrees_with_catalog(self) -> bool:
        """True when the index holds exactly the catalog's vector ids (for checks and tests)."""
        return np.array_equal(np.sort(self._index.ids()), self.catalog.vector_ids(self.corpus, self.dim))
