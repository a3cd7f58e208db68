"""Catalog items for the server: metadata by id, and thumbnails generated once and cached on disk.

Files are reached only through catalog ids: a request names an id, the catalog names the
path, so no request can point the server at a file the catalog does not list. A file is
served only while it is still the file that was indexed (same size and mtime, the rule
incremental indexing uses) and the same inode, so swapping a photo for a link to another file
serves nothing, even with a forged size and mtime.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from index.atomic import atomic_write_bytes
from index.files import open_regular
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
            f"image {record.id} at {record.path} was indexed before xmr recorded which file it is; "
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
    return f"image {record.id} at {record.path} changed since it was indexed; run  xmr index  to update the library."


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
        handle, status = open_original(record)  # even a cached thumbnail: only while the original is unchanged
        with handle:
            if target.is_file():
                return target
            with self._locks[hash(target.name) % len(self._locks)]:
                if target.is_file():  # made by another request meanwhile
                    return target
                # atomic: a reader never sees half a file, and a failed write (disk full) leaves no temp file
                atomic_write_bytes(target, _thumbnail_of(record, handle, status, side))  # from the file just checked
        return target


def _thumbnail_of(record: ImageRecord, handle: BinaryIO, status: os.stat_result, side: int) -> bytes:
    """A JPEG thumbnail of the indexed file, decoded from its checked descriptor (bounded memory).

    Raises:
        ItemFileError: the original cannot be decoded now.
    """
    from retrieval.errors import ImageDecodeError
    from retrieval.images.decode import DecodeConfig, decode_handle
    from retrieval.images.thumbnails import encode_thumbnail

    try:
        image = decode_handle(
            handle, status, DecodeConfig(draft_side=side, perceptual_hash=False), name=record.path
        ).image
    except (OSError, ImageDecodeError) as exc:
        raise ItemFileError(f"image {record.id} at {record.path} cannot be read now: {exc}") from exc
    return encode_thumbnail(image, side, "JPEG")
