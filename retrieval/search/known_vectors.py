"""Vectors a library already holds for a query, so that the query needs no model.

A text searched before has its vector in the library's query cache (``queries.sqlite``); an
image file that is in the catalog, indexed and unchanged since (same size and modification
time, the rule incremental indexing uses) has its vector in the catalog. Either is what the
encoder gave for it before (on the same device, exactly what it would give again; a vector
made on a GPU in bf16 differs from a CPU one by rounding only), so results do not change;
only the seconds of importing torch and loading the model go.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index.query_cache import QueryVectorCache
from index.records import INDEXED

if TYPE_CHECKING:
    from index.catalog import Catalog

__all__ = ["LibraryVectors"]


class LibraryVectors:
    """:class:`retrieval.search.query_vector.KnownVectors` for one library."""

    def __init__(self, catalog: Catalog, cache: QueryVectorCache) -> None:
        self.catalog = catalog
        self.cache = cache

    def text(self, text: str) -> np.ndarray | None:
        return self.cache.get(text)

    def remember_text(self, text: str, vector: np.ndarray) -> None:
        self.cache.put(text, vector)

    def image(self, path: str | Path) -> np.ndarray | None:
        """The catalog's vector of the file at ``path`` when it is indexed and unchanged, else None."""
        absolute = os.path.abspath(os.path.expanduser(str(path)))  # as the scan records paths
        record = self.catalog.image_by_path(absolute)
        if record is None or record.state != INDEXED:
            return None
        try:
            stat = os.stat(absolute)
        except OSError:
            return None  # gone: embed_image reports it
        if (stat.st_size, stat.st_mtime_ns) != (record.size, record.mtime_ns):
            return None
        blob = self.catalog.vectors_for([record.id]).get(record.id)
        if blob is None or len(blob) != 4 * self.cache.dim:
            return None
        return np.frombuffer(blob, dtype="<f4").copy()
