"""What the search path asks of a reranker, whichever backend implements it.

A reranker rescores (text, image) pairs and returns match probabilities in [0, 1].
The library hands it the dual encoder's candidates as :class:`ImageRef` (catalog id for
token caches, the file path, or an in-memory image for a query image) together with the
dual cosine scores, which a backend may use as a prior.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:  # only annotations: a search that reranks nothing never imports PIL for this
    from PIL import Image

DEFAULT_RERANK_K = 50  # dual-encoder candidates rescored per query unless told otherwise


@dataclass(frozen=True)
class ImageRef:
    """An image to score: a catalog item (``id`` and ``path``) or an in-memory ``image``."""

    id: int | None = None  # catalog id (== vector id); None for a query image
    path: str | None = None  # file to decode when no cached tokens exist
    image: Image.Image | None = None  # already decoded (query images)
    content_hash: str = ""  # the catalog's content hash: the token cache's key


class Reranker(Protocol):
    """Rescores dual-encoder candidates with a model that sees both inputs together."""

    name: str  # what --reranker named, for messages and JSON output

    def rerank_images(self, text: str, images: Sequence[ImageRef], dual: np.ndarray) -> np.ndarray:
        """Match probability ``(n,)`` of ``text`` with each image; ``dual (n,)`` their cosines."""
        ...

    def rerank_texts(self, image: ImageRef, texts: Sequence[str], dual: np.ndarray) -> np.ndarray:
        """Match probability ``(n,)`` of ``image`` with each text; ``dual (n,)`` their cosines."""
        ...
