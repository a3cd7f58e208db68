"""Typed results of the public API."""

from __future__ import annotations

import numbers
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from index.records import ImageRecord
from retrieval.errors import QueryError

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class Term:
    """One part of a combined query: a text or an image, with a weight (negative: "not").

    Raises:
        QueryError: a text that is not a string, an image that is neither a path nor a PIL
            image, or a weight that is not a number.
    """

    text: str | None = None  # words to look for
    image: str | Path | Image.Image | None = None  # a path or a PIL image to look like
    weight: float = 1.0  # contribution to the combined query; below zero pushes away

    def __post_init__(self) -> None:
        if self.text is not None and not isinstance(self.text, str):
            raise QueryError(f"Term(text=...) takes a string, not {type(self.text).__name__} ({self.text!r})")
        image = self.image
        if image is not None and not isinstance(image, (str, os.PathLike)) and not _is_pil(image):
            raise QueryError(
                f"Term(image=...) takes a file path or a PIL image, not {type(image).__name__} "
                "(for bytes: PIL.Image.open(io.BytesIO(data)))"
            )
        if isinstance(self.weight, bool) or not isinstance(self.weight, numbers.Real):
            raise QueryError(f"Term(weight=...) takes a number such as 2 or -0.5, not {self.weight!r}")
        object.__setattr__(self, "weight", float(self.weight))


def _is_pil(value: object) -> bool:
    """Whether ``value`` is a PIL image (checked without importing PIL)."""
    return type(value).__module__.startswith("PIL.")


@dataclass(frozen=True)
class MomentHit:
    """A moment of a video that matched the query."""

    id: int  # vector id of the moment (an item id for the server: its thumbnail, the video from there)
    score: float  # cosine similarity of query and the moment's frame
    start: float  # seconds from the start of the video
    end: float  # seconds


@dataclass(frozen=True)
class Match:
    """The text in which a hit matched the query's words (or its ``contains`` filter)."""

    text: str  # the OCR line, caption, keyword or name that matched
    source: str  # "ocr", "caption", "keywords" or "filename"
    box: tuple[float, ...] | None = (
        None  # ocr only: x, y of the 4 corners (clockwise from top-left) as fractions of width and height
    )

    def to_json(self) -> dict[str, object]:
        return {"text": self.text, "source": self.source, "box": list(self.box) if self.box else None}


@dataclass(frozen=True)
class Hit:
    """One search result: a photo, or a video at its best matching moment."""

    rank: int  # 1-based
    score: (
        float  # what ranked it: cosine -1..1; reranker: match probability; hybrid: fused (RRF); keyword: keyword score
    )
    id: int  # vector id: a photo's catalog id, or for a video hit its moment's
    path: str  # absolute path of the photo or video file
    width: int | None = None
    height: int | None = None
    format: str | None = None
    captured_at: datetime | None = None  # EXIF capture time when present
    camera: str | None = None
    dual_score: float | None = None  # with a reranker or hybrid search: the dual encoder's cosine; else None
    keyword_score: float | None = None  # keyword and hybrid search: the keyword score (None: no word matched)
    match: Match | None = None  # where the query's words (or --contains) matched, when they did
    media: str = "photo"  # "photo" or "video"
    start: float | None = None  # video: seconds where the matching moment starts (its frame); photo: None
    end: float | None = None  # video: seconds where that moment ends; photo: None
    video_id: int | None = None  # video: catalog id of the video file (``id`` is its moment's vector id)
    moments: tuple[MomentHit, ...] = ()  # video: its other matching moments, best first

    @classmethod
    def of(cls, rank: int, score: float, record: ImageRecord) -> Hit:
        return cls(
            rank=rank,
            score=float(score),
            id=record.id,
            path=record.path,
            width=record.width,
            height=record.height,
            format=record.format,
            captured_at=record.captured_at,
            camera=record.camera,
        )

    @classmethod
    def of_moment(cls, rank: int, moment: MomentHit, video: ImageRecord, others: tuple[MomentHit, ...] = ()) -> Hit:
        """A video hit at ``moment``, listing the video's ``others`` matching moments."""
        return cls(
            rank=rank,
            score=moment.score,
            id=moment.id,
            path=video.path,
            width=video.width,
            height=video.height,
            format=video.format,
            captured_at=video.captured_at,
            media="video",
            start=moment.start,
            end=moment.end,
            video_id=video.id,
            moments=others,
        )

    @property
    def file_id(self) -> int:
        """The catalog id of the hit's file: the photo's, or the video's (whose keyword document it is)."""
        return self.video_id if self.video_id is not None else self.id

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict (datetimes as ISO 8601 strings)."""
        out = asdict(self)
        out["captured_at"] = self.captured_at.isoformat() if self.captured_at else None
        out["match"] = self.match.to_json() if self.match else None
        return out


@dataclass(frozen=True)
class TextHit:
    """One text search result."""

    rank: int  # 1-based
    score: float  # cosine similarity of query and text; with a reranker: match probability 0..1
    id: int  # text id in the catalog
    text: str
    source: str  # the file it was added from
    image_path: str | None = None  # the image it describes, when known
    dual_score: float | None = None  # with a reranker: the dual encoder's cosine; else None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class TextReport:
    """What adding a text file did."""

    source: str  # absolute path of the file
    added: int  # new texts embedded
    skipped: int  # already in the library from this file
    missing_images: int = 0  # texts whose image is found neither as written, nor next to the file, nor in the library

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class SkippedKind:
    """Files of one kind an index run found but does not read, and how to have them read."""

    kind: str  # what they are, plural: "HEIC/HEIF images", "JPEG XL images", ...
    count: int  # how many this run found
    examples: tuple[str, ...]  # the first few of their absolute paths
    hint: str  # the way to read them, e.g. "pip install 'xmr[heif]' (pillow-heif)"

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "count": self.count, "examples": list(self.examples), "hint": self.hint}


@dataclass(frozen=True)
class IndexReport:
    """What an index run did."""

    added: int  # new files embedded (or given the vector of identical bytes)
    updated: int  # changed files re-embedded
    moved: int  # files found at a new path, vector kept
    removed: int  # files gone from disk (or excluded now: see excluded_removed), dropped from catalog and index
    unchanged: int  # skipped: same size and modification time
    failed: int  # == len(failures): files that could not be read this run, and walk errors
    failures: tuple[tuple[str, str], ...]  # (path, reason) for each failure, walk errors included
    encoded: int  # images (and video frames) that went through the encoder
    seconds: float  # wall time of the run
    not_read: tuple[SkippedKind, ...] = ()  # files of kinds xmr does not read (yet), by kind
    missing: tuple[str, ...] = ()  # roots given that do not exist (their images in the library are kept)
    videos: int = 0  # of added/updated/unchanged: videos read (or copied, or resumed) this run
    moments: int = 0  # moments written for them
    skipped: tuple[str, ...] = ()  # videos left unread: video support is not installed (see skipped_reason)
    skipped_reason: str = ""  # why (and the install command), when ``skipped`` is not empty
    # What the walk left out on purpose (issue 20), each said, never silent:
    excluded: int = 0  # files and folders left out by exclusion rules (a folder counts once, not its files)
    excluded_removed: tuple[str, ...] = ()  # of ``removed``: files still on disk that exclusion rules now cover
    links_skipped: tuple[tuple[str, str], ...] = ()  # (symbolic link to a folder, why it was not walked)
    raw_skipped: tuple[str, ...] = ()  # RAW files not indexed because rawpy is missing (pip install 'xmr[raw]')
    rehashed: int = 0  # of ``unchanged``, files read again only to add the perceptual hash an older xmr did not make
    ocr_read: int = 0  # images whose text was read (OCR) this run
    ocr_failed: int = 0  # images whose text could not be read (also listed in failures)

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out["failures"] = [{"path": p, "error": e} for p, e in self.failures]
        out["not_read"] = [kind.to_json() for kind in self.not_read]
        out["missing"] = list(self.missing)
        out["skipped"] = list(self.skipped)
        out["links_skipped"] = [{"path": p, "why": w} for p, w in self.links_skipped]
        out["excluded_removed"] = list(self.excluded_removed)
        out["raw_skipped"] = list(self.raw_skipped)
        return out


@dataclass(frozen=True)
class LibraryInfo:
    """What ``xmr info`` shows."""

    directory: str
    catalog_url: str
    model: str  # human label of the model
    model_spec: str  # the --model value that loads it
    embed_dim: int
    images: int  # indexed images (with a vector)
    failed: int  # images that could not be read
    texts: int  # texts in the text corpus
    index_kind: str  # "exact" or "ivf"
    vectors: int  # vectors in the image index
    bytes_on_disk: int
    index_memory: int = 0  # resident bytes of the image index (measured or estimated)
    bytes_per_vec: float = 0.0  # index_memory / vectors
    videos: int = 0  # videos with moments (indexed, or partly by a run that was stopped)
    moments: int = 0  # their moments (vectors in the image index, with the photos)
    exclude: tuple[str, ...] = ()  # the --exclude patterns the library remembers

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class DuplicateMember:
    """One image of a duplicate group, compared with the group's suggested keeper."""

    id: int  # catalog id
    path: str  # absolute path
    relation: str  # "keeper", or how it relates to the keeper: "exact", "near" or "similar"
    score: float  # cosine similarity of its vector and the keeper's (1.0 for the keeper)
    bits: int | None  # perceptual hashes' differing bits (of 63) with the keeper; None when either has none
    width: int | None = None
    height: int | None = None
    size: int = 0  # bytes
    format: str | None = None
    captured_at: datetime | None = None  # EXIF capture time when present

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out["captured_at"] = self.captured_at.isoformat() if self.captured_at else None
        return out


@dataclass(frozen=True)
class DuplicateGroup:
    """Images that are copies or near copies of one picture, or shots of one scene."""

    tier: str  # "exact" (same bytes), "near" (same picture re-encoded, resized, cropped...) or "similar"
    members: tuple[DuplicateMember, ...]  # the suggested keeper first, then by path
    reason: str  # why the keeper is suggested, in words

    @property
    def keeper(self) -> DuplicateMember:
        return self.members[0]

    def to_json(self) -> dict[str, object]:
        return {
            "tier": self.tier,
            "keeper": self.keeper.id,
            "reason": self.reason,
            "members": [m.to_json() for m in self.members],
        }


@dataclass(frozen=True)
class DuplicateReport:
    """What ``Library.duplicates`` found; it never changes a file or the library."""

    groups: tuple[DuplicateGroup, ...]  # exact groups first, then near, then similar
    images: int  # indexed images compared
    without_hash: int  # of those, images with no perceptual hash yet (they can be exact or similar, not near)
    seconds: float  # wall time

    def to_json(self) -> dict[str, object]:
        return {
            "groups": [g.to_json() for g in self.groups],
            "images": self.images,
            "without_hash": self.without_hash,
            "seconds": self.seconds,
        }
