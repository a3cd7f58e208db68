"""Turn API requests into library searches with the CLI's query algebra (retrieval.search.query).

Terms are named as in the CLI: texts by themselves, example images by an upload id and
catalog items by ``#ID``, so ``weights`` takes the CLI's ``WEIGHT:TERM`` syntax. Without
reranking the query vector is combined here from stored item vectors (an item is never
decoded again); with reranking, or for text search, the terms go to the library as they are.
"""

from __future__ import annotations

import inspect
import io
import math
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from retrieval.errors import (
    ItemNotFoundError,
    QueryError,
    RequestLimitError,
    RerankUnavailableError,
    UploadNotFoundError,
    UploadTooLargeError,
)
from retrieval.results import Hit, Term, TextHit
from retrieval.search.keyword import sort_hits
from retrieval.search.query import build_filter, build_terms, check_min_score
from retrieval.search.query_vector import combine_terms
from retrieval.serve.config import ServeConfig
from retrieval.serve.items import item_image, item_of

if TYPE_CHECKING:
    from PIL import Image

    from retrieval.library import Library
    from retrieval.rerank.base import Reranker
    from retrieval.serve.schemas import SearchRequest

ITEM = "#"  # prefix naming a catalog item among the terms


@dataclass(frozen=True)
class Upload:
    vector: np.ndarray  # (dim,) unit vector of the image
    image: Image.Image  # RGB copy, at most 512 px, for rerankers


class Uploads:
    """The last ``capacity`` uploaded query images, by random id (least recently used goes)."""

    def __init__(self, capacity: int = 32) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, Upload] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, upload: Upload) -> str:
        key = "up-" + secrets.token_urlsafe(12)
        with self._lock:
            self._items[key] = upload
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return key

    def get(self, key: str) -> Upload:
        with self._lock:
            if key not in self._items:
                raise UploadNotFoundError(
                    f"upload {key!r} is unknown or expired (the server keeps the last {self.capacity}); upload the image again."
                )
            self._items.move_to_end(key)
            return self._items[key]


def accepts_reranker(method: Callable[..., object]) -> bool:
    """True when a library search method takes ``reranker=`` (reranking has landed in this xmr)."""
    try:
        return "reranker" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


class Searcher:
    """Runs API searches against one library; thread-safe like the library."""

    def __init__(self, library: Library, config: ServeConfig, reranker: Reranker | None = None) -> None:
        self.library = library
        self.config = config
        self.reranker = reranker
        self.uploads = Uploads()

    # ---- uploads ------------------------------------------------------------------------

    def add_upload(self, data: bytes) -> tuple[str, Upload]:
        """Decode and embed an uploaded query image; return its id and the upload.

        Raises:
            UploadTooLargeError: more bytes or pixels than the limits.
            QueryError: not a readable image.
        """
        from PIL import Image as PILImage

        from retrieval.errors import ImageDecodeError
        from retrieval.images.decode import DecodeConfig, decode_bytes

        if len(data) > self.config.max_upload_bytes:
            raise UploadTooLargeError(
                f"the image is {len(data)} bytes; this server takes at most {self.config.max_upload_bytes}."
            )
        try:
            with PILImage.open(io.BytesIO(data)) as header:
                width, height = header.size
        except PILImage.DecompressionBombError as exc:  # Pillow's own bound, far above ours
            raise UploadTooLargeError(
                f"the image has too many pixels ({exc}); this server takes at most {self.config.max_pixels:,}."
            ) from exc
        except Exception:  # not an image at all: decode_bytes below says why in words
            width = height = 0
        if width * height > self.config.max_pixels:
            raise UploadTooLargeError(
                f"the image is {width}x{height} pixels; this server takes at most {self.config.max_pixels:,} pixels."
            )
        try:
            decoded = decode_bytes(data, DecodeConfig(max_pixels=self.config.max_pixels))
        except ImageDecodeError as exc:
            raise QueryError(f"cannot use the uploaded file as an image: {exc}") from exc
        vector = self.library.embed_image(decoded.image)
        small = decoded.image.copy()
        small.thumbnail((512, 512))
        upload = Upload(vector, small)
        return self.uploads.add(upload), upload

    # ---- searching ----------------------------------------------------------------------

    def search_images(self, req: SearchRequest, extra: int = 0) -> tuple[list[Hit], bool]:
        """Image hits for ``req`` (``extra`` more than ``req.k``: a look-ahead that tells whether
        a next page exists) and whether they were reranked."""
        terms = self._terms(req)
        where = build_filter(req.under, req.after, req.before, req.ext, req.contains, req.media)
        if req.rerank:
            rr = self._reranker(self.library.search)
            hits = self.library.search(
                terms=self._library_terms(terms),
                k=req.k + extra,
                where=where,
                offset=req.offset,
                min_score=req.min_score,
                reranker=rr,
                rerank_k=self.config.rerank_k,
                mode=req.mode,
            )
            return self._sorted(hits, req), True
        words = " ".join(req.q)
        query = None if req.mode == "keyword" else self._vector(terms)  # keyword search needs no model
        hits = self.library.search_vector(
            query, req.k + extra, where=where, offset=req.offset, min_score=req.min_score, words=words, mode=req.mode
        )
        return self._sorted(hits, req), False

    def _sorted(self, hits: list[Hit], req: SearchRequest) -> list[Hit]:
        """The page's hits (the first ``req.k``) in ``req.sort`` order, the look-ahead after them:
        sorting all ``k + extra`` would let the look-ahead hit into the page."""
        page = hits[: req.k]
        records = self.library.catalog.images([h.id for h in page]) if req.sort != "relevance" else {}
        return sort_hits(page, records, req.sort) + hits[req.k :]

    def explain_no_hits(self, req: SearchRequest) -> str:
        """Why ``req`` found no image (see :meth:`retrieval.library.Library.explain_no_hits`)."""
        where = build_filter(req.under, req.after, req.before, req.ext, req.contains)
        return self.library.explain_no_hits(where, min_score=req.min_score, offset=req.offset)

    def search_texts(self, req: SearchRequest, extra: int = 0) -> tuple[list[TextHit], bool]:
        """Text-corpus hits for ``req`` (``extra`` more than ``req.k``, as for images) and
        whether they were reranked.

        Reranking texts takes one query image (an upload or an item) and nothing else.
        """
        if build_filter(req.under, req.after, req.before, req.ext, req.contains, req.media).active:
            raise QueryError("under/after/before/ext/contains/media filter images; they do not apply to text search.")
        terms = self._library_terms(self._terms(req))
        if req.rerank:
            rr = self._reranker(self.library.search_texts)
            if len(terms) != 1 or terms[0].image is None or terms[0].weight <= 0:
                raise QueryError(
                    "reranking texts needs one query image (an upload or a catalog item) and nothing else."
                )
            return self.library.search_texts(
                image=terms[0].image,
                k=req.k + extra,
                offset=req.offset,
                min_score=req.min_score,
                reranker=rr,
                rerank_k=self.config.rerank_k,
            ), True
        k = req.k + extra
        return self.library.search_texts(terms=terms, k=k, offset=req.offset, min_score=req.min_score), False

    def _reranker(self, method: Callable[..., object]) -> Reranker:
        if self.reranker is None or not accepts_reranker(method):
            raise RerankUnavailableError(
                "this server has no reranker; start it with  xmr serve --reranker SPEC  or search without rerank."
            )
        return self.reranker

    def check(self, req: SearchRequest) -> None:
        """Refuse requests beyond the limits.

        Raises:
            RequestLimitError: page too large or deep, too many terms, a text too long.
            QueryError: ``min_score`` is NaN.
        """
        check_min_score(req.min_score, "min_score")
        cfg = self.config
        if req.k > cfg.max_k or req.offset > cfg.max_offset:
            raise RequestLimitError(
                f"k is at most {cfg.max_k} and offset at most {cfg.max_offset} on this server (got k={req.k}, offset={req.offset})."
            )
        count = len(req.q) + len(req.not_) + len(req.like) + len(req.unlike) + len(req.images) + len(req.not_images)
        filters = len(req.under) + len(req.ext) + len(req.contains)
        if count > cfg.max_terms or len(req.weights) > cfg.max_terms or filters > cfg.max_terms:
            raise RequestLimitError(
                f"a query takes at most {cfg.max_terms} terms, weights, folders and extensions each."
            )
        strings = [
            *req.q,
            *req.not_,
            *req.weights,
            *req.under,
            *req.ext,
            *req.contains,
            *req.images,
            *req.not_images,
            req.after or "",
            req.before or "",
        ]
        if any(len(s) > cfg.max_query_chars for s in strings):
            raise RequestLimitError(f"each text in a query is at most {cfg.max_query_chars} characters.")

    def _terms(self, req: SearchRequest) -> list[Term]:
        """The CLI's terms; items become ``#ID`` and uploads their id in the image slots."""
        self.check(req)
        for name in (*req.images, *req.not_images):
            if name.startswith(ITEM) and not (name[1:].isascii() and name[1:].isdigit() and int(name[1:]) < 2**63):
                raise QueryError(f"{name!r} names no catalog item: items are written #ID, e.g. #12.")
        images = [f"{ITEM}{i}" for i in req.like] + list(req.images)
        not_images = [f"{ITEM}{i}" for i in req.unlike] + list(req.not_images)
        return build_terms(req.q, images, req.not_, not_images, req.weights)

    def _vector(self, terms: list[Term]) -> np.ndarray:
        """The query vector ``(dim,)``: catalog items by their stored vectors, uploads by theirs."""
        stored = self._item_vectors([int(str(t.image)[1:]) for t in terms if _is_item(t)])

        def vector_of(term: Term) -> np.ndarray:
            if term.text is not None:
                return self.library.embed_text(term.text)
            if _is_item(term):
                return stored[int(str(term.image)[1:])]
            return self.uploads.get(str(term.image)).vector

        return combine_terms(terms, self.library.identity.embed_dim, vector_of)

    def _item_vectors(self, ids: list[int]) -> dict[int, np.ndarray]:
        if not ids:
            return {}
        found = self.library.catalog.vectors_for(ids)
        missing = sorted(set(ids) - set(found))
        if missing:
            raise ItemNotFoundError(f"no indexed image has id {missing[0]}; ids come from search results.")
        return {i: np.frombuffer(blob, "<f4") for i, blob in found.items()}

    def _library_terms(self, terms: list[Term]) -> list[Term]:
        """Terms the library can embed: items by their catalogued file, uploads by their image."""
        out = []
        for term in terms:
            if _is_item(term):
                image = item_image(item_of(self.library.catalog, int(str(term.image)[1:])))
                out.append(Term(image=image, weight=term.weight))
            elif term.image is not None:
                out.append(Term(image=self.uploads.get(str(term.image)).image, weight=term.weight))
            else:
                out.append(term)
        return out


def json_safe(value: object) -> object:
    """``value`` (JSON-like: dicts, lists, strings, numbers) with what JSON cannot carry made
    printable: lone surrogates as ``\\udXXX`` escapes, NaN and infinities as ``"nan"``,
    ``"inf"``. Request validation errors echo the bad input, which may be such a value."""
    if isinstance(value, dict):
        return {json_safe(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def _is_item(term: Term) -> bool:
    return term.text is None and str(term.image).startswith(ITEM)
