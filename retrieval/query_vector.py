"""A query's unit vector: its texts and images embedded, weighted, summed and renormalised.

A lone text or image is a term of weight 1; a negative weight steers away from a term.
Every function takes ``encoder``, a zero-argument callable returning the encoder, and calls
it only once the query has passed its checks: a bad query is refused before a model loads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retrieval.errors import QueryError
from retrieval.results import Term

if TYPE_CHECKING:
    from PIL import Image

    from index.query_cache import QueryVectorCache
    from retrieval.encoder import Encoder

__all__ = ["embed_image", "embed_terms", "embed_text", "query_vector"]

EncoderFn = Callable[[], "Encoder"]  # the encoder, loaded on first call


def embed_text(encoder: EncoderFn, text: str, cache: QueryVectorCache | None = None) -> np.ndarray:
    """The unit vector ``(dim,)`` of a text query. Raises QueryError for an empty text.

    With ``cache``, a text embedded before is answered from it without loading the model,
    and a new one is added to it.
    """
    if not text or not text.strip():
        raise QueryError("the text query is empty; give some words to search for.")
    vector = cache.get(text) if cache is not None else None
    if vector is None:
        vector = encoder().encode_texts([text])[0]
        if cache is not None:
            cache.put(text, vector)
    return vector


def embed_image(encoder: EncoderFn, image: str | Path | Image.Image) -> np.ndarray:
    """The unit vector ``(dim,)`` of an image (a path or a PIL image).

    Raises:
        QueryError: the file cannot be decoded as an image.
    """
    import torch

    from retrieval.decode import ImageDecodeError, decode_file, to_rgb

    if isinstance(image, (str, Path)):
        try:
            pil = decode_file(image).image
        except ImageDecodeError as exc:
            raise QueryError(f"cannot use {image} as a query image: {exc}") from exc
    else:
        pil = to_rgb(image)
    model = encoder()
    pixels = model.preprocess(pil)
    return model.encode_images(torch.stack([pixels]))[0]


def embed_terms(encoder: EncoderFn, terms: Sequence[Term], dim: int, cache: QueryVectorCache | None = None) -> np.ndarray:
    """The renormalised weighted sum ``(dim,)`` of the terms' unit vectors (texts through ``cache``).

    Raises:
        QueryError: no terms, a term that is neither (or both) a text and an image, terms
            that cancel out, or an unusable text or image.
    """
    if not terms:
        raise QueryError("search needs a query: a text, an image, or both.")
    total = np.zeros(dim, np.float64)
    for term in terms:
        if (term.text is None) == (term.image is None):
            raise QueryError("each query term is either a text or an image.")
        vector = embed_text(encoder, term.text, cache) if term.text is not None else embed_image(encoder, term.image)  # type: ignore[arg-type]
        total += term.weight * vector
    norm = float(np.linalg.norm(total))
    if norm < 1e-6:
        raise QueryError("the query terms cancel each other out; change their weights.")
    return (total / norm).astype(np.float32)


def query_vector(encoder: EncoderFn, dim: int, text: str | None, image: object, terms: Sequence[Term], k: int, offset: int, cache: QueryVectorCache | None = None) -> np.ndarray:
    """Check paging arguments and embed the query ``(dim,)``; a lone text or image is a weight-1 term.

    Raises:
        QueryError: ``k`` < 1, ``offset`` < 0, or anything :func:`embed_terms` refuses.
    """
    if k < 1 or offset < 0:
        raise QueryError(f"k must be at least 1 and offset at least 0 (got k={k}, offset={offset}).")
    given = [Term(text=text)] if text is not None else []
    given += [Term(image=image)] if image is not None else []
    return embed_terms(encoder, [*given, *terms], dim, cache)
