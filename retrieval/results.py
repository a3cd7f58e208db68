"""Typed results of the public API."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from index.records import ImageRecord


@dataclass(frozen=True)
class Term:
    """One part of a combined query: a text or an image, with a weight (negative: "not")."""

    text: str | None = None  # words to look for
    image: object = None  # a path or a PIL image to look like
    weight: float = 1.0  # contribution to the combined query; below zero pushes away


@dataclass(frozen=True)
class MomentHit:
    """A moment of a video that matched the query."""

    id: int  # vector id of the moment (an item id for the server: its thumbnail, the video from there)
    score: float  # cosine similarity of query and the moment's frame
    start: float  # seconds from the start of the video
    end: float  # seconds


@dataclass(frozen=True)
class Hit:
    """One search result: a photo, or a video at its best matching moment."""

    rank: int  # 1-based
    score: float  # cosine similarity of query and image, -1..1; with a reranker: match probability 0..1
    id: int  # catalog id (== vector id)
    path: str  # absolute path of the image file
    width: int | None = None
    height: int | None = None
    format: str | None = None
    captured_at: datetime | None = None  # EXIF capture time when present
    camera: str | None = None
    dual_score: float | None = None  # with a reranker: the dual encoder's cosine; else None
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

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict (datetimes as ISO 8601 strings)."""
        out = asdict(self)
        out["captured_at"] = self.captured_at.isoformat() if self.captured_at else None
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

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class IndexReport:
    """What an index run did."""

    added: int  # new files embedded (or given the vector of identical bytes)
    updated: int  # changed files re-embedded
    moved: int  # files found at a new path, vector kept
    removed: int  # files gone from disk, dropped from catalog and index
    unchanged: int  # skipped: same size and modification time
    failed: int  # files that could not be read this run
    failures: tuple[tuple[str, str], ...]  # (path, reason) for each failure, walk errors included
    encoded: int  # images (and video frames) that went through the encoder
    seconds: float  # wall time of the run
    videos: int = 0  # of added/updated/unchanged: videos read (or copied, or resumed) this run
    moments: int = 0  # moments written for them
    skipped: tuple[str, ...] = ()  # videos left unread: video support is not installed (see skipped_reason)
    skipped_reason: str = ""  # why (and the install command), when ``skipped`` is not empty

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out["failures"] = [{"path": p, "error": e} for p, e in self.failures]
        out["skipped"] = list(self.skipped)
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

    def to_json(self) -> dict[str, object]:
        return asdict(self)
