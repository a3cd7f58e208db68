"""Plain, typed records that cross the storage boundary (no ORM objects leak out)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import InitVar, dataclass
from datetime import datetime
from typing import Any

from index.errors import FilterError
from index.keywords import tokens


def is_utf8(text: str) -> bool:
    """Whether ``text`` can be stored (catalog, query cache): it encodes as UTF-8, which a
    file name or argument in another encoding (lone surrogates in Python) does not."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


INDEXED = "indexed"
FAILED = "failed"
PARTIAL = "partial"  # a video whose moments are still being written (a killed run resumes it)
ALL, PHOTOS, VIDEOS = "all", "photos", "videos"  # ImageFilter.media values


@dataclass(frozen=True)
class FileStat:
    """What the file system says about a file, before it is read."""

    path: str  # absolute, resolved path
    size: int  # bytes
    mtime_ns: int  # modification time, nanoseconds since the epoch
    dev: int | None = None  # st_dev of the file that was read; None: not known (the scan's stat leaves it so)
    ino: int | None = None  # st_ino of the file that was read; None: not known

    @classmethod
    def of(cls, path: str, status: os.stat_result) -> FileStat:
        """The stat of ``path`` as ``status`` (an ``os.fstat`` of the descriptor read) gives it, identity included."""
        return cls(path, status.st_size, status.st_mtime_ns, status.st_dev, status.st_ino)

    def same_file(self, status: os.stat_result) -> bool:
        """Whether ``status`` is this very file, unchanged: same device, inode, size and mtime.

        False when the identity is not known (a row indexed before xmr recorded it): an
        unknown inode cannot be told apart from a link swapped in with a forged size and mtime.
        """
        if self.dev is None or self.ino is None:
            return False
        return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns) == (
            self.dev,
            self.ino,
            self.size,
            self.mtime_ns,
        )

    def stored_identity(self) -> dict[str, int | None]:
        """``dev`` and ``ino`` as the catalog's columns hold them: signed 64-bit (BIGINT), read back
        modulo 2**64; None (NULL) when not known."""
        return {"dev": _signed(self.dev), "ino": _signed(self.ino)}


def _signed(value: int | None) -> int | None:
    """An unsigned 64-bit st_dev/st_ino as a signed 64-bit integer."""
    return None if value is None else (value - (1 << 64) if value >= 1 << 63 else value)


@dataclass(frozen=True)
class ImageMeta:
    """What decoding a file tells about the image."""

    width: int  # pixels, after EXIF orientation
    height: int  # pixels, after EXIF orientation
    format: str  # Pillow format name, e.g. "JPEG"
    captured_at: datetime | None = None  # EXIF DateTimeOriginal (naive local time)
    orientation: int | None = None  # EXIF orientation tag 1..8
    camera: str | None = None  # EXIF make and model
    description: str | None = None  # EXIF ImageDescription or XMP dc:description, if any
    phash: int | None = None  # 63-bit perceptual hash of the upright pixels (retrieval.images.phash); None: not made
    title: str | None = None  # XMP dc:title or IPTC ObjectName, if any
    keywords: tuple[str, ...] = ()  # IPTC Keywords and XMP dc:subject, in file order, once each

    def tags(self) -> list[str]:
        """Title and keywords: what the keyword index takes from the file's own metadata."""
        return [*([self.title] if self.title else []), *self.keywords]


@dataclass(frozen=True)
class ImageRecord:
    """One catalog row: an image file, its metadata and its indexing state."""

    id: int  # catalog id == vector id
    path: str  # absolute path
    size: int  # bytes
    mtime_ns: int  # modification time in ns
    content_hash: str  # blake2b-128 hex of the file's bytes ("" if unreadable)
    state: str  # INDEXED or FAILED
    width: int | None = None
    height: int | None = None
    format: str | None = None
    captured_at: datetime | None = None
    orientation: int | None = None
    camera: str | None = None
    error: str | None = None  # why it failed, for FAILED rows
    description: str | None = None  # embedded caption (EXIF ImageDescription / XMP)
    captions_mtime_ns: int = 0  # newest sidecar caption file when captions were read; 0 none
    phash: int | None = None  # perceptual hash of its pixels; None for rows from before catalog schema 2
    dev: int | None = None  # st_dev of the file whose bytes were indexed; None: indexed before schema 4
    ino: int | None = None  # st_ino of that file; None: indexed before schema 4
    kind: str = "image"  # "image" or "video" (index.schema.IMAGE / VIDEO)

    @property
    def stat(self) -> FileStat:
        """What the catalog knows of the file: path, size, mtime and (when recorded) device and inode."""
        return FileStat(self.path, self.size, self.mtime_ns, self.dev, self.ino)


# The images columns an ImageRecord is made of, in its fields' order (the tests check both against
# index.schema.ImageRow, so a new column cannot be forgotten here).
IMAGE_COLUMNS = tuple(ImageRecord.__dataclass_fields__)
_CAPTURED, _CAPTIONS_MTIME, _DEV, _INO = (
    IMAGE_COLUMNS.index(n) for n in ("captured_at", "captions_mtime_ns", "dev", "ino")
)
_U64 = 1 << 64


def image_record(values: Sequence[Any]) -> ImageRecord:
    """The :class:`ImageRecord` of one images row, its :data:`IMAGE_COLUMNS` values in order, as
    SQLAlchemy's ORM or ``sqlite3`` give them (a date as text from the latter)."""
    row = list(values)
    if isinstance(row[_CAPTURED], str):
        row[_CAPTURED] = datetime.fromisoformat(row[_CAPTURED])
    row[_CAPTIONS_MTIME] = row[_CAPTIONS_MTIME] or 0
    for at in (_DEV, _INO):  # stored signed (BIGINT), st_dev and st_ino are unsigned
        if row[at] is not None:
            row[at] %= _U64
    return ImageRecord(*row)


@dataclass(frozen=True)
class Embedded:
    """A file that was read, decoded and embedded, ready to be written."""

    stat: FileStat
    content_hash: str
    meta: ImageMeta
    vector: bytes  # float32 little-endian, L2-normalised, length dim*4


@dataclass(frozen=True)
class Failed:
    """A file that could not be read or decoded, and why."""

    stat: FileStat
    error: str
    content_hash: str = ""


@dataclass(frozen=True)
class Moved:
    """A catalog row whose content now lives at another path (vector kept)."""

    id: int
    stat: FileStat
    old_path: str = ""  # where the content was before


@dataclass(frozen=True)
class ImageFilter:
    """Which images a search may return; empty fields do not filter."""

    under: tuple[str, ...] = ()  # absolute folder paths; an image must lie under one of them
    after: datetime | None = None  # capture time (else file modification time) at or after
    before: datetime | None = None  # capture time (else file modification time) before
    extensions: tuple[str, ...] = ()  # lower-case suffixes with the dot, e.g. (".jpg", ".png")
    contains: tuple[
        str, ...
    ] = ()  # texts an image must hold, each as words in a row (OCR, names, captions or keywords)
    media: str = ALL  # ALL, PHOTOS (no video moments) or VIDEOS (only video moments)
    ext: InitVar[str | tuple[str, ...]] = ()  # more extensions, named as the CLI's --ext ("jpg,png" or ("jpg", "png"))

    def __post_init__(self, ext: str | tuple[str, ...] = ()) -> None:
        # Callers of the library API pass a lone string, relative folders, "JPG" or "jpg,png":
        # taken as meant, never silently matching everything (a str is a tuple of characters).
        under = (self.under,) if isinstance(self.under, (str, os.PathLike)) else self.under
        object.__setattr__(self, "under", tuple(os.path.abspath(os.path.expanduser(os.fspath(u))) for u in under))
        given = [*_listed(self.extensions), *_listed(ext)]
        suffixes = ("." + e.strip().lower().lstrip(".") for value in given for e in value.split(",") if e.strip())
        object.__setattr__(self, "extensions", tuple(dict.fromkeys(suffixes)))
        contains = (self.contains,) if isinstance(self.contains, str) else tuple(self.contains)
        object.__setattr__(self, "contains", contains)
        for words in contains:
            if not isinstance(words, str) or not is_utf8(words) or not tokens(words):
                raise FilterError(
                    f"ImageFilter.contains takes texts with at least one letter or digit, e.g. 'receipt' or '42.50' (got {words!r})"
                )
        for name in ("after", "before"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, datetime):
                raise FilterError(
                    f"ImageFilter.{name} must be a datetime (e.g. datetime(2024, 1, 1)), not {type(value).__name__}"
                )
            if value is not None:
                try:
                    value.timestamp()  # what the catalog compares file times with
                except (OverflowError, ValueError, OSError) as exc:
                    raise FilterError(
                        f"ImageFilter.{name} {value} is outside the dates this system can compare ({exc}); give a date after 1900"
                    ) from exc
        if self.media not in (ALL, PHOTOS, VIDEOS):
            raise FilterError(f"ImageFilter.media must be 'all', 'photos' or 'videos', not {self.media!r}")
        if self.after is not None and self.before is not None and _ordered(self.after, self.before) is False:
            raise FilterError(
                f"ImageFilter.after ({self.after}) must be earlier than before ({self.before}): nothing would match"
            )

    @property
    def active(self) -> bool:
        return bool(self.under or self.after or self.before or self.extensions or self.contains or self.media != ALL)


@dataclass(frozen=True)
class TextRecord:
    """One text of the text corpus."""

    id: int  # catalog id == vector id in the text index
    body: str  # the text itself
    source: str  # file it was added from
    image_path: str | None = None  # the image it describes, when the source links one


@dataclass(frozen=True)
class Captions:
    """The captions of one image and the sidecar mtime they were read at."""

    mtime_ns: int  # newest sidecar file's mtime; 0 when there is none
    items: tuple[tuple[str, bytes], ...] = ()  # (text, float32 vector bytes)


def _listed(value: str | tuple[str, ...] | list[str]) -> list[str]:
    """A lone extension string, or a list of them, as a list."""
    if isinstance(value, str):
        return [value]
    if not all(isinstance(item, str) for item in value):
        raise FilterError(f"ImageFilter extensions are strings such as 'jpg' or 'jpg,png', not {value!r}")
    return list(value)


def _ordered(first: datetime, second: datetime) -> bool | None:
    """Whether ``first < second`` (aware times compared in local time); None if unknowable."""
    try:
        a, b = (m.astimezone().replace(tzinfo=None) if m.tzinfo else m for m in (first, second))
    except (OverflowError, ValueError, OSError):  # out of the platform's time range
        return None
    return a < b


@dataclass(frozen=True)
class DocSources:
    """The raw texts an image's keyword document was made from (for snippets)."""

    path: str
    content_hash: str
    captions: tuple[str, ...]  # sidecar captions, then the embedded description
    tags: tuple[str, ...]  # title and keywords
    ocr: tuple[tuple[str, float, tuple[float, ...]], ...]  # (text, confidence, box) per line


@dataclass(frozen=True)
class OcrRecord:
    """The text read from one image's bytes, ready to be written."""

    content_hash: str  # blake2b-128 hex of the bytes that were read
    engine: str  # what read them
    lines: tuple[tuple[str, float, tuple[float, ...]], ...] = ()  # (text, confidence, 8-number box) per line
    error: str | None = None  # why they could not be read
