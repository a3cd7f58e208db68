"""Hits assembled from a vector search's neighbours and the catalog's records, ranked and paged."""

from __future__ import annotations

from collections.abc import Mapping

from index.records import ImageRecord, TextRecord
from index.vectors import Neighbors
from retrieval.results import Hit, TextHit

__all__ = ["image_hits", "text_hits"]


def image_hits(
    found: Neighbors, records: Mapping[int, ImageRecord], offset: int = 0, min_score: float | None = None
) -> list[Hit]:
    """Image hits, best first, ranks counted from 1 before ``offset`` skips the first ones.

    A neighbour whose record is gone (removed by a concurrent index run) is left out and
    takes no rank; hits scoring below ``min_score`` are dropped after paging.
    """
    hits: list[Hit] = []
    for score, image_id in zip(found.scores, found.ids):
        record = records.get(int(image_id))
        if record is not None:
            hits.append(Hit.of(len(hits) + 1, float(score), record))
    return [h for h in hits[offset:] if min_score is None or h.score >= min_score]


def text_hits(found: Neighbors, records: Mapping[int, TextRecord]) -> list[TextHit]:
    """Text hits, best first, ranked from 1 (paging and score floors are the caller's: a
    reranker rescores the whole pool first)."""
    kept = [(float(s), records[int(i)]) for s, i in zip(found.scores, found.ids) if int(i) in records]
    return [TextHit(rank, score, r.id, r.body, r.source, r.image_path) for rank, (score, r) in enumerate(kept, start=1)]
