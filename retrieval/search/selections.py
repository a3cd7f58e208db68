"""The ids passing an image filter, and the moments of each shape of video frames, cached until the catalog
changes (paging reuses them)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from index.records import ImageFilter

if TYPE_CHECKING:
    from index.catalog import Catalog

__all__ = ["SelectionCache"]


class SelectionCache:
    """The last few filters' allowed ids, keyed by filter and the image store's generation.

    Its own lock, not the encoder's: a model load must not block a filtered search.
    """

    def __init__(self, catalog: Catalog, size: int = 8) -> None:
        self.catalog = catalog
        self.size = size  # filters kept; the oldest goes first
        # (filter, generation, files) -> allowed vector ids (files: catalog ids of files)
        self._cache: dict[tuple[ImageFilter, int, bool], np.ndarray] = {}
        self._frames: tuple[int, dict[tuple[int, int], np.ndarray]] | None = None  # (generation, moment_frames)
        self._lock = threading.Lock()

    def allowed(self, where: ImageFilter, generation: int, files: bool = False) -> np.ndarray:
        """Vector ids (photos and video moments) passing ``where`` as of ``generation`` of the image
        store; ``files``: the catalog ids of the files instead (photos and video files)."""
        key = (where, generation, files)
        with self._lock:
            cached = self._cache.get(key)
        if cached is None:
            cached = self.catalog.select_files(where) if files else self.catalog.select_images(where)
            with self._lock:
                if len(self._cache) >= self.size:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[key] = cached
        return cached

    def frames(self, generation: int) -> dict[tuple[int, int], np.ndarray]:
        """Moment vector ids by their video's frame size (``Catalog.moment_frames``) as of
        ``generation`` of the image store."""
        with self._lock:
            cached = self._frames
        if cached is None or cached[0] != generation:
            cached = (generation, self.catalog.moment_frames())
            with self._lock:
                self._frames = cached
        return cached[1]
