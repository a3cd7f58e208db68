"""Catalog items for the server: metadata by id, and thumbnails generated once and cached on disk.

Files are reached only through catalog ids: a request names an id, the catalog names the
path, so no request can point the server at a file the catalog does not list. A file is
served only while it is still the file that was indexed (same size and mtime, the rule
incremental indexing uses) and the same inode, so swapping a photo for a link to another file
serves nothing, even with a forged size and mtime.

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
from index.files import open_regular
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
    "JPEG2000": "image/jp2",
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
    """The catalogued file, checked (see :func:`open_original`) to still be the file that was indexed.

    Raises:
        ItemFileError: it was moved, deleted, replaced or changed since it was indexed.
    """
    handle, _ = open_original(record)
    handle.close()
    return Path(record.path)


def open_original(record: ImageRecord) -> tuple[BinaryIO, os.stat_result]:
    """The catalogued file opened for reading, and its status, checked on the open descriptor.

    The file must be the very file whose bytes were indexed: the same device and inode
    (recorded at index time) and the same size and mtime. Size and mtime alone can be
    forged (``touch -r``, a copy with the same length), so a hard link or a symbolic link
    to another file swapped in under the indexed name is refused. The path is resolved
    first and the final file opened with ``O_NOFOLLOW`` and ``O_NONBLOCK`` (a FIFO put in
    its place cannot hang the request), after ``lstat`` showed it is the indexed inode; the
    descriptor is checked again, so no swap in between can be served. A row indexed before
    xmr recorded inodes is not served until ``xmr index`` has checked its bytes. The caller
    closes the handle.

    Raises:
        ItemFileError: it was moved, deleted, replaced or changed since it was indexed, or
            indexed before xmr recorded which file it is.
    """
    indexed = record.stat
    if indexed.dev is None or indexed.ino is None:
        raise ItemFileError(
            f"{record.kind} {record.id} at {record.path} was indexed before xmr recorded which file it is; "
            "run  xmr index  on its folder once (it checks the bytes, nothing is embedded again) to serve it."
        )
    target = os.path.realpath(record.path)  # a photo kept as a link to it is served from its target
    try:
        status = os.lstat(target)
    except OSError as exc:
        raise ItemFileError(_gone_message(record)) from exc
    _check_unchanged(record, status)  # before opening: nothing but the indexed inode is ever opened
    try:
        handle, status = open_regular(target, follow_symlinks=False)
    except OSError as exc:  # gone, swapped for a link (ELOOP), a FIFO or a folder meanwhile
        raise ItemFileError(_changed_message(record)) from exc
    try:
        _check_unchanged(record, status)
    except BaseException:
        handle.close()
        raise
    return handle, status


def _check_unchanged(record: ImageRecord, status: os.stat_result) -> None:
    """Raise ItemFileError unless ``status`` is the regular file that was indexed (inode, size, mtime)."""
    if not stat.S_ISREG(status.st_mode):
        raise ItemFileError(_gone_message(record))
    if not record.stat.same_file(status):
        raise ItemFileError(_changed_message(record))


def _changed_message(record: ImageRecord) -> str:
    return f"{record.kind} {record.id} at {record.path} changed since it was indexed; run  xmr index  to update the library."


def _gone_message(record: ImageRecord) -> str:
    return f"{record.kind} {record.id} is no longer at {record.path}; run  xmr index  to update the library."


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
        handle, status = open_original(record)  # even a cached thumbnail: only while the original is unchanged
        with handle:
            if target.is_file():
                return target
            with self._locks[hash(target.name) % len(self._locks)]:
                if target.is_file():  # made by another request meanwhile
                    return target
                # atomic: a reader never sees half a file, and a failed write (disk full) leaves no temp file
                atomic_write_bytes(target, _thumbnail_of(item, handle, status, side))  # from the file just checked
        return target


def _thumbnail_of(item: Item, handle: BinaryIO, status: os.stat_result, side: int) -> bytes:
    """A JPEG thumbnail of the indexed file (a video's: its frame at the item's moment), read from
    its checked descriptor (bounded memory).

    Raises:
        ItemFileError: the original cannot be decoded now.
    """
    from index.errors import MissingDependencyError
    from retrieval.errors import ImageDecodeError, VideoDecodeError
    from retrieval.images.decode import DecodeConfig, decode_handle
    from retrieval.images.thumbnails import encode_thumbnail
    from retrieval.video.thumbnails import frame_bytes

    record = item.record
    try:
        if item.start is not None:
            return frame_bytes(handle, item.start, side, "JPEG")
        image = decode_handle(
            handle, status, DecodeConfig(draft_side=side, perceptual_hash=False), name=record.path
        ).image
    except (OSError, ImageDecodeError, VideoDecodeError, MissingDependencyError) as exc:
        raise ItemFileError(f"item {record.id} at {record.path} cannot be read now: {exc}") from exc
    return encode_thumbnail(image, side, "JPEG")


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
