"""Hits assembled from a vector search's neighbours and the catalog's records, ranked and paged."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from index.records import ImageRecord, TextRecord
from index.schema_names import VIDEO
from index.vectors import Neighbors
from index.video_records import MomentRecord
from retrieval.results import Hit, MomentHit, TextHit

if TYPE_CHECKING:
    from index.catalog import Catalog

__all__ = ["LISTED_MOMENTS", "image_hits", "media_hits", "page_hits", "text_hits", "word_hits"]

LISTED_MOMENTS = 10  # other matching moments a video hit lists at most


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


def media_hits(
    found: Neighbors,
    records: Mapping[int, ImageRecord],
    moments: Mapping[int, MomentRecord],
    videos: Mapping[int, ImageRecord],
    per_video: bool = True,
) -> list[Hit]:
    """Photo and video hits, best first and ranked from 1 (paging is :func:`page_hits`'s).

    A neighbour is a photo (in ``records``) or a video's moment (in ``moments``, its video
    in ``videos``). With ``per_video`` a video is one hit, at its best moment, listing its
    other matching moments (best first, at most :data:`LISTED_MOMENTS`); else every moment
    is a hit of its own. Neighbours whose rows are gone (a concurrent index run) take no rank.
    """
    hits: list[Hit] = []
    at: dict[int, int] = {}  # video id -> its hit's position in ``hits``
    listed: dict[int, list[MomentHit]] = {}
    for score, vector_id in zip(found.scores.tolist(), found.ids.tolist()):
        record = records.get(vector_id)
        if record is not None and record.kind != VIDEO:
            hits.append(Hit.of(len(hits) + 1, score, record))
            continue
        moment = moments.get(vector_id)
        video = videos.get(moment.video_id) if moment is not None else None
        if moment is None or video is None:
            continue
        match = MomentHit(moment.id, float(score), moment.start, moment.end)
        if per_video and video.id in at:
            others = listed[video.id]
            if len(others) < LISTED_MOMENTS:
                others.append(match)
            continue
        at[video.id] = len(hits)
        listed[video.id] = []
        hits.append(Hit.of_moment(len(hits) + 1, match, video))
    return [
        dataclasses.replace(hit, moments=tuple(listed[hit.video_id]))
        if hit.video_id in listed and listed[hit.video_id]
        else hit
        for hit in hits
    ]


def page_hits(hits: list[Hit], offset: int = 0, min_score: float | None = None) -> list[Hit]:
    """``hits`` after the first ``offset`` (ranks kept), without those scoring below ``min_score``
    (a video's listed moments too)."""
    page = [h for h in hits[offset:] if min_score is None or h.score >= min_score]
    if min_score is None:
        return page
    return [
        dataclasses.replace(h, moments=tuple(m for m in h.moments if m.score >= min_score)) if h.moments else h
        for h in page
    ]


def word_hits(catalog: Catalog, records: Mapping[int, ImageRecord], query: np.ndarray | None) -> dict[int, Hit]:
    """Hits of files the keyword index found (``records``, by catalog id), ranked 0 (the caller ranks).

    With a unit ``query`` ``(D,)`` (hybrid search) a photo scores its cosine and a video
    shows at its best moment by cosine, whether or not the vector search reached them;
    without one (keyword search, no model) a video shows from its first moment, scoring 0.
    A video without moments yet, or a photo whose vector is gone, gets no hit.
    """
    photos = [r for r in records.values() if r.kind != VIDEO]
    vectors = catalog.vectors_for([r.id for r in photos]) if query is not None else {}
    hits: dict[int, Hit] = {}
    for record in photos:
        if query is None:
            hits[record.id] = Hit.of(0, 0.0, record)
        elif record.id in vectors:
            hits[record.id] = Hit.of(0, float(np.frombuffer(vectors[record.id], "<f4") @ query), record)
    for record in records.values():
        if record.kind != VIDEO:
            continue
        moments = catalog.moments_of(record.id)  # time order
        if not moments:
            continue
        best, score = moments[0], 0.0
        if query is not None:
            blobs = catalog.vectors_for([m.id for m in moments])
            scored = [(float(np.frombuffer(blobs[m.id], "<f4") @ query), m) for m in moments if m.id in blobs]
            if not scored:
                continue
            score, best = max(scored, key=lambda pair: pair[0])  # the earliest of equal scores
        hits[record.id] = Hit.of_moment(0, MomentHit(best.id, score, best.start, best.end), record)
    return hits
