"""Crash-safe file writes: temp file in the same directory, fsync, rename, fsync dir.

A reader sees either the old file or the new one, never a torn mix, even after
``kill -9`` or a power cut in the middle of a write. A writer killed mid-write leaves its
temp file behind; the temp's name carries the writer's process id and machine, so that a
later run removes exactly the temps of writers that are gone (:func:`remove_stale_temps`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from index.errors import DiskFullError
from index.files import disk_full_error, is_disk_full

# A temp no writer can be attributed to (another machine's, or an older xmr's) is removed once
# it is this old: no atomic write takes an hour between its last byte and its rename.
STALE_SECONDS = 3600.0
_TEMP = re.compile(r"^\..+\.(?P<pid>\d+)-(?P<host>[0-9a-f]{8})\.[^.]+\.tmp$")


def _host() -> str:
    """A short, file-name-safe key of this machine (pids are only meaningful on their machine)."""
    return hashlib.blake2b(socket.gethostname().encode(), digest_size=4).hexdigest()


def writer_tag(pid: int | None = None) -> str:
    """``PID-HOST``: what a temp file's name says of its writer (this process by default)."""
    return f"{os.getpid() if pid is None else pid}-{_host()}"


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` atomically when the block exits cleanly.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{writer_tag()}.", suffix=".tmp", dir=path.parent)
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


def temp_dir(path: Path) -> Path:
    """A new empty folder beside ``path`` to build ``path`` in before a rename; its name carries
    its writer like a temp file's, so :func:`remove_stale_temps` (``folders=True``) finds it."""
    path = Path(path)
    return Path(tempfile.mkdtemp(prefix=f".{path.name}.{writer_tag()}.", suffix=".tmp", dir=path.parent))


def remove_stale_temps(directory: Path, folders: bool = False) -> int:
    """Delete the temp files that writers killed mid-write left in ``directory``; returns how many.

    A temp of this machine is removed when the process that wrote it is gone; one of another
    machine (a library on a network share) or without a writer in its name (an older xmr's) once
    it is :data:`STALE_SECONDS` old. A live writer's temp is never touched, so this is safe to
    call while other processes write here (a search remembering an index config, another run).
    ``folders``: temp folders (:func:`temp_dir`) too, with what they hold; only for folders that
    xmr alone writes in (its export cache).
    """
    removed, host, now = 0, _host(), time.time()
    for stale in Path(directory).glob(".*.tmp"):
        try:
            match = _TEMP.match(stale.name)
            if match and match["host"] == host:
                gone = not _alive(int(match["pid"]))
            else:
                gone = now - stale.stat().st_mtime > STALE_SECONDS
            if gone and stale.is_file():
                stale.unlink()
                removed += 1
            elif gone and folders and stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale)
                removed += 1
        except OSError:
            continue  # removed meanwhile, or not ours to remove
    return removed


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (a pid of another user's process counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, and belongs to someone else
        return True
    return True
