"""Catalog items for the server: metadata by id, and thumbnails generated once and cached on disk.

Files are reached only through catalog ids: a request names an id, the catalog names the
path, so no request can point the server at a file the catalog does not list. A file is
served only while it is still the file that was indexed (same size and mtime, the rule
incremental indexing uses), so swapping a photo for a symlink to another file serves nothing.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from index.atomic import atomic_write_bytes
from index.records import INDEXED, ImageRecord
from retrieval.errors import ItemFileError, ItemNotFoundError

if TYPE_CHECKING:
    from index.catalog import Catalog

MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "AVIF": "image/avif",
    "HEIF": "image/heif",
    "PPM": "image/x-portable-anymap",
}


def item_record(catalog: Catalog, item_id: int) -> ImageRecord:
    """The catalog row of an indexed image.

    Raises:
        ItemNotFoundError: no indexed image has ``item_id``.
    """
    record = catalog.images([item_id]).get(item_id)
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
    """The catalogued file, checked to still be the regular file that was indexed.

    Raises:
        ItemFileError: it was moved, deleted or changed since it was indexed.
    """
    try:
        status = os.stat(record.path)
    except OSError as exc:
        raise ItemFileError(_gone_message(record)) from exc
    _check_unchanged(record, status)
    return Path(record.path)


def open_original(record: ImageRecord) -> tuple[BinaryIO, os.stat_result]:
    """The catalogued file opened for reading, and its status, checked on the open descriptor.

    Checking ``fstat`` of the descriptor that is then read leaves no gap in which the path
    could be swapped for another file. The caller closes the handle.

    Raises:
        ItemFileError: it was moved, deleted or changed since it was indexed.
    """
    try:  # O_NONBLOCK: a FIFO put in the file's place must not hang the request
        fd = os.open(record.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise ItemFileError(_gone_message(record)) from exc
    handle = os.fdopen(fd, "rb")
    try:
        status = os.fstat(fd)
        _check_unchanged(record, status)
    except BaseException:
        handle.close()
        raise
    return handle, status


def _check_unchanged(record: ImageRecord, status: os.stat_result) -> None:
    """Raise ItemFileError unless ``status`` is a regular file of the indexed size and mtime."""
    if not stat.S_ISREG(status.st_mode):
        raise ItemFileError(_gone_message(record))
    if (status.st_size, status.st_mtime_ns) != (record.size, record.mtime_ns):
        raise ItemFileError(
            f"image {record.id} at {record.path} changed since it was indexed; run  xmr index  to update the library."
        )


def _gone_message(record: ImageRecord) -> str:
    return f"image {record.id} is no longer at {record.path}; run  xmr index  to update the library."


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
        key = (
            record.content_hash
            or hashlib.blake2b(f"{record.path}:{record.mtime_ns}".encode(), digest_size=16).hexdigest()
        )
        return self.directory / key[:2] / f"{key}-{side}.jpg"

    def get(self, record: ImageRecord, side: int) -> Path:
        """The cached thumbnail file of ``record`` at ``side`` px, made now if missing.

        Raises:
            ItemFileError: the original can no longer be read, or changed since it was indexed.
        """
        target = self.path_for(record, side)
        original_file(record)  # even a cached thumbnail is served only while the original is unchanged
        if target.is_file():
            return target
        with self._locks[hash(target.name) % len(self._locks)]:
            if target.is_file():  # made by another request meanwhile
                return target
            # atomic: a reader never sees half a file, and a failed write (disk full) leaves no temp file
            atomic_write_bytes(target, _thumbnail_of(record, side))
        return target


def _thumbnail_of(record: ImageRecord, side: int) -> bytes:
    """A JPEG thumbnail of the indexed file, read through one checked descriptor.

    Raises:
        ItemFileError: the original can no longer be read, or changed since it was indexed.
    """
    from retrieval.errors import ImageDecodeError
    from retrieval.images.thumbnails import thumbnail_bytes

    handle, _ = open_original(record)
    try:
        with handle:
            data = handle.read()
        return thumbnail_bytes(data, side, "JPEG", name=record.path)
    except (OSError, ImageDecodeError) as exc:
        raise ItemFileError(f"image {record.id} at {record.path} cannot be read now: {exc}") from exc
