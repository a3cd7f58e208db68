"""Image queries framed like video frames: the part of a photo a video of another shape shows.

A slideshow or a phone video shows a photo filling its frame: a 4:3 photo in a 16:9 video
loses its top and bottom, then the camera pans and zooms (Ken Burns). The encoder crops
every input to its centre square, so the photo and the frame put different parts of the
picture in front of the model. So an image query is also embedded with each image cropped
at its centre to the shape of the library's videos (:func:`frame_crop`), one query per
shape (:class:`FramedQuery`); a moment scores the better of its cosine with the plain
query and with the query framed like its video, and photos keep the plain query's score
(:func:`merge_neighbors`). benchmarks/README.md ("Finding photos in slideshows") measures it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from index.vectors import Neighbors

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "ASPECT_TOLERANCE",
    "MOST_SHAPES",
    "FrameShape",
    "FramedQuery",
    "frame_crop",
    "frame_shapes",
    "merge_neighbors",
]

ASPECT_TOLERANCE = 0.02  # aspects within 2 % are one shape (1920x1080 and 854x480); an image that close is not cropped
MOST_SHAPES = 3  # an image query is framed for at most this many shapes of videos, those with most moments first


@dataclass(frozen=True)
class FrameShape:
    """One shape of the library's video frames, and the moments shown in it."""

    aspect: float  # width / height of the upright frames
    moments: np.ndarray  # sorted int64 moment vector ids of the videos of this shape


@dataclass(frozen=True)
class FramedQuery:
    """The query with its images framed for one shape, and the moments it scores."""

    vector: np.ndarray  # (D,) float32 unit vector
    moments: np.ndarray  # sorted int64 moment vector ids (those of the videos of that shape)


def frame_shapes(sizes: Mapping[tuple[int, int], np.ndarray], most: int = MOST_SHAPES) -> list[FrameShape]:
    """The shapes of ``sizes`` (moment ids per frame ``(width, height)``, as
    ``Catalog.moment_frames`` gives them): sizes whose aspects are within
    :data:`ASPECT_TOLERANCE` of a shape's first (narrowest) join it, the shape taking the
    aspect of its size with the most moments. The ``most`` shapes with the most moments,
    those first."""
    groups: list[list[tuple[float, np.ndarray]]] = []
    known = sorted(((w / h, ids) for (w, h), ids in sizes.items() if w > 0 and h > 0 and len(ids)), key=lambda x: x[0])
    for aspect, ids in known:
        if groups and aspect <= groups[-1][0][0] * (1 + ASPECT_TOLERANCE):
            groups[-1].append((aspect, ids))
        else:
            groups.append([(aspect, ids)])
    shapes = [
        FrameShape(max(group, key=lambda item: len(item[1]))[0], np.sort(np.concatenate([ids for _, ids in group])))
        for group in groups
    ]
    shapes.sort(key=lambda shape: (-len(shape.moments), shape.aspect))
    return shapes[:most]


def frame_crop(image: Image.Image, aspect: float) -> Image.Image | None:
    """The centre of ``image`` cropped to width / height ``aspect``: what a frame of that shape
    shows of it when the image fills the frame; None when the image already has that shape
    (within :data:`ASPECT_TOLERANCE`) or the crop would be under one pixel wide or high."""
    width, height = image.size
    if width < 1 or height < 1 or abs(width / height / aspect - 1) <= ASPECT_TOLERANCE:
        return None
    crop_w, crop_h = (height * aspect, float(height)) if width / height > aspect else (float(width), width / aspect)
    left, top = round((width - crop_w) / 2), round((height - crop_h) / 2)
    right, bottom = left + max(1, round(crop_w)), top + max(1, round(crop_h))
    if right - left >= width and bottom - top >= height:
        return None
    return image.crop((left, top, right, bottom))


def merge_neighbors(plain: Neighbors, framed: Sequence[Neighbors], k: int) -> Neighbors:
    """The top ``k`` of ``plain`` and ``framed`` searches, each id at its best score (best first,
    ties by id). Exact when each ``framed`` search ran over only the ids its query scores and
    every search returned its top ``k``: an id missing from the search that gave its best score
    has ``k`` others scoring more."""
    best: dict[int, float] = {}
    for found in (plain, *framed):
        for vector_id, score in zip(found.ids.tolist(), found.scores.tolist()):
            if score > best.get(vector_id, -np.inf):
                best[vector_id] = score
    ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))[:k]
    return Neighbors(
        scores=np.asarray([s for _, s in ranked], dtype=np.float32),
        ids=np.asarray([i for i, _ in ranked], dtype=np.int64),
    )
