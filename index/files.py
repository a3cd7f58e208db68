"""Opening files that must be regular files, and telling a full disk from a damaged file.

A photo folder is not trusted: any path in it may turn into a FIFO (opening one blocks
until a writer comes, forever), a device (``/dev/zero`` never ends), or a symbolic link
to a file outside it. :func:`open_regular` opens without blocking, checks on the open
descriptor that it is a regular file, and hands back that descriptor's status, so the
caller reads exactly the file it checked.

A write that fails because the disk or quota is full says so (:class:`DiskFullError`)
instead of looking like damage: "restore from a backup" is the wrong advice for a
healthy library on a full disk.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path
from typing import BinaryIO

from index.errors import DiskFullError, NotRegularFileError

__all__ = ["describe_mode", "disk_full_error", "is_disk_full", "open_regular"]

_FULL = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
# SQLite's words for SQLITE_FULL; an I/O error while creating its shared-memory file on a
# full disk reads "disk I/O error", which counts only when the disk is full (see is_disk_full).
_FULL_WORDS = ("database or disk is full", "no space left on device", "disk quota exceeded")
_NEARLY_FULL = 1 << 20  # free bytes under which an unexplained I/O error is put down to a full disk


def describe_mode(mode: int) -> str:
    """What kind of file ``mode`` (an ``st_mode``) is, in words, e.g. "a FIFO (named pipe)"."""
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def open_regular(path: str | os.PathLike[str], follow_symlinks: bool = True) -> tuple[BinaryIO, os.stat_result]:
    """Open ``path`` for reading, checked on the descriptor to be a regular file; the caller closes it.

    The open never blocks (``O_NONBLOCK``: a FIFO opens at once instead of waiting for a
    writer) and never takes a terminal (``O_NOCTTY``); with ``follow_symlinks=False`` a
    symbolic link is refused (``O_NOFOLLOW``, ``OSError`` ELOOP).

    Returns:
        The file, and ``os.fstat`` of its descriptor (the size, time, device and inode of
        exactly what will be read).

    Raises:
        NotRegularFileError: a FIFO, device, socket or folder (the message says which).
        OSError: it cannot be opened.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError as exc:  # Windows, and some systems' answer for folders
        raise NotRegularFileError(f"{os.fspath(path)} is a folder, not a regular file") from exc
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise NotRegularFileError(f"{os.fspath(path)} is {describe_mode(status.st_mode)}, not a regular file")
        return os.fdopen(fd, "rb"), status
    except BaseException:
        os.close(fd)
        raise


def is_disk_full(exc: BaseException, where: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``exc`` (an OSError, or a database error's message) means the disk or quota is full.

    ``where`` (a file or folder on the disk in question) lets an unexplained "disk I/O
    error" count as a full disk when that disk has almost no free space left.
    """
    if isinstance(exc, OSError) and exc.errno in _FULL:
        return True
    words = str(getattr(exc, "orig", None) or exc).lower()
    if any(w in words for w in _FULL_WORDS):
        return True
    if where is not None and "disk i/o error" in words:
        return free_bytes(where) < _NEARLY_FULL
    return False


def free_bytes(where: str | os.PathLike[str]) -> int:
    """Free bytes on the disk holding ``where`` (its nearest existing folder); a large number if unknown."""
    path = Path(where)
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return 1 << 62


def disk_full_error(where: str | os.PathLike[str], exc: object, what: str) -> DiskFullError:
    """A :class:`DiskFullError` for ``what`` failing at ``where`` with ``exc`` (an error or its words), naming the fix."""
    error = DiskFullError(
        f"the disk holding {where} is full ({free_bytes(where):,} bytes free): {what} failed ({exc}). "
        "Free some space and run the same command again; nothing written before was lost and "
        "the library is not damaged (do not restore it from a backup for this)."
    )
    error.errno = errno.ENOSPC
    return error
