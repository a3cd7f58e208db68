"""Typed results of the public API."""

from __future__ import annotations

import numbers
import os
from dataclasses import asdict, dataclass
from datetime import datetime

from index.records import ImageRecord
from retrieval.errors import QueryError


@dataclass(frozen=True)
class Term:
    """One part of a combined query: a text or an image, with a weight (negative: "not").

    Raises:
        QueryError: a text that is not a string, an image that is neither a path nor a PIL
            image, or a weight that is not a number.
    """

    text: str | None = None  # words to look for
    image: object = None  # a path or a PIL image to look like
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
class Hit:
    """One search result."""

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
    removed: int  # files gone from disk, dropped from catalog and index
    unchanged: int  # skipped: same size and modification time
    failed: int  # == len(failures): files that could not be read this run, and walk errors
    failures: tuple[tuple[str, str], ...]  # (path, reason) for each failure, walk errors included
    encoded: int  # images that went through the encoder
    seconds: float  # wall time of the run
    skipped: tuple[SkippedKind, ...] = ()  # files of kinds xmr does not read (yet), by kind
    missing: tuple[str, ...] = ()  # roots given that do not exist (their images in the library are kept)

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out["failures"] = [{"path": p, "error": e} for p, e in self.failures]
        out["skipped"] = [kind.to_json() for kind in self.skipped]
        out["missing"] = list(self.missing)
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

    def to_json(self) -> dict[str, object]:
        return asdict(self)
