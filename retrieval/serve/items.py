"""Catalog items for the server: metadata by id, and thumbnails generated once and cached on disk.

Files are reached only through catalog ids: a request names an id, the catalog names the
path, so no request can point the server at a file the catalog does not list. A file is
served only while it is still the file that was indexed (same size and mtime, the rule
incremental indexing uses), so swapping a photo for a symlink to another file serves nothing.

An id is a photo's, or a video moment's (its vector id): a moment's item is its video file
(served whole or by byte ranges) at the moment's start (its thumbnail is that frame).
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from index.atomic import atomic_write_bytes
from index.records import INDEXED, PARTIAL, ImageRecord
from index.schema import VIDEO
from index.video_records import MomentRecord
from retrieval.errors import ItemFileError, ItemNotFoundError
from retrieval.video.formats import VIDEO_MEDIA_TYPES

if TYPE_CHECKING:
    from PIL import Image

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
    **VIDEO_MEDIA_TYPES,
}


@dataclass(frozen=True)
class Item:
    """What an id names: a photo, or a video file at one of its moments."""

    record: ImageRecord  # the file's catalog row
    moment: MomentRecord | None = None  # the video's moment the id is the vector of; None for photos

    @property
    def start(self) -> float | None:
        """Seconds into the video where the item is (0 for a video named by its file id); None for photos."""
        if self.moment is not None:
            return self.moment.start
        return 0.0 if self.record.kind == VIDEO else None


def item_of(catalog: Catalog, item_id: int) -> Item:
    """The photo, or the video moment, that ``item_id`` names.

    Raises:
        ItemNotFoundError: no indexed photo, video or moment has ``item_id``.
    """
    record = catalog.images([item_id]).get(item_id)
    moment = None
    if record is None:
        moment = catalog.moments([item_id]).get(item_id)
        record = catalog.images([moment.video_id]).get(moment.video_id) if moment is not None else None
    # A video some of whose moments are written (a run still going, or stopped) is searchable.
    if record is None or record.state not in (INDEXED, PARTIAL) or (record.state == PARTIAL and moment is None):
        raise ItemNotFoundError(f"no indexed image or video has id {item_id}; ids come from search results.")
    return Item(record, moment)


def item_json(item: Item) -> dict[str, object]:
    """Metadata of a photo, or of a video at a moment, as the API returns it."""
    record = item.record
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
        "media": "video" if record.kind == VIDEO else "photo",
        "start": item.start,
        "end": item.moment.end if item.moment is not None else None,
        "video_id": record.id if record.kind == VIDEO else None,
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

    def path_for(self, item: Item, side: int) -> Path:
        record = item.record
        key = (
            record.content_hash
            or hashlib.blake2b(f"{record.path}:{record.mtime_ns}".encode(), digest_size=16).hexdigest()
        )
        at = "" if item.start is None else f"-{round(item.start * 1000)}ms"  # one thumbnail per moment
        return self.directory / key[:2].replace(":", "_") / f"{key.replace(':', '_')}{at}-{side}.jpg"

    def get(self, item: Item, side: int) -> Path:
        """The cached thumbnail file of ``item`` (a photo, or a video's frame at a moment) at ``side`` px,
        made now if missing.

        Raises:
            ItemFileError: the original can no longer be read, or changed since it was indexed.
        """
        record = item.record
        target = self.path_for(item, side)
        original_file(record)  # even a cached thumbnail is served only while the original is unchanged
        if target.is_file():
            return target
        with self._locks[hash(target.name) % len(self._locks)]:
            if target.is_file():  # made by another request meanwhile
                return target
            # atomic: a reader never sees half a file, and a failed write (disk full) leaves no temp file
            atomic_write_bytes(target, _thumbnail_of(item, side))
        return target


def _thumbnail_of(item: Item, side: int) -> bytes:
    """A JPEG thumbnail of the indexed file (a video's: its frame at the item's moment), read
    through one checked descriptor.

    Raises:
        ItemFileError: the original can no longer be read, or changed since it was indexed.
    """
    from index.errors import MissingDependencyError
    from retrieval.errors import ImageDecodeError, VideoDecodeError
    from retrieval.images.thumbnails import thumbnail_bytes
    from retrieval.video.thumbnails import frame_bytes

    record = item.record
    handle, _ = open_original(record)
    try:
        with handle:
            if item.start is not None:
                return frame_bytes(handle, item.start, side, "JPEG")
            data = handle.read()
        return thumbnail_bytes(data, side, "JPEG", name=record.path)
    except (OSError, ImageDecodeError, VideoDecodeError, MissingDependencyError) as exc:
        raise ItemFileError(f"item {record.id} at {record.path} cannot be read now: {exc}") from exc


def item_image(item: Item) -> str | Image.Image:
    """What a reranker or an image query reads for ``item``: a photo's checked path, a moment's frame.

    Raises:
        ItemFileError: the original can no longer be read, or changed since it was indexed.
    """
    from index.errors import MissingDependencyError
    from retrieval.errors import VideoDecodeError
    from retrieval.video.frames import VideoReader

    if item.start is None:
        return str(original_file(item.record))
    handle, _ = open_original(item.record)
    try:
        with handle, VideoReader(handle) as reader:
            return reader.frame_at(item.start, 448)
    except (OSError, VideoDecodeError, MissingDependencyError) as exc:
        raise ItemFileError(f"item {item.record.id} at {item.record.path} cannot be read now: {exc}") from exc
