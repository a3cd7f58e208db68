"""A video file's identity from a few sampled blocks, not a full read of a many-GB file.

Moves, copies and touched-only files are recognised by this identity, so two different
videos must never share one. It hashes, with blake2b-128:

- the file size;
- the first and last :data:`EDGE` bytes (container headers, and the index an MP4 camera
  writes at the end);
- :data:`SPREAD` blocks of :data:`BLOCK` bytes at fixed fractions of the size;
- for ISO media files (mp4, mov, m4v, 3gp), the whole ``moov`` box wherever it lies (up to
  :data:`MAX_MOOV` bytes): it lists the size and offset of every frame, so an edit that
  re-encodes any frame changes it even where no sampled block falls.

About 1.5 MiB (and the moov box) is read from a file of any size. Two files match only when all of that is
equal; a change confined to the unsampled media bytes of a non-ISO file with the size kept
(a bit flipped in place) goes unseen until the file's size or identity changes otherwise.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path
from typing import BinaryIO

from index.files import open_regular

__all__ = [
    "BLOCK",
    "EDGE",
    "IDENTITY_PREFIX",
    "MAX_MOOV",
    "SPREAD",
    "is_video_identity",
    "video_identity",
    "video_identity_checked",
]

IDENTITY_PREFIX = "v1:"  # never equal to an image's full-file hash (plain hex)
EDGE = 256 * 1024  # bytes hashed at each end
BLOCK = 64 * 1024  # bytes per spread block
SPREAD = 16  # blocks at fixed fractions of the size
MAX_MOOV = 64 * 1024 * 1024  # a moov box larger than this is sampled like the rest (never seen in practice)
_MAX_BOXES = 1024  # top-level boxes walked before giving up on finding moov
_ISO_TYPES = frozenset(
    {
        b"ftyp",
        b"moov",
        b"mdat",
        b"free",
        b"skip",
        b"wide",
        b"uuid",
        b"pnot",
        b"meta",
        b"moof",
        b"mfra",
        b"styp",
        b"sidx",
        b"pdin",
    }
)


def video_identity(path: str | Path) -> str:
    """The sampled-block identity of the file at ``path`` (``"v1:"`` + 32 hex digits).

    Raises:
        OSError: the file cannot be read, or is no regular file (``NotRegularFileError``).
    """
    return video_identity_checked(path)[0]


def video_identity_checked(path: str | Path) -> tuple[str, os.stat_result]:
    """:func:`video_identity`, and ``os.fstat`` of the descriptor it read (which file, exactly:
    the catalog records its device and inode, and ``/file`` serves only that file).

    The file is opened without blocking and checked to be a regular file first (a FIFO put
    in a video's place never hangs the run).

    Raises:
        OSError: the file cannot be read, or is no regular file (``NotRegularFileError``).
    """
    handle, status = open_regular(path)
    with handle:
        size = status.st_size
        digest = hashlib.blake2b(digest_size=16)
        digest.update(struct.pack("<Q", size))
        for offset, length in block_ranges(size):
            digest.update(_read_at(handle, offset, length))
        moov = _moov_range(handle, size)
        if moov is not None:
            digest.update(b"moov")
            offset, length = moov
            handle.seek(offset)
            while length > 0:
                chunk = handle.read(min(length, 1 << 20))
                if not chunk:
                    break
                digest.update(chunk)
                length -= len(chunk)
    return IDENTITY_PREFIX + digest.hexdigest(), status


def is_video_identity(value: str) -> bool:
    """Whether ``value`` was made by :func:`video_identity` (not a full-file hash)."""
    return value.startswith(IDENTITY_PREFIX)


def block_ranges(size: int) -> list[tuple[int, int]]:
    """``(offset, length)`` of the sampled blocks of a file of ``size`` bytes (the whole file when small)."""
    if size <= 2 * EDGE + SPREAD * BLOCK:
        return [(0, size)]
    ranges = [(0, EDGE), (size - EDGE, EDGE)]
    inner = size - 2 * EDGE - BLOCK
    ranges += [(EDGE + inner * i // (SPREAD - 1), BLOCK) for i in range(SPREAD)]
    return ranges


def _read_at(handle: BinaryIO, offset: int, length: int) -> bytes:
    handle.seek(offset)
    return handle.read(length)


def _moov_range(handle: BinaryIO, size: int) -> tuple[int, int] | None:
    """``(offset, length)`` of the top-level ``moov`` box of an ISO media file, else None."""
    offset = 0
    for _ in range(_MAX_BOXES):
        if offset + 8 > size:
            return None
        header = _read_at(handle, offset, 16)
        if len(header) < 8:
            return None
        length, kind = struct.unpack(">I4s", header[:8])
        if kind not in _ISO_TYPES:
            return None  # not an ISO media file (or a box this walk does not know): blocks only
        if length == 1:  # a 64-bit size follows the type
            if len(header) < 16:
                return None
            length = struct.unpack(">Q", header[8:16])[0]
        elif length == 0:  # the box runs to the end of the file
            length = size - offset
        if length < 8 or offset + length > size:
            return None
        if kind == b"moov":
            return (offset, length) if length <= MAX_MOOV else None
        offset += length
    return None
