"""A query's unit vector: its texts and images embedded, weighted, summed and renormalised.

A lone text or image is a term of weight 1; a negative weight steers away from a term.
Every function takes ``encoder``, a zero-argument callable returning the encoder, and calls
it only once the query has passed its checks: a bad query is refused before a model loads.
With ``known`` (:class:`KnownVectors`), vectors the library already holds (a text searched
before, an indexed image file that has not changed) are used without loading the model.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from index.records import is_utf8
from retrieval.errors import QueryError
from retrieval.results import Term
from retrieval.search.framing import FramedQuery, FrameShape, frame_crop
from retrieval.search.query import MAX_WEIGHT, check_text

if TYPE_CHECKING:
    from PIL import Image

    from retrieval.models.encoder import Encoder

__all__ = [
    "KnownVectors",
    "check_image_file",
    "check_paging",
    "combine_terms",
    "embed_image",
    "embed_terms",
    "embed_text",
    "framed_terms",
    "normalised",
    "query_image",
    "query_vector",
]

EncoderFn = Callable[[], "Encoder"]  # the encoder, loaded on first call


class KnownVectors(Protocol):
    """Unit vectors a query can use instead of running the encoder (each None when unknown)."""

    def text(self, text: str) -> np.ndarray | None: ...

    def remember_text(self, text: str, vector: np.ndarray) -> None: ...

    def image(self, path: str | Path) -> np.ndarray | None: ...


def embed_text(encoder: EncoderFn, text: str, known: KnownVectors | None = None) -> np.ndarray:
    """The unit vector ``(dim,)`` of a text query. Raises QueryError for an empty text or one
    that is not valid UTF-8 (lone surrogates)."""
    if not text or not text.strip():
        raise QueryError("the text query is empty; give some words to search for.")
    check_text(text)
    vector = known.text(text) if known is not None else None
    if vector is None:
        vector = encoder().encode_texts([text])[0]
        if known is not None:
            known.remember_text(text, vector)
    return vector


def embed_image(encoder: EncoderFn, image: str | Path | Image.Image, known: KnownVectors | None = None) -> np.ndarray:
    """The unit vector ``(dim,)`` of an image (a path or a PIL image).

    Raises:
        QueryError: the file cannot be decoded as an image.
    """
    if isinstance(image, (str, Path)):
        image = os.path.expanduser(image)  # "~/cat.jpg", as Library.open and index take it
    if known is not None and isinstance(image, str) and is_utf8(image):  # no other name is indexed
        stored = known.image(image)
        if stored is not None:
            return stored
    pil = query_image(image)
    model = encoder()
    return model.encode_images(model.stack([model.preprocess(pil)]))[0]


def query_image(image: str | Path | Image.Image) -> Image.Image:
    """The RGB picture of a query image (a path, ``~`` expanded, or a PIL image).

    Raises:
        QueryError: the file cannot be decoded as an image.
    """
    from retrieval.errors import ImageDecodeError
    from retrieval.images.decode import decode_file, to_rgb

    if isinstance(image, (str, Path)):
        image = os.path.expanduser(image)
        try:
            return decode_file(image).image
        except ImageDecodeError as exc:
            raise QueryError(f"cannot use {image} as a query image: {exc}") from exc
    return to_rgb(image)


def framed_terms(
    encoder: EncoderFn,
    terms: Sequence[Term],
    dim: int,
    shapes: Sequence[FrameShape],
    known: KnownVectors | None = None,
) -> tuple[np.ndarray, list[FramedQuery]]:
    """The query of ``terms`` ``(dim,)`` as :func:`embed_terms` makes it, and the same query with
    its images framed for each of ``shapes`` (:mod:`retrieval.search.framing`): each image and
    its crops go through the encoder in one batch. A shape none of whose images needs a crop
    (they have its aspect already) gives no framed query.

    Raises:
        QueryError: what :func:`embed_terms` refuses.
    """
    for term in terms:
        if isinstance(term.image, (str, os.PathLike)):
            check_image_file(term.image)
    plain: dict[int, np.ndarray] = {}  # id(term) -> its unit vector
    framings: dict[int, list[np.ndarray | None]] = {}  # id(image term) -> its vector per shape (None: no crop)

    def vector_of(term: Term) -> np.ndarray:
        if term.text is not None:
            plain[id(term)] = embed_text(encoder, term.text, known)
        else:
            assert term.image is not None  # combine_terms checked that each term is a text or an image
            plain[id(term)], framings[id(term)] = _framed_image(encoder, term.image, shapes, known)
        return plain[id(term)]

    query = combine_terms(terms, dim, vector_of)
    queries = []
    for at, shape in enumerate(shapes):
        framed = {key: vector for key, vectors in framings.items() if (vector := vectors[at]) is not None}
        if framed:
            total = np.zeros(dim, np.float64)
            for term in terms:
                total += term.weight * framed.get(id(term), plain[id(term)])
            queries.append(FramedQuery(normalised(total), shape.moments))
    return query, queries


def _framed_image(
    encoder: EncoderFn, image: str | Path | Image.Image, shapes: Sequence[FrameShape], known: KnownVectors | None
) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """An image term's unit vector and, per shape, that of its crop to the shape (None: not cropped)."""
    stored = None
    if known is not None and isinstance(image, (str, Path)):
        name = os.path.expanduser(image)
        stored = known.image(name) if isinstance(name, str) and is_utf8(name) else None
    pil = query_image(image)
    crops = [frame_crop(pil, shape.aspect) for shape in shapes]
    batch = ([] if stored is not None else [pil]) + [c for c in crops if c is not None]
    if not batch:
        assert stored is not None
        return stored, [None] * len(shapes)
    model = encoder()
    vectors = list(model.encode_images(model.stack([model.preprocess(p) for p in batch])))
    plain = stored if stored is not None else vectors.pop(0)
    return plain, [None if crop is None else vectors.pop(0) for crop in crops]


def embed_terms(encoder: EncoderFn, terms: Sequence[Term], dim: int, known: KnownVectors | None = None) -> np.ndarray:
    """The renormalised weighted sum ``(dim,)`` of the terms' unit vectors.

    Raises:
        QueryError: no terms, a term that is neither (or both) a text and an image, a weight
            beyond ±MAX_WEIGHT or NaN, terms that cancel out, or an unusable text or image.
    """

    for term in terms:  # a missing example image is said before any term loads the model
        if isinstance(term.image, (str, os.PathLike)):
            check_image_file(term.image)

    def vector_of(term: Term) -> np.ndarray:
        if term.text is not None:
            return embed_text(encoder, term.text, known)
        assert term.image is not None  # combine_terms checked that each term is a text or an image
        return embed_image(encoder, term.image, known)

    return combine_terms(terms, dim, vector_of)


def check_image_file(path: str | os.PathLike) -> None:
    """Raise QueryError unless ``path`` (``~`` expanded) is a file: a typo is said at once.

    Raises:
        QueryError: no such file, or a folder.
    """
    expanded = os.path.expanduser(os.fspath(path))
    if not os.path.exists(expanded):
        raise QueryError(f"cannot use {path} as a query image: no such file.")
    if os.path.isdir(expanded):
        raise QueryError(f"cannot use {path} as a query image: it is a folder; give an image file.")


def combine_terms(terms: Sequence[Term], dim: int, vector_of: Callable[[Term], np.ndarray]) -> np.ndarray:
    """The renormalised weighted sum ``(dim,)`` of ``vector_of(term)`` over ``terms``.

    Every term is checked before any is embedded, so a bad query costs no model load.
    ``vector_of`` returns a term's unit vector ``(dim,)`` (the server resolves its catalog
    items and uploads this way).

    Raises:
        QueryError: no terms, a term that is neither (or both) a text and an image, a weight
            beyond ±MAX_WEIGHT or NaN, terms that cancel out, or what ``vector_of`` raises.
    """
    if not terms:
        raise QueryError("search needs a query: a text, an image, or both.")
    for term in terms:
        if (term.text is None) == (term.image is None):
            raise QueryError("each query term is either a text or an image.")
        if not abs(term.weight) <= MAX_WEIGHT:  # also False for nan
            raise QueryError(
                f"a query term's weight is at most {MAX_WEIGHT:,.0f} either way (got {term.weight} for {term.text if term.image is None else term.image!r})."
            )
    total = np.zeros(dim, np.float64)
    for term in terms:
        total += term.weight * vector_of(term)
    return normalised(total)


def normalised(total: np.ndarray) -> np.ndarray:
    """``total / |total|`` as float32.

    Raises:
        QueryError: the norm is not finite (weights too large, or NaN) or about zero (terms cancel).
    """
    with np.errstate(over="ignore", invalid="ignore"):  # reported below, in words
        norm = float(np.linalg.norm(total))
    if not np.isfinite(norm):
        raise QueryError(
            f"the query's weights are too large to combine; keep each weight above 0 and at most {MAX_WEIGHT:,.0f}."
        )
    if norm < 1e-6:
        raise QueryError("the query terms cancel each other out; change their weights.")
    return (total / norm).astype(np.float32)


def check_paging(k: int, offset: int) -> None:
    """Raise QueryError unless ``k`` >= 1 and ``offset`` >= 0."""
    if k < 1 or offset < 0:
        raise QueryError(f"k must be at least 1 and offset at least 0 (got k={k}, offset={offset}).")


def query_vector(
    encoder: EncoderFn,
    dim: int,
    text: str | None,
    image: str | Path | Image.Image | None,
    terms: Sequence[Term],
    k: int,
    offset: int,
    known: KnownVectors | None = None,
) -> np.ndarray:
    """Check paging arguments and embed the query ``(dim,)``; a lone text or image is a weight-1 term.

    Raises:
        QueryError: ``k`` < 1, ``offset`` < 0, or anything :func:`embed_terms` refuses.
    """
    check_paging(k, offset)
    given = [Term(text=text)] if text is not None else []
    given += [Term(image=image)] if image is not None else []
    return embed_terms(encoder, [*given, *terms], dim, known)
