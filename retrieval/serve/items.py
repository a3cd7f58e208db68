"""Catalog items for the server: metadata by id, and thumbnails generated once and cached on disk.

Files are reached only through catalog ids: a request names an id, the catalog names the
path, so no request can point the server at a file the catalog does not list.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path

from index.errors import XmrError
from index.records import INDEXED, ImageRecord

MEDIA_TYPES = {
    "JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif",
    "BMP": "image/bmp", "TIFF": "image/tiff", "AVIF": "image/avif", "HEIF": "image/heif", "PPM": "image/x-portable-anymap",
}


class ItemNotFoundError(XmrError, LookupError):
    """No indexed image has this id (never indexed, failed, or removed since)."""


class ItemFileError(XmrError, OSError):
    """The catalogued file is gone or unreadable now (moved or deleted since the last index run)."""


def item_record(catalog: object, item_id: int) -> ImageRecord:
    """The catalog row of an indexed image.

    Raises:
        ItemNotFoundError: no indexed image has ``item_id``.
    """
    record = catalog.images([item_id]).get(item_id)  # type: ignore[attr-defined]
    if record is None or record.state != INDEXED:
        raise ItemNotFoundError(f"no indexed image has id {item_id}; ids come from search results.")
    return record


def item_json(record: ImageRecord) -> dict[str, object]:
    """Metadata of an image as the API returns it."""
    return {
        "id": record.id,
        "path": record.path,
        "name": os.path.basename(record.path),
        "size": record.size,
        "width": record.width,
        "height": record.height,
        "format": record.format,
        "captured_at": record.captured_at.isoformat() if record.captured_at else None,
        "camera": record.camera,
        "description": record.description,
        "media_type": media_type(record),
    }


def media_type(record: ImageRecord) -> str:
    return MEDIA_TYPES.get((record.format or "").upper(), "application/octet-stream")


def original_file(record: ImageRecord) -> Path:
    """The catalogued file, checked to still be a regular file.

    Raises:
        ItemFileError: it was moved or deleted since it was indexed.
    """
    path = Path(record.path)
    if not path.is_file():
        raise ItemFileError(f"image {record.id} is no longer at {record.path}; run  xmr index  to update the library.")
    return path


class ThumbnailCache:
    """JPEG thumbnails keyed by content hash and size: made once, shared by copies, new after edits."""

    def __init__(self, directory: Path, sides: tuple[int, ...]) -> None:
        self.directory = Path(directory)
        self.sides = tuple(sorted(sides))
        self._locks = [threading.Lock() for _ in range(64)]  # one generation per key at a time

    def side_for(self, asked: int | None) -> int:
        """The smallest served size at least ``asked`` (the largest when none is)."""
        if asked is None:
            return self.sides[0]
        return next((side for side in self.sides if side >= asked), self.sides[-1])

    def path_for(self, record: ImageRecord, side: int) -> Path:
        key = record.content_hash or hashlib.blake2b(f"{record.path}:{record.mtime_ns}".encode(), digest_size=16).hexdigest()
        return self.directory / key[:2] / f"{key}-{side}.jpg"

    def get(self, record: ImageRecord, side: int) -> Path:
        """The cached thumbnail file of ``record`` at ``side`` px, made now if missing.

        Raises:
            ItemFileError: the original can no longer be read.
        """
        from retrieval.decode import ImageDecodeError
        from retrieval.thumbnails import thumbnail_bytes

        target = self.path_for(record, side)
        if target.is_file():
            return target
        with self._locks[hash(target.name) % len(self._locks)]:
            if target.is_file():  # made by another request meanwhile
                return target
            try:
                data = thumbnail_bytes(original_file(record), side, "JPEG")
            except ImageDecodeError as exc:
                raise ItemFileError(f"image {record.id} at {record.path} cannot be read now: {exc}") from exc
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)  # atomic: a reader never sees half a file
        return target
