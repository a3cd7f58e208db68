"""Keyword ranking and its fusion with the semantic ranking (hybrid search).

A query's phrases (:func:`index.keywords.parse_query`: each word, ``42.50`` as ``42 50``,
quoted parts whole) are looked up in each source of the keyword index. An image scores
the sum, over the phrases it holds, of the phrase's BM25 inverse document frequency
times the weight of the best source it holds it in. Term counts are left out: the texts
are short, and a word on a sign twice is not twice as relevant. Images with equal scores
share a rank, so a phrase every image holds (a library's folder name) changes no order.

Hybrid search fuses the two rankings by reciprocal rank fusion (Cormack et al. 2009):
``sum 1 / (k + rank)`` over the rankings an image is in, ``k`` = :data:`RRF_K`.

Both rankings are of files. A video has one keyword document (its file and folder names,
its sidecar captions; no OCR), keyed by its catalog id like a photo's; its vectors are its
moments', so the semantic ranking is taken one hit per video (at its best moment) before
fusing, and a video found by its words alone shows at its best moment by cosine (hybrid)
or from its first moment (keyword, where no model is loaded).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from index.keywords import SOURCES
from index.records import ImageRecord
from retrieval.errors import QueryError
from retrieval.results import Hit

if TYPE_CHECKING:
    from index.keyword_index import KeywordIndex

__all__ = [
    "HYBRID_POOL",
    "any_said",
    "MODES",
    "RRF_K",
    "SORTS",
    "SOURCE_WEIGHTS",
    "fuse",
    "fused_hits",
    "keyword_hits",
    "keyword_ranking",
    "pick_mode",
    "sort_hits",
]

MODES = ("auto", "semantic", "keyword", "hybrid")  # auto: hybrid for text queries when the library has keyword data
SORTS = ("relevance", "date", "-date")  # date: oldest first; -date: newest first (capture time, else mtime)
RRF_K = 60  # the constant of reciprocal rank fusion (the paper's; measured in benchmarks/README.md)
SOURCE_WEIGHTS = {"tags": 1.0, "captions": 1.0, "ocr": 1.0, "names": 0.5}  # names say less: IMG_2041, DSC, 2019
HYBRID_POOL = 100  # hybrid search fuses at least the top this many of each ranking


def keyword_ranking(
    index: KeywordIndex, phrases: Sequence[tuple[str, ...]], allowed: np.ndarray | None = None
) -> list[tuple[int, float, int]]:
    """``(image id, score, rank)`` of every image holding a phrase, best first (ties: lower id
    first, same rank); only ids in ``allowed`` (sorted) when given."""
    total = index.doc_count()
    scores: dict[int, float] = {}
    for phrase in phrases:
        best: dict[int, float] = {}
        for source in SOURCES:
            ids = index.phrase_ids(phrase, source)
            if allowed is not None:
                ids = ids[np.isin(ids, allowed, assume_unique=True)]
            weight = SOURCE_WEIGHTS[source]
            for image_id in ids.tolist():
                if best.get(image_id, 0.0) < weight:
                    best[image_id] = weight
        held = len(best)
        idf = math.log(1 + (total - held + 0.5) / (held + 0.5))
        for image_id, weight in best.items():
            scores[image_id] = scores.get(image_id, 0.0) + idf * weight
    ordered = sorted(scores.items(), key=lambda item: (-round(item[1], 9), item[0]))
    ranked: list[tuple[int, float, int]] = []
    for position, (image_id, score) in enumerate(ordered, start=1):
        same = ranked and round(ranked[-1][1], 9) == round(score, 9)
        ranked.append((image_id, score, ranked[-1][2] if same else position))
    return ranked


def fuse(semantic: Sequence[int], keyword: Sequence[tuple[int, float, int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of a semantic ranking (ids, best first) and :func:`keyword_ranking`'s;
    ``(id, fused score)`` best first, ties in semantic order, then by id."""
    fused: dict[int, float] = {}
    order: dict[int, int] = {}
    for rank, image_id in enumerate(semantic, start=1):
        fused[image_id] = 1.0 / (k + rank)
        order[image_id] = rank
    for image_id, _, rank in keyword:
        fused[image_id] = fused.get(image_id, 0.0) + 1.0 / (k + rank)
    late = len(semantic) + 1
    return sorted(fused.items(), key=lambda item: (-item[1], order.get(item[0], late), item[0]))


def any_said(index: KeywordIndex, phrases: Sequence[tuple[str, ...]], allowed: np.ndarray | None = None) -> bool:
    """Whether an image (in ``allowed``, when given) holds a phrase in what it says about itself:
    OCR text, captions or keywords (auto mode turns hybrid then; a file name alone does not)."""
    for phrase in phrases:
        for source in ("ocr", "captions", "tags"):
            ids = index.phrase_ids(phrase, source)
            if len(ids) and (allowed is None or np.isin(ids, allowed, assume_unique=True).any()):
                return True
    return False


def pick_mode(mode: str, sort: str, phrases: Sequence[tuple[str, ...]], reranked: bool, has_docs: bool) -> str:
    """The mode a search runs in: ``mode`` checked, or for "auto" hybrid when the query has
    words, no reranker is asked for and the library has keyword documents, else semantic.

    Raises:
        QueryError: an unknown mode or sort, keyword or hybrid without words or with a reranker.
    """
    if mode not in MODES or sort not in SORTS:
        raise QueryError(
            f"mode must be one of {', '.join(MODES)} and sort one of {', '.join(SORTS)} (got {mode!r}, {sort!r})"
        )
    if mode in ("keyword", "hybrid"):
        if not phrases:
            raise QueryError(
                f"{mode} search needs words to look for (a text with letters or digits); use --mode semantic to search by image alone."
            )
        if reranked:
            raise QueryError(
                f"a reranker rescores the semantic results: use --mode semantic with --reranker, not {mode}."
            )
        return mode
    if mode == "auto":
        return "hybrid" if phrases and not reranked and has_docs else "semantic"
    return mode


def keyword_hits(
    ranked: Sequence[tuple[int, float, int]], found: Mapping[int, Hit], offset: int, min_score: float | None
) -> list[Hit]:
    """Hits of a keyword-only search: ``score`` is the keyword score, which ``min_score`` applies to.

    ``found`` holds each file's hit by catalog id (:func:`retrieval.search.hits.word_hits`:
    a video's at its first moment); ids without one take their rank but give no hit.
    """
    hits = [
        replace(found[i], rank=position, score=score, keyword_score=score)
        for position, (i, score, _) in enumerate(ranked, start=1)
        if i in found
    ]
    return [h for h in hits[offset:] if min_score is None or h.score >= min_score]


def fused_hits(
    fused: Sequence[tuple[int, float]],
    found: Mapping[int, Hit],
    keyword: Sequence[tuple[int, float, int]],
    offset: int,
    min_score: float | None,
) -> list[Hit]:
    """Hits of a hybrid search: ``score`` is the fused score, ``dual_score`` the cosine (which
    ``min_score`` applies to, and to a video's listed moments), ``keyword_score`` the keyword
    score when a word matched.

    ``fused`` ranks files by catalog id; ``found`` holds each file's semantic hit with its
    cosine as score (a video's at its best moment, listing its other matching ones).
    """
    scores = {i: s for i, s, _ in keyword}
    hits = [
        replace(found[i], rank=position, score=score, dual_score=found[i].score, keyword_score=scores.get(i))
        for position, (i, score) in enumerate(fused, start=1)
        if i in found
    ]
    page = [h for h in hits[offset:] if min_score is None or (h.dual_score is not None and h.dual_score >= min_score)]
    if min_score is None:
        return page
    return [replace(h, moments=tuple(m for m in h.moments if m.score >= min_score)) if h.moments else h for h in page]


def sort_hits(hits: list[Hit], records: Mapping[int, ImageRecord], sort: str) -> list[Hit]:
    """``hits`` as ranked ("relevance"), or by capture time, else file modification time:
    "date" oldest first, "-date" newest first. Each hit keeps its relevance rank."""
    if sort == "relevance":
        return hits

    def when(hit: Hit) -> float:
        if hit.captured_at is not None:
            try:
                return hit.captured_at.timestamp()
            except (OverflowError, ValueError, OSError):
                return 0.0
        record = records.get(hit.file_id)  # a video hit's own id is its moment's
        return record.mtime_ns / 1e9 if record is not None else 0.0

    return sorted(hits, key=when, reverse=sort == "-date")
