"""Reranking in the search path: how the final ranking and scores are made.

The dual encoder retrieves the top ``max(K, offset + k)`` candidates (after filters);
the reranker gives each a match probability ``p``; candidates are ordered by ``p``
(the dual cosine breaks ties) and paged. A hit's ``score`` is then ``p``, the
probability that the text describes the image, which means the same thing for every
query, so ``min_score`` is a relevance cutoff (0.5: "more likely a match than not");
``dual_score`` keeps the cosine. For the trained xmr reranker ``p`` already includes the
dual cosine as a learned prior (``sigmoid(head + a * cosine + b)``); BLIP's ``p`` stands
alone. Items beyond the top-K are never returned: paging past K widens the candidate
pool to ``offset + k``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from retrieval.errors import QueryError
from retrieval.rerank.base import ImageRef, Reranker
from retrieval.results import Hit, Term, TextHit


def rerank_text(text: str | None, terms: Sequence[Term]) -> str:
    """The one text a reranker matches images against.

    Raises:
        QueryError: the query has no text, or several positive texts.
    """
    texts = ([text] if text is not None else []) + [t.text for t in terms if t.text is not None and t.weight > 0]
    if len(texts) != 1:
        raise QueryError(
            "reranking needs exactly one text to match images against "
            f"(this query has {len(texts)}); drop --reranker, or search with one text (--not terms are fine)."
        )
    return texts[0]


def rerank_hits(
    reranker: Reranker, text: str, hits: list[Hit], hashes: dict[int, str], k: int, offset: int, min_score: float | None
) -> list[Hit]:
    """Rescore dual-encoder ``hits`` (best first) for ``text``; order, page and cut by probability."""
    refs = [ImageRef(id=h.id, path=h.path, content_hash=hashes.get(h.id, "")) for h in hits]
    dual = np.array([h.score for h in hits], np.float32)
    probability = reranker.rerank_images(text, refs, dual)
    order = _order(probability, dual)
    ranked = [dataclasses.replace(hits[i], score=float(probability[i]), dual_score=float(dual[i])) for i in order]
    return _page(ranked, k, offset, min_score)


def rerank_text_hits(
    reranker: Reranker, image: ImageRef, hits: list[TextHit], k: int, offset: int, min_score: float | None
) -> list[TextHit]:
    """Rescore dual-encoder text ``hits`` for a query image; order, page and cut by probability."""
    dual = np.array([h.score for h in hits], np.float32)
    probability = reranker.rerank_texts(image, [h.text for h in hits], dual)
    order = _order(probability, dual)
    ranked = [dataclasses.replace(hits[i], score=float(probability[i]), dual_score=float(dual[i])) for i in order]
    return _page(ranked, k, offset, min_score)


def _order(probability: np.ndarray, dual: np.ndarray) -> np.ndarray:
    return np.lexsort((-dual, -probability))  # by probability, then by the dual cosine


def _page(ranked: list, k: int, offset: int, min_score: float | None) -> list:
    page = [dataclasses.replace(h, rank=rank) for rank, h in enumerate(ranked, start=1)][offset : offset + k]
    return [h for h in page if min_score is None or h.score >= min_score]
