"""Crash-safe file writes: temp file in the same directory, fsync, rename, fsync dir.

A reader sees either the old file or the new one, never a torn mix, even after
``kill -9`` or a power cut in the middle of a write.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from index.errors import DiskFullError
from index.files import disk_full_error, is_disk_full


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` atomically when the block exits cleanly.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _full_or(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _full_or(exc, path) from exc
        raise
    fsync_dir(path.parent)


def _full_or(exc: OSError, path: Path) -> OSError:
    """``exc`` as a DiskFullError naming the fix when the disk is full, else ``exc`` itself."""
    if is_disk_full(exc) and not isinstance(exc, DiskFullError):
        return disk_full_error(path.parent, exc, f"writing {path.name} (the old one is kept)")
    return exc


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_writer(path) as handle:
        handle.write(data)


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry so a completed rename survives a crash (no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temps(directory: Path) -> int:
    """Delete temp files left by writers that were killed; returns how many were removed."""
    removed = 0
    for stale in Path(directory).glob(".*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()
            removed += 1
    return removed
